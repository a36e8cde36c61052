//! tokio-util [`Decoder`]/[`Encoder`] over the sans-IO [`Connection`].
//!
//! [`WsCodec`] is a pass-through: decoding is [`Connection::decode`] on the `Framed` read
//! buffer (payloads are split out of it without copying), encoding is [`Connection::send`]
//! into the `Framed` write buffer. With it, `Framed<T, WsCodec>` is a
//! `Stream<Item = Result<Event, Error>>` and a `Sink<Event>`.
//!
//! # Cancel safety
//!
//! All decoding state lives in the codec and in `Framed`'s buffers, and `decode` consumes
//! bytes only when it returns an event. Dropping a `next()` future at any point (for example
//! in a `select!` with a timeout) loses nothing: the next call resumes where it stopped.

use std::fmt;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_util::codec::{Decoder, Encoder};

use crate::connection::Connection;
use crate::error::LocalProtocolError;
use crate::event::{BytesMessage, Event, TextMessage};
use crate::utf8::Utf8Bytes;

/// Errors of [`WsCodec`]: the transport failed, or an event could not be sent.
///
/// Peer violations are not errors: they arrive as a
/// [`CloseConnection`](crate::CloseConnection) event with the code to answer with. Converts
/// into [`io::Error`] (kind `InvalidInput` for misuse), so a `Framed<T, WsCodec>` composes
/// with `StreamReader`, `SinkWriter` and other `io::Error` pipelines.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// The transport failed.
    Io(io::Error),
    /// We misused the API (e.g. sent a message after Close).
    Local(LocalProtocolError),
}

impl Error {
    /// Whether this is an I/O error.
    pub fn is_io(&self) -> bool {
        matches!(self, Error::Io(_))
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Io(e) => write!(f, "I/O error: {e}"),
            Error::Local(e) => write!(f, "local protocol error: {e}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Io(e) => Some(e),
            Error::Local(e) => Some(e),
        }
    }
}

impl From<io::Error> for Error {
    fn from(e: io::Error) -> Self {
        Error::Io(e)
    }
}

impl From<LocalProtocolError> for Error {
    fn from(e: LocalProtocolError) -> Self {
        Error::Local(e)
    }
}

impl From<Error> for io::Error {
    fn from(e: Error) -> Self {
        match e {
            Error::Io(e) => e,
            Error::Local(e) => io::Error::new(io::ErrorKind::InvalidInput, e),
        }
    }
}

/// The WebSocket codec: raw bytes ⇄ [`Event`]s.
///
/// By default every data chunk is an event, as the core delivers it (see
/// [`Config::partial_frames`](crate::Config::partial_frames)). With
/// [`whole_messages`](WsCodec::whole_messages) the codec yields only complete messages
/// (control frames still pass through as they arrive, also between fragments).
///
/// ```
/// use bytes::BytesMut;
/// use tokio_util::codec::{Decoder, Encoder};
/// use wsproto::codec::WsCodec;
/// use wsproto::{Config, Connection, ConnectionType, Event, TextMessage};
///
/// let mut codec = WsCodec::new(Connection::new(ConnectionType::Server, Config::default()));
/// let mut input = BytesMut::from(&[0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58][..]);
/// let Some(Event::TextMessage(m)) = codec.decode(&mut input)? else { unreachable!() };
/// assert_eq!(m.data, "Hello");
/// let mut out = BytesMut::new();
/// codec.encode(TextMessage::new("Hello").into(), &mut out)?;
/// assert_eq!(&out[..], b"\x81\x05Hello");
/// # Ok::<(), wsproto::codec::Error>(())
/// ```
#[derive(Debug)]
pub struct WsCodec {
    conn: Connection,
    whole_messages: bool,
    /// Chunks of a fragmented message being assembled (whole-message mode).
    assembly: BytesMut,
    /// Size of the last message assembled from fragments: the next one reserves that much
    /// (up to 1 MiB) at its first fragment instead of growing by doubling.
    last_assembled: usize,
    /// Most bytes seen buffered since the read buffer last ran dry: tells a quiet connection
    /// (small reads) from a streaming one (reads that fill the buffer).
    read_peak: usize,
    /// Length of the read buffer when `decode` last returned: more means a read happened.
    seen: usize,
    /// Free space to keep in the read buffer before the next read. It doubles while reads fill
    /// the buffer (the transport has more queued: fewer, larger reads) and drops back to
    /// nothing when a read leaves room.
    read_ahead: usize,
    /// The write buffer grew for a large frame: release it once it has been flushed.
    /// (`capacity()` cannot tell: a flushed `BytesMut` reports 0 while keeping its allocation.)
    large_write: bool,
}

impl WsCodec {
    /// Wraps a connection (usually from the upgrade helper or a finished handshake).
    pub fn new(conn: Connection) -> Self {
        WsCodec {
            conn,
            whole_messages: false,
            assembly: BytesMut::new(),
            last_assembled: 0,
            read_peak: 0,
            seen: 0,
            read_ahead: 0,
            large_write: false,
        }
    }

    /// Yields complete messages only, up to the connection's maximum message size (1009
    /// beyond). Unfragmented messages stay zero-copy; frames are then delivered whole.
    pub fn whole_messages(mut self, enabled: bool) -> Self {
        self.whole_messages = enabled;
        if enabled {
            self.conn.set_partial_frames(false);
        }
        self
    }

    /// The underlying connection (state, role, extensions).
    pub fn connection(&self) -> &Connection {
        &self.conn
    }

    /// Mutable access to the underlying connection.
    pub fn connection_mut(&mut self) -> &mut Connection {
        &mut self.conn
    }

    /// Unwraps the connection.
    pub fn into_connection(self) -> Connection {
        self.conn
    }

    fn next(&mut self, src: &mut BytesMut) -> Option<Event> {
        if !self.whole_messages {
            return self.conn.decode(src);
        }
        loop {
            let event = self.conn.decode(src)?;
            let (data, finished, text) = match event {
                Event::TextMessage(m) => (m.data.into_bytes(), m.message_finished, true),
                Event::BytesMessage(m) => (m.data, m.message_finished, false),
                Event::CloseConnection(close) => {
                    self.assembly = BytesMut::new();
                    return Some(Event::CloseConnection(close));
                }
                other => return Some(other),
            };
            if !finished {
                if self.assembly.is_empty() {
                    let expected = self.last_assembled.min(MAX_ASSEMBLY_RESERVE);
                    self.assembly.reserve(expected.max(data.len()));
                }
                self.assembly.extend_from_slice(&data);
                continue;
            }
            let data = if self.assembly.is_empty() {
                data
            } else {
                self.assembly.extend_from_slice(&data);
                self.last_assembled = self.assembly.len();
                // Hand the assembled message out and start afresh, so the buffer of a large
                // message is not kept for the life of the connection.
                let mut assembled = std::mem::take(&mut self.assembly);
                if assembled.capacity() > SHRINK_ABOVE && assembled.len() < assembled.capacity() / 4 {
                    // Reserved for a larger predecessor: a small message must not pin it.
                    assembled = BytesMut::from(&assembled[..]);
                }
                assembled.freeze()
            };
            return Some(if text {
                // Chunks hold whole characters, so their concatenation is valid UTF-8.
                Event::TextMessage(TextMessage::new(Utf8Bytes::from_bytes_unchecked(data)))
            } else {
                Event::BytesMessage(BytesMessage::new(data))
            });
        }
    }
}

impl Decoder for WsCodec {
    type Item = Event;
    type Error = Error;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Event>, Error> {
        self.read_peak = self.read_peak.max(src.len());
        if src.len() > self.seen {
            self.read_ahead = if src.len() == src.capacity() {
                (self.read_ahead * 2).clamp(MIN_READ_AHEAD, MAX_READ_AHEAD)
            } else {
                0
            };
        }
        let room = src.capacity();
        // Built in place and returned as is, with only its tag read in between: copying the
        // event out of a local right after it was written stalled on store forwarding (perf
        // annotate, 16 B frames: 60% of this function on that copy).
        let out = Ok(self.next(src));
        let waiting = matches!(out, Ok(None));
        self.tend_read_buffer(src, waiting, room);
        out
    }

    /// At EOF, complete frames still buffered are delivered, then a 1006 close event unless
    /// the closing handshake had completed; then the stream ends.
    fn decode_eof(&mut self, src: &mut BytesMut) -> Result<Option<Event>, Error> {
        if let Some(event) = self.next(src) {
            return Ok(Some(event));
        }
        self.conn.receive_eof();
        Ok(self.next(src))
    }
}

impl Encoder<Event> for WsCodec {
    type Error = Error;

    fn encode(&mut self, event: Event, dst: &mut BytesMut) -> Result<(), Error> {
        if dst.is_empty() && (self.large_write || dst.capacity() > IDLE_WRITE_CAPACITY) {
            // Everything was flushed: drop the buffer (the initial 8 KiB, or the memory of a
            // past large message); the frame below reserves exactly what it needs. (Keeping it
            // for a following large frame measured 3-4% slower with 16 connections echoing
            // 1 MiB: one freed buffer reused by all stays warmer than one kept by each.)
            *dst = BytesMut::new();
            self.large_write = false;
        }
        let before = dst.len();
        self.conn.send(event, dst)?;
        self.large_write |= dst.len() - before > SHRINK_ABOVE;
        Ok(())
    }
}

impl WsCodec {
    /// Sizes the read buffer after a decode: room for the next read while the transport keeps
    /// filling it, a fresh small buffer once a large payload was split off a drained buffer
    /// (the payload keeps the old allocation only as long as the user holds it), and a 2 KiB
    /// one for a quiet connection waiting at a frame boundary.
    fn tend_read_buffer(&mut self, src: &mut BytesMut, waiting: bool, room_before: usize) {
        if waiting && src.capacity() - src.len() < self.read_ahead {
            src.reserve(self.read_ahead);
        }
        // Only a drained buffer between frames is replaced: in the middle of a frame streamed
        // in chunks the next chunk reuses the allocation in place once the user has dropped
        // this one.
        if src.is_empty() && self.conn.at_frame_boundary() {
            if !waiting {
                let taken = room_before.saturating_sub(src.capacity());
                if taken > SHRINK_ABOVE || src.capacity() > SHRINK_ABOVE {
                    *src = BytesMut::with_capacity(BUFFER_CAPACITY);
                }
            } else {
                // Waiting for the peer after small reads (< 1 KiB): the decoder reserves more
                // once a header announces a larger frame; a streaming peer keeps its buffer.
                // Half the idle size: a read that filled a small buffer does not count as
                // quiet, or a connection whose messages just exceed it would stay stuck with
                // two reads per message.
                if self.read_peak < IDLE_READ_CAPACITY / 2 && src.capacity() > IDLE_READ_CAPACITY {
                    *src = BytesMut::with_capacity(IDLE_READ_CAPACITY);
                }
                self.read_peak = 0;
            }
        }
        self.seen = src.len();
    }
}

/// Buffers that grew beyond this for a large message are released once empty.
const SHRINK_ABOVE: usize = 64 << 10;
/// Capacity a drained read buffer shrinks back to after a large payload.
const BUFFER_CAPACITY: usize = 8 << 10;
/// Read buffer kept by a connection waiting at a frame boundary (fits typical small messages).
const IDLE_READ_CAPACITY: usize = 2 << 10;
/// Read-ahead after the first read that filled the read buffer.
const MIN_READ_AHEAD: usize = 16 << 10;
/// Most free space kept for one read while reads keep filling the buffer.
const MAX_READ_AHEAD: usize = 128 << 10;
/// Most a fragmented message reserves ahead of its data, so a peer that sent one large
/// message cannot make each connection hold a large reservation with one stalled fragment.
const MAX_ASSEMBLY_RESERVE: usize = 1 << 20;
/// Largest write buffer kept once flushed.
const IDLE_WRITE_CAPACITY: usize = 1 << 10;

/// An I/O object that passes everything through to `T` but declines vectored writes.
///
/// `Framed` writes its buffer, always one contiguous slice, with `poll_write_vectored` when the
/// transport says it supports vectored writes; for a TCP socket that is a `writev(2)` of one
/// element, which costs more in the kernel than a plain `write(2)`. The upgrade helper wraps
/// its stream in this (measured: 16 B echo, 16 connections with 16 messages in flight each,
/// about 6% more messages per second); wrap your own stream in it when you build a
/// `Framed<_, WsCodec>` by hand.
///
/// ```
/// use tokio_util::codec::Framed;
/// use wsproto::codec::{PlainWrites, WsCodec};
/// use wsproto::{Config, Connection, ConnectionType};
///
/// let (io, _peer) = tokio::io::duplex(4096);
/// let codec = WsCodec::new(Connection::new(ConnectionType::Server, Config::default()));
/// let ws = Framed::new(PlainWrites::new(io), codec);
/// let _io: &tokio::io::DuplexStream = ws.get_ref().get_ref();
/// ```
#[derive(Debug, Default)]
pub struct PlainWrites<T>(T);

impl<T> PlainWrites<T> {
    /// Wraps `io`.
    pub fn new(io: T) -> Self {
        PlainWrites(io)
    }

    /// The wrapped I/O object.
    pub fn get_ref(&self) -> &T {
        &self.0
    }

    /// The wrapped I/O object, mutably (reading or writing through it bypasses the codec).
    pub fn get_mut(&mut self) -> &mut T {
        &mut self.0
    }

    /// Unwraps the I/O object.
    pub fn into_inner(self) -> T {
        self.0
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for PlainWrites<T> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for PlainWrites<T> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().0).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_shutdown(cx)
    }

    // `is_write_vectored` keeps its default, `false`: that is the point of this type.
}
