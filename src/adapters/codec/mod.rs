//! tokio-util [`Decoder`]/[`Encoder`] over the sans-IO [`Connection`].
//!
//! [`WsCodec`] is a pass-through: decoding is [`Connection::decode`] on the `Framed` read
//! buffer (payloads are split out of it without copying), encoding is [`Connection::send`]
//! into the `Framed` write buffer. With it, `Framed<T, WsCodec>` is a
//! `Stream<Item = Result<Event, Error>>` and a `Sink<Event>`.
//!
//! # Cancel safety
//!
//! All decoding state lives in the codec and in `Framed`'s read buffer (a frame's header is
//! taken off the buffer once parsed, and its progress kept in the codec), never in the
//! future. Dropping a `next()` future at any point (for example in a `select!` with a
//! timeout) loses nothing: the next call resumes where it stopped.

mod buffers;

pub(crate) use self::buffers::upgraded_framed;

use std::fmt;
use std::io;

use bytes::BytesMut;
use tokio_util::codec::{Decoder, Encoder};

use self::buffers::BufferPolicy;
use crate::connection::misuse::LocalProtocolError;
use crate::connection::Connection;
use crate::event::Event;

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

crate::error::wrap_errors!(Error { Error::Io: io::Error, Error::Local: LocalProtocolError });

impl From<Error> for io::Error {
    fn from(e: Error) -> Self {
        match e {
            Error::Io(e) => e,
            Error::Local(e) => io::Error::new(io::ErrorKind::InvalidInput, e),
        }
    }
}

/// The WebSocket codec: raw bytes ⇄ [`Event`]s, a pass-through over [`Connection`].
///
/// Events come out as the connection delivers them ([`Config::delivery`](crate::Config)):
/// chunks as they arrive, whole frames or whole messages. `Framed::new(io, WsCodec::new(conn))`
/// is the transport, the same type the [`upgrade`](crate::upgrade) helper returns.
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
    buffers: BufferPolicy,
}

impl WsCodec {
    /// Wraps a connection (usually from the upgrade helper or a finished handshake).
    pub fn new(conn: Connection) -> Self {
        WsCodec { conn, buffers: BufferPolicy::default() }
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

    /// Whether the last event decoded began on bytes a read had just added; if not, it
    /// arrived with the previous one (the same read).
    #[inline]
    pub(crate) fn decoded_fresh_bytes(&self) -> bool {
        self.buffers.fresh()
    }

    /// Shrinks `src`, the read buffer of a connection found quiet, to the idle size if it
    /// holds nothing and no frame is partly received.
    pub(crate) fn release_idle(&mut self, src: &mut BytesMut) {
        if self.conn.at_frame_boundary() {
            self.buffers.release_idle(src);
        }
    }

    /// Whether `dst`, a write buffer, is flushed and larger than an idle connection needs:
    /// then [`release_flushed`](Self::release_flushed) drops it.
    #[inline]
    pub(crate) fn releases(&self, dst: &BytesMut) -> bool {
        self.buffers.releases(dst)
    }

    /// Drops `dst`, a write buffer just flushed, if it grew for a large frame (as the next
    /// encode would), so that an idle connection does not keep it.
    pub(crate) fn release_flushed(&mut self, dst: &mut BytesMut) {
        self.buffers.before_encode(dst);
    }
}

impl Decoder for WsCodec {
    type Item = Event;
    type Error = Error;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Event>, Error> {
        let room = self.buffers.before_decode(src);
        // Built in place and returned as is, with only its tag read in between: copying the
        // event out of a local right after it was written stalls on store forwarding, which
        // dominates this function for small frames.
        let out = Ok(self.conn.decode(src));
        let waiting = matches!(out, Ok(None));
        self.buffers.after_decode(src, waiting, room, self.conn.at_frame_boundary());
        out
    }

    /// At EOF, complete frames still buffered are delivered, then a 1006 close event unless
    /// the closing handshake had completed; then the stream ends.
    fn decode_eof(&mut self, src: &mut BytesMut) -> Result<Option<Event>, Error> {
        if let Some(event) = self.conn.decode(src) {
            return Ok(Some(event));
        }
        self.conn.receive_eof();
        Ok(self.conn.decode(src))
    }
}

impl Encoder<Event> for WsCodec {
    type Error = Error;

    fn encode(&mut self, event: Event, dst: &mut BytesMut) -> Result<(), Error> {
        self.buffers.before_encode(dst);
        self.conn.send(event, dst)?;
        self.buffers.after_encode(dst.len());
        Ok(())
    }
}

impl WsCodec {
    /// [`encode`](Encoder::encode), leaving a payload of at least `min_len` bytes out of `dst`
    /// when it can go on the wire as it is: returned, to be written right after `dst`'s
    /// contents (see `Connection::send_split`).
    pub(crate) fn encode_split(
        &mut self,
        event: Event,
        dst: &mut BytesMut,
        min_len: usize,
    ) -> Result<Option<bytes::Bytes>, Error> {
        self.buffers.before_encode(dst);
        let tail = self.conn.send_split(event, dst, min_len)?;
        self.buffers.after_encode(dst.len());
        Ok(tail)
    }
}
