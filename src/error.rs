//! Error types, sorted by who is at fault and at which layer.
//!
//! | who      | layer            | type                     | answered with                     |
//! |----------|------------------|--------------------------|-----------------------------------|
//! | the peer | frames, messages | [`PeerViolation`]        | a close frame ([`PeerViolation::close_code`]) |
//! | the peer | opening handshake| [`RemoteProtocolError`]  | an HTTP rejection ([`RemoteProtocolError::event_hint`]) |
//! | us       | any              | [`LocalProtocolError`]   | nothing: fix the call             |
//! | an extension | frames       | [`ExtensionError`]       | wrapped in one of the above       |
//!
//! Peer violations after the handshake are not returned as errors: they arrive as a
//! [`CloseConnection`](crate::CloseConnection) event whose
//! [`source`](crate::CloseConnection::source) is [`CloseSource::Violation`](crate::CloseSource)
//! and whose [`reply`](crate::CloseConnection::reply) is the close frame to send, the wsproto
//! way.

use std::borrow::Cow;
use std::fmt;

use crate::close::CloseCode;
use crate::event::RejectConnection;
use crate::role::ConnectionType;
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
    /// [`initiate_upgrade_connection`](crate::handshake::Handshake::initiate_upgrade_connection)).
    RequestAlreadyReceived,
    /// A server answered before a request was received.
    NoRequestReceived,
    /// The handshake failed: the only thing left to send is the rejection
    /// ([`RemoteProtocolError::event_hint`]).
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
    /// A header name that is not a token, or a value with CR, LF or NUL (which would end the
    /// header early), or a value that is not UTF-8 where text is needed.
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

/// The peer violated RFC 6455 (or a negotiated extension) after the handshake.
///
/// Each violation has the close code to fail the connection with
/// ([`close_code`](Self::close_code)) and a fixed description used as the close reason
/// (`Display`). It reaches the application inside a received
/// [`CloseConnection`](crate::CloseConnection).
#[derive(Clone, Debug, Eq, PartialEq)]
#[non_exhaustive]
pub enum PeerViolation {
    /// A reserved opcode (0x3–0x7, 0xB–0xF).
    ReservedOpcode(u8),
    /// A close, ping or pong frame without FIN.
    FragmentedControlFrame,
    /// A close, ping or pong frame with a payload over 125 bytes.
    ControlFrameTooLong,
    /// An extended payload length that fits a shorter encoding.
    NonMinimalLength,
    /// A 64-bit payload length with the most significant bit set.
    LengthMsbSet,
    /// A reserved bit that no negotiated extension accounts for.
    UnexpectedReservedBits,
    /// A client sent an unmasked frame.
    UnmaskedFrame,
    /// A server sent a masked frame.
    MaskedFrame,
    /// A frame's payload is larger than [`Limits::max_frame_size`](crate::Limits).
    FrameTooBig,
    /// A message is larger than [`Limits::max_message_size`](crate::Limits).
    MessageTooBig,
    /// A continuation frame with no message in progress.
    UnexpectedContinuation,
    /// A new text or binary frame while a fragmented message is in progress.
    ExpectedContinuation,
    /// Invalid UTF-8 in a text message.
    InvalidUtf8,
    /// A text message that ends inside a UTF-8 sequence.
    IncompleteUtf8,
    /// A close frame with a 1-byte payload.
    CloseFrameTooShort,
    /// A close frame with a code that may not be sent (out of range, local-only or reserved).
    InvalidCloseCode(u16),
    /// A close frame whose reason is not UTF-8.
    InvalidCloseReason,
    /// A negotiated extension failed on a received frame (for permessage-deflate: corrupt
    /// compressed data, or RSV1 on a frame that may not carry it).
    Extension(ExtensionError),
}

impl PeerViolation {
    /// The close code to fail the connection with: 1002 (protocol error), 1007 (invalid
    /// payload data), 1009 (message too big), or the extension's code.
    pub fn close_code(&self) -> CloseCode {
        use PeerViolation::*;
        match self {
            FrameTooBig | MessageTooBig => CloseCode::MESSAGE_TOO_BIG,
            InvalidUtf8 | IncompleteUtf8 | InvalidCloseReason => CloseCode::INVALID_FRAME_PAYLOAD_DATA,
            Extension(e) => e.code(),
            _ => CloseCode::PROTOCOL_ERROR,
        }
    }

    /// A fixed description, sent as the close reason (the opcode or code is in `Display`).
    pub fn reason(&self) -> &str {
        use PeerViolation::*;
        match self {
            ReservedOpcode(_) => "Invalid opcode",
            FragmentedControlFrame => "Invalid attempt to fragment control frame",
            ControlFrameTooLong => "Control frame with payload len > 125",
            NonMinimalLength => "Payload length not minimally encoded",
            LengthMsbSet => "8-byte payload length with non-zero MSB",
            UnexpectedReservedBits => "Reserved bit set unexpectedly",
            UnmaskedFrame => "server received unexpected unmasked frame",
            MaskedFrame => "client received unexpected masked frame",
            FrameTooBig => "frame exceeds the maximum frame size",
            MessageTooBig => "message exceeds the maximum message size",
            UnexpectedContinuation => "unexpected CONTINUATION",
            ExpectedContinuation => "expected CONTINUATION, got a new data frame",
            InvalidUtf8 => "invalid UTF-8 in text message",
            IncompleteUtf8 => "text message ends inside a UTF-8 sequence",
            CloseFrameTooShort => "CLOSE with 1 byte payload",
            InvalidCloseCode(_) => "CLOSE with invalid code",
            InvalidCloseReason => "CLOSE reason is not valid UTF-8",
            Extension(e) => e.message(),
        }
    }
}

impl fmt::Display for PeerViolation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.reason())?;
        match self {
            PeerViolation::ReservedOpcode(op) => write!(f, " {op:#x}"),
            PeerViolation::InvalidCloseCode(code) => write!(f, " {code}"),
            _ => Ok(()),
        }
    }
}

impl std::error::Error for PeerViolation {}

/// An extension's failure: the close code it calls for and a message.
///
/// Returned by every fallible [`Extension`](crate::extensions::Extension) hook. On received
/// frames it fails the connection with its code ([`PeerViolation::Extension`]); on sent frames
/// it is a [`LocalProtocolError::Extension`]; from `finalize` it fails the client's handshake
/// ([`RemoteProtocolError::Extension`]).
#[derive(Clone, Debug, Eq, PartialEq)]
pub struct ExtensionError {
    code: CloseCode,
    message: Cow<'static, str>,
}

impl ExtensionError {
    /// An error with the close code to fail the connection with and a short description.
    pub fn new(code: CloseCode, message: impl Into<Cow<'static, str>>) -> Self {
        ExtensionError { code, message: message.into() }
    }

    /// The close code.
    pub fn code(&self) -> CloseCode {
        self.code
    }

    /// The description.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for ExtensionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.message, self.code)
    }
}

impl std::error::Error for ExtensionError {}

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
    /// The head has more than [`MAX_HEADERS`](crate::handshake::MAX_HEADERS) headers.
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
            | RemoteProtocolError::MissingHeader(crate::handshake::VERSION_HEADER) => reject
                .with_header(&b"Sec-WebSocket-Version"[..], crate::handshake::WEBSOCKET_VERSION.as_bytes()),
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
            TooManyHeaders => write!(f, "more than {} headers", crate::handshake::MAX_HEADERS),
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

/// `From<Inner> for Outer` for error enums that wrap other errors, one line per variant.
macro_rules! wrap_errors {
    ($outer:ty { $($variant:path: $inner:ty),* $(,)? }) => {
        $(impl From<$inner> for $outer {
            fn from(e: $inner) -> Self {
                $variant(e)
            }
        })*
    };
}
#[cfg_attr(not(feature = "tokio"), allow(unused_imports))]
pub(crate) use wrap_errors;

wrap_errors!(ProtocolError { ProtocolError::Local: LocalProtocolError, ProtocolError::Remote: RemoteProtocolError });
