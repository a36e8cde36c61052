//! Events: the vocabulary both sides send and receive.
//!
//! One struct per event, as in python wsproto, gathered in the [`Event`] enum. Every struct
//! converts into `Event` with `From`, so `conn.send(Ping::new("hi"), &mut buf)` works.

use std::fmt;

use bytes::Bytes;

use crate::error::PeerViolation;
use crate::wire::close::CloseCode;
use crate::wire::utf8::Utf8Bytes;

/// HTTP headers as `(name, value)` byte pairs, in order.
pub type Headers = Vec<(Bytes, Bytes)>;

/// Something that happened on (or should be done to) a WebSocket connection.
///
/// The large handshake and close events are boxed to keep `Event` small on the hot path.
/// Events are plain data (`Clone + Eq + Send + Sync`): they can be broadcast, logged, compared
/// and sent across tasks.
#[derive(Clone, Debug, Eq, PartialEq)]
#[non_exhaustive]
pub enum Event {
    /// The HTTP upgrade request: sent by a client, received by a server.
    Request(Box<Request>),
    /// The 101 response: sent by a server to accept, received by a client.
    AcceptConnection(Box<AcceptConnection>),
    /// A non-101 HTTP response head: sent by a server to reject, received by a client.
    RejectConnection(RejectConnection),
    /// A chunk of the rejection response body.
    RejectData(RejectData),
    /// A chunk of a text message.
    TextMessage(TextMessage),
    /// A chunk of a binary message.
    BytesMessage(BytesMessage),
    /// A close frame (or, when received, EOF or a peer violation: see its `source`).
    CloseConnection(Box<CloseConnection>),
    /// A ping frame.
    Ping(Ping),
    /// A pong frame.
    Pong(Pong),
    /// A whole message framed once for many connections (send only: received messages are
    /// [`TextMessage`]s and [`BytesMessage`]s).
    // Boxed so the variant does not grow every `Event`: with the `Arc` inline, the larger drop
    // glue made callers matching a received event copy it with vector loads that stall on
    // store forwarding, which `wsbench decode` shows on small frames; a prepared send
    // allocates a pointer instead.
    PreparedMessage(Box<crate::connection::prepared::PreparedMessage>),
}

impl Event {
    /// The event's type name, as used in error messages.
    pub fn name(&self) -> &'static str {
        match self {
            Event::Request(_) => "Request",
            Event::AcceptConnection(_) => "AcceptConnection",
            Event::RejectConnection(_) => "RejectConnection",
            Event::RejectData(_) => "RejectData",
            Event::TextMessage(_) => "TextMessage",
            Event::BytesMessage(_) => "BytesMessage",
            Event::CloseConnection(_) => "CloseConnection",
            Event::Ping(_) => "Ping",
            Event::Pong(_) => "Pong",
            Event::PreparedMessage(_) => "PreparedMessage",
        }
    }
}

/// The beginning of a WebSocket connection: the HTTP upgrade request.
///
/// A client sends it; a server receives it. The extensions a client offers are the
/// [`Extension`](crate::extensions::Extension) objects handed to its handshake
/// ([`WsConnection::with_extension`](crate::WsConnection::with_extension)); the server reads
/// the offers as received in [`extensions`](Self::extensions).
#[derive(Clone, Debug, Default, Eq, PartialEq)]
#[non_exhaustive]
pub struct Request {
    /// `Host` header value (`host` or `host:port`; an IPv6 literal in brackets).
    pub host: String,
    /// Request target: path and query.
    pub target: String,
    /// Received: the extension offers, one string per comma-separated item of
    /// `Sec-WebSocket-Extensions` (e.g. `permessage-deflate; client_max_window_bits`). Must be
    /// empty when sending.
    pub extensions: Vec<String>,
    /// Other request headers.
    pub extra_headers: Headers,
    /// Subprotocols offered, in order of preference.
    pub subprotocols: Vec<String>,
}

impl Request {
    /// A request for `target` on `host`.
    pub fn new(host: impl Into<String>, target: impl Into<String>) -> Self {
        Request { host: host.into(), target: target.into(), ..Default::default() }
    }

    /// Adds subprotocols to offer.
    pub fn with_subprotocols<I, S>(mut self, protocols: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.subprotocols.extend(protocols.into_iter().map(Into::into));
        self
    }

    /// Adds a header.
    pub fn with_header(mut self, name: impl Into<Bytes>, value: impl Into<Bytes>) -> Self {
        self.extra_headers.push((name.into(), value.into()));
        self
    }
}

/// Acceptance of an upgrade request.
///
/// A server sends it to accept; its handshake negotiates the extensions it was given
/// ([`WsConnection::with_extension`](crate::WsConnection::with_extension)) against the
/// client's offers. A client receives it with the agreed extensions as the server wrote them
/// in [`extensions`](Self::extensions); the extension objects at work belong to the
/// connection ([`Connection::extensions`](crate::Connection::extensions)).
#[derive(Clone, Debug, Default, Eq, PartialEq)]
#[non_exhaustive]
pub struct AcceptConnection {
    /// The chosen subprotocol; must be one the client offered.
    pub subprotocol: Option<String>,
    /// Received: the agreed extensions, one string per item of the response's
    /// `Sec-WebSocket-Extensions` (e.g. `permessage-deflate; server_no_context_takeover`). Must
    /// be empty when sending.
    pub extensions: Vec<String>,
    /// Other response headers.
    pub extra_headers: Headers,
}

impl AcceptConnection {
    /// Accept with no subprotocol, no extension, no extra header.
    pub fn new() -> Self {
        Self::default()
    }

    /// Chooses a subprotocol.
    pub fn with_subprotocol(mut self, protocol: impl Into<String>) -> Self {
        self.subprotocol = Some(protocol.into());
        self
    }

    /// Adds a header.
    pub fn with_header(mut self, name: impl Into<Bytes>, value: impl Into<Bytes>) -> Self {
        self.extra_headers.push((name.into(), value.into()));
        self
    }
}

/// Rejection of an upgrade request: the HTTP response head.
#[derive(Clone, Debug, Eq, PartialEq)]
#[non_exhaustive]
pub struct RejectConnection {
    /// HTTP status code (default 400).
    pub status_code: u16,
    /// Response headers.
    pub headers: Headers,
    /// Whether [`RejectData`] events follow.
    pub has_body: bool,
}

impl Default for RejectConnection {
    fn default() -> Self {
        RejectConnection { status_code: 400, headers: Vec::new(), has_body: false }
    }
}

impl RejectConnection {
    /// A rejection with `status_code`, no header and no body.
    pub fn new(status_code: u16) -> Self {
        RejectConnection { status_code, ..Default::default() }
    }

    /// Adds a header.
    pub fn with_header(mut self, name: impl Into<Bytes>, value: impl Into<Bytes>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Announces a body, sent as [`RejectData`] events.
    pub fn with_body(mut self) -> Self {
        self.has_body = true;
        self
    }
}

/// A chunk of the rejection response body.
#[derive(Clone, Debug, Eq, PartialEq)]
#[non_exhaustive]
pub struct RejectData {
    /// Body bytes.
    pub data: Bytes,
    /// Whether this is the last chunk (default `true`).
    pub body_finished: bool,
}

impl RejectData {
    /// The final (or only) chunk of the body.
    pub fn new(data: impl Into<Bytes>) -> Self {
        RejectData { data: data.into(), body_finished: true }
    }

    /// A chunk with more to follow (`body_finished: false`).
    pub fn chunk(data: impl Into<Bytes>) -> Self {
        RejectData { data: data.into(), body_finished: false }
    }
}

/// A chunk of a text message.
///
/// Received chunks may be partial: `frame_finished` marks the end of a wire frame and
/// `message_finished` the end of the message. Every chunk holds whole characters (a code point
/// split across frames or reads is carried to the next chunk), so it can be empty.
// Exhaustive by decision: plain data built and destructured by applications.
#[allow(clippy::exhaustive_structs)]
#[derive(Clone, Debug, Eq, PartialEq)]
pub struct TextMessage {
    /// The text.
    pub data: Utf8Bytes,
    /// This chunk ends a frame.
    pub frame_finished: bool,
    /// This chunk ends the message.
    pub message_finished: bool,
}

impl TextMessage {
    /// A complete text message.
    pub fn new(data: impl Into<Utf8Bytes>) -> Self {
        TextMessage { data: data.into(), frame_finished: true, message_finished: true }
    }

    /// A fragment: `message_finished = false`, so more fragments follow.
    pub fn fragment(data: impl Into<Utf8Bytes>) -> Self {
        TextMessage { data: data.into(), frame_finished: true, message_finished: false }
    }
}

/// A chunk of a binary message. See [`TextMessage`] for the meaning of the flags.
// Exhaustive by decision: plain data built and destructured by applications.
#[allow(clippy::exhaustive_structs)]
#[derive(Clone, Debug, Eq, PartialEq)]
pub struct BytesMessage {
    /// The bytes.
    pub data: Bytes,
    /// This chunk ends a frame.
    pub frame_finished: bool,
    /// This chunk ends the message.
    pub message_finished: bool,
}

impl BytesMessage {
    /// A complete binary message.
    pub fn new(data: impl Into<Bytes>) -> Self {
        BytesMessage { data: data.into(), frame_finished: true, message_finished: true }
    }

    /// A fragment: `message_finished = false`, so more fragments follow.
    pub fn fragment(data: impl Into<Bytes>) -> Self {
        BytesMessage { data: data.into(), frame_finished: true, message_finished: false }
    }
}

/// The end of a connection.
///
/// To close, send one built with [`new`](Self::new) or [`with_reason`](Self::with_reason).
/// A received one says where it came from ([`source`](Self::source)) and whether a close frame
/// is owed in reply ([`reply_owed`](Self::reply_owed)); [`reply`](Self::reply) gives that frame,
/// so no state needs to be looked up to close correctly:
///
/// ```
/// # use wsproto::{CloseConnection, CloseSource, Event};
/// # fn handle(event: Event, send: &mut dyn FnMut(Event)) {
/// if let Event::CloseConnection(close) = event {
///     if let Some(reply) = close.reply() {
///         send(reply.into()); // completes the closing handshake
///     }
/// }
/// # }
/// ```
///
/// | source | code, reason | `reply_owed` |
/// |--------|--------------|--------------|
/// | [`CloseSource::Peer`]: the peer's close frame | the peer's; 1005 and `Some("")` when it gave none | unless it answered our close |
/// | [`CloseSource::Violation`]: a violation we detected | ours (1002, 1007, 1009, ...) | unless we had already sent a close |
/// | [`CloseSource::TransportEnded`]: EOF without a closing handshake | 1006, `None` | never |
#[derive(Clone, Debug, Eq, PartialEq)]
#[non_exhaustive]
pub struct CloseConnection {
    /// The close code. [`CloseCode::NO_STATUS_RCVD`] (1005) sends an empty close frame.
    pub code: CloseCode,
    /// Human-readable reason (sent truncated to 123 bytes on a character boundary).
    pub reason: Option<String>,
    /// Where this close came from ([`CloseSource::Local`] for one built to be sent).
    pub source: CloseSource,
    /// Whether we owe the peer a close frame: send [`reply`](Self::reply).
    pub reply_owed: bool,
}

/// Where a [`CloseConnection`] came from.
#[derive(Clone, Debug, Eq, PartialEq)]
#[non_exhaustive]
pub enum CloseSource {
    /// Built by the application, to be sent.
    Local,
    /// The peer's close frame.
    Peer,
    /// The peer violated the protocol; we fail the connection with this violation's code.
    Violation(PeerViolation),
    /// The transport ended without a closing handshake (code 1006).
    TransportEnded,
}

impl CloseConnection {
    /// A close with `code` and no reason.
    pub fn new(code: impl Into<CloseCode>) -> Self {
        CloseConnection { code: code.into(), reason: None, source: CloseSource::Local, reply_owed: false }
    }

    /// A close with `code` and `reason`.
    pub fn with_reason(code: impl Into<CloseCode>, reason: impl Into<String>) -> Self {
        CloseConnection { reason: Some(reason.into()), ..CloseConnection::new(code) }
    }

    /// A received close, from the peer's frame or a violation we detected.
    pub(crate) fn received(code: CloseCode, reason: String, source: CloseSource, reply_owed: bool) -> Self {
        CloseConnection { code, reason: Some(reason), source, reply_owed }
    }

    /// The close frame owed to the peer, if any (see [`reply_owed`](Self::reply_owed)).
    pub fn reply(&self) -> Option<CloseConnection> {
        self.reply_owed.then(|| self.response())
    }

    /// A close frame with the same code and reason (python wsproto's `response()`), whether or
    /// not one is owed. Prefer [`reply`](Self::reply).
    pub fn response(&self) -> CloseConnection {
        CloseConnection {
            code: self.code,
            reason: self.reason.clone(),
            source: CloseSource::Local,
            reply_owed: false,
        }
    }

    /// The violation we detected, when this close fails the connection.
    pub fn violation(&self) -> Option<&PeerViolation> {
        match &self.source {
            CloseSource::Violation(v) => Some(v),
            _ => None,
        }
    }
}

/// A ping. Received pings are not answered automatically: send [`Ping::response`].
// Exhaustive by decision: a control frame's payload, nothing else.
#[allow(clippy::exhaustive_structs)]
#[derive(Clone, Debug, Default, Eq, PartialEq)]
pub struct Ping {
    /// Up to 125 bytes of payload.
    pub payload: Bytes,
}

impl Ping {
    /// A ping with `payload`.
    pub fn new(payload: impl Into<Bytes>) -> Self {
        Ping { payload: payload.into() }
    }

    /// The pong to send back: the same payload.
    pub fn response(&self) -> Pong {
        Pong { payload: self.payload.clone() }
    }
}

/// A pong (solicited or not).
// Exhaustive by decision: a control frame's payload, nothing else.
#[allow(clippy::exhaustive_structs)]
#[derive(Clone, Debug, Default, Eq, PartialEq)]
pub struct Pong {
    /// Up to 125 bytes of payload.
    pub payload: Bytes,
}

impl Pong {
    /// A pong with `payload`.
    pub fn new(payload: impl Into<Bytes>) -> Self {
        Pong { payload: payload.into() }
    }
}

macro_rules! into_event {
    ($($ty:ident => $variant:expr;)*) => {
        $(impl From<$ty> for Event {
            fn from(e: $ty) -> Event {
                $variant(e)
            }
        })*
    };
}

into_event! {
    RejectConnection => Event::RejectConnection;
    RejectData => Event::RejectData;
    TextMessage => Event::TextMessage;
    BytesMessage => Event::BytesMessage;
    Ping => Event::Ping;
    Pong => Event::Pong;
}

impl From<crate::connection::prepared::PreparedMessage> for Event {
    fn from(e: crate::connection::prepared::PreparedMessage) -> Event {
        Event::PreparedMessage(Box::new(e))
    }
}

/// Sends a clone (one reference count): `conn.send(&prepared, &mut buf)`.
impl From<&crate::connection::prepared::PreparedMessage> for Event {
    fn from(e: &crate::connection::prepared::PreparedMessage) -> Event {
        Event::PreparedMessage(Box::new(e.clone()))
    }
}

impl From<Request> for Event {
    fn from(e: Request) -> Event {
        Event::Request(Box::new(e))
    }
}

impl From<CloseConnection> for Event {
    fn from(e: CloseConnection) -> Event {
        Event::CloseConnection(Box::new(e))
    }
}

impl From<AcceptConnection> for Event {
    fn from(e: AcceptConnection) -> Event {
        Event::AcceptConnection(Box::new(e))
    }
}

/// A whole text message: `ws.send("hello".into())`.
impl From<&str> for Event {
    fn from(text: &str) -> Event {
        TextMessage::new(text).into()
    }
}

/// A whole text message.
impl From<String> for Event {
    fn from(text: String) -> Event {
        TextMessage::new(text).into()
    }
}

/// A whole text message.
impl From<Utf8Bytes> for Event {
    fn from(text: Utf8Bytes) -> Event {
        TextMessage::new(text).into()
    }
}

/// A whole binary message: `ws.send(vec![1, 2, 3].into())`.
impl From<Vec<u8>> for Event {
    fn from(data: Vec<u8>) -> Event {
        BytesMessage::new(data).into()
    }
}

/// A whole binary message (no copy).
impl From<Bytes> for Event {
    fn from(data: Bytes) -> Event {
        BytesMessage::new(data).into()
    }
}

/// A whole binary message.
impl From<&[u8]> for Event {
    fn from(data: &[u8]) -> Event {
        BytesMessage::new(Bytes::copy_from_slice(data)).into()
    }
}

impl fmt::Display for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_plain_data() {
        fn plain<T: Clone + Eq + Send + Sync + 'static>() {}
        plain::<Event>();
        plain::<Request>();
        plain::<AcceptConnection>();
        plain::<CloseConnection>();
    }

    #[test]
    fn strings_and_byte_buffers_convert_into_whole_messages() {
        assert_eq!(Event::from("hi"), Event::TextMessage(TextMessage::new("hi")));
        assert_eq!(Event::from(String::from("hi")), Event::TextMessage(TextMessage::new("hi")));
        assert_eq!(Event::from(vec![1u8, 2]), Event::BytesMessage(BytesMessage::new(vec![1u8, 2])));
        assert_eq!(Event::from(&b"ab"[..]), Event::BytesMessage(BytesMessage::new(&b"ab"[..])));
        assert_eq!(String::from(TextMessage::new("ünï").data), "ünï");
    }

    #[test]
    fn event_stays_small() {
        assert!(std::mem::size_of::<Event>() <= 48, "{}", std::mem::size_of::<Event>());
    }

    #[test]
    fn responses() {
        let close = CloseConnection::with_reason(1001u16, "bye");
        assert_eq!(close.response(), close);
        assert_eq!(close.reply(), None);
        let received =
            CloseConnection::received(CloseCode::GOING_AWAY, "bye".into(), CloseSource::Peer, true);
        assert_eq!(received.reply(), Some(close));
        assert_eq!(Ping::new("x").response(), Pong::new("x"));
    }
}
