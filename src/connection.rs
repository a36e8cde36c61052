//! The post-handshake WebSocket connection: bytes in, events out; events in, bytes out.

use std::fmt;

use bytes::{Buf, Bytes, BytesMut};

use crate::close::{parse_close_payload, truncate_reason, CloseCode};
use crate::config::{Config, Delivery};
use crate::error::LocalProtocolError;
use crate::error::PeerViolation;
use crate::event::{BytesMessage, CloseConnection, CloseSource, Event, Ping, Pong, TextMessage};
use crate::extensions::Extension;
use crate::frame::{FrameHeader, Opcode, Rsv, MAX_CONTROL_PAYLOAD};
use crate::mask::{apply_mask, extend_masked};
use crate::role::ConnectionType;
use crate::state::{ConnectionState, Input, SendKind, StateMachine};
use crate::utf8::{Utf8Bytes, Utf8Status, Validator};

/// A WebSocket connection after the opening handshake: a sans-IO state machine.
///
/// # Call protocol
///
/// * **Input**: [`receive_data`](Self::receive_data) appends bytes read from the transport;
///   [`receive_eof`](Self::receive_eof) reports that the transport reached EOF.
/// * **Output**: [`next_event`](Self::next_event) (or the [`events`](Self::events) iterator)
///   parses buffered bytes lazily and returns one event at a time, `None` when it needs more
///   bytes. Call it until `None` after each `receive_data`.
/// * **Commands**: [`send`](Self::send) serialises an event into a caller buffer (or
///   [`send_bytes`](Self::send_bytes) returns fresh bytes) for you to write to the transport.
///
/// Codecs that own their read buffer call [`decode`](Self::decode) on it instead of
/// `receive_data` + `next_event`; the two styles must not be mixed on one connection.
///
/// Nothing is sent automatically: answer [`Ping`] with `ping.response()` and a received
/// [`CloseConnection`] with `close.response()`. A peer violation is reported as a
/// `CloseConnection` event with the code to answer with (1002, 1007, 1009); after it nothing
/// more is parsed, and sending its `response()` completes the close.
///
/// ```
/// use bytes::BytesMut;
/// use wsproto::{Config, Connection, ConnectionType, Event, TextMessage};
///
/// let mut server = Connection::new(ConnectionType::Server, Config::default());
/// // The masked "Hello" frame of RFC 6455 §5.7.
/// server.receive_data(&[0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58]).unwrap();
/// let Some(Event::TextMessage(msg)) = server.next_event() else { panic!() };
/// assert_eq!(msg.data, "Hello");
///
/// let mut out = BytesMut::new();
/// server.send(TextMessage::new("Hello"), &mut out).unwrap();
/// assert_eq!(&out[..], b"\x81\x05Hello");
/// ```
pub struct Connection {
    role: ConnectionType,
    state: StateMachine,
    config: Config,
    /// The delivery in force (the configured one, or chunks).
    delivery: Delivery,
    /// Whole-message delivery: the fragments of the message being assembled.
    assembly: Assembly,
    extensions: Vec<Box<dyn Extension>>,
    buffer: BytesMut,
    rx: Receiver,
    /// Opcode of the outgoing message in progress, if a fragment was sent without FIN.
    tx_message: Option<Opcode>,
}

/// Receive-side parser state.
#[derive(Default)]
struct Receiver {
    frame: Option<FrameProgress>,
    message: Option<MessageProgress>,
    utf8: Validator,
    /// Undelivered bytes of an incomplete code point at the end of the last text chunk.
    text_carry: BytesMut,
}

#[derive(Clone, Copy)]
struct FrameProgress {
    header: FrameHeader,
    /// Payload bytes not yet consumed from the buffer.
    remaining: u64,
    /// Payload bytes at the start of the buffer already unmasked (and UTF-8 checked).
    processed: usize,
    /// Payload bytes already consumed (the masking key phase).
    consumed: u64,
}

#[derive(Clone, Copy)]
struct MessageProgress {
    opcode: Opcode,
    /// Bytes delivered so far (after extensions).
    size: u64,
    /// An extension transforms this message's payload (e.g. it is compressed).
    transformed: bool,
}

/// Least free space reserved while a frame is in progress.
const MIN_READ_SPACE: usize = 16 << 10;

/// Most a streaming decoder reserves ahead for the rest of a partially received frame.
const STREAM_RESERVE: usize = 64 << 10;

/// Most a whole-frame decoder reserves at once (a peer announcing a huge frame does not get
/// that much memory committed before sending it; the buffer still grows by doubling).
const WHOLE_FRAME_RESERVE: usize = 1 << 20;

impl Connection {
    /// A connection in the OPEN state, with no extension.
    pub fn new(role: ConnectionType, config: Config) -> Self {
        Self::with_extensions(role, config, Vec::new(), &[])
    }

    /// A connection for a stream upgraded elsewhere: the negotiated `extensions` (only the
    /// enabled ones are kept) and any `trailing_data` already read past the handshake.
    pub fn with_extensions(
        role: ConnectionType,
        config: Config,
        extensions: Vec<Box<dyn Extension>>,
        trailing_data: &[u8],
    ) -> Self {
        let extensions = extensions.into_iter().filter(|e| e.enabled()).collect();
        Connection {
            role,
            state: StateMachine::open(),
            delivery: config.delivery_or(Delivery::DEFAULT_CHUNKS),
            assembly: Assembly::default(),
            config,
            extensions,
            buffer: BytesMut::from(trailing_data),
            rx: Receiver::default(),
            tx_message: None,
        }
    }

    /// Whether no frame is partly received: the next byte starts a new frame header.
    pub fn at_frame_boundary(&self) -> bool {
        self.rx.frame.is_none()
    }

    /// Our role.
    pub fn role(&self) -> ConnectionType {
        self.role
    }

    /// The current state.
    pub fn state(&self) -> ConnectionState {
        self.state.state()
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// How received data is delivered (the configured [`Delivery`], or chunks by default).
    pub fn delivery(&self) -> Delivery {
        self.delivery
    }

    /// The negotiated extensions in use, in the order they apply to received frames.
    pub fn extensions(&self) -> &[Box<dyn Extension>] {
        &self.extensions
    }

    /// The permessage-deflate agreement, if that extension is in use.
    #[cfg(feature = "deflate")]
    pub fn deflate_params(&self) -> Option<crate::extensions::DeflateParams> {
        self.extensions.iter().find_map(|ext| {
            let any: &dyn std::any::Any = &**ext;
            any.downcast_ref::<crate::extensions::PerMessageDeflate>()?.params()
        })
    }

    /// Replaces the (empty) input buffer with bytes already read past the handshake.
    pub(crate) fn set_buffered(&mut self, buffer: BytesMut) {
        debug_assert!(self.buffer.is_empty());
        self.buffer = buffer;
    }

    /// Takes the bytes buffered by [`receive_data`](Self::receive_data) (or passed as trailing
    /// data) and not parsed yet, e.g. to move them into a codec's read buffer.
    pub fn take_buffered(&mut self) -> BytesMut {
        std::mem::take(&mut self.buffer)
    }

    /// Appends bytes read from the transport; parse them with [`next_event`](Self::next_event).
    ///
    /// In REMOTE_CLOSING the bytes are ignored (the peer has closed). In CLOSED this is an
    /// error.
    pub fn receive_data(&mut self, data: &[u8]) -> Result<(), LocalProtocolError> {
        match self.state.input() {
            Input::Parse => self.buffer.extend_from_slice(data),
            Input::Ignore => {}
            Input::Refuse => return Err(LocalProtocolError::ConnectionClosed),
        }
        Ok(())
    }

    /// Reports EOF on the transport. Complete frames still buffered are delivered first;
    /// then, unless a close was already reported (a close frame from the peer, or a violation
    /// we detected), a `CloseConnection` with code 1006 (abnormal closure); the state becomes
    /// CLOSED.
    pub fn receive_eof(&mut self) {
        self.state.receive_eof();
    }

    /// The next event parsed from the bytes given to [`receive_data`](Self::receive_data), or
    /// `None` when more bytes are needed.
    #[must_use]
    pub fn next_event(&mut self) -> Option<Event> {
        let mut buffer = std::mem::take(&mut self.buffer);
        let event = self.decode(&mut buffer);
        self.buffer = buffer;
        event
    }

    /// An iterator over the events available now (see [`next_event`](Self::next_event)).
    #[must_use]
    pub fn events(&mut self) -> Events<'_> {
        Events { conn: self }
    }

    /// Parses the next event out of the caller's buffer `src`, consuming what it uses and
    /// leaving the rest. Payloads are split out of `src` without copying and unmasked in
    /// place. This is the primitive behind [`next_event`](Self::next_event) and the tokio
    /// codec.
    #[must_use]
    #[inline]
    pub fn decode(&mut self, src: &mut BytesMut) -> Option<Event> {
        if self.delivery != Delivery::Messages {
            return self.decode_event(src);
        }
        loop {
            match self.decode_event(src)? {
                Event::TextMessage(m) if !m.message_finished => self.assembly.push(m.data.into_bytes()),
                Event::BytesMessage(m) if !m.message_finished => self.assembly.push(m.data),
                Event::TextMessage(m) => {
                    let data = self.assembly.finish(m.data.into_bytes());
                    // Chunks hold whole characters, so their concatenation is valid UTF-8.
                    return Some(TextMessage::new(Utf8Bytes::from_bytes_unchecked(data)).into());
                }
                Event::BytesMessage(m) => {
                    return Some(BytesMessage::new(self.assembly.finish(m.data)).into())
                }
                close @ Event::CloseConnection(_) => {
                    self.assembly.clear();
                    return Some(close);
                }
                other => return Some(other),
            }
        }
    }

    /// [`decode`](Self::decode) one frame's (or chunk's) event.
    #[inline(always)]
    fn decode_event(&mut self, src: &mut BytesMut) -> Option<Event> {
        if !self.state.parsing() {
            // Nothing more is parsed after a close frame or a violation: drop what arrives.
            src.clear();
        } else {
            let min_chunk = self.delivery.min_chunk_size();
            match self.rx.decode(src, self.role, &self.config, min_chunk, &mut self.extensions) {
                Ok(Some(mut event)) => {
                    if let Event::CloseConnection(close) = &mut event {
                        close.reply_owed = self.state.received_close();
                    }
                    return Some(event);
                }
                Ok(None) => {}
                Err(violation) => {
                    let reply_owed = self.state.failed();
                    let close = CloseConnection::received(
                        violation.close_code(),
                        violation.reason().to_owned(),
                        CloseSource::Violation(violation),
                        reply_owed,
                    );
                    return Some(close.into());
                }
            }
        }
        self.eof_event()
    }

    /// The event owed at EOF, if EOF was reported and it has not been emitted yet.
    ///
    /// 1006 means the connection ended without a close frame (RFC 6455 §7.1.5): once a close
    /// was reported (the peer's, or ours for a violation) EOF only completes the move to CLOSED.
    fn eof_event(&mut self) -> Option<Event> {
        if !self.state.close_at_eof() {
            return None;
        }
        let mut close = CloseConnection::new(CloseCode::ABNORMAL_CLOSURE);
        close.source = CloseSource::TransportEnded;
        Some(close.into())
    }

    /// Serialises `event` into `dst` and updates the state.
    ///
    /// Allowed: messages, pings and pongs in OPEN; `CloseConnection` in OPEN (→ LOCAL_CLOSING)
    /// and in REMOTE_CLOSING (→ CLOSED). Anything else, an over-long control payload, a close
    /// code that may not be sent, or text and binary mixed in one message is a
    /// [`LocalProtocolError`] and writes nothing.
    // Inlined into the caller (the codec's `encode`): as a call, the event was copied into a
    // new stack slot and its tag then read back, both stalling on store forwarding.
    #[inline]
    pub fn send(&mut self, event: impl Into<Event>, dst: &mut BytesMut) -> Result<(), LocalProtocolError> {
        let event = event.into();
        let kind = match &event {
            Event::TextMessage(_) | Event::BytesMessage(_) => SendKind::Data,
            Event::Ping(_) => SendKind::Ping,
            Event::Pong(_) => SendKind::Pong,
            Event::CloseConnection(_) => SendKind::Close,
            other => {
                return Err(LocalProtocolError::EventNotAllowed { event: other.name(), state: self.state() })
            }
        };
        if !self.state.may_send(kind) {
            return Err(LocalProtocolError::EventNotAllowed { event: event.name(), state: self.state() });
        }
        match event {
            Event::TextMessage(m) => {
                self.send_data(Opcode::Text, m.data.into_bytes(), m.message_finished, dst)?
            }
            Event::BytesMessage(m) => self.send_data(Opcode::Binary, m.data, m.message_finished, dst)?,
            Event::Ping(p) => self.send_control(Opcode::Ping, &p.payload, dst)?,
            Event::Pong(p) => self.send_control(Opcode::Pong, &p.payload, dst)?,
            Event::CloseConnection(c) => {
                let payload = close_payload(&c)?;
                self.send_control(Opcode::Close, &payload, dst)?;
            }
            _ => unreachable!("filtered above"),
        }
        self.state.sent(kind);
        Ok(())
    }

    /// Like [`send`](Self::send), returning the bytes.
    pub fn send_bytes(&mut self, event: impl Into<Event>) -> Result<Bytes, LocalProtocolError> {
        let mut dst = BytesMut::new();
        self.send(event, &mut dst)?;
        Ok(dst.freeze())
    }

    #[inline]
    fn send_data(
        &mut self,
        kind: Opcode,
        data: Bytes,
        fin: bool,
        dst: &mut BytesMut,
    ) -> Result<(), LocalProtocolError> {
        let opcode = match self.tx_message {
            None => kind,
            Some(current) if current == kind => Opcode::Continuation,
            Some(_) => return Err(LocalProtocolError::MessageTypeMismatch),
        };
        let mut rsv = Rsv::NONE;
        let mut payload = data;
        for ext in self.extensions.iter_mut().rev() {
            let (r, p) =
                ext.frame_outbound(opcode, rsv, payload, fin).map_err(LocalProtocolError::Extension)?;
            rsv = r;
            payload = p;
        }
        self.tx_message = if fin { None } else { Some(kind) };
        self.write_frame(fin, rsv, opcode, &payload, dst);
        Ok(())
    }

    fn send_control(
        &mut self,
        opcode: Opcode,
        payload: &[u8],
        dst: &mut BytesMut,
    ) -> Result<(), LocalProtocolError> {
        if payload.len() > MAX_CONTROL_PAYLOAD {
            return Err(LocalProtocolError::ControlPayloadTooLong { len: payload.len() });
        }
        self.write_frame(true, Rsv::NONE, opcode, payload, dst);
        Ok(())
    }

    #[inline]
    fn write_frame(&self, fin: bool, rsv: Rsv, opcode: Opcode, payload: &[u8], dst: &mut BytesMut) {
        let mask = self.role.is_client().then(|| self.config.key_source.mask_key());
        let header = FrameHeader { fin, rsv, opcode, mask, payload_len: payload.len() as u64 };
        dst.reserve(header.encoded_len() + payload.len());
        header.encode(dst);
        match mask {
            Some(key) => extend_masked(dst, payload, key),
            None => dst.extend_from_slice(payload),
        }
    }
}

/// The payload of a close frame for `close`, validated.
fn close_payload(close: &CloseConnection) -> Result<Vec<u8>, LocalProtocolError> {
    let reason = close.reason.as_deref().unwrap_or("");
    if close.code == CloseCode::NO_STATUS_RCVD {
        if !reason.is_empty() {
            return Err(LocalProtocolError::ReasonWithoutCode);
        }
        return Ok(Vec::new());
    }
    if !close.code.is_sendable() {
        return Err(LocalProtocolError::InvalidCloseCode(close.code));
    }
    let reason = truncate_reason(reason);
    let mut payload = Vec::with_capacity(2 + reason.len());
    payload.extend_from_slice(&close.code.0.to_be_bytes());
    payload.extend_from_slice(reason.as_bytes());
    Ok(payload)
}

impl fmt::Debug for Connection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Connection")
            .field("role", &self.role)
            .field("state", &self.state.state())
            .field("extensions", &self.extensions)
            .field("buffered", &self.buffer.len())
            .finish_non_exhaustive()
    }
}

/// The largest DEFLATE encoding of `len` bytes (zlib's `deflateBound`: stored blocks cost 5
/// bytes per 64 KiB, plus a few bytes of flush and framing).
fn compressed_bound(len: usize) -> u64 {
    let len = len as u64;
    len.saturating_add((len >> 12) + (len >> 14) + (len >> 25) + 13)
}

/// The fragments of a message delivered whole, joined as they arrive.
#[derive(Default)]
struct Assembly {
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
    fn push(&mut self, data: Bytes) {
        if self.buffer.is_empty() {
            self.buffer.reserve(self.last_size.min(MAX_ASSEMBLY_RESERVE).max(data.len()));
        }
        self.buffer.extend_from_slice(&data);
    }

    /// The whole message, given its last fragment: zero-copy when it is the only one.
    fn finish(&mut self, last: Bytes) -> Bytes {
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

    /// Drops a message that will not be completed.
    fn clear(&mut self) {
        self.buffer = BytesMut::new();
    }
}

/// Iterator over the events available now; see [`Connection::events`].
#[derive(Debug)]
pub struct Events<'a> {
    conn: &'a mut Connection,
}

impl Iterator for Events<'_> {
    type Item = Event;
    fn next(&mut self) -> Option<Event> {
        self.conn.next_event()
    }
}

impl Receiver {
    fn decode(
        &mut self,
        src: &mut BytesMut,
        role: ConnectionType,
        config: &Config,
        min_chunk: Option<usize>,
        extensions: &mut [Box<dyn Extension>],
    ) -> Result<Option<Event>, PeerViolation> {
        let mut frame = match self.frame {
            Some(frame) => frame,
            None => {
                let Some((header, header_len)) = self.start_frame(src, role, config, extensions)? else {
                    return Ok(None);
                };
                let buffered = (src.len() - header_len) as u64 >= header.payload_len;
                let plain = header.opcode.is_control() || self.message.is_some_and(|m| !m.transformed);
                if buffered && plain {
                    return self.whole_frame(src, header, header_len, config);
                }
                src.advance(header_len);
                let frame =
                    FrameProgress { header, remaining: header.payload_len, processed: 0, consumed: 0 };
                self.frame = Some(frame);
                frame
            }
        };
        let len = frame.header.payload_len;
        if frame.header.opcode.is_control() {
            // Control frames are delivered only when complete (at most 125 bytes).
            let len = len as usize;
            if src.len() < len {
                self.frame = Some(frame);
                src.reserve(len - src.len());
                return Ok(None);
            }
            self.frame = None;
            let mut payload = src.split_to(len);
            if let Some(key) = frame.header.mask {
                apply_mask(&mut payload, key, 0);
            }
            return self.control_event(frame.header.opcode, payload.freeze()).map(Some);
        }

        // Data frame: unmask (and check UTF-8 of) what has arrived, once.
        let available = src.len().min(usize::try_from(frame.remaining).unwrap_or(usize::MAX));
        let message = self.message.expect("a data frame always belongs to a message");
        if available > frame.processed {
            let fresh = &mut src[frame.processed..available];
            if let Some(key) = frame.header.mask {
                let phase = (frame.consumed as usize).wrapping_add(frame.processed);
                apply_mask(fresh, key, phase);
            }
            if message.opcode == Opcode::Text && !message.transformed {
                if let Utf8Status::Invalid = self.utf8.feed(fresh) {
                    return Err(PeerViolation::InvalidUtf8);
                }
            }
            frame.processed = available;
        }
        let frame_complete = available as u64 == frame.remaining;
        if !frame_complete && min_chunk.is_none_or(|min| available < min) {
            // Wait for more. In whole-frame mode make room for the rest of the frame at once
            // (bounded by the frame limit); when streaming, only for the next chunk.
            let cap = match min_chunk {
                Some(min) => STREAM_RESERVE.max(min),
                None => config.limits.max_frame_size.min(WHOLE_FRAME_RESERVE),
            };
            let missing = (frame.remaining - available as u64).min(cap as u64) as usize;
            if src.capacity() - src.len() < missing {
                // Growing anyway: leave room for what follows the frame too (a read that
                // stops exactly at the frame's end costs a system call per message on a busy
                // connection). When the room is already there, nothing is reallocated.
                src.reserve(missing.max(MIN_READ_SPACE));
            }
            self.frame = Some(frame);
            return Ok(None);
        }
        let chunk = src.split_to(available).freeze();
        frame.remaining -= available as u64;
        frame.consumed += available as u64;
        frame.processed = 0;
        self.frame = if frame_complete { None } else { Some(frame) };
        let fin = frame.header.fin;
        let message_finished = frame_complete && fin;
        let data = if message.transformed {
            self.transform(chunk, frame_complete, fin, config, extensions)?
        } else {
            chunk
        };
        self.deliver(data, frame_complete, message_finished, config)
    }

    /// The fast path: a frame of an untransformed message (or a control frame) whose payload
    /// is all buffered behind its `header_len`-byte header. One split takes header and payload
    /// off the buffer; the header is then skipped on the frozen bytes, which is cheaper than
    /// advancing the buffer past it first.
    #[inline(always)]
    fn whole_frame(
        &mut self,
        src: &mut BytesMut,
        header: FrameHeader,
        header_len: usize,
        config: &Config,
    ) -> Result<Option<Event>, PeerViolation> {
        let end = header_len + header.payload_len as usize;
        let payload = &mut src[header_len..end];
        if let Some(key) = header.mask {
            apply_mask(payload, key, 0);
        }
        if !header.opcode.is_control() && self.message.is_some_and(|m| m.opcode == Opcode::Text) {
            if let Utf8Status::Invalid = self.utf8.feed(payload) {
                return Err(PeerViolation::InvalidUtf8);
            }
        }
        let mut frame = src.split_to(end).freeze();
        frame.advance(header_len);
        if header.opcode.is_control() {
            return self.control_event(header.opcode, frame).map(Some);
        }
        self.deliver(frame, true, header.fin, config)
    }

    /// Parses and checks the next header and sets up message progress; the header stays in
    /// the buffer (its length is returned with it).
    #[inline(always)]
    fn start_frame(
        &mut self,
        src: &mut BytesMut,
        role: ConnectionType,
        config: &Config,
        extensions: &mut [Box<dyn Extension>],
    ) -> Result<Option<(FrameHeader, usize)>, PeerViolation> {
        let (header, header_len) = match FrameHeader::parse(src) {
            Ok(Some(parsed)) => parsed,
            Ok(None) => return Ok(None),
            Err(violation) => return Err(violation),
        };
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
        match (role, header.mask.is_some()) {
            (ConnectionType::Client, true) => return Err(PeerViolation::MaskedFrame),
            (ConnectionType::Server, false) => return Err(PeerViolation::UnmaskedFrame),
            _ => {}
        }
        let limits = config.limits;
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
                (Opcode::Continuation, Some(_)) => {}
                (_, Some(_)) => return Err(PeerViolation::ExpectedContinuation),
                (opcode, None) => {
                    self.utf8.reset();
                    self.text_carry.clear();
                    // Any RSV bit on the first frame that an extension claimed means the
                    // message's payload is transformed by that extension.
                    let transformed = !header.rsv.is_empty();
                    self.message = Some(MessageProgress { opcode, size: 0, transformed });
                }
            }
            let message = self.message.as_ref().expect("set above");
            if !message.transformed && message.size + header.payload_len > limits.max_message_size as u64 {
                return Err(PeerViolation::MessageTooBig);
            }
        }
        Ok(Some((header, header_len)))
    }

    /// Runs a chunk of a transformed (e.g. compressed) message through the extensions, within
    /// the message size budget, and checks the resulting text.
    fn transform(
        &mut self,
        chunk: Bytes,
        frame_complete: bool,
        fin: bool,
        config: &Config,
        extensions: &mut [Box<dyn Extension>],
    ) -> Result<Bytes, PeerViolation> {
        let message = self.message.as_ref().expect("data frame has a message");
        let budget = (config.limits.max_message_size as u64).saturating_sub(message.size);
        let budget = usize::try_from(budget).unwrap_or(usize::MAX);
        // The budget is the connection's message limit: an extension that would exceed it
        // reports 1009, which is the connection's own violation.
        let too_big = |e: crate::error::ExtensionError| {
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
    fn deliver(
        &mut self,
        data: Bytes,
        frame_finished: bool,
        message_finished: bool,
        config: &Config,
    ) -> Result<Option<Event>, PeerViolation> {
        let message = self.message.as_mut().expect("data frame has a message");
        message.size += data.len() as u64;
        if message.size > config.limits.max_message_size as u64 {
            return Err(PeerViolation::MessageTooBig);
        }
        let opcode = message.opcode;
        if message_finished {
            self.message = None;
        }
        if opcode == Opcode::Binary {
            return Ok(Some(Event::BytesMessage(BytesMessage { data, frame_finished, message_finished })));
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
        Ok(Some(Event::TextMessage(TextMessage {
            data: Utf8Bytes::from_bytes_unchecked(text),
            frame_finished,
            message_finished,
        })))
    }

    fn control_event(&mut self, opcode: Opcode, payload: Bytes) -> Result<Event, PeerViolation> {
        Ok(match opcode {
            Opcode::Ping => Event::Ping(Ping { payload }),
            Opcode::Pong => Event::Pong(Pong { payload }),
            Opcode::Close => {
                let (code, reason) = parse_close_payload(&payload)?;
                // `reply_owed` is settled by the caller, which knows the state.
                CloseConnection::received(code, reason, CloseSource::Peer, false).into()
            }
            _ => unreachable!("control opcodes only"),
        })
    }
}
