//! Error types: our misuse ([`LocalProtocolError`]) versus the peer's ([`RemoteProtocolError`]).
//!
//! Peer violations after the handshake are not errors at all: they surface as a
//! [`CloseConnection`](crate::CloseConnection) event carrying the close code to answer with,
//! the wsproto way. `RemoteProtocolError` is for the opening handshake, where the suggested
//! answer is an HTTP rejection ([`RemoteProtocolError::event_hint`]).

use std::borrow::Cow;
use std::fmt;

use crate::close::CloseCode;
use crate::event::RejectConnection;
use crate::state::ConnectionState;

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
    /// Any other misuse, described by the message.
    Other(Cow<'static, str>),
}

impl LocalProtocolError {
    /// Builds [`LocalProtocolError::Other`].
    pub fn other(message: impl Into<Cow<'static, str>>) -> Self {
        LocalProtocolError::Other(message.into())
    }
}

impl fmt::Display for LocalProtocolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LocalProtocolError::EventNotAllowed { event, state } => {
                write!(f, "Event {event} cannot be sent in state {state:?}.")
            }
            LocalProtocolError::ConnectionClosed => f.write_str("Connection already closed."),
            LocalProtocolError::ControlPayloadTooLong { len } => {
                write!(f, "payload of {len} bytes too long for a control frame (max 125)")
            }
            LocalProtocolError::InvalidCloseCode(code) => {
                write!(f, "close code {code} may not be sent (local-only, reserved or out of range)")
            }
            LocalProtocolError::ReasonWithoutCode => {
                f.write_str("a close reason requires a close code other than 1005")
            }
            LocalProtocolError::MessageTypeMismatch => {
                f.write_str("Data type mismatch inside message: text and binary mixed")
            }
            LocalProtocolError::Other(msg) => f.write_str(msg),
        }
    }
}

impl std::error::Error for LocalProtocolError {}

/// The peer violated the opening handshake.
#[derive(Clone, Debug, PartialEq)]
pub struct RemoteProtocolError {
    message: Cow<'static, str>,
    event_hint: Option<RejectConnection>,
}

impl RemoteProtocolError {
    /// Builds an error with a message and a suggested rejection.
    pub fn new(message: impl Into<Cow<'static, str>>, event_hint: Option<RejectConnection>) -> Self {
        RemoteProtocolError { message: message.into(), event_hint }
    }

    /// What went wrong.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The response a server should send back (for example a 400, 426 or 431 rejection).
    pub fn event_hint(&self) -> Option<&RejectConnection> {
        self.event_hint.as_ref()
    }
}

impl fmt::Display for RemoteProtocolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for RemoteProtocolError {}

/// Either side's protocol error.
#[derive(Clone, Debug, PartialEq)]
pub enum ProtocolError {
    /// We misused the API.
    Local(LocalProtocolError),
    /// The peer misbehaved.
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

impl From<LocalProtocolError> for ProtocolError {
    fn from(e: LocalProtocolError) -> Self {
        ProtocolError::Local(e)
    }
}

impl From<RemoteProtocolError> for ProtocolError {
    fn from(e: RemoteProtocolError) -> Self {
        ProtocolError::Remote(e)
    }
}
