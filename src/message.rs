//! Message assembly: the rules across the frames of a message.
//!
//! [`MessageAssembler`] checks each header against the message in progress (continuation
//! rules, reserved bits claimed by extensions, the frame and message limits, each checked once,
//! here), runs transformed (compressed) payloads through the extensions, validates text as it
//! arrives and carries an incomplete code point over to the next chunk, and builds the events.
//! [`Assembly`] joins the fragments of a message for whole-message delivery. The bytes come
//! from the frame layer (`frame/decode.rs`), already unmasked.

use bytes::{Bytes, BytesMut};

use crate::config::Limits;
use crate::error::{ExtensionError, PeerViolation};
use crate::event::{BytesMessage, CloseConnection, CloseSource, Event, Ping, Pong, TextMessage};
use crate::extensions::Extension;
use crate::frame::{FrameHeader, Opcode, Rsv};
use crate::role::ConnectionType;
use crate::wire::close::CloseCode;
use crate::wire::utf8::{Utf8Bytes, Utf8Status, Validator};

/// The receiving side's message in progress.
#[derive(Debug, Default)]
pub(crate) struct MessageAssembler {
    message: Option<MessageProgress>,
    utf8: Validator,
    /// Undelivered bytes of an incomplete code point at the end of the last text chunk.
    text_carry: BytesMut,
}

#[derive(Clone, Copy, Debug)]
struct MessageProgress {
    opcode: Opcode,
    /// Bytes delivered so far (after extensions).
    size: u64,
    /// An extension transforms this message's payload (e.g. it is compressed).
    transformed: bool,
    /// Frames of this message so far, the first included.
    fragments: usize,
}

impl MessageAssembler {
    /// Checks a new frame's header against the extensions, the limits and the message in
    /// progress, and starts a message at its first frame.
    #[inline(always)]
    pub(crate) fn start_frame(
        &mut self,
        header: &FrameHeader,
        role: ConnectionType,
        limits: &Limits,
        extensions: &mut [Box<dyn Extension>],
    ) -> Result<(), PeerViolation> {
        let mut claimed = Rsv::NONE;
        for ext in extensions.iter_mut() {
            claimed = claimed.union(
                ext.frame_inbound_header(role, header.opcode, header.rsv, header.payload_len)
                    .map_err(PeerViolation::Extension)?,
            );
        }
        if !claimed.contains(header.rsv) {
            return Err(PeerViolation::UnexpectedReservedBits);
        }
        if header.payload_len > limits.max_frame_size as u64 {
            // A transformed (compressed) frame may exceed the limit by what DEFLATE adds to
            // incompressible data: a frame within the limit uncompressed is never refused
            // because the peer compressed it. Its output is bounded by the message limit.
            let transformed = match header.opcode {
                Opcode::Continuation => self.message.is_some_and(|m| m.transformed),
                opcode => opcode.is_data() && !header.rsv.is_empty(),
            };
            if !transformed || header.payload_len > compressed_bound(limits.max_frame_size) {
                return Err(PeerViolation::FrameTooBig);
            }
        }
        if header.opcode.is_data() {
            match (header.opcode, self.message) {
                (Opcode::Continuation, None) => return Err(PeerViolation::UnexpectedContinuation),
                (Opcode::Continuation, Some(message)) => {
                    // Counted so a peer cannot keep one message open forever with empty
                    // continuation frames, each costing us a header parse and nothing to it.
                    if message.fragments >= limits.max_fragments {
                        return Err(PeerViolation::TooManyFragments);
                    }
                    self.message = Some(MessageProgress { fragments: message.fragments + 1, ..message });
                }
                (_, Some(_)) => return Err(PeerViolation::ExpectedContinuation),
                (opcode, None) => {
                    self.utf8.reset();
                    self.text_carry.clear();
                    // Any RSV bit on the first frame that an extension claimed means the
                    // message's payload is transformed by that extension.
                    let transformed = !header.rsv.is_empty();
                    self.message = Some(MessageProgress { opcode, size: 0, transformed, fragments: 1 });
                }
            }
            let message = self.message.as_ref().expect("set above");
            if !message.transformed && message.size + header.payload_len > limits.max_message_size as u64 {
                return Err(PeerViolation::MessageTooBig);
            }
        }
        Ok(())
    }

    /// Whether a frame's payload is delivered as it is on the wire (a control frame, or a frame
    /// of a message no extension transforms).
    #[inline(always)]
    pub(crate) fn is_plain(&self, header: &FrameHeader) -> bool {
        header.opcode.is_control() || self.message.is_some_and(|m| !m.transformed)
    }

    /// Validates freshly unmasked payload of an untransformed text message (transformed text
    /// is checked after the extensions ran).
    #[inline(always)]
    pub(crate) fn check_text(&mut self, fresh: &[u8]) -> Result<(), PeerViolation> {
        if self.message.is_some_and(|m| m.opcode == Opcode::Text && !m.transformed) {
            if let Utf8Status::Invalid = self.utf8.feed(fresh) {
                return Err(PeerViolation::InvalidUtf8);
            }
        }
        Ok(())
    }

    /// Whether the message in progress is transformed by an extension.
    #[inline(always)]
    pub(crate) fn is_transformed(&self) -> bool {
        self.message.is_some_and(|m| m.transformed)
    }

    /// Runs a chunk of a transformed (e.g. compressed) message through the extensions, within
    /// the message size budget, and checks the resulting text.
    pub(crate) fn transform(
        &mut self,
        chunk: Bytes,
        frame_complete: bool,
        fin: bool,
        limits: &Limits,
        extensions: &mut [Box<dyn Extension>],
    ) -> Result<Bytes, PeerViolation> {
        let message = self.message.as_ref().expect("data frame has a message");
        let budget = (limits.max_message_size as u64).saturating_sub(message.size);
        let budget = usize::try_from(budget).unwrap_or(usize::MAX);
        // The budget is the connection's message limit: an extension that would exceed it
        // reports 1009, which is the connection's own violation.
        let too_big = |e: ExtensionError| {
            if e.code() == CloseCode::MESSAGE_TOO_BIG {
                PeerViolation::MessageTooBig
            } else {
                PeerViolation::Extension(e)
            }
        };
        let mut data = chunk;
        for ext in extensions.iter_mut() {
            data = ext.frame_inbound_payload_data(data, budget).map_err(too_big)?;
            if frame_complete {
                if let Some(tail) =
                    ext.frame_inbound_complete(fin, budget.saturating_sub(data.len())).map_err(too_big)?
                {
                    if !tail.is_empty() {
                        let mut joined = BytesMut::with_capacity(data.len() + tail.len());
                        joined.extend_from_slice(&data);
                        joined.extend_from_slice(&tail);
                        data = joined.freeze();
                    }
                }
            }
        }
        if data.len() > budget {
            return Err(PeerViolation::MessageTooBig);
        }
        if message.opcode == Opcode::Text {
            if let Utf8Status::Invalid = self.utf8.feed(&data) {
                return Err(PeerViolation::InvalidUtf8);
            }
        }
        Ok(data)
    }

    /// Builds the message event for a chunk whose bytes are unmasked, transformed and checked.
    #[inline(always)]
    pub(crate) fn deliver(
        &mut self,
        data: Bytes,
        frame_finished: bool,
        message_finished: bool,
        limits: &Limits,
    ) -> Result<Event, PeerViolation> {
        let message = self.message.as_mut().expect("data frame has a message");
        message.size += data.len() as u64;
        if message.size > limits.max_message_size as u64 {
            return Err(PeerViolation::MessageTooBig);
        }
        let opcode = message.opcode;
        if message_finished {
            self.message = None;
        }
        if opcode == Opcode::Binary {
            return Ok(Event::BytesMessage(BytesMessage { data, frame_finished, message_finished }));
        }
        if message_finished && self.utf8.has_partial() {
            return Err(PeerViolation::IncompleteUtf8);
        }
        // The last `pending` bytes of the stream so far are an incomplete code point: hold them
        // back. Without a split code point (the usual case) this is zero-copy.
        let pending = self.utf8.partial().len();
        let mut text = if self.text_carry.is_empty() {
            data
        } else {
            let mut joined = std::mem::take(&mut self.text_carry);
            joined.extend_from_slice(&data);
            joined.freeze()
        };
        if pending > 0 {
            let tail = text.split_off(text.len() - pending);
            self.text_carry.extend_from_slice(&tail);
        }
        Ok(Event::TextMessage(TextMessage {
            data: Utf8Bytes::from_bytes_unchecked(text),
            frame_finished,
            message_finished,
        }))
    }

    /// The event of a control frame.
    pub(crate) fn control_event(opcode: Opcode, payload: Bytes) -> Result<Event, PeerViolation> {
        Ok(match opcode {
            Opcode::Ping => Event::Ping(Ping { payload }),
            Opcode::Pong => Event::Pong(Pong { payload }),
            Opcode::Close => {
                let (code, reason) = parse_close_payload(&payload)?;
                // `reply_owed` is settled by the connection, which knows the state.
                CloseConnection::received(code, reason, CloseSource::Peer, false).into()
            }
            _ => unreachable!("control opcodes only"),
        })
    }
}

/// The largest DEFLATE encoding of `len` bytes that a zlib-based peer sends: incompressible
/// data goes in stored blocks of 5 header bytes each, and a compressor with a small memory
/// level uses small blocks (Python websockets' default, memLevel 5, about 8 KiB; memLevel 1
/// about 500 bytes, so 1% overhead), plus a few bytes of flush. 1/64 and 1 KiB cover them all.
fn compressed_bound(len: usize) -> u64 {
    let len = len as u64;
    len.saturating_add((len >> 6) + 1024)
}

/// The fragments of a message delivered whole, joined as they arrive.
#[derive(Debug, Default)]
pub(crate) struct Assembly {
    buffer: BytesMut,
    /// Size of the last message assembled from fragments: the next one reserves that much
    /// (up to [`MAX_ASSEMBLY_RESERVE`]) at its first fragment instead of growing by doubling.
    last_size: usize,
}

/// Most a fragmented message reserves ahead of its data, so a peer that sent one large
/// message cannot make each connection hold a large reservation with one stalled fragment.
const MAX_ASSEMBLY_RESERVE: usize = 1 << 20;
/// An assembly buffer reserved above this for a larger predecessor is not handed out with a
/// message that fills less than a quarter of it.
const ASSEMBLY_SHRINK_ABOVE: usize = 64 << 10;

impl Assembly {
    /// Appends a fragment that does not end its message.
    pub(crate) fn push(&mut self, data: Bytes) {
        if self.buffer.is_empty() {
            self.buffer.reserve(self.last_size.min(MAX_ASSEMBLY_RESERVE).max(data.len()));
        }
        self.buffer.extend_from_slice(&data);
    }

    /// The whole message, given its last fragment: zero-copy when it is the only one.
    pub(crate) fn finish(&mut self, last: Bytes) -> Bytes {
        if self.buffer.is_empty() {
            return last;
        }
        self.buffer.extend_from_slice(&last);
        self.last_size = self.buffer.len();
        // Hand the message out and start afresh, so the buffer of a large message is not kept
        // for the life of the connection.
        let mut message = std::mem::take(&mut self.buffer);
        if message.capacity() > ASSEMBLY_SHRINK_ABOVE && message.len() < message.capacity() / 4 {
            // Reserved for a larger predecessor: a small message must not pin it.
            message = BytesMut::from(&message[..]);
        }
        message.freeze()
    }

    /// Whether no fragment is held.
    #[inline]
    pub(crate) fn is_empty(&self) -> bool {
        self.buffer.is_empty()
    }

    /// Drops a message that will not be completed.
    pub(crate) fn clear(&mut self) {
        self.buffer = BytesMut::new();
    }
}

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

#[cfg(test)]
mod close_payload_tests {
    use super::*;

    #[test]
    fn close_payloads_parse_to_code_and_reason_or_the_violation_they_are() {
        assert_eq!(parse_close_payload(b"").unwrap().0, CloseCode::NO_STATUS_RCVD);
        assert_eq!(parse_close_payload(b"\x03").unwrap_err().close_code(), CloseCode::PROTOCOL_ERROR);
        assert_eq!(parse_close_payload(&999u16.to_be_bytes()).unwrap_err().close_code(), 1002);
        assert_eq!(parse_close_payload(&5000u16.to_be_bytes()).unwrap_err().close_code(), 1002);
        for local in [1005u16, 1006, 1015, 1004, 1016, 2999] {
            assert_eq!(parse_close_payload(&local.to_be_bytes()).unwrap_err().close_code(), 1002);
        }
        // 1012-1014 are in IANA's registry (Python wsproto fails a close with 1014).
        for registered in [1012u16, 1013, 1014] {
            assert_eq!(parse_close_payload(&registered.to_be_bytes()).unwrap().0, CloseCode(registered));
        }
        let (code, reason) = parse_close_payload(b"\x0b\xb8hi").unwrap();
        assert_eq!((code.0, reason.as_str()), (3000, "hi"));
        assert_eq!(parse_close_payload(b"\x03\xe8\xff").unwrap_err().close_code(), 1007);
    }
}
