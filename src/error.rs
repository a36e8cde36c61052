//! The errors of the lower floors (frames, messages, extensions); the crate's error types,
//! sorted by who is at fault and at which layer, are:
//!
//! | who      | layer            | type                     | answered with                     |
//! |----------|------------------|--------------------------|-----------------------------------|
//! | the peer | frames, messages | [`PeerViolation`]        | a close frame ([`PeerViolation::close_code`]) |
//! | the peer | opening handshake| [`RemoteProtocolError`](crate::RemoteProtocolError) | an HTTP rejection ([`event_hint`](crate::RemoteProtocolError::event_hint)) |
//! | us       | any              | [`LocalProtocolError`](crate::LocalProtocolError) | nothing: fix the call |
//! | an extension | frames       | [`ExtensionError`]       | wrapped in one of the above       |
//!
//! Peer violations after the handshake are not returned as errors: they arrive as a
//! [`CloseConnection`](crate::CloseConnection) event whose
//! [`source`](crate::CloseConnection::source) is [`CloseSource::Violation`](crate::CloseSource)
//! and whose [`reply`](crate::CloseConnection::reply) is the close frame to send, the wsproto
//! way.

use std::borrow::Cow;
use std::fmt;

use crate::wire::close::CloseCode;

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
    /// A message has more frames than [`Limits::max_fragments`](crate::Limits).
    TooManyFragments,
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
            FrameTooBig | MessageTooBig | TooManyFragments => CloseCode::MESSAGE_TOO_BIG,
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
            TooManyFragments => "message exceeds the maximum number of fragments",
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
/// it is a [`LocalProtocolError::Extension`](crate::LocalProtocolError::Extension); from `finalize` it fails the client's handshake
/// ([`RemoteProtocolError::Extension`](crate::RemoteProtocolError::Extension)).
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
pub(crate) use wrap_errors;
