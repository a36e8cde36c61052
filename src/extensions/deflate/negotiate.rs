//! Negotiation: the agreement, the header items, the offer and response rules.

use super::*;

/// The parameters agreed during the opening handshake, as seen by one side.
///
/// Window bits are the largest window each side compresses with (15 when not limited); a side
/// told to use 8 compresses with 9, which the other side handles because it inflates with at
/// least 9 anyway.
// Exhaustive by decision: RFC 7692's four parameters.
#[allow(clippy::exhaustive_structs)]
#[derive(Clone, Copy, Debug, Eq, Hash, PartialEq)]
pub struct DeflateParams {
    /// Our side: a client called [`finalize`](Extension::finalize), a server
    /// [`accept`](Extension::accept).
    pub role: ConnectionType,
    /// The client resets its compression context after each message.
    pub client_no_context_takeover: bool,
    /// The server resets its compression context after each message.
    pub server_no_context_takeover: bool,
    /// Largest window the client compresses with (8..=15).
    pub client_max_window_bits: u8,
    /// Largest window the server compresses with (8..=15).
    pub server_max_window_bits: u8,
}

impl DeflateParams {
    /// The same agreement seen from the given side.
    pub fn with_role(self, role: ConnectionType) -> DeflateParams {
        DeflateParams { role, ..self }
    }

    /// Window bits we compress with (never below 9).
    pub fn compress_window_bits(&self) -> u8 {
        let bits = match self.role {
            ConnectionType::Client => self.client_max_window_bits,
            ConnectionType::Server => self.server_max_window_bits,
        };
        bits.max(MIN_ZLIB_WINDOW_BITS)
    }

    /// Window bits we inflate with: the peer's window, at least 9.
    pub fn inflate_window_bits(&self) -> u8 {
        let bits = match self.role {
            ConnectionType::Client => self.server_max_window_bits,
            ConnectionType::Server => self.client_max_window_bits,
        };
        bits.max(MIN_ZLIB_WINDOW_BITS)
    }

    /// Whether our compressor is reset after each message.
    pub fn compress_no_context_takeover(&self) -> bool {
        match self.role {
            ConnectionType::Client => self.client_no_context_takeover,
            ConnectionType::Server => self.server_no_context_takeover,
        }
    }

    /// Whether the peer resets its context after each message (so we reset our inflater).
    pub fn inflate_no_context_takeover(&self) -> bool {
        match self.role {
            ConnectionType::Client => self.server_no_context_takeover,
            ConnectionType::Server => self.client_no_context_takeover,
        }
    }
}

impl PerMessageDeflate {
    /// The response parameters for an acceptable `offer`, and the agreement; `None` to decline.
    pub(super) fn negotiate_offer(&self, offer: &str) -> Option<(String, DeflateParams)> {
        let offered = DeflateItem::parse_text(offer).ok()?;
        let settings = &self.settings;

        // Our (server) window: the smaller of our setting and the client's request.
        let server_bits = match offered.server_max_window_bits {
            None => None,
            Some(None) => return None, // a value is required
            Some(Some(bits)) if bits < MIN_ZLIB_WINDOW_BITS => return None, // cannot compress with 8
            Some(Some(bits)) => Some(bits),
        };
        let server_bits_agreed = match (server_bits, settings.server_max_window_bits) {
            (Some(a), Some(b)) => Some(a.min(b.max(MIN_ZLIB_WINDOW_BITS))),
            (a, b) => a.or(b.map(|b| b.max(MIN_ZLIB_WINDOW_BITS))),
        };

        // The client's window: its hint, limited by ours only when it said it supports the
        // parameter (otherwise we could not announce it, and must inflate with 15).
        // We never ask for 8 (we inflate with at least 9 anyway, and zlib-based clients cannot
        // compress with 8), but echo a client's own hint of 8.
        let ours = settings.client_max_window_bits.map(|b| b.max(MIN_ZLIB_WINDOW_BITS));
        let client_bits_agreed = match offered.client_max_window_bits {
            None => None,
            Some(hint) => match (hint, ours) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            },
        };

        let params = DeflateParams {
            role: ConnectionType::Server,
            client_no_context_takeover: offered.client_no_context_takeover
                || settings.client_no_context_takeover,
            server_no_context_takeover: offered.server_no_context_takeover
                || settings.server_no_context_takeover,
            client_max_window_bits: client_bits_agreed.unwrap_or(MAX_WINDOW_BITS),
            server_max_window_bits: server_bits_agreed.unwrap_or(MAX_WINDOW_BITS),
        };
        let mut response = Vec::new();
        if params.client_no_context_takeover {
            response.push(CLIENT_NO_CONTEXT_TAKEOVER.to_owned());
        }
        if params.server_no_context_takeover {
            response.push(SERVER_NO_CONTEXT_TAKEOVER.to_owned());
        }
        if let Some(bits) = client_bits_agreed {
            response.push(format!("{CLIENT_MAX_WINDOW_BITS}={bits}"));
        }
        if let Some(bits) = server_bits_agreed {
            response.push(format!("{SERVER_MAX_WINDOW_BITS}={bits}"));
        }
        Some((response.join("; "), params))
    }

    /// The agreement described by the server's `response` to our offer, or why it is invalid.
    pub(super) fn negotiate_response(&self, response: &str) -> Result<DeflateParams, String> {
        let answer = DeflateItem::parse_text(response)?;
        let settings = &self.settings;
        if settings.server_no_context_takeover && !answer.server_no_context_takeover {
            return Err(format!("the server did not accept {SERVER_NO_CONTEXT_TAKEOVER}"));
        }
        let server_bits = match answer.server_max_window_bits {
            Some(None) => return Err(format!("{SERVER_MAX_WINDOW_BITS} without a value")),
            Some(Some(bits)) => match settings.server_max_window_bits {
                Some(asked) if bits > asked => {
                    return Err(format!(
                        "{NAME}: {SERVER_MAX_WINDOW_BITS}={bits}, larger than the {asked} offered"
                    ))
                }
                _ => bits,
            },
            None => match settings.server_max_window_bits {
                Some(_) => return Err(format!("the server did not accept {SERVER_MAX_WINDOW_BITS}")),
                None => MAX_WINDOW_BITS,
            },
        };
        // We always offer client_max_window_bits, so the server may limit our window.
        let our_bits =
            settings.client_max_window_bits.map_or(MAX_WINDOW_BITS, |b| b.max(MIN_ZLIB_WINDOW_BITS));
        let client_bits = match answer.client_max_window_bits {
            Some(None) => return Err(format!("{CLIENT_MAX_WINDOW_BITS} without a value")),
            Some(Some(bits)) if bits < MIN_ZLIB_WINDOW_BITS => {
                return Err(format!("cannot compress with {CLIENT_MAX_WINDOW_BITS}={bits}"))
            }
            Some(Some(bits)) => bits.min(our_bits),
            None => our_bits,
        };
        Ok(DeflateParams {
            role: ConnectionType::Client,
            client_no_context_takeover: answer.client_no_context_takeover
                || settings.client_no_context_takeover,
            server_no_context_takeover: answer.server_no_context_takeover,
            client_max_window_bits: client_bits,
            server_max_window_bits: server_bits,
        })
    }
}

/// The four parameters of one permessage-deflate item of a `Sec-WebSocket-Extensions` header
/// (an offer in a received [`Request`](crate::Request), or the agreement in a received
/// [`AcceptConnection`](crate::AcceptConnection)), typed.
///
/// Parsing validates them as RFC 7692 does: known names, each at most once, no value on the
/// flags, window bits in 8..=15 written without leading zero.
///
/// ```
/// use wsproto::extensions::DeflateItem;
/// let item = DeflateItem::parse("permessage-deflate; client_max_window_bits; server_max_window_bits=10").unwrap();
/// assert_eq!(item.client_max_window_bits, Some(None)); // offered without a value
/// assert_eq!(item.server_max_window_bits, Some(Some(10)));
/// assert!(!item.server_no_context_takeover);
/// assert!(DeflateItem::parse("permessage-deflate; server_max_window_bits=16").is_err());
/// ```
#[derive(Clone, Copy, Debug, Default, Eq, Hash, PartialEq)]
#[non_exhaustive]
pub struct DeflateItem {
    /// `client_no_context_takeover` is present.
    pub client_no_context_takeover: bool,
    /// `server_no_context_takeover` is present.
    pub server_no_context_takeover: bool,
    /// `client_max_window_bits`: `None` absent, `Some(None)` present without a value.
    pub client_max_window_bits: Option<Option<u8>>,
    /// `server_max_window_bits`: `None` absent, `Some(None)` present without a value.
    pub server_max_window_bits: Option<Option<u8>>,
}

impl DeflateItem {
    /// Parses one item (`permessage-deflate; params`).
    pub fn parse(item: &str) -> Result<DeflateItem, ExtensionError> {
        Self::parse_text(item).map_err(|why| ExtensionError::new(CloseCode::PROTOCOL_ERROR, why))
    }

    pub(super) fn parse_text(item: &str) -> Result<DeflateItem, String> {
        let item = ExtensionItem::parse(item).ok_or_else(|| format!("malformed extension item {item:?}"))?;
        if !item.name.eq_ignore_ascii_case(NAME) {
            return Err(format!("expected {NAME}, got {:?}", item.name));
        }
        let mut params = DeflateItem::default();
        let mut seen = [false; 4];
        for (key, value) in &item.params {
            let index = [
                CLIENT_NO_CONTEXT_TAKEOVER,
                SERVER_NO_CONTEXT_TAKEOVER,
                CLIENT_MAX_WINDOW_BITS,
                SERVER_MAX_WINDOW_BITS,
            ]
            .iter()
            .position(|name| key.eq_ignore_ascii_case(name))
            .ok_or_else(|| format!("unknown parameter {key:?}"))?;
            if std::mem::replace(&mut seen[index], true) {
                return Err(format!("duplicated parameter {key:?}"));
            }
            let bits = || -> Result<Option<u8>, String> {
                match value {
                    None => Ok(None),
                    Some(v) => {
                        parse_bits(v).map(Some).ok_or_else(|| format!("invalid window bits {key}={v:?}"))
                    }
                }
            };
            match index {
                0 | 1 if value.is_some() => return Err(format!("{key} takes no value")),
                0 => params.client_no_context_takeover = true,
                1 => params.server_no_context_takeover = true,
                2 => params.client_max_window_bits = Some(bits()?),
                _ => params.server_max_window_bits = Some(bits()?),
            }
        }
        Ok(params)
    }
}

// The deflate accessors of the handshake events live here, with the parser they use, so
// the events know nothing of any extension.

impl crate::event::Request {
    /// The permessage-deflate offers among [`extensions`](Self::extensions), typed, in order
    /// (malformed ones skipped).
    pub fn deflate_offers(&self) -> Vec<DeflateItem> {
        self.extensions.iter().filter_map(|item| DeflateItem::parse(item).ok()).collect()
    }
}

impl crate::event::AcceptConnection {
    /// The agreed permessage-deflate parameters, typed, if the server agreed to it.
    pub fn deflate(&self) -> Option<DeflateItem> {
        self.extensions.iter().find_map(|item| DeflateItem::parse(item).ok())
    }
}

pub(super) fn valid_bits(bits: u8) -> bool {
    (MIN_WINDOW_BITS..=MAX_WINDOW_BITS).contains(&bits)
}

/// RFC 7692 §7.1.2: `1*DIGIT` without leading zero, 8..=15.
pub(super) fn parse_bits(value: &str) -> Option<u8> {
    if value.is_empty()
        || value.len() > 2
        || value.starts_with('0')
        || !value.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    value.parse().ok().filter(|&bits| valid_bits(bits))
}
