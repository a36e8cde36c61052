//! The extension interface (RFC 6455 §9) and the extensions shipped with the crate.
//!
//! An [`Extension`] takes part in two phases: negotiation during the opening handshake
//! (`offer` on the client, `accept` on the server, `finalize` on the client again), and then
//! framing, where it may claim reserved bits and transform data-frame payloads.

use std::any::Any;
use std::fmt;

use bytes::Bytes;

use crate::error::ExtensionError;
use crate::frame::{Opcode, Rsv};
use crate::role::ConnectionType;

#[cfg(feature = "deflate")]
mod deflate;
#[cfg(feature = "deflate")]
pub use deflate::{DeflateItem, DeflateParams, DeflatePool, IdleState, PerMessageDeflate};

/// A WebSocket extension, such as permessage-deflate.
///
/// Hooks mirror python wsproto's `Extension`. Only extensions whose [`enabled`] returns
/// `true` (after a successful negotiation) take part in framing. Inbound hooks run in the
/// order extensions were negotiated; outbound hooks in reverse order.
///
/// Every received frame's header goes through [`frame_inbound_header`]. The inbound payload
/// hooks run for the data frames (text, binary, continuation) of messages whose first frame
/// set a reserved bit an extension claimed, the RFC 6455 §5.2 way for an extension to mark a
/// message it transformed (RSV1 for a compressed message). Other messages, and control frames,
/// are delivered untouched, zero-copy. Outbound, every data frame goes through
/// [`frame_outbound`](Extension::frame_outbound).
///
/// [`enabled`]: Extension::enabled
/// [`frame_inbound_header`]: Extension::frame_inbound_header
///
/// # Example: an extension that claims RSV3 on every frame it sends
///
/// ```
/// use bytes::Bytes;
/// use wsproto::{ConnectionType, ExtensionError};
/// use wsproto::extensions::Extension;
/// use wsproto::frame::{Opcode, Rsv};
///
/// #[derive(Debug, Default)]
/// struct Flag { on: bool }
///
/// impl Extension for Flag {
///     fn name(&self) -> &str { "x-flag" }
///     fn enabled(&self) -> bool { self.on }
///     fn offer(&mut self) -> Option<String> { Some(String::new()) }
///     fn accept(&mut self, _offer: &str) -> Option<String> { self.on = true; Some(String::new()) }
///     fn finalize(&mut self, _response: &str) -> Result<(), ExtensionError> { self.on = true; Ok(()) }
///     fn frame_inbound_header(
///         &mut self, _role: ConnectionType, _opcode: Opcode, _rsv: Rsv, _len: u64,
///     ) -> Result<Rsv, ExtensionError> {
///         Ok(Rsv::RSV3) // RSV3 is ours: do not fail frames that set it
///     }
///     fn frame_outbound(&mut self, _opcode: Opcode, rsv: Rsv, data: Bytes, _fin: bool)
///         -> Result<(Rsv, Bytes), ExtensionError>
///     {
///         Ok((rsv.union(Rsv::RSV3), data))
///     }
/// }
///
/// let mut flag = Flag::default();
/// assert_eq!(flag.accept("x-flag"), Some(String::new()));
/// assert!(flag.enabled());
/// ```
pub trait Extension: Any + fmt::Debug + Send + Sync {
    /// The extension token, compared case-insensitively with offers and responses.
    fn name(&self) -> &str;

    /// Whether negotiation succeeded; only enabled extensions take part in framing.
    fn enabled(&self) -> bool;

    /// Client: the parameters to offer (`Some("")` offers the bare name), or `None` to not
    /// offer this extension.
    fn offer(&mut self) -> Option<String>;

    /// Server: given one offer item (`"name; params"`), accept it by returning the response
    /// parameters (`Some("")` for none), or decline with `None`. Called for each offer of this
    /// extension in order until one is accepted.
    fn accept(&mut self, offer: &str) -> Option<String> {
        let _ = offer;
        None
    }

    /// Client: apply the server's response item for this extension. An `Err` fails the
    /// handshake (the server answered with parameters we did not offer or cannot honour); its
    /// close code is not sent anywhere.
    fn finalize(&mut self, response: &str) -> Result<(), ExtensionError> {
        let _ = response;
        Ok(())
    }

    /// Inspect a received frame header; return the RSV bits this extension accounts for, or
    /// fail the connection with the error's close code. Any RSV bit set on the wire that no extension
    /// claims fails the connection with 1002.
    fn frame_inbound_header(
        &mut self,
        role: ConnectionType,
        opcode: Opcode,
        rsv: Rsv,
        payload_len: u64,
    ) -> Result<Rsv, ExtensionError> {
        let _ = (role, opcode, rsv, payload_len);
        Ok(Rsv::NONE)
    }

    /// Transform a chunk of a received data frame's payload (already unmasked). The output
    /// must not exceed `max_output` bytes (what is left of the connection's message limit):
    /// return an error with [`CloseCode::MESSAGE_TOO_BIG`](crate::CloseCode::MESSAGE_TOO_BIG)
    /// instead, which the connection reports as
    /// [`PeerViolation::MessageTooBig`](crate::PeerViolation::MessageTooBig).
    fn frame_inbound_payload_data(
        &mut self,
        data: Bytes,
        max_output: usize,
    ) -> Result<Bytes, ExtensionError> {
        let _ = max_output;
        Ok(data)
    }

    /// A received data frame is complete (`fin`: it ended its message); return bytes to append
    /// to its payload, with the same `max_output` rule.
    fn frame_inbound_complete(
        &mut self,
        fin: bool,
        max_output: usize,
    ) -> Result<Option<Bytes>, ExtensionError> {
        let _ = (fin, max_output);
        Ok(None)
    }

    /// Transform an outgoing data frame: return its RSV bits and payload.
    fn frame_outbound(
        &mut self,
        opcode: Opcode,
        rsv: Rsv,
        data: Bytes,
        fin: bool,
    ) -> Result<(Rsv, Bytes), ExtensionError> {
        let _ = (opcode, fin);
        Ok((rsv, data))
    }

    /// Server: how a whole message of `len` bytes that starts now would leave this
    /// extension, for a [`PreparedMessage`](crate::PreparedMessage) sent to many connections
    /// to be framed once and shared. The default, [`SharedFraming::PerConnection`], never
    /// shares: say more only when the output depends on nothing but the message and what
    /// the key stands for.
    fn shared_framing(&self, opcode: Opcode, len: usize) -> SharedFraming {
        let _ = (opcode, len);
        SharedFraming::PerConnection
    }

    /// Server: the RSV bits and payload of a whole message, transformed as
    /// [`frame_outbound`](Extension::frame_outbound) would on every connection that answered
    /// [`SharedFraming::Encoded`] with `key`. Called once per key and message (not for each
    /// connection); the result is shared. Only called after `shared_framing` returned
    /// `Encoded(key)`.
    fn encode_shared(
        &self,
        key: u64,
        opcode: Opcode,
        payload: &[u8],
    ) -> Result<(Rsv, Bytes), ExtensionError> {
        let _ = (key, opcode, payload);
        Err(ExtensionError::new(
            crate::wire::close::CloseCode::INTERNAL_ERROR,
            "encode_shared called on an extension that shares no encoding",
        ))
    }
}

/// How a message sent to many connections can be framed once and shared by one of them,
/// as an extension would transform it ([`Extension::shared_framing`]).
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
#[non_exhaustive]
pub enum SharedFraming {
    /// Framed by this connection alone: the output depends on the connection's state (a
    /// compression context taken over from earlier messages, say).
    PerConnection,
    /// Left as it is: the plain frame is shared.
    Untouched,
    /// Transformed the same way on every connection whose extension, of the same type,
    /// answers with the same key: encoded once per key ([`Extension::encode_shared`]) and
    /// shared.
    Encoded(u64),
}
