//! The post-handshake WebSocket connection: bytes in, events out; events in, bytes out.

pub(crate) mod misuse;
pub(crate) mod prepared;
pub(crate) mod state;
pub(crate) mod traffic;

use std::fmt;

use bytes::{Bytes, BytesMut};

use crate::config::{Config, Delivery, Limits};
use crate::connection::misuse::LocalProtocolError;
use crate::connection::prepared::PreparedMessage;
use crate::connection::state::{ConnectionState, Input, SendKind, StateMachine};
use crate::connection::traffic::Traffic;
use crate::error::PeerViolation;
use crate::event::{BytesMessage, CloseConnection, CloseSource, Event, TextMessage};
use crate::extensions::{Extension, SharedFraming};
use crate::frame::decode::FrameDecoder;
use crate::frame::{FrameHeader, Opcode, Rsv, MAX_CONTROL_PAYLOAD};
use crate::message::{Assembly, MessageAssembler};
use crate::role::ConnectionType;
use crate::wire::close::{truncate_reason, CloseCode};
use crate::wire::mask::extend_masked;
use crate::wire::utf8::Utf8Bytes;

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
/// Nothing is sent automatically: answer [`Ping`](crate::Ping) with `ping.response()`, and a
/// received [`CloseConnection`] with its [`reply`](CloseConnection::reply) when one is owed. A
/// peer violation is reported as a `CloseConnection` event whose source is the violation and
/// whose code is the one to answer with (1002, 1007, 1009); after it nothing more is parsed,
/// and sending its reply completes the close.
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
    /// Its least chunk of a frame still arriving (`None`: frames are delivered whole), worked
    /// out once rather than per frame.
    min_chunk: Option<usize>,
    /// Whole-message delivery: the fragments of the message being assembled.
    assembly: Assembly,
    extensions: Vec<Box<dyn Extension>>,
    buffer: BytesMut,
    rx: Receiver,
    /// Opcode of the outgoing message in progress, if a fragment was sent without FIN.
    tx_message: Option<Opcode>,
    traffic: Traffic,
}

/// The receiving side: the frame layer and the message layer.
#[derive(Default)]
struct Receiver {
    frames: FrameDecoder,
    messages: MessageAssembler,
}

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
            min_chunk: config.delivery_or(Delivery::DEFAULT_CHUNKS).min_chunk_size(),
            assembly: Assembly::default(),
            config,
            extensions,
            buffer: BytesMut::from(trailing_data),
            rx: Receiver::default(),
            tx_message: None,
            traffic: Traffic::default(),
        }
    }

    /// Whether no frame is partly received: the next byte starts a new frame header.
    pub fn at_frame_boundary(&self) -> bool {
        self.rx.frames.at_boundary()
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

    /// The negotiated extension of type `E`, if it is in use: for instance
    /// `connection.extension::<PerMessageDeflate>()` and its `params()`, the agreement.
    pub fn extension<E: Extension>(&self) -> Option<&E> {
        self.extensions.iter().find_map(|ext| {
            let any: &dyn std::any::Any = &**ext;
            any.downcast_ref::<E>()
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
        let before = src.len();
        let event = self.decode_counted(src);
        self.traffic.received(before - src.len(), event.as_ref());
        event
    }

    /// What it has received and sent so far (see [`Traffic`]).
    pub fn traffic(&self) -> Traffic {
        self.traffic
    }

    /// [`decode`](Self::decode) before its bytes and event are counted.
    #[inline(always)]
    fn decode_counted(&mut self, src: &mut BytesMut) -> Option<Event> {
        if self.delivery != Delivery::Messages {
            return self.decode_event(src);
        }
        loop {
            let event = self.decode_event(src)?;
            // An unfragmented message (frames arrive whole here) goes out as decoded: testing
            // first keeps the event in place instead of taking it apart and rebuilding it.
            let whole = match &event {
                Event::TextMessage(m) => m.message_finished && self.assembly.is_empty(),
                Event::BytesMessage(m) => m.message_finished && self.assembly.is_empty(),
                _ => false,
            };
            if whole {
                return Some(event);
            }
            match event {
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
            let min_chunk = self.min_chunk;
            match self.rx.decode(src, self.role, &self.config.limits, min_chunk, &mut self.extensions) {
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
    /// Allowed: messages (text, binary, [`PreparedMessage`]), pings and pongs in OPEN;
    /// `CloseConnection` in OPEN (→ LOCAL_CLOSING) and in REMOTE_CLOSING (→ CLOSED). Anything
    /// else, an over-long control payload, a close code that may not be sent, or text and
    /// binary mixed in one message is a [`LocalProtocolError`] and writes nothing. A prepared
    /// message is a whole message: it cannot continue a fragmented one
    /// ([`LocalProtocolError::MessageInProgress`]); its shared frame is copied into `dst`
    /// ([`send_prepared`](Self::send_prepared) returns it instead).
    // Inlined into the caller (the codec's `encode`): as a call, the event was copied into a
    // new stack slot and its tag then read back, both stalling on store forwarding.
    #[inline]
    pub fn send(&mut self, event: impl Into<Event>, dst: &mut BytesMut) -> Result<(), LocalProtocolError> {
        let tail = self.send_split(event.into(), dst, usize::MAX)?;
        debug_assert!(tail.is_none(), "nothing is left out below usize::MAX");
        Ok(())
    }

    /// [`send`](Self::send) without copying a large payload: when the bytes to put on the wire
    /// after the frame header are at least `min_len` long and need no change on the way (a
    /// server's frames are not masked), only the header goes into `dst` and the payload is
    /// returned, to be written right after `dst`'s contents (one vectored write). A prepared
    /// message's shared frame of that size is returned whole, with nothing written into `dst`.
    /// Below `min_len`, and for a client (whose payload is masked into `dst`), this is `send`
    /// and returns `None`.
    #[inline(always)]
    pub(crate) fn send_split(
        &mut self,
        event: Event,
        dst: &mut BytesMut,
        min_len: usize,
    ) -> Result<Option<Bytes>, LocalProtocolError> {
        let Some(kind) = SendKind::of(&event).filter(|&kind| self.state.may_send(kind)) else {
            return Err(LocalProtocolError::EventNotAllowed { event: event.name(), state: self.state() });
        };
        let start = dst.len();
        let part = traffic::message_part(&event);
        let tail = match event {
            Event::TextMessage(m) => {
                self.send_data(Opcode::Text, m.data.into_bytes(), m.message_finished, dst, min_len)?
            }
            Event::BytesMessage(m) => {
                self.send_data(Opcode::Binary, m.data, m.message_finished, dst, min_len)?
            }
            Event::PreparedMessage(m) => match self.prepared_frame(&m, dst, min_len)? {
                Some(frame) if frame.len() >= min_len => Some(frame),
                Some(frame) => {
                    dst.extend_from_slice(&frame);
                    None
                }
                None => None,
            },
            Event::Ping(p) => {
                self.send_control(Opcode::Ping, &p.payload, dst)?;
                None
            }
            Event::Pong(p) => {
                self.send_control(Opcode::Pong, &p.payload, dst)?;
                None
            }
            Event::CloseConnection(c) => {
                let payload = close_payload(&c)?;
                self.send_control(Opcode::Close, &payload, dst)?;
                None
            }
            _ => unreachable!("filtered above"),
        };
        let tail_len = tail.as_ref().map_or(0, Bytes::len);
        self.traffic.sent(dst.len() - start + tail_len, part);
        self.state.sent(kind);
        Ok(tail)
    }

    /// Like [`send`](Self::send), returning the bytes.
    pub fn send_bytes(&mut self, event: impl Into<Event>) -> Result<Bytes, LocalProtocolError> {
        let mut dst = BytesMut::new();
        self.send(event, &mut dst)?;
        Ok(dst.freeze())
    }

    /// Sends a [`PreparedMessage`] and returns its frame: the bytes shared with every
    /// connection that negotiated the same encoding (no copy), or, where they cannot be shared
    /// (a client, compression with context takeover), the message framed for this connection.
    ///
    /// This is [`send`](Self::send) for a caller that writes the frame to its transport itself
    /// (e.g. with `write_all`), without copying it into a buffer first. The same rules apply:
    /// allowed in OPEN, not while a fragmented message is in progress
    /// ([`LocalProtocolError::MessageInProgress`]).
    ///
    /// ```
    /// use wsproto::{Config, Connection, ConnectionType, PreparedMessage};
    ///
    /// let msg = PreparedMessage::text("to everyone");
    /// let mut a = Connection::new(ConnectionType::Server, Config::default());
    /// let mut b = Connection::new(ConnectionType::Server, Config::default());
    /// let (fa, fb) = (a.send_prepared(&msg)?, b.send_prepared(&msg)?);
    /// assert_eq!(&fa[..], b"\x81\x0bto everyone");
    /// assert_eq!(fa.as_ptr(), fb.as_ptr()); // the same bytes
    /// # Ok::<(), wsproto::LocalProtocolError>(())
    /// ```
    pub fn send_prepared(&mut self, msg: &PreparedMessage) -> Result<Bytes, LocalProtocolError> {
        if !self.state.may_send(SendKind::Data) {
            return Err(LocalProtocolError::EventNotAllowed {
                event: "PreparedMessage",
                state: self.state(),
            });
        }
        let mut dst = BytesMut::new();
        let frame = match self.prepared_frame(msg, &mut dst, usize::MAX)? {
            Some(frame) => frame,
            None => dst.freeze(),
        };
        self.traffic.sent(frame.len(), Some((msg.len(), true)));
        self.state.sent(SendKind::Data);
        Ok(frame)
    }

    /// The shared frame of `msg` on this connection, or `None` once it is framed into `dst`
    /// as a normal message (where sharing is not possible; its payload split off as
    /// [`send_split`](Self::send_split) does, if at least `min_len` long).
    fn prepared_frame(
        &mut self,
        msg: &PreparedMessage,
        dst: &mut BytesMut,
        min_len: usize,
    ) -> Result<Option<Bytes>, LocalProtocolError> {
        if self.tx_message.is_some() {
            return Err(LocalProtocolError::MessageInProgress);
        }
        // Client frames are masked with a key of their own: nothing to share.
        if !self.role.is_client() {
            if let Some(frame) = self.shared_frame(msg)? {
                return Ok(Some(frame));
            }
        }
        self.send_data(msg.opcode(), msg.payload().clone(), true, dst, min_len)
    }

    /// The frame of `msg` shared with other connections, if the extensions allow it: every
    /// one leaves the message untouched (the plain frame), or one transforms it with a
    /// shared key and the others leave it untouched (that extension's encoding).
    fn shared_frame(&self, msg: &PreparedMessage) -> Result<Option<Bytes>, LocalProtocolError> {
        let mut encoder = None;
        for ext in &self.extensions {
            match ext.shared_framing(msg.opcode(), msg.len()) {
                SharedFraming::Untouched => {}
                SharedFraming::Encoded(key) if encoder.is_none() => encoder = Some((&**ext, key)),
                _ => return Ok(None),
            }
        }
        match encoder {
            None => Ok(Some(msg.plain_frame().clone())),
            Some((ext, key)) => msg.encoded_frame(ext, key).map(Some),
        }
    }

    #[inline]
    fn send_data(
        &mut self,
        kind: Opcode,
        data: Bytes,
        fin: bool,
        dst: &mut BytesMut,
        min_len: usize,
    ) -> Result<Option<Bytes>, LocalProtocolError> {
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
        if payload.len() >= min_len && !self.role.is_client() {
            FrameHeader { fin, rsv, opcode, mask: None, payload_len: payload.len() as u64 }.encode(dst);
            return Ok(Some(payload));
        }
        self.write_frame(fin, rsv, opcode, &payload, dst);
        Ok(None)
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

/// Whether `close` can be sent: a sendable code, or 1005 (no code) without a reason.
pub(crate) fn check_close(close: &CloseConnection) -> Result<(), LocalProtocolError> {
    if close.code == CloseCode::NO_STATUS_RCVD {
        if close.reason.as_deref().is_some_and(|reason| !reason.is_empty()) {
            return Err(LocalProtocolError::ReasonWithoutCode);
        }
    } else if !close.code.is_sendable() {
        return Err(LocalProtocolError::InvalidCloseCode(close.code));
    }
    Ok(())
}

/// The payload of a close frame for `close`, validated.
fn close_payload(close: &CloseConnection) -> Result<Vec<u8>, LocalProtocolError> {
    check_close(close)?;
    if close.code == CloseCode::NO_STATUS_RCVD {
        return Ok(Vec::new());
    }
    let reason = truncate_reason(close.reason.as_deref().unwrap_or(""));
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
    /// The next event out of `src`: a frame (or a chunk of one) decoded by the frame layer and
    /// interpreted by the message layer.
    #[inline(always)]
    fn decode(
        &mut self,
        src: &mut BytesMut,
        role: ConnectionType,
        limits: &Limits,
        min_chunk: Option<usize>,
        extensions: &mut [Box<dyn Extension>],
    ) -> Result<Option<Event>, PeerViolation> {
        let header = match self.frames.current() {
            Some(header) => header,
            None => {
                let Some((header, header_len)) = FrameDecoder::next_header(src, role)? else {
                    return Ok(None);
                };
                self.messages.start_frame(&header, role, limits, extensions)?;
                if self.messages.is_plain(&header) && FrameDecoder::is_buffered(src, &header, header_len) {
                    // The fast path: a whole frame, delivered as it is on the wire.
                    let payload = FrameDecoder::unmask_whole(src, &header, header_len);
                    if header.opcode.is_control() {
                        let payload = FrameDecoder::take_whole(src, &header, header_len);
                        return MessageAssembler::control_event(header.opcode, payload).map(Some);
                    }
                    self.messages.check_text(payload)?;
                    let payload = FrameDecoder::take_whole(src, &header, header_len);
                    return self.messages.deliver(payload, true, header.fin, limits).map(Some);
                }
                self.frames.begin(src, header, header_len);
                header
            }
        };
        if header.opcode.is_control() {
            let Some((header, payload)) = self.frames.take_control(src) else { return Ok(None) };
            return MessageAssembler::control_event(header.opcode, payload).map(Some);
        }
        // A data frame in progress: unmask (and check the text of) what has arrived, once.
        let fresh = self.frames.unmask_fresh(src);
        self.messages.check_text(fresh)?;
        let Some(chunk) = self.frames.take_chunk(src, min_chunk, limits.max_frame_size) else {
            return Ok(None);
        };
        let fin = chunk.header.fin;
        let data = if self.messages.is_transformed() {
            self.messages.transform(chunk.data, chunk.frame_complete, fin, limits, extensions)?
        } else {
            chunk.data
        };
        self.messages.deliver(data, chunk.frame_complete, chunk.frame_complete && fin, limits).map(Some)
    }
}
