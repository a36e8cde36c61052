//! The client's side of the opening handshake: the request it sends, and the response it
//! validates (a 101) or reads (a rejection and its body).

use std::fmt;

use bytes::{BufMut, Bytes, BytesMut};

use super::body::BodyReader;
use super::error::{ProtocolError, RemoteProtocolError};
use super::head::{bad_http, HeadKind};
use super::negotiate::{self, client_extensions_handshake};
use super::write::{self, check_header, check_value, header};
use super::{accept, comma_items, generate_accept_token, head, Common, WEBSOCKET_UPGRADE, WEBSOCKET_VERSION};
use crate::config::Config;
use crate::connection::misuse::LocalProtocolError;
use crate::connection::state::ConnectionState;
use crate::connection::Connection;
use crate::event::{AcceptConnection, Event, Headers, RejectConnection, RejectData, Request};
use crate::extensions::Extension;
use crate::role::ConnectionType;
use crate::wire::headers::{is_token, list_contains_token};

/// Response headers that do not go into [`AcceptConnection::extra_headers`] on the client.
const RESPONSE_OWN_HEADERS: [&str; 5] =
    ["connection", "upgrade", "sec-websocket-accept", "sec-websocket-protocol", "sec-websocket-extensions"];

/// What a client offered, to check the response against.
#[derive(Debug)]
pub(super) struct ClientOffer {
    /// The `Sec-WebSocket-Key` of an HTTP/1.1 request; `None` for an HTTP/2 extended CONNECT.
    nonce: Option<String>,
    subprotocols: Vec<String>,
    extensions: Vec<Box<dyn Extension>>,
}

/// Client-side validation of a 101 response, in python wsproto's order.
fn validate_response(
    headers: Headers,
    offer: ClientOffer,
) -> Result<(AcceptConnection, Vec<Box<dyn Extension>>), RemoteProtocolError> {
    if let Some(nonce) = &offer.nonce {
        let connection = head::merged(&headers, "connection")?;
        if !connection.is_some_and(|c| list_contains_token(&c, "upgrade")) {
            return Err(RemoteProtocolError::MissingHeader("Connection: Upgrade"));
        }
        let upgrade = head::merged(&headers, "upgrade")?;
        if !upgrade.is_some_and(|u| u.eq_ignore_ascii_case(WEBSOCKET_UPGRADE)) {
            return Err(RemoteProtocolError::MissingHeader("Upgrade: websocket"));
        }
        let accept = head::merged(&headers, "sec-websocket-accept")?;
        if accept.as_deref() != Some(generate_accept_token(nonce).as_str()) {
            return Err(RemoteProtocolError::BadAccept);
        }
    }
    let subprotocol = head::merged(&headers, "sec-websocket-protocol")?;
    if let Some(protocol) = &subprotocol {
        if !offer.subprotocols.contains(protocol) {
            return Err(RemoteProtocolError::UnexpectedSubprotocol(protocol.clone()));
        }
    }
    let items = comma_items(&headers, "sec-websocket-extensions")?;
    let extensions = client_extensions_handshake(&items, offer.extensions)?;
    let extra_headers = headers
        .into_iter()
        .filter(|(name, _)| !RESPONSE_OWN_HEADERS.iter().any(|own| name == own.as_bytes()))
        .collect();
    Ok((AcceptConnection { subprotocol, extensions: items, extra_headers }, extensions))
}

/// An HTTP/2 extended CONNECT request (RFC 8441) for the HTTP/2 stack to send: its
/// pseudo-headers and headers. See [`ClientHandshake::extended_connect`].
#[derive(Clone, Debug, Eq, PartialEq)]
#[non_exhaustive]
pub struct ExtendedConnect {
    /// `:authority` (the request's host).
    pub authority: String,
    /// `:path` (the request's target).
    pub path: String,
    /// `:protocol`: `websocket`.
    pub protocol: &'static str,
    /// The headers: `sec-websocket-version`, the subprotocols and extensions offered, and the
    /// request's extra headers (no `Host`, `Connection`, `Upgrade` or key).
    pub headers: Headers,
}

/// An HTTP/1.1 upgrade request for an HTTP stack to send: a `GET` of `target` with `headers`.
/// See [`ClientHandshake::upgrade_request`].
#[derive(Clone, Debug, Eq, PartialEq)]
#[non_exhaustive]
pub struct UpgradeRequest {
    /// The request target (path and query).
    pub target: String,
    /// Every header, names in lower case: `host`, `upgrade`, `connection`,
    /// `sec-websocket-key`, `sec-websocket-version`, the subprotocols and extensions offered,
    /// and the request's extra headers.
    pub headers: Headers,
}

/// How the headers we generate are spelled on an HTTP/1.1 wire (the case peers are used to).
const WIRE_NAMES: [(&[u8], &[u8]); 7] = [
    (b"host", b"Host"),
    (b"upgrade", b"Upgrade"),
    (b"connection", b"Connection"),
    (b"sec-websocket-key", b"Sec-WebSocket-Key"),
    (b"sec-websocket-version", b"Sec-WebSocket-Version"),
    (b"sec-websocket-protocol", b"Sec-WebSocket-Protocol"),
    (b"sec-websocket-extensions", b"Sec-WebSocket-Extensions"),
];

/// The headers both request forms carry: the version, the offers, then the extra headers.
fn offer_headers(prepared: &PreparedRequest, extra: Headers) -> Headers {
    let mut headers: Headers = vec![(
        Bytes::from_static(b"sec-websocket-version"),
        Bytes::from_static(WEBSOCKET_VERSION.as_bytes()),
    )];
    if !prepared.subprotocols.is_empty() {
        headers.push((
            Bytes::from_static(b"sec-websocket-protocol"),
            Bytes::from(prepared.subprotocols.join(", ")),
        ));
    }
    if let Some(value) = &prepared.extensions {
        headers.push((Bytes::from_static(b"sec-websocket-extensions"), Bytes::from(value.clone())));
    }
    headers.extend(extra);
    headers
}

/// A checked request, ready to be written in either HTTP version.
struct PreparedRequest {
    host: String,
    subprotocols: Vec<String>,
    /// The `Sec-WebSocket-Extensions` value, when something is offered.
    extensions: Option<String>,
    offered: Vec<Box<dyn Extension>>,
}

/// The client's side of the opening handshake (python wsproto's `H11Handshake` as a client).
///
/// Same call protocol as [`Connection`]: [`send`](Self::send) the [`Request`] (or build it
/// for another HTTP stack: [`upgrade_request`](Self::upgrade_request),
/// [`extended_connect`](Self::extended_connect)), then [`receive_data`](Self::receive_data) /
/// [`receive_eof`](Self::receive_eof) in, [`next_event`](Self::next_event) out. States:
/// CONNECTING → (send `Request`, receive 101) → OPEN; a final non-101 response → REJECTING
/// (`RejectConnection` with `has_body: true`, then `RejectData` chunks ending with an empty
/// one with `body_finished: true`) → CLOSED; a 1xx other than 101 → `RejectConnection` with
/// `has_body: false` → CLOSED. A response that violates the handshake is a
/// [`RemoteProtocolError`] and CLOSED.
///
/// Once OPEN, [`into_connection`](Self::into_connection) gives the [`Connection`] with the
/// negotiated extensions and the bytes that followed the 101.
///
/// ```
/// use wsproto::handshake::{ClientHandshake, ServerHandshake};
/// use wsproto::{AcceptConnection, Event, Request};
///
/// let mut client = ClientHandshake::new();
/// let mut server = ServerHandshake::new();
/// server.receive_data(&client.send_bytes(Request::new("example.com", "/")).unwrap()).unwrap();
/// assert!(matches!(server.next_event(), Some(Event::Request(_))));
/// client.receive_data(&server.send_bytes(AcceptConnection::new()).unwrap()).unwrap();
/// assert!(matches!(client.next_event(), Some(Event::AcceptConnection(_))));
/// let (conn, trailing) = client.into_connection().unwrap();
/// assert!(conn.role().is_client() && trailing.is_empty());
/// ```
pub struct ClientHandshake {
    common: Common,
    phase: ClientPhase,
}

#[derive(Debug)]
enum ClientPhase {
    /// The request is not sent yet.
    Idle,
    /// Request sent, waiting for the response head.
    AwaitingResponse(ClientOffer),
    /// Reading a rejection body.
    ReadingRejection(BodyReader),
    /// Handshake complete, with the negotiated extensions for the connection.
    Open(Vec<Box<dyn Extension>>),
    /// Rejected, or failed.
    Closed,
}

impl Default for ClientHandshake {
    fn default() -> Self {
        Self::new()
    }
}

impl ClientHandshake {
    /// A client handshake with the default [`Config`].
    pub fn new() -> Self {
        Self::with_config(Config::default())
    }

    /// A client handshake; `config` also goes to the [`Connection`] it creates (its key
    /// source provides the `Sec-WebSocket-Key`).
    pub fn with_config(config: Config) -> Self {
        ClientHandshake { common: Common::new(config), phase: ClientPhase::Idle }
    }

    /// Adds an extension to offer in the `Request`, in the order added. The ones the server
    /// agrees to end up in the [`Connection`] ([`Connection::extensions`]).
    pub fn with_extension(self, extension: impl Extension) -> Self {
        self.with_boxed_extension(Box::new(extension))
    }

    /// [`with_extension`](Self::with_extension) for an extension already boxed.
    pub(crate) fn with_boxed_extension(mut self, extension: Box<dyn Extension>) -> Self {
        self.common.extensions.push(extension);
        self
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.common.config
    }

    /// CONNECTING, REJECTING, CLOSED, or OPEN once the connection exists.
    pub fn state(&self) -> ConnectionState {
        match self.phase {
            ClientPhase::Idle | ClientPhase::AwaitingResponse(_) => ConnectionState::Connecting,
            ClientPhase::ReadingRejection(_) => ConnectionState::Rejecting,
            ClientPhase::Open(_) => ConnectionState::Open,
            ClientPhase::Closed => ConnectionState::Closed,
        }
    }

    /// The error that killed the handshake, if the server violated it.
    pub fn failure(&self) -> Option<&RemoteProtocolError> {
        self.common.failed.as_ref()
    }

    /// The next handshake event (`AcceptConnection`, `RejectConnection`, `RejectData`), or
    /// `None`.
    #[must_use]
    pub fn next_event(&mut self) -> Option<Event> {
        self.common.events.pop_front()
    }

    /// An iterator over the queued handshake events.
    pub fn events(&mut self) -> impl Iterator<Item = Event> + '_ {
        std::iter::from_fn(move || self.next_event())
    }

    /// Feeds bytes read from the transport: the response. The `Request` must be sent first
    /// ([`LocalProtocolError::RequestNotSent`]); once OPEN, bytes belong to the connection
    /// ([`into_connection`](Self::into_connection)); after a rejection or a failure they are
    /// ignored.
    pub fn receive_data(&mut self, data: &[u8]) -> Result<(), ProtocolError> {
        match &mut self.phase {
            ClientPhase::Idle => Err(LocalProtocolError::RequestNotSent.into()),
            ClientPhase::AwaitingResponse(_) => {
                self.common.head.push(data);
                self.parse_head()
            }
            ClientPhase::ReadingRejection(_) => self.feed_body(data),
            ClientPhase::Open(_) => Err(LocalProtocolError::HandshakeComplete.into()),
            ClientPhase::Closed => Ok(()),
        }
    }

    /// Reports EOF on the transport: a [`RemoteProtocolError`] while the response is awaited;
    /// the end of a rejection body read until EOF (final `RejectData`, CLOSED), or a failure
    /// if the body is truncated. Once OPEN, the connection handed over reports the 1006
    /// closure.
    pub fn receive_eof(&mut self) -> Result<(), ProtocolError> {
        if self.common.failed.is_some() {
            return Ok(());
        }
        self.common.eof = true;
        match &self.phase {
            ClientPhase::Idle | ClientPhase::Open(_) | ClientPhase::Closed => Ok(()),
            ClientPhase::AwaitingResponse(_) => {
                Err(self.fail(bad_http("connection closed before the handshake response")))
            }
            ClientPhase::ReadingRejection(reader) => match reader.eof() {
                Ok(()) => {
                    self.finish_rejection();
                    Ok(())
                }
                Err(e) => Err(self.fail(e)),
            },
        }
    }

    /// Serialises the `Request` (once) into `dst`. Anything else, or a header value with
    /// CR/LF, is a [`LocalProtocolError`] and writes nothing.
    pub fn send(&mut self, event: impl Into<Event>, dst: &mut BytesMut) -> Result<(), LocalProtocolError> {
        match event.into() {
            Event::Request(request) => self.send_request(*request, dst),
            Event::AcceptConnection(_) => Err(LocalProtocolError::WrongRole {
                action: "send AcceptConnection",
                role: ConnectionType::Client,
            }),
            Event::RejectConnection(_) => Err(LocalProtocolError::WrongRole {
                action: "send RejectConnection",
                role: ConnectionType::Client,
            }),
            _ if matches!(self.phase, ClientPhase::Open(_)) => Err(LocalProtocolError::HandshakeComplete),
            other => Err(LocalProtocolError::EventNotAllowed { event: other.name(), state: self.state() }),
        }
    }

    /// Like [`send`](Self::send), returning the bytes.
    pub fn send_bytes(&mut self, event: impl Into<Event>) -> Result<Bytes, LocalProtocolError> {
        let mut dst = BytesMut::new();
        self.send(event, &mut dst)?;
        Ok(dst.freeze())
    }

    /// Once OPEN, the end of the handshake by value: the [`Connection`] and the bytes
    /// received past the 101, to decode first. Before that, the handshake is given back.
    /// Events not drained are dropped.
    // The handshake is given back by value when it is not done yet: a move on a cold path.
    #[allow(clippy::result_large_err)]
    pub fn into_connection(mut self) -> Result<(Connection, BytesMut), Self> {
        if !matches!(self.phase, ClientPhase::Open(_)) {
            return Err(self);
        }
        let ClientPhase::Open(extensions) = std::mem::replace(&mut self.phase, ClientPhase::Closed) else {
            unreachable!("checked above")
        };
        Ok(self.common.open(ConnectionType::Client, extensions))
    }

    /// The server violated the handshake: it is over.
    fn fail(&mut self, e: RemoteProtocolError) -> ProtocolError {
        self.phase = ClientPhase::Closed;
        self.common.fail(e)
    }

    fn parse_head(&mut self) -> Result<(), ProtocolError> {
        match self.common.parse_head(HeadKind::Response) {
            Ok(Some(head)) => self.handle_response(head.status, head.headers),
            Ok(None) => Ok(()),
            Err(e) => Err(self.fail(e)),
        }
    }
}

impl fmt::Debug for ClientHandshake {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientHandshake")
            .field("state", &self.state())
            .field("phase", &self.phase)
            .field("queued_events", &self.common.events.len())
            .field("failed", &self.common.failed)
            .finish_non_exhaustive()
    }
}

impl ClientHandshake {
    /// Client: the RFC 8441 extended CONNECT for `request`, for an HTTP/2 stack to send on a
    /// new stream (a server that advertised `SETTINGS_ENABLE_CONNECT_PROTOCOL`). The
    /// extensions given to the handshake are offered as over HTTP/1.1. Then feed the response
    /// to [`receive_response_head`](Self::receive_response_head); once
    /// OPEN, the stream's DATA carries the frames ([`into_connection`](Self::into_connection)).
    ///
    /// ```
    /// use wsproto::handshake::ClientHandshake;
    /// use wsproto::{Event, Request};
    ///
    /// let mut client = ClientHandshake::new();
    /// let connect = client.extended_connect(Request::new("example.com", "/chat")).unwrap();
    /// assert_eq!((connect.authority.as_str(), connect.path.as_str(), connect.protocol), ("example.com", "/chat", "websocket"));
    /// client.receive_response_head(200, Vec::<(&str, &str)>::new()).unwrap();
    /// assert!(matches!(client.next_event(), Some(Event::AcceptConnection(_))));
    /// ```
    pub fn extended_connect(&mut self, request: Request) -> Result<ExtendedConnect, LocalProtocolError> {
        let target = request.target.clone();
        let extra = request.extra_headers.clone();
        let prepared = self.prepare_request(request)?;
        let headers = offer_headers(&prepared, extra);
        let host = prepared.host.clone();
        self.await_response(prepared, None);
        Ok(ExtendedConnect { authority: host, path: target, protocol: WEBSOCKET_UPGRADE, headers })
    }

    /// Client: an HTTP stack received the response to [`upgrade_request`](Self::upgrade_request)
    /// (a 101 accepts) or to [`extended_connect`](Self::extended_connect) (a 2xx accepts). An
    /// accepting response is validated and the `AcceptConnection` event follows, with the
    /// agreed subprotocol and extensions; another status rejects (`RejectConnection` without
    /// body: the body, if any, is the HTTP stack's).
    pub fn receive_response_head(
        &mut self,
        status: u16,
        headers: impl IntoIterator<Item = (impl AsRef<[u8]>, impl AsRef<[u8]>)>,
    ) -> Result<(), ProtocolError> {
        let ClientPhase::AwaitingResponse(offer) = &self.phase else {
            return Err(LocalProtocolError::RequestNotSent.into());
        };
        let accepted = match offer.nonce {
            Some(_) => status == 101,
            None => (200..300).contains(&status),
        };
        let headers = head::lowercase_headers(headers);
        if accepted {
            return self.accept_response(headers);
        }
        self.phase = ClientPhase::Closed;
        self.common.events.push_back(Event::RejectConnection(RejectConnection {
            status_code: status,
            headers,
            has_body: false,
        }));
        Ok(())
    }

    /// Validates an accepting response and moves to OPEN.
    fn accept_response(&mut self, headers: Headers) -> Result<(), ProtocolError> {
        let ClientPhase::AwaitingResponse(offer) = std::mem::replace(&mut self.phase, ClientPhase::Closed)
        else {
            return Ok(());
        };
        let (accept, extensions) = match validate_response(headers, offer) {
            Ok(ok) => ok,
            Err(e) => return Err(self.fail(e)),
        };
        // The bytes behind a 101 stay in `head` for `into_connection`.
        self.phase = ClientPhase::Open(extensions);
        self.common.events.push_back(Event::AcceptConnection(Box::new(accept)));
        Ok(())
    }

    pub(super) fn handle_response(&mut self, status: u16, headers: Headers) -> Result<(), ProtocolError> {
        if status == 101 {
            return self.accept_response(headers);
        }
        if (100..200).contains(&status) {
            self.phase = ClientPhase::Closed;
            self.common.events.push_back(Event::RejectConnection(RejectConnection {
                status_code: status,
                headers,
                has_body: false,
            }));
            return Ok(());
        }
        let reader = match BodyReader::for_response(status, &headers) {
            Ok(reader) => reader,
            Err(e) => return Err(self.fail(e)),
        };
        self.common.events.push_back(Event::RejectConnection(RejectConnection {
            status_code: status,
            headers,
            has_body: true,
        }));
        self.phase = ClientPhase::ReadingRejection(reader);
        let rest = self.common.head.take();
        self.feed_body(&rest)
    }

    pub(super) fn feed_body(&mut self, data: &[u8]) -> Result<(), ProtocolError> {
        let limit = self.common.config.limits.max_handshake_size;
        let ClientPhase::ReadingRejection(reader) = &mut self.phase else { return Ok(()) };
        match reader.feed(data, limit, &mut self.common.events) {
            Ok(true) => {
                self.finish_rejection();
                Ok(())
            }
            Ok(false) => Ok(()),
            Err(e) => Err(self.fail(e)),
        }
    }

    pub(super) fn finish_rejection(&mut self) {
        self.common
            .events
            .push_back(Event::RejectData(RejectData { data: Bytes::new(), body_finished: true }));
        self.phase = ClientPhase::Closed;
    }

    /// Client: the HTTP/1.1 upgrade request for `request` as data, for an HTTP stack that
    /// writes requests itself (hyper's client, say): the target and every header, `Host`,
    /// `Upgrade`, `Connection` and a fresh `Sec-WebSocket-Key` included. Feed the response's
    /// head to [`receive_response_head`](Self::receive_response_head).
    ///
    /// ```
    /// use wsproto::handshake::ClientHandshake;
    /// use wsproto::Request;
    ///
    /// let mut client = ClientHandshake::new();
    /// let request = client.upgrade_request(Request::new("example.com", "/chat")).unwrap();
    /// assert_eq!(request.target, "/chat");
    /// assert!(request.headers.iter().any(|(name, _)| name.as_ref() == b"sec-websocket-key"));
    /// ```
    pub fn upgrade_request(&mut self, request: Request) -> Result<UpgradeRequest, LocalProtocolError> {
        let target = request.target.clone();
        let extra = request.extra_headers.clone();
        let prepared = self.prepare_request(request)?;
        let nonce = accept::nonce_from(&self.common.config.key_source);
        let mut headers: Headers = vec![
            (Bytes::from_static(b"host"), Bytes::from(prepared.host.clone())),
            (Bytes::from_static(b"upgrade"), Bytes::from_static(WEBSOCKET_UPGRADE.as_bytes())),
            (Bytes::from_static(b"connection"), Bytes::from_static(b"Upgrade")),
            (Bytes::from_static(b"sec-websocket-key"), Bytes::from(nonce.clone())),
        ];
        headers.extend(offer_headers(&prepared, extra));
        self.await_response(prepared, Some(nonce));
        Ok(UpgradeRequest { target, headers })
    }

    pub(super) fn send_request(
        &mut self,
        request: Request,
        dst: &mut BytesMut,
    ) -> Result<(), LocalProtocolError> {
        let UpgradeRequest { target, headers } = self.upgrade_request(request)?;
        dst.put_slice(b"GET ");
        dst.put_slice(target.as_bytes());
        dst.put_slice(b" HTTP/1.1\r\n");
        for (name, value) in &headers {
            let name = WIRE_NAMES.iter().find(|(lower, _)| lower == name).map_or(&name[..], |(_, wire)| wire);
            header(dst, name, value);
        }
        dst.put_slice(b"\r\n");
        Ok(())
    }

    /// Checks a client's request and collects the extension offers, changing nothing on error.
    fn prepare_request(&mut self, request: Request) -> Result<PreparedRequest, LocalProtocolError> {
        if !matches!(self.phase, ClientPhase::Idle) {
            return Err(LocalProtocolError::RequestAlreadySent);
        }
        let host = write::host_header(&request.host)?.into_owned();
        if request.target.is_empty()
            || request.target.bytes().any(|b| b.is_ascii_whitespace() || b.is_ascii_control())
        {
            return Err(LocalProtocolError::InvalidTarget(request.target));
        }
        if let Some(bad) = request.subprotocols.iter().find(|p| !is_token(p)) {
            return Err(LocalProtocolError::InvalidSubprotocol(bad.clone()));
        }
        if !request.extensions.is_empty() {
            return Err(LocalProtocolError::ExtensionsInEvent);
        }
        for (name, value) in &request.extra_headers {
            check_header(name, value)?;
        }
        let mut items = Vec::new();
        let mut offers = Vec::new();
        for ext in &mut self.common.extensions {
            let params = ext.offer();
            if let Some(params) = &params {
                items.push(negotiate::response_item(ext.name(), params));
            }
            offers.push(params.is_some());
        }
        let extensions_value = items.join(", ");
        check_value("Sec-WebSocket-Extensions", extensions_value.as_bytes())?;
        // Extensions that declined to offer take no part in the connection.
        let mut offers = offers.into_iter();
        let offered: Vec<_> = std::mem::take(&mut self.common.extensions)
            .into_iter()
            .filter(|_| offers.next() == Some(true))
            .collect();
        Ok(PreparedRequest {
            host,
            subprotocols: request.subprotocols,
            extensions: (!items.is_empty()).then_some(extensions_value),
            offered,
        })
    }

    /// The request is out: wait for the response that answers it.
    fn await_response(&mut self, prepared: PreparedRequest, nonce: Option<String>) {
        self.phase = ClientPhase::AwaitingResponse(ClientOffer {
            nonce,
            subprotocols: prepared.subprotocols,
            extensions: prepared.offered,
        });
    }
}
