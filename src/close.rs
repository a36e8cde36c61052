//! Close codes (RFC 6455 §7.4) and close-frame payloads.

use std::fmt;

use crate::error::PeerViolation;

/// A WebSocket close status code (RFC 6455 §7.4).
///
/// A plain `u16` newtype: the named constants cover every code registered for the protocol
/// (python wsproto's `CloseReason`), and application codes 3000–4999 round-trip untouched.
///
/// ```
/// use wsproto::CloseCode;
/// assert_eq!(CloseCode::NORMAL_CLOSURE, CloseCode::from(1000));
/// assert!(CloseCode::ABNORMAL_CLOSURE.is_local_only());
/// assert!(CloseCode::from(4000).is_sendable());
/// assert!(!CloseCode::from(1004).is_sendable());
/// ```
#[derive(Clone, Copy, Debug, Eq, Hash, Ord, PartialEq, PartialOrd)]
#[doc(alias = "CloseReason")]
pub struct CloseCode(pub u16);

macro_rules! close_codes {
    ($( $(#[$doc:meta])* $name:ident = $value:literal, $text:literal; )*) => {
        impl CloseCode {
            $( $(#[$doc])* pub const $name: CloseCode = CloseCode($value); )*

            /// The registered name of this code, if it has one.
            pub const fn name(self) -> Option<&'static str> {
                match self.0 {
                    $( $value => Some($text), )*
                    _ => None,
                }
            }

            /// Whether this code is one of the named, registered protocol codes.
            pub const fn is_registered(self) -> bool {
                self.name().is_some()
            }
        }
    };
}

close_codes! {
    /// 1000: the purpose for which the connection was established has been fulfilled.
    NORMAL_CLOSURE = 1000, "normal closure";
    /// 1001: an endpoint is going away (server shutdown, browser navigating away).
    GOING_AWAY = 1001, "going away";
    /// 1002: the peer violated the protocol.
    PROTOCOL_ERROR = 1002, "protocol error";
    /// 1003: the endpoint received a type of data it cannot accept.
    UNSUPPORTED_DATA = 1003, "unsupported data";
    /// 1005: no status code was present in the close frame. Local only: never sent.
    NO_STATUS_RCVD = 1005, "no status received";
    /// 1006: the connection closed without a close frame. Local only: never sent.
    ABNORMAL_CLOSURE = 1006, "abnormal closure";
    /// 1007: a message's data was inconsistent with its type (e.g. invalid UTF-8 in text).
    INVALID_FRAME_PAYLOAD_DATA = 1007, "invalid frame payload data";
    /// 1008: a message violated the endpoint's policy.
    POLICY_VIOLATION = 1008, "policy violation";
    /// 1009: a message was too big to process.
    MESSAGE_TOO_BIG = 1009, "message too big";
    /// 1010: the client expected the server to negotiate an extension it did not.
    MANDATORY_EXT = 1010, "mandatory extension";
    /// 1011: the server hit an unexpected condition.
    INTERNAL_ERROR = 1011, "internal error";
    /// 1012: the service is restarting (IANA registry).
    SERVICE_RESTART = 1012, "service restart";
    /// 1013: try again later (IANA registry).
    TRY_AGAIN_LATER = 1013, "try again later";
    /// 1015: the TLS handshake failed. Local only: never sent.
    TLS_HANDSHAKE_FAILED = 1015, "TLS handshake failed";
}

impl CloseCode {
    /// Smallest valid close code.
    pub const MIN: u16 = 1000;
    /// Largest valid close code.
    pub const MAX: u16 = 4999;
    /// First code of the range reserved for libraries and frameworks (3000–3999).
    pub const MIN_LIBRARY: u16 = 3000;
    /// First code of the private-use range (4000–4999).
    pub const MIN_PRIVATE: u16 = 4000;
    /// The codes that describe a local condition and must never appear on the wire.
    pub const LOCAL_ONLY: [CloseCode; 3] =
        [CloseCode::NO_STATUS_RCVD, CloseCode::ABNORMAL_CLOSURE, CloseCode::TLS_HANDSHAKE_FAILED];

    /// The numeric value.
    pub const fn as_u16(self) -> u16 {
        self.0
    }

    /// 1005, 1006 or 1015: codes reported locally, never valid in a close frame.
    pub const fn is_local_only(self) -> bool {
        matches!(self.0, 1005 | 1006 | 1015)
    }

    /// Within 1000–4999.
    pub const fn is_in_range(self) -> bool {
        self.0 >= Self::MIN && self.0 <= Self::MAX
    }

    /// Whether this code may appear in a close frame on the wire: in range, not local only, and
    /// either registered (1000–2999) or in the library/private ranges (3000–4999).
    pub const fn is_sendable(self) -> bool {
        self.is_in_range() && !self.is_local_only() && (self.0 >= Self::MIN_LIBRARY || self.is_registered())
    }
}

impl From<u16> for CloseCode {
    fn from(code: u16) -> Self {
        CloseCode(code)
    }
}

impl From<CloseCode> for u16 {
    fn from(code: CloseCode) -> Self {
        code.0
    }
}

impl PartialEq<u16> for CloseCode {
    fn eq(&self, other: &u16) -> bool {
        self.0 == *other
    }
}

impl fmt::Display for CloseCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(name) => write!(f, "{} ({})", self.0, name),
            None => write!(f, "{}", self.0),
        }
    }
}

/// Maximum close reason length in bytes: a control payload is at most 125 bytes, 2 of which
/// are the code.
pub(crate) const MAX_CLOSE_REASON_LEN: usize = 123;

/// Parses a received close payload (RFC 6455 §5.5.1, §7.4): the code and reason, or the
/// violation the payload is.
pub(crate) fn parse_close_payload(payload: &[u8]) -> Result<(CloseCode, String), PeerViolation> {
    match payload.len() {
        0 => return Ok((CloseCode::NO_STATUS_RCVD, String::new())),
        1 => return Err(PeerViolation::CloseFrameTooShort),
        _ => {}
    }
    let code = CloseCode(u16::from_be_bytes([payload[0], payload[1]]));
    if !code.is_sendable() {
        return Err(PeerViolation::InvalidCloseCode(code.0));
    }
    match simdutf8::basic::from_utf8(&payload[2..]) {
        Ok(reason) => Ok((code, reason.to_owned())),
        Err(_) => Err(PeerViolation::InvalidCloseReason),
    }
}

/// Truncates `reason` to at most [`MAX_CLOSE_REASON_LEN`] bytes on a character boundary.
pub(crate) fn truncate_reason(reason: &str) -> &str {
    if reason.len() <= MAX_CLOSE_REASON_LEN {
        return reason;
    }
    let mut end = MAX_CLOSE_REASON_LEN;
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    &reason[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sendable_ranges() {
        for code in 0..=u16::MAX {
            let c = CloseCode(code);
            let expected = matches!(code, 1000..=1003 | 1007..=1013 | 3000..=4999);
            assert_eq!(c.is_sendable(), expected, "{code}");
        }
    }

    #[test]
    fn parse_rules() {
        assert_eq!(parse_close_payload(b"").unwrap().0, CloseCode::NO_STATUS_RCVD);
        assert_eq!(parse_close_payload(b"\x03").unwrap_err().close_code(), CloseCode::PROTOCOL_ERROR);
        assert_eq!(parse_close_payload(&999u16.to_be_bytes()).unwrap_err().close_code(), 1002);
        assert_eq!(parse_close_payload(&5000u16.to_be_bytes()).unwrap_err().close_code(), 1002);
        for local in [1005u16, 1006, 1015, 1004, 1014, 1016, 2999] {
            assert_eq!(parse_close_payload(&local.to_be_bytes()).unwrap_err().close_code(), 1002);
        }
        let (code, reason) = parse_close_payload(b"\x0b\xb8hi").unwrap();
        assert_eq!((code.0, reason.as_str()), (3000, "hi"));
        assert_eq!(parse_close_payload(b"\x03\xe8\xff").unwrap_err().close_code(), 1007);
    }

    #[test]
    fn truncation_respects_char_boundaries() {
        let long = "é".repeat(100); // 200 bytes
        let t = truncate_reason(&long);
        assert!(t.len() <= MAX_CLOSE_REASON_LEN);
        assert_eq!(t.len(), 122);
    }
}
