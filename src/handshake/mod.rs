//! The HTTP/1.1 opening handshake (RFC 6455 §4), both roles: python wsproto's `H11Handshake`.
//!
//! [`Handshake`] turns a client's [`Request`] into request bytes and the server's answer into
//! events, and on the server turns request bytes into a `Request` event and the application's
//! [`AcceptConnection`] / [`RejectConnection`] / [`RejectData`] into response bytes. Once the
//! handshake succeeds it creates the [`Connection`] for the frame layer, handing it the bytes
//! that followed the head on either side. Most applications use
//! [`WsConnection`](crate::WsConnection), which drives both.
//!
//! Heads are parsed with `httparse`, with at most [`MAX_HEADERS`] headers and at most
//! [`Limits::max_handshake_size`](crate::Limits::max_handshake_size) bytes (both answered by
//! a 431 hint). Every violation by the peer is a [`RemoteProtocolError`] whose
//! [`event_hint`](RemoteProtocolError::event_hint) is the rejection to send back; every misuse
//! of the API is a [`LocalProtocolError`] that changes nothing.
//!
//! The extension negotiation helpers, [`server_extensions_handshake`] and
//! [`client_extensions_handshake`], are public for servers that speak HTTP through another
//! stack.

mod accept;
mod body;
mod head;
mod negotiate;
mod write;

use std::collections::VecDeque;
use std::fmt;

use bytes::{BufMut, Bytes, BytesMut};

pub use self::accept::{generate_accept_token, generate_nonce, ACCEPT_GUID};
pub use self::head::MAX_HEADERS;
pub use self::negotiate::{client_extensions_handshake, server_extensions_handshake};

use self::body::{BodyReader, BodyWriter};
use self::head::{bad_http, HeadKind, HeadReader};
use self::write::{check_header, check_value, header};
use crate::config::Config;
use crate::connection::Connection;
use crate::error::{LocalProtocolError, ProtocolError, RemoteProtocolError};
use crate::event::{AcceptConnection, Event, Headers, RejectConnection, RejectData, Request};
use crate::extensions::Extension;
use crate::headers::{is_token, list_contains_token, split_comma_list};
use crate::role::ConnectionType;
use crate::state::ConnectionState;

/// The only WebSocket version spoken: `Sec-WebSocket-Version: 13`.
pub const WEBSOCKET_VERSION: &str = "13";
/// The `Upgrade` token of the protocol.
pub const WEBSOCKET_UPGRADE: &str = "websocket";
/// The version header, as named in [`RemoteProtocolError::MissingHeader`].
pub(crate) const VERSION_HEADER: &str = "Sec-WebSocket-Version";

/// Request headers that do not go into [`Request::extra_headers`] on the server.
const REQUEST_OWN_HEADERS: [&str; 3] = ["host", "sec-websocket-extensions", "sec-websocket-protocol"];
/// Response headers that do not go into [`AcceptConnection::extra_headers`] on the client.
const RESPONSE_OWN_HEADERS: [&str; 5] =
    ["connection", "upgrade", "sec-websocket-accept", "sec-websocket-protocol", "sec-websocket-extensions"];

/// The opening handshake of one connection (python wsproto's `H11Handshake`).
///
/// Same call protocol as [`Connection`]: [`receive_data`](Self::receive_data) /
/// [`receive_eof`](Self::receive_eof) in, [`next_event`](Self::next_event) out,
/// [`send`](Self::send) for what we say. States:
///
/// * client: CONNECTING → (send `Request`, receive 101) → OPEN; a final non-101 response →
///   REJECTING (`RejectConnection` with `has_body: true`, then `RejectData` chunks ending with
///   an empty one with `body_finished: true`) → CLOSED; a 1xx other than 101 →
///   `RejectConnection` with `has_body: false` → CLOSED.
/// * server: CONNECTING → (receive request: `Request` event; send `AcceptConnection`) → OPEN;
///   or send `RejectConnection` → CLOSED, or → REJECTING while `RejectData` flows → CLOSED.
///
/// When the state becomes OPEN the [`Connection`] exists:
/// [`take_connection`](Self::take_connection) moves it out. It holds the negotiated extensions and the bytes that
/// followed the head (frames a peer pipelined behind its request or its 101), so nothing is
/// lost on either side.
///
/// After a [`RemoteProtocolError`] the handshake is dead: further input returns the same error.
/// A server should then send the error's [`event_hint`](RemoteProtocolError::event_hint)
/// (CONNECTING still allows `RejectConnection`). After a rejection, received bytes are ignored.
pub struct Handshake {
    role: ConnectionType,
    config: Config,
    /// Client: the extensions to offer. Server: the extensions to negotiate. Moved into the
    /// offer (client) or the connection (server) when used.
    extensions: Vec<Box<dyn Extension>>,
    phase: Phase,
    head: HeadReader,
    events: VecDeque<Event>,
    connection: Option<Connection>,
    failed: Option<RemoteProtocolError>,
    eof: bool,
}

#[derive(Debug)]
enum Phase {
    /// Client: the request is not sent yet. Server: waiting for the request.
    Idle,
    /// Client: request sent, waiting for the response head.
    AwaitingResponse(ClientOffer),
    /// Server: request received (early bytes wait in `head`), our answer pending.
    RequestReceived(ReceivedRequest),
    /// Client: reading a rejection body.
    ReadingRejection(BodyReader),
    /// Server: sending a rejection body.
    SendingRejection(BodyWriter),
    /// Handshake complete: the connection took over.
    Open,
    /// Rejected (or failed, client side).
    Closed,
}

/// What a client offered, to check the response against.
#[derive(Debug)]
struct ClientOffer {
    nonce: String,
    subprotocols: Vec<String>,
    extensions: Vec<Box<dyn Extension>>,
}

/// What a server needs from the request to answer it.
#[derive(Debug)]
struct ReceivedRequest {
    key: String,
    subprotocols: Vec<String>,
    extension_offers: Vec<String>,
}

/// A 101 response ready to be written: its headers and the extensions it negotiated.
pub(crate) struct PreparedAccept {
    pub(crate) headers: Headers,
    extensions: Vec<Box<dyn Extension>>,
}

impl Handshake {
    /// A handshake for `role` with the default [`Config`].
    pub fn new(role: ConnectionType) -> Self {
        Self::with_config(role, Config::default())
    }

    /// A handshake for `role`; `config` also goes to the [`Connection`] it creates (its key
    /// source provides the client's `Sec-WebSocket-Key`).
    pub fn with_config(role: ConnectionType, config: Config) -> Self {
        Handshake {
            role,
            config,
            extensions: Vec::new(),
            phase: Phase::Idle,
            head: HeadReader::default(),
            events: VecDeque::new(),
            connection: None,
            failed: None,
            eof: false,
        }
    }

    /// Adds an extension: a client offers it in its `Request` (in the order added), a server
    /// lets it accept one of the client's offers when it sends `AcceptConnection`. The
    /// negotiated extensions end up in the [`Connection`] ([`Connection::extensions`]).
    ///
    /// ```
    /// # #[cfg(feature = "deflate")] {
    /// use wsproto::{ConnectionType};
    /// use wsproto::handshake::Handshake;
    /// use wsproto::extensions::PerMessageDeflate;
    /// let client = Handshake::new(ConnectionType::Client).with_extension(PerMessageDeflate::new());
    /// # let _ = client;
    /// # }
    /// ```
    pub fn with_extension(self, extension: impl Extension) -> Self {
        self.with_boxed_extension(Box::new(extension))
    }

    /// [`with_extension`](Self::with_extension) for an extension already boxed.
    pub(crate) fn with_boxed_extension(mut self, extension: Box<dyn Extension>) -> Self {
        self.extensions.push(extension);
        self
    }

    /// Our role.
    pub fn role(&self) -> ConnectionType {
        self.role
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// CONNECTING, REJECTING, CLOSED, or OPEN once the connection exists.
    pub fn state(&self) -> ConnectionState {
        match self.phase {
            Phase::Idle | Phase::AwaitingResponse(_) | Phase::RequestReceived(_) => {
                ConnectionState::Connecting
            }
            Phase::ReadingRejection(_) | Phase::SendingRejection(_) => ConnectionState::Rejecting,
            Phase::Open => ConnectionState::Open,
            Phase::Closed => ConnectionState::Closed,
        }
    }

    /// The error that killed the handshake, if the peer violated it.
    pub fn failure(&self) -> Option<&RemoteProtocolError> {
        self.failed.as_ref()
    }

    /// The connection created when the handshake succeeded, until taken.
    pub fn connection(&self) -> Option<&Connection> {
        self.connection.as_ref()
    }

    /// Mutable access to the connection, until taken.
    pub fn connection_mut(&mut self) -> Option<&mut Connection> {
        self.connection.as_mut()
    }

    /// Moves the connection out (once the state is OPEN).
    pub fn take_connection(&mut self) -> Option<Connection> {
        self.connection.take()
    }

    /// The next handshake event (`Request`, `AcceptConnection`, `RejectConnection`,
    /// `RejectData`), or `None`.
    #[must_use]
    pub fn next_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// An iterator over the queued handshake events.
    pub fn events(&mut self) -> impl Iterator<Item = Event> + '_ {
        std::iter::from_fn(move || self.next_event())
    }

    /// Feeds bytes read from the transport.
    ///
    /// A peer violation is a [`ProtocolError::Remote`] carrying the rejection to answer with
    /// (400 by default, 426 for a bad `Sec-WebSocket-Version`, 431 for a head over the limit or
    /// with too many headers). A client must send its `Request` first. Once the connection
    /// exists the bytes go to it (if it was not taken).
    pub fn receive_data(&mut self, data: &[u8]) -> Result<(), ProtocolError> {
        if let Some(e) = &self.failed {
            if !matches!(self.phase, Phase::SendingRejection(_) | Phase::Closed) {
                return Err(e.clone().into());
            }
        }
        match &mut self.phase {
            Phase::Open => match &mut self.connection {
                Some(conn) => conn.receive_data(data).map_err(Into::into),
                None => Err(LocalProtocolError::HandshakeComplete.into()),
            },
            Phase::SendingRejection(_) | Phase::Closed => Ok(()),
            Phase::Idle if self.role.is_client() => Err(LocalProtocolError::RequestNotSent.into()),
            Phase::Idle | Phase::AwaitingResponse(_) => {
                self.head.push(data);
                self.parse_head()
            }
            Phase::RequestReceived(_) => {
                self.head.push(data);
                let cap = self.early_data_cap();
                if self.head.len() > cap {
                    return Err(self.fail(RemoteProtocolError::TooMuchEarlyData { limit: cap }));
                }
                Ok(())
            }
            Phase::ReadingRejection(_) => self.feed_body(data),
        }
    }

    /// Reports EOF on the transport.
    ///
    /// Before any byte of a request (server) this is a no-op. EOF in the middle of a head, or
    /// while a client waits for the response, is a [`RemoteProtocolError`]. It ends a
    /// rejection body read until EOF (final `RejectData`, CLOSED) and fails a truncated one.
    /// A server that already got the request remembers it: the connection it creates on
    /// accept reports the 1006 closure.
    pub fn receive_eof(&mut self) -> Result<(), ProtocolError> {
        if self.failed.is_some() {
            return Ok(());
        }
        self.eof = true;
        match &self.phase {
            Phase::Open => {
                if let Some(conn) = &mut self.connection {
                    conn.receive_eof();
                }
                Ok(())
            }
            Phase::Idle if self.role.is_client() || self.head.is_empty() => Ok(()),
            Phase::Idle => Err(self.fail(bad_http("connection closed in the middle of the request"))),
            Phase::AwaitingResponse(_) => {
                Err(self.fail(bad_http("connection closed before the handshake response")))
            }
            Phase::RequestReceived(_) | Phase::SendingRejection(_) | Phase::Closed => Ok(()),
            Phase::ReadingRejection(reader) => match reader.eof() {
                Ok(()) => {
                    self.finish_rejection();
                    Ok(())
                }
                Err(e) => Err(self.fail(e)),
            },
        }
    }

    /// Serialises `event` into `dst`.
    ///
    /// * client: `Request` (once, first).
    /// * server: `AcceptConnection` after a `Request` was received (its `subprotocol` must be
    ///   one the client offered; its `extensions` are the server's supported extensions, each
    ///   given the chance to accept the client's offers); `RejectConnection` while CONNECTING
    ///   (a `content-length: 0` header is added when `has_body` is false; with a body and no
    ///   `Content-Length` or `Transfer-Encoding` header, `transfer-encoding: chunked` is added
    ///   and the `RejectData` chunks are encoded accordingly); `RejectData` while REJECTING.
    ///
    /// Anything else, or a header value with CR/LF, is a [`LocalProtocolError`] and writes
    /// nothing. Once OPEN, other events go to the connection if it was not taken.
    pub fn send(&mut self, event: impl Into<Event>, dst: &mut BytesMut) -> Result<(), LocalProtocolError> {
        match event.into() {
            Event::Request(request) => self.send_request(*request, dst),
            Event::AcceptConnection(accept) => {
                let prepared = self.prepare_accept(*accept)?;
                write_accept(&prepared.headers, dst);
                self.commit_accept(prepared);
                Ok(())
            }
            Event::RejectConnection(reject) => self.send_reject(reject, dst),
            Event::RejectData(data) => self.send_reject_data(data, dst),
            other => match (&self.phase, &mut self.connection) {
                (Phase::Open, Some(conn)) => conn.send(other, dst),
                (
                    Phase::Open | Phase::Closed | Phase::ReadingRejection(_) | Phase::SendingRejection(_),
                    _,
                ) => Err(LocalProtocolError::EventNotAllowed { event: other.name(), state: self.state() }),
                _ => Err(LocalProtocolError::EventNotAllowed { event: other.name(), state: self.state() }),
            },
        }
    }

    /// Like [`send`](Self::send), returning the bytes.
    pub fn send_bytes(&mut self, event: impl Into<Event>) -> Result<Bytes, LocalProtocolError> {
        let mut dst = BytesMut::new();
        self.send(event, &mut dst)?;
        Ok(dst.freeze())
    }

    /// Server: feeds a request already parsed by another HTTP layer (`headers` as received,
    /// `target` the path and query). The same validation applies as for request bytes, and the
    /// same `Request` event follows; then answer with [`send`](Self::send) as usual (or let
    /// the other layer send the 101, see the `http` feature).
    pub fn initiate_upgrade_connection<I, N, V>(
        &mut self,
        headers: I,
        target: &str,
    ) -> Result<(), ProtocolError>
    where
        I: IntoIterator<Item = (N, V)>,
        N: AsRef<[u8]>,
        V: AsRef<[u8]>,
    {
        let headers = headers
            .into_iter()
            .map(|(n, v)| (Bytes::from(n.as_ref().to_ascii_lowercase()), Bytes::copy_from_slice(v.as_ref())))
            .collect();
        self.initiate_upgrade("GET", headers, target)
    }

    /// [`initiate_upgrade_connection`](Self::initiate_upgrade_connection) with the method.
    pub(crate) fn initiate_upgrade(
        &mut self,
        method: &str,
        headers: Headers,
        target: &str,
    ) -> Result<(), ProtocolError> {
        if self.role.is_client() {
            return Err(LocalProtocolError::WrongRole {
                action: "receive an upgrade request",
                role: self.role,
            }
            .into());
        }
        if let Some(e) = &self.failed {
            return Err(e.clone().into());
        }
        if !matches!(self.phase, Phase::Idle) || !self.head.is_empty() {
            return Err(LocalProtocolError::RequestAlreadyReceived.into());
        }
        match validate_request(method, 1, target, headers) {
            Ok((request, received)) => {
                self.events.push_back(Event::Request(Box::new(request)));
                self.phase = Phase::RequestReceived(received);
                Ok(())
            }
            Err(e) => Err(self.fail(e)),
        }
    }

    fn fail(&mut self, e: RemoteProtocolError) -> ProtocolError {
        if self.role.is_client() {
            self.phase = Phase::Closed;
        }
        self.failed = Some(e.clone());
        e.into()
    }

    /// Most bytes a server buffers between the request and its answer: one largest frame.
    fn early_data_cap(&self) -> usize {
        self.config.limits.max_frame_size.saturating_add(14)
    }

    fn parse_head(&mut self) -> Result<(), ProtocolError> {
        let limit = self.config.limits.max_handshake_size;
        let kind = if self.role.is_client() { HeadKind::Response } else { HeadKind::Request };
        let head = match self.head.parse(kind, limit) {
            Ok(Some(head)) => head,
            Ok(None) => return Ok(()),
            Err(e) => return Err(self.fail(e)),
        };
        if self.role.is_client() {
            return self.handle_response(head.status, head.headers);
        }
        match validate_request(&head.method, head.version, &head.target, head.headers) {
            Ok((request, received)) => {
                self.events.push_back(Event::Request(Box::new(request)));
                self.phase = Phase::RequestReceived(received);
                let cap = self.early_data_cap();
                if self.head.len() > cap {
                    return Err(self.fail(RemoteProtocolError::TooMuchEarlyData { limit: cap }));
                }
                Ok(())
            }
            Err(e) => Err(self.fail(e)),
        }
    }

    fn handle_response(&mut self, status: u16, headers: Headers) -> Result<(), ProtocolError> {
        if status == 101 {
            let Phase::AwaitingResponse(offer) = std::mem::replace(&mut self.phase, Phase::Closed) else {
                return Ok(());
            };
            let (accept, extensions) = match validate_response(headers, offer) {
                Ok(ok) => ok,
                Err(e) => return Err(self.fail(e)),
            };
            let trailing = self.head.take();
            let mut conn = Connection::with_extensions(self.role, self.config.clone(), extensions, &trailing);
            if self.eof {
                conn.receive_eof();
            }
            self.connection = Some(conn);
            self.phase = Phase::Open;
            self.events.push_back(Event::AcceptConnection(Box::new(accept)));
            return Ok(());
        }
        if (100..200).contains(&status) {
            self.phase = Phase::Closed;
            self.events.push_back(Event::RejectConnection(RejectConnection {
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
        self.events.push_back(Event::RejectConnection(RejectConnection {
            status_code: status,
            headers,
            has_body: true,
        }));
        self.phase = Phase::ReadingRejection(reader);
        let rest = self.head.take();
        self.feed_body(&rest)
    }

    fn feed_body(&mut self, data: &[u8]) -> Result<(), ProtocolError> {
        let limit = self.config.limits.max_handshake_size;
        let Phase::ReadingRejection(reader) = &mut self.phase else { return Ok(()) };
        match reader.feed(data, limit, &mut self.events) {
            Ok(true) => {
                self.finish_rejection();
                Ok(())
            }
            Ok(false) => Ok(()),
            Err(e) => Err(self.fail(e)),
        }
    }

    fn finish_rejection(&mut self) {
        self.events.push_back(Event::RejectData(RejectData { data: Bytes::new(), body_finished: true }));
        self.phase = Phase::Closed;
    }

    fn send_request(&mut self, request: Request, dst: &mut BytesMut) -> Result<(), LocalProtocolError> {
        if !self.role.is_client() {
            return Err(LocalProtocolError::WrongRole { action: "send a Request", role: self.role });
        }
        if !matches!(self.phase, Phase::Idle) {
            return Err(LocalProtocolError::RequestAlreadySent);
        }
        let host = write::host_header(&request.host)?;
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
        for ext in &mut self.extensions {
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
        let offered: Vec<_> = std::mem::take(&mut self.extensions)
            .into_iter()
            .filter(|_| offers.next() == Some(true))
            .collect();

        let nonce = accept::nonce_from(&self.config.key_source);
        dst.put_slice(b"GET ");
        dst.put_slice(request.target.as_bytes());
        dst.put_slice(b" HTTP/1.1\r\n");
        header(dst, b"Host", host.as_bytes());
        header(dst, b"Upgrade", WEBSOCKET_UPGRADE.as_bytes());
        header(dst, b"Connection", b"Upgrade");
        header(dst, b"Sec-WebSocket-Key", nonce.as_bytes());
        header(dst, b"Sec-WebSocket-Version", WEBSOCKET_VERSION.as_bytes());
        if !request.subprotocols.is_empty() {
            header(dst, b"Sec-WebSocket-Protocol", request.subprotocols.join(", ").as_bytes());
        }
        if !items.is_empty() {
            header(dst, b"Sec-WebSocket-Extensions", extensions_value.as_bytes());
        }
        for (name, value) in &request.extra_headers {
            header(dst, name, value);
        }
        dst.put_slice(b"\r\n");
        self.phase = Phase::AwaitingResponse(ClientOffer {
            nonce,
            subprotocols: request.subprotocols,
            extensions: offered,
        });
        Ok(())
    }

    /// Checks an `AcceptConnection` and computes the 101's headers, changing nothing yet.
    pub(crate) fn prepare_accept(
        &mut self,
        accept: AcceptConnection,
    ) -> Result<PreparedAccept, LocalProtocolError> {
        if self.role.is_client() {
            return Err(LocalProtocolError::WrongRole { action: "send AcceptConnection", role: self.role });
        }
        if self.failed.is_some() {
            return Err(LocalProtocolError::HandshakeFailed);
        }
        let Phase::RequestReceived(request) = &self.phase else {
            return Err(match self.phase {
                Phase::Idle => LocalProtocolError::NoRequestReceived,
                _ => LocalProtocolError::EventNotAllowed { event: "AcceptConnection", state: self.state() },
            });
        };
        if let Some(protocol) = &accept.subprotocol {
            if !request.subprotocols.contains(protocol) {
                return Err(LocalProtocolError::SubprotocolNotOffered(protocol.clone()));
            }
        }
        for (name, value) in &accept.extra_headers {
            check_header(name, value)?;
        }
        if !accept.extensions.is_empty() {
            return Err(LocalProtocolError::ExtensionsInEvent);
        }
        let mut extensions = std::mem::take(&mut self.extensions);
        let negotiated = server_extensions_handshake(&request.extension_offers, &mut extensions);
        if let Some(value) = &negotiated {
            if let Err(e) = check_value("Sec-WebSocket-Extensions", value.as_bytes()) {
                self.extensions = extensions;
                return Err(e);
            }
        }
        let mut headers: Headers = vec![
            (Bytes::from_static(b"Upgrade"), Bytes::from_static(WEBSOCKET_UPGRADE.as_bytes())),
            (Bytes::from_static(b"Connection"), Bytes::from_static(b"Upgrade")),
            (Bytes::from_static(b"Sec-WebSocket-Accept"), Bytes::from(generate_accept_token(&request.key))),
        ];
        if let Some(protocol) = accept.subprotocol {
            headers.push((Bytes::from_static(b"Sec-WebSocket-Protocol"), Bytes::from(protocol)));
        }
        if let Some(value) = negotiated {
            headers.push((Bytes::from_static(b"Sec-WebSocket-Extensions"), Bytes::from(value)));
        }
        headers.extend(accept.extra_headers);
        Ok(PreparedAccept { headers, extensions })
    }

    /// Gives back the extensions of a prepared 101 that will not be sent.
    #[cfg(feature = "http")]
    pub(crate) fn cancel_accept(&mut self, prepared: PreparedAccept) {
        self.extensions = prepared.extensions;
    }

    /// Moves to OPEN after a prepared 101 was written: creates the connection with the
    /// negotiated extensions and the bytes received behind the request.
    pub(crate) fn commit_accept(&mut self, prepared: PreparedAccept) {
        let trailing = self.head.take();
        let mut conn =
            Connection::with_extensions(self.role, self.config.clone(), prepared.extensions, &trailing);
        if self.eof {
            conn.receive_eof();
        }
        self.connection = Some(conn);
        self.phase = Phase::Open;
    }

    fn send_reject(
        &mut self,
        reject: RejectConnection,
        dst: &mut BytesMut,
    ) -> Result<(), LocalProtocolError> {
        if self.role.is_client() {
            return Err(LocalProtocolError::WrongRole { action: "send RejectConnection", role: self.role });
        }
        if !matches!(self.phase, Phase::Idle | Phase::RequestReceived(_)) {
            return Err(LocalProtocolError::EventNotAllowed {
                event: "RejectConnection",
                state: self.state(),
            });
        }
        if !(200..=999).contains(&reject.status_code) {
            return Err(LocalProtocolError::InvalidStatus(reject.status_code));
        }
        for (name, value) in &reject.headers {
            check_header(name, value)?;
        }
        let text = |name: &str| -> Result<Option<String>, LocalProtocolError> {
            head::merged(&reject.headers, name)
                .map_err(|_| LocalProtocolError::InvalidHeader { name: name.to_owned() })
        };
        let transfer_encoding = text("transfer-encoding")?;
        let content_length = text("content-length")?;
        let mut add_header: Option<(&[u8], &[u8])> = None;
        let writer = if !reject.has_body {
            if transfer_encoding.is_some() {
                return Err(LocalProtocolError::BodyHeadersWithoutBody);
            }
            match content_length.as_deref() {
                None => add_header = Some((b"content-length", b"0")),
                Some(v) if v.split(',').all(|n| n.trim() == "0") => {}
                Some(_) => return Err(LocalProtocolError::BodyHeadersWithoutBody),
            }
            None
        } else if let Some(te) = transfer_encoding {
            let chunked = split_comma_list(&te).last().is_some_and(|c| c.eq_ignore_ascii_case("chunked"));
            Some(if chunked { BodyWriter::Chunked } else { BodyWriter::Raw })
        } else if let Some(cl) = content_length {
            let mut length = None;
            for item in cl.split(',').map(str::trim) {
                let n = item
                    .parse::<u64>()
                    .ok()
                    .filter(|_| item.bytes().all(|b| b.is_ascii_digit()))
                    .filter(|n| length.is_none_or(|l| l == *n))
                    .ok_or_else(|| LocalProtocolError::InvalidContentLength(cl.clone()))?;
                length = Some(n);
            }
            Some(BodyWriter::Length(length.unwrap_or(0)))
        } else {
            add_header = Some((b"transfer-encoding", b"chunked"));
            Some(BodyWriter::Chunked)
        };

        dst.put_slice(
            format!("HTTP/1.1 {} {}\r\n", reject.status_code, write::reason_phrase(reject.status_code))
                .as_bytes(),
        );
        for (name, value) in &reject.headers {
            header(dst, name, value);
        }
        if let Some((name, value)) = add_header {
            header(dst, name, value);
        }
        dst.put_slice(b"\r\n");
        self.phase = match writer {
            Some(writer) => Phase::SendingRejection(writer),
            None => Phase::Closed,
        };
        Ok(())
    }

    fn send_reject_data(&mut self, data: RejectData, dst: &mut BytesMut) -> Result<(), LocalProtocolError> {
        let Phase::SendingRejection(writer) = &mut self.phase else {
            return Err(LocalProtocolError::EventNotAllowed { event: "RejectData", state: self.state() });
        };
        writer.write(&data.data, data.body_finished, dst)?;
        if data.body_finished {
            self.phase = Phase::Closed;
        }
        Ok(())
    }
}

/// Writes the 101 response with `headers`.
fn write_accept(headers: &Headers, dst: &mut BytesMut) {
    dst.put_slice(b"HTTP/1.1 101 Switching Protocols\r\n");
    for (name, value) in headers {
        header(dst, name, value);
    }
    dst.put_slice(b"\r\n");
}

/// Server-side validation of an upgrade request, in python wsproto's order (the first failure
/// wins, so a request missing both `Connection` and `Upgrade` is reported for `Connection`),
/// with the key checked as a base64 16-byte nonce.
fn validate_request(
    method: &str,
    version: u8,
    target: &str,
    headers: Headers,
) -> Result<(Request, ReceivedRequest), RemoteProtocolError> {
    if version != 1 {
        return Err(RemoteProtocolError::NotHttp11);
    }
    if method != "GET" {
        return Err(RemoteProtocolError::MethodNotGet);
    }
    if target.is_empty() {
        return Err(bad_http("empty request target"));
    }
    let connection = head::merged(&headers, "connection")?;
    if !connection.is_some_and(|c| list_contains_token(&c, "upgrade")) {
        return Err(RemoteProtocolError::MissingHeader("Connection: Upgrade"));
    }
    match head::merged(&headers, "sec-websocket-version")? {
        None => return Err(RemoteProtocolError::MissingHeader(VERSION_HEADER)),
        Some(v) if v != WEBSOCKET_VERSION => return Err(RemoteProtocolError::UnsupportedVersion(v)),
        Some(_) => {}
    }
    let key = head::merged(&headers, "sec-websocket-key")?
        .ok_or(RemoteProtocolError::MissingHeader("Sec-WebSocket-Key"))?;
    if !accept::is_valid_key(&key) {
        return Err(RemoteProtocolError::InvalidKey);
    }
    let upgrade = head::merged(&headers, "upgrade")?;
    if !upgrade.is_some_and(|u| list_contains_token(&u, WEBSOCKET_UPGRADE)) {
        return Err(RemoteProtocolError::MissingHeader("Upgrade: websocket"));
    }
    let host = match head::count(&headers, "host") {
        0 => return Err(RemoteProtocolError::MissingHeader("Host")),
        1 => head::merged(&headers, "host")?.unwrap_or_default(),
        _ => return Err(RemoteProtocolError::MultipleHosts),
    };
    let subprotocols = comma_items(&headers, "sec-websocket-protocol")?;
    let extension_offers = comma_items(&headers, "sec-websocket-extensions")?;
    let extra_headers = headers
        .into_iter()
        .filter(|(name, _)| !REQUEST_OWN_HEADERS.iter().any(|own| name == own.as_bytes()))
        .collect();
    let request = Request {
        host,
        target: target.to_owned(),
        extensions: extension_offers.clone(),
        extra_headers,
        subprotocols: subprotocols.clone(),
    };
    Ok((request, ReceivedRequest { key, subprotocols, extension_offers }))
}

/// Client-side validation of a 101 response, in python wsproto's order.
fn validate_response(
    headers: Headers,
    offer: ClientOffer,
) -> Result<(AcceptConnection, Vec<Box<dyn Extension>>), RemoteProtocolError> {
    let connection = head::merged(&headers, "connection")?;
    if !connection.is_some_and(|c| list_contains_token(&c, "upgrade")) {
        return Err(RemoteProtocolError::MissingHeader("Connection: Upgrade"));
    }
    let upgrade = head::merged(&headers, "upgrade")?;
    if !upgrade.is_some_and(|u| u.eq_ignore_ascii_case(WEBSOCKET_UPGRADE)) {
        return Err(RemoteProtocolError::MissingHeader("Upgrade: websocket"));
    }
    let accept = head::merged(&headers, "sec-websocket-accept")?;
    if accept.as_deref() != Some(generate_accept_token(&offer.nonce).as_str()) {
        return Err(RemoteProtocolError::BadAccept);
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

/// The comma-separated items of every `name` header, in order.
fn comma_items(headers: &Headers, name: &str) -> Result<Vec<String>, RemoteProtocolError> {
    let merged = head::merged(headers, name)?;
    Ok(merged.map(|v| split_comma_list(&v).into_iter().map(str::to_owned).collect()).unwrap_or_default())
}

impl fmt::Debug for Handshake {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Handshake")
            .field("role", &self.role)
            .field("state", &self.state())
            .field("phase", &self.phase)
            .field("queued_events", &self.events.len())
            .field("failed", &self.failed)
            .finish_non_exhaustive()
    }
}
