//! Prepared messages: framed (and compressed) once, sent to many connections.

use std::any::{Any, TypeId};
use std::fmt;
use std::sync::{Arc, OnceLock};

use bytes::{Bytes, BytesMut};

use crate::extensions::Extension;
use crate::frame::{FrameHeader, Opcode, Rsv};
use crate::wire::utf8::Utf8Bytes;

/// A whole message framed once and sent to many connections: the broadcast of a chat or
/// pub/sub server (gorilla/websocket's `PreparedMessage`).
///
/// Sending a [`TextMessage`](crate::TextMessage) to a thousand connections frames it a
/// thousand times, and with permessage-deflate compresses it a thousand times. A
/// `PreparedMessage` builds the frame bytes once per distinct encoding the connections
/// negotiated and shares them, as [`Bytes`], with every send: a send is then a copy of the
/// frame into the connection's write buffer ([`Connection::send`](crate::Connection::send),
/// the codec, a `Session`), or no copy at all with
/// [`Connection::send_prepared`](crate::Connection::send_prepared).
///
/// Clones are cheap (one reference count) and share the encodings, which are built lazily on
/// the first send that needs them (and then cached for the life of the message):
///
/// * **Plain**: a server connection without extensions, or a message below the connection's
///   compression threshold (`PerMessageDeflate::compression_threshold`, feature `deflate`).
/// * **Compressed**: a server connection whose permessage-deflate agreement has
///   `server_no_context_takeover` (each message is compressed from a fresh context, so the
///   compressed bytes depend only on the message and the compressor's settings):
///   one encoding per (level, window bits, memory level).
///
/// Everything else frames the message as a normal send would, per connection, with the same
/// bytes on the wire: a server compressing **with context takeover** (the compressor's state
/// is the connection's own, so its output cannot be shared: negotiate
/// `server_no_context_takeover` on servers that broadcast), another extension, and **clients**
/// (client frames are masked with a fresh key per frame, RFC 6455 §5.3, so no two connections
/// send the same bytes). Prepared messages are therefore a server feature; on a client they
/// work but save nothing.
///
/// A prepared message is sent like any event (it converts into [`Event`](crate::Event)), as a
/// whole message: it cannot continue a fragmented message (sending it while one is in
/// progress is [`MessageInProgress`](crate::connection::misuse::LocalProtocolError::MessageInProgress)), and it
/// follows the state machine like a [`TextMessage`](crate::TextMessage) (after our close it
/// is [`EventNotAllowed`](crate::connection::misuse::LocalProtocolError::EventNotAllowed)).
///
/// ```
/// use bytes::BytesMut;
/// use wsproto::{Config, Connection, ConnectionType, Event, PreparedMessage};
///
/// let update = PreparedMessage::text(r#"{"price": 42}"#);
/// let mut servers: Vec<Connection> =
///     (0..3).map(|_| Connection::new(ConnectionType::Server, Config::default())).collect();
/// let mut out = BytesMut::new();
/// for server in &mut servers {
///     out.clear();
///     server.send(update.clone(), &mut out)?;
///     assert_eq!(&out[..], b"\x81\x0d{\"price\": 42}");
/// }
///
/// // A client receives it as an ordinary text message.
/// let mut client = Connection::new(ConnectionType::Client, Config::default());
/// client.receive_data(&out)?;
/// let Some(Event::TextMessage(m)) = client.next_event() else { panic!() };
/// assert_eq!(m.data, r#"{"price": 42}"#);
/// # Ok::<(), wsproto::LocalProtocolError>(())
/// ```
#[derive(Clone)]
pub struct PreparedMessage {
    inner: Arc<Inner>,
}

struct Inner {
    /// Text or Binary.
    opcode: Opcode,
    payload: Bytes,
    /// The unmasked frame with the payload as it is.
    plain: OnceLock<Bytes>,
    /// Frames an extension transformed, by extension type and its key
    /// ([`SharedFraming::Encoded`](crate::extensions::SharedFraming::Encoded)): the first one lock-free, the others (a server with
    /// several configurations) behind a lock.
    encoded: OnceLock<(EncodingKey, Bytes)>,
    more_encoded: std::sync::Mutex<Vec<(EncodingKey, Bytes)>>,
}

/// One shared encoding: the extension's type and the key it gave.
type EncodingKey = (TypeId, u64);

impl PreparedMessage {
    /// A prepared text message.
    ///
    /// ```
    /// let msg = wsproto::PreparedMessage::text("hello");
    /// assert!(msg.is_text());
    /// assert_eq!(msg.payload(), "hello".as_bytes());
    /// ```
    pub fn text(data: impl Into<Utf8Bytes>) -> Self {
        Self::new(Opcode::Text, data.into().into_bytes())
    }

    /// A prepared binary message.
    ///
    /// ```
    /// let msg = wsproto::PreparedMessage::binary(bytes::Bytes::from_static(&[1, 2, 3]));
    /// assert!(!msg.is_text());
    /// assert_eq!(msg.len(), 3);
    /// ```
    pub fn binary(data: impl Into<Bytes>) -> Self {
        Self::new(Opcode::Binary, data.into())
    }

    fn new(opcode: Opcode, payload: Bytes) -> Self {
        PreparedMessage {
            inner: Arc::new(Inner {
                opcode,
                payload,
                plain: OnceLock::new(),
                encoded: OnceLock::new(),
                more_encoded: std::sync::Mutex::new(Vec::new()),
            }),
        }
    }

    /// Whether this is a text message (otherwise binary).
    ///
    /// ```
    /// assert!(wsproto::PreparedMessage::text("hi").is_text());
    /// ```
    pub fn is_text(&self) -> bool {
        self.inner.opcode == Opcode::Text
    }

    /// The message's payload, uncompressed.
    ///
    /// ```
    /// assert_eq!(wsproto::PreparedMessage::text("hi").payload(), "hi".as_bytes());
    /// ```
    pub fn payload(&self) -> &Bytes {
        &self.inner.payload
    }

    /// The payload's length in bytes.
    ///
    /// ```
    /// assert_eq!(wsproto::PreparedMessage::text("héllo").len(), 6);
    /// ```
    pub fn len(&self) -> usize {
        self.inner.payload.len()
    }

    /// Whether the payload is empty.
    ///
    /// ```
    /// assert!(wsproto::PreparedMessage::binary(bytes::Bytes::new()).is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.inner.payload.is_empty()
    }

    /// The opcode of the message's frame.
    pub(crate) fn opcode(&self) -> Opcode {
        self.inner.opcode
    }

    /// The unmasked, uncompressed frame, built on first use.
    pub(crate) fn plain_frame(&self) -> &Bytes {
        self.inner.plain.get_or_init(|| frame(self.inner.opcode, Rsv::NONE, &self.inner.payload))
    }

    /// The unmasked frame as `ext` transforms it on every connection that gave `key`
    /// ([`Extension::encode_shared`]), built on first use.
    pub(crate) fn encoded_frame(
        &self,
        ext: &dyn Extension,
        key: u64,
    ) -> Result<Bytes, crate::connection::misuse::LocalProtocolError> {
        let any: &dyn Any = ext;
        let key = (any.type_id(), key);
        let build = || {
            let (rsv, payload) = ext
                .encode_shared(key.1, self.inner.opcode, &self.inner.payload)
                .map_err(crate::connection::misuse::LocalProtocolError::Extension)?;
            Ok::<_, crate::connection::misuse::LocalProtocolError>(frame(self.inner.opcode, rsv, &payload))
        };
        match self.inner.encoded.get() {
            Some((k, frame)) if *k == key => return Ok(frame.clone()),
            Some(_) => {}
            None => {
                // Two threads may both build it: the same bytes, one is kept.
                let built = build()?;
                let (k, frame) = self.inner.encoded.get_or_init(|| (key, built));
                if *k == key {
                    return Ok(frame.clone());
                }
            }
        }
        let mut more = self.inner.more_encoded.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some((_, frame)) = more.iter().find(|(k, _)| *k == key) {
            return Ok(frame.clone());
        }
        let built = build()?;
        more.push((key, built.clone()));
        Ok(built)
    }
}

/// A whole unmasked frame of `payload`.
fn frame(opcode: Opcode, rsv: Rsv, payload: &[u8]) -> Bytes {
    let header = FrameHeader { fin: true, rsv, opcode, mask: None, payload_len: payload.len() as u64 };
    let mut out = BytesMut::with_capacity(header.encoded_len() + payload.len());
    header.encode(&mut out);
    out.extend_from_slice(payload);
    out.freeze()
}

/// Two prepared messages are equal when they carry the same message (whatever is cached).
impl PartialEq for PreparedMessage {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
            || (self.inner.opcode == other.inner.opcode && self.inner.payload == other.inner.payload)
    }
}

impl Eq for PreparedMessage {}

impl fmt::Debug for PreparedMessage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PreparedMessage")
            .field("opcode", &self.inner.opcode)
            .field("len", &self.inner.payload.len())
            .finish_non_exhaustive()
    }
}
