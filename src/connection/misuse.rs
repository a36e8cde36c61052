//! Misuse of the API: [`LocalProtocolError`], the error of every call the protocol or the
//! state machine does not allow. It names connection states, so it lives on the connection's
//! floor, above frames and messages.

use std::fmt;

use crate::connection::state::ConnectionState;
use crate::error::ExtensionError;
use crate::role::ConnectionType;
use crate::wire::close::CloseCode;

/// The API was used in a way the protocol or the state machine does not allow.
///
/// Nothing was sent and the connection is unchanged: fix the call and carry on.
#[derive(Clone, Debug, Eq, PartialEq)]
#[non_exhaustive]
pub enum LocalProtocolError {
    /// The event cannot be sent in the connection's current state.
    EventNotAllowed {
        /// The event's type name.
        event: &'static str,
        /// The state at the time of the call.
        state: ConnectionState,
    },
    /// The event or call belongs to the other role (a server sending a `Request`, a client
    /// accepting a connection).
    WrongRole {
        /// What was attempted.
        action: &'static str,
        /// Our role.
        role: ConnectionType,
    },
    /// Bytes were fed to a connection that is already closed.
    ConnectionClosed,
    /// A ping, pong or close payload over 125 bytes.
    ControlPayloadTooLong {
        /// The payload length that was given.
        len: usize,
    },
    /// A close code that may not be sent (local-only, reserved or out of range).
    InvalidCloseCode(CloseCode),
    /// A close reason without a close code (code 1005 means "no code").
    ReasonWithoutCode,
    /// A text chunk sent while a binary message was in progress, or the other way round.
    MessageTypeMismatch,
    /// A whole message ([`PreparedMessage`](crate::PreparedMessage)) sent while a fragmented
    /// message is in progress: finish that one first.
    MessageInProgress,
    /// An extension refused to transform an outgoing frame.
    Extension(ExtensionError),
    /// A client received bytes before sending its `Request`.
    RequestNotSent,
    /// A client sent a second `Request`.
    RequestAlreadySent,
    /// A server was given a second request (through
    /// [`initiate_upgrade_connection`](crate::handshake::ServerHandshake::initiate_upgrade_connection)).
    RequestAlreadyReceived,
    /// A server answered before a request was received.
    NoRequestReceived,
    /// The handshake failed: the only thing left to send is the rejection
    /// ([`RemoteProtocolError::event_hint`](crate::RemoteProtocolError::event_hint)).
    HandshakeFailed,
    /// The handshake completed and handed its connection over: feed and drive the
    /// [`Connection`](crate::Connection) instead.
    HandshakeComplete,
    /// An HTTP/2 extended CONNECT is answered by the HTTP/2 stack (a 200 with headers), not
    /// with bytes: use `accept_response` (feature `http`).
    AnswerThroughHttp2,
    /// An HTTP/2 `CONNECT` was given without its `:protocol` (use
    /// `initiate_extended_connect_request`).
    ProtocolNeeded,
    /// A `Request` with an empty host.
    MissingHost,
    /// A host that is not ASCII (IDNA-encode it) or that contains characters a `Host` header
    /// cannot carry.
    InvalidHost(String),
    /// A request target that is empty or contains whitespace or control characters.
    InvalidTarget(String),
    /// A subprotocol name that is not an HTTP token.
    InvalidSubprotocol(String),
    /// A server chose a subprotocol the client did not offer.
    SubprotocolNotOffered(String),
    /// Extension offers or agreements filled in on an event being sent: they describe a
    /// received event. Hand extension objects to the handshake instead.
    ExtensionsInEvent,
    /// A header name that is not a token, or a value with a control byte other than tab (CR or
    /// LF would end the header early), or a value that is not UTF-8 where text is needed.
    InvalidHeader {
        /// The header name, as given.
        name: String,
    },
    /// A rejection status outside 200..=999.
    InvalidStatus(u16),
    /// A rejection without body that carries `Transfer-Encoding` or a non-zero
    /// `Content-Length`.
    BodyHeadersWithoutBody,
    /// A `Content-Length` that is not one decimal number.
    InvalidContentLength(String),
    /// Rejection body chunks that do not add up to the announced `Content-Length`.
    BodyLengthMismatch {
        /// Bytes in the chunk being sent.
        sent: u64,
        /// Bytes left of the announced length.
        remaining: u64,
    },
}

impl fmt::Display for LocalProtocolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use LocalProtocolError::*;
        match self {
            EventNotAllowed { event, state } => write!(f, "Event {event} cannot be sent in state {state:?}."),
            WrongRole { action, role } => write!(f, "a {role} cannot {action}"),
            ConnectionClosed => f.write_str("Connection already closed."),
            ControlPayloadTooLong { len } => {
                write!(f, "payload of {len} bytes too long for a control frame (max 125)")
            }
            InvalidCloseCode(code) => {
                write!(f, "close code {code} may not be sent (local-only, reserved or out of range)")
            }
            ReasonWithoutCode => f.write_str("a close reason requires a close code other than 1005"),
            MessageTypeMismatch => f.write_str("Data type mismatch inside message: text and binary mixed"),
            MessageInProgress => {
                f.write_str("a whole message cannot be sent while a fragmented message is in progress")
            }
            Extension(e) => write!(f, "extension failed on an outgoing frame: {e}"),
            RequestNotSent => f.write_str("send the Request before receiving data"),
            RequestAlreadySent => f.write_str("the Request was already sent"),
            RequestAlreadyReceived => f.write_str("a request was already received"),
            NoRequestReceived => f.write_str("no Request was received yet"),
            HandshakeFailed => f.write_str("the handshake failed: send the RejectConnection hint"),
            HandshakeComplete => f.write_str("the handshake is complete: drive the Connection"),
            AnswerThroughHttp2 => f.write_str(
                "an HTTP/2 extended CONNECT is answered through the HTTP/2 stack (accept_response), not with bytes",
            ),
            ProtocolNeeded => f.write_str(
                "an HTTP/2 CONNECT needs its :protocol: use initiate_extended_connect_request",
            ),
            MissingHost => f.write_str("the Request needs a host"),
            InvalidHost(host) => write!(f, "invalid host {host:?} (non-ASCII hosts must be IDNA-encoded)"),
            InvalidTarget(target) => write!(f, "invalid request target {target:?}"),
            InvalidSubprotocol(p) => write!(f, "invalid subprotocol {p:?}"),
            SubprotocolNotOffered(p) => write!(f, "unexpected subprotocol {p} (the client did not offer it)"),
            ExtensionsInEvent => f.write_str(
                "extension offers and agreements describe received events: hand Extension objects to the handshake",
            ),
            InvalidHeader { name } => write!(f, "invalid header {name:?}"),
            InvalidStatus(status) => write!(f, "a rejection needs a final status (200..=999), not {status}"),
            BodyHeadersWithoutBody => {
                f.write_str("Transfer-Encoding or a non-zero Content-Length on a rejection without body")
            }
            InvalidContentLength(value) => write!(f, "invalid Content-Length {value:?}"),
            BodyLengthMismatch { sent, remaining } => write!(
                f,
                "RejectData of {sent} bytes does not match the {remaining} bytes left of Content-Length"
            ),
        }
    }
}

impl std::error::Error for LocalProtocolError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            LocalProtocolError::Extension(e) => Some(e),
            _ => None,
        }
    }
}
