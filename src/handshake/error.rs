//! The handshake's errors: [`RemoteProtocolError`] (the peer violated the opening handshake)
//! and [`ProtocolError`] (either side's, as the handshake's input methods return).

use std::fmt;

use crate::connection::misuse::LocalProtocolError;
use crate::error::{wrap_errors, ExtensionError};
use crate::event::RejectConnection;

/// The peer violated the opening handshake.
///
/// A server answers with [`event_hint`](Self::event_hint), the HTTP rejection the violation
/// calls for (400, 426 for an unsupported `Sec-WebSocket-Version`, 431 for a head over the
/// limits); a client gives up on the connection.
#[derive(Clone, Debug, Eq, PartialEq)]
#[non_exhaustive]
pub enum RemoteProtocolError {
    /// The HTTP message is malformed (the detail says how), or the transport ended inside it.
    MalformedHttp(String),
    /// The head is larger than [`Limits::max_handshake_size`](crate::Limits).
    HeadTooLarge {
        /// The limit in bytes.
        limit: usize,
    },
    /// The head has more than [`MAX_HEADERS`](super::MAX_HEADERS) headers.
    TooManyHeaders,
    /// The request is not HTTP/1.1.
    NotHttp11,
    /// The request method is not GET.
    MethodNotGet,
    /// An HTTP/2 request tried to upgrade without an extended CONNECT (HTTP/2 has no
    /// `Upgrade`: RFC 8441 uses `CONNECT` with `:protocol websocket`).
    NotExtendedConnect,
    /// An extended CONNECT for another protocol than `websocket`.
    UnsupportedProtocol(String),
    /// An HTTP/2 request carried an HTTP/1.1-only header (`Connection`, `Upgrade`, ...).
    ConnectionSpecificHeader(String),
    /// A required header is missing or lacks the required token (named as in the message,
    /// e.g. `Connection: Upgrade`).
    MissingHeader(&'static str),
    /// More than one `Host` header.
    MultipleHosts,
    /// A `Sec-WebSocket-Version` other than 13.
    UnsupportedVersion(String),
    /// A `Sec-WebSocket-Key` that is not the base64 of 16 bytes.
    InvalidKey,
    /// A server got more bytes behind the request than one largest frame before answering.
    TooMuchEarlyData {
        /// The limit in bytes.
        limit: usize,
    },
    /// The 101's `Sec-WebSocket-Accept` does not match our key.
    BadAccept,
    /// The server chose a subprotocol we did not offer.
    UnexpectedSubprotocol(String),
    /// The server agreed to an extension we did not offer, or named one twice, or sent a
    /// malformed item (the detail says which).
    UnexpectedExtension(String),
    /// An offered extension refused the server's parameters.
    Extension {
        /// The extension's name.
        name: String,
        /// Why it refused.
        error: ExtensionError,
    },
}

impl RemoteProtocolError {
    /// The HTTP status this violation calls for.
    pub fn status(&self) -> u16 {
        match self {
            RemoteProtocolError::HeadTooLarge { .. } | RemoteProtocolError::TooManyHeaders => 431,
            RemoteProtocolError::UnsupportedVersion(_) => 426,
            _ => 400,
        }
    }

    /// The rejection a server should send back: [`status`](Self::status), with
    /// `Sec-WebSocket-Version: 13` when the version was missing or unsupported.
    pub fn event_hint(&self) -> RejectConnection {
        let reject = RejectConnection::new(self.status());
        match self {
            RemoteProtocolError::UnsupportedVersion(_)
            | RemoteProtocolError::MissingHeader(super::VERSION_HEADER) => {
                reject.with_header(&b"Sec-WebSocket-Version"[..], super::WEBSOCKET_VERSION.as_bytes())
            }
            _ => reject,
        }
    }
}

impl fmt::Display for RemoteProtocolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use RemoteProtocolError::*;
        match self {
            MalformedHttp(detail) => write!(f, "Bad HTTP message: {detail}"),
            HeadTooLarge { limit } => write!(f, "HTTP head larger than {limit} bytes"),
            TooManyHeaders => write!(f, "more than {} headers", super::MAX_HEADERS),
            NotHttp11 => f.write_str("Request must be HTTP/1.1"),
            MethodNotGet => f.write_str("Request method must be GET"),
            NotExtendedConnect => f.write_str(
                "an HTTP/2 WebSocket request must be an extended CONNECT with :protocol websocket",
            ),
            UnsupportedProtocol(p) => write!(f, "unsupported :protocol {p:?} (expected websocket)"),
            ConnectionSpecificHeader(h) => write!(f, "header {h:?} is not allowed in HTTP/2"),
            MissingHeader(header) => write!(f, "Missing header, '{header}'"),
            MultipleHosts => f.write_str("Bad HTTP message: multiple Host headers"),
            UnsupportedVersion(v) => write!(f, "Unsupported Sec-WebSocket-Version {v:?}"),
            InvalidKey => f.write_str("Invalid Sec-WebSocket-Key: not the base64 of 16 bytes"),
            TooMuchEarlyData { limit } => {
                write!(f, "more than {limit} bytes received before the handshake was answered")
            }
            BadAccept => f.write_str("Bad accept token"),
            UnexpectedSubprotocol(p) => write!(f, "unrecognized subprotocol {p}"),
            UnexpectedExtension(detail) => f.write_str(detail),
            Extension { name, error } => write!(f, "extension {name}: {}", error.message()),
        }
    }
}

impl std::error::Error for RemoteProtocolError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            RemoteProtocolError::Extension { error, .. } => Some(error),
            _ => None,
        }
    }
}

/// Either side's protocol error, as returned by the handshake's input methods.
// Exhaustive by decision: an error is ours or the peer's.
#[allow(clippy::exhaustive_enums)]
#[derive(Clone, Debug, Eq, PartialEq)]
pub enum ProtocolError {
    /// We misused the API.
    Local(LocalProtocolError),
    /// The peer violated the handshake.
    Remote(RemoteProtocolError),
}

impl fmt::Display for ProtocolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProtocolError::Local(e) => write!(f, "local protocol error: {e}"),
            ProtocolError::Remote(e) => write!(f, "remote protocol error: {e}"),
        }
    }
}

impl std::error::Error for ProtocolError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ProtocolError::Local(e) => Some(e),
            ProtocolError::Remote(e) => Some(e),
        }
    }
}

wrap_errors!(ProtocolError { ProtocolError::Local: LocalProtocolError, ProtocolError::Remote: RemoteProtocolError });
