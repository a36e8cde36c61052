//! Close codes (RFC 6455 §7.4) and close-frame payloads.

use std::fmt;

/// A WebSocket close status code (RFC 6455 §7.4).
///
/// A plain `u16` newtype: the named constants cover every code of IANA's WebSocket close code
/// registry below 3000 (python wsproto's `CloseReason`, plus 1014), and application codes
/// 3000–4999 round-trip untouched.
///
/// ```
/// use wsproto::CloseCode;
/// assert_eq!(CloseCode::NORMAL_CLOSURE, CloseCode::from(1000));
/// assert!(CloseCode::ABNORMAL_CLOSURE.is_local_only());
/// assert!(CloseCode::from(4000).is_sendable());
/// assert!(!CloseCode::from(1004).is_sendable());
/// ```
// Exhaustive by decision: a `u16` on the wire.
#[allow(clippy::exhaustive_structs)]
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
    /// 1014: a gateway or proxy received an invalid response from the upstream server (IANA
    /// registry). Python wsproto's `CloseReason` lacks it and fails a close carrying it.
    BAD_GATEWAY = 1014, "bad gateway";
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
            let expected = matches!(code, 1000..=1003 | 1007..=1014 | 3000..=4999);
            assert_eq!(c.is_sendable(), expected, "{code}");
        }
    }

    #[test]
    fn truncation_respects_char_boundaries() {
        let long = "é".repeat(100); // 200 bytes
        let t = truncate_reason(&long);
        assert!(t.len() <= MAX_CLOSE_REASON_LEN);
        assert_eq!(t.len(), 122);
    }
}
