//! The server's side of the opening handshake: the request it validates, and the 101 or the
//! rejection (with its body) it answers with.

use std::fmt;

use bytes::{BufMut, Bytes, BytesMut};

use super::body::BodyWriter;
use super::error::{ProtocolError, RemoteProtocolError};
use super::head::HeadKind;
use super::head::{self, bad_http, Head};
use super::write::{self, check_header, check_value, header};
use super::{
    accept, comma_items, generate_accept_token, server_extensions_handshake, Common, VERSION_HEADER,
    WEBSOCKET_UPGRADE, WEBSOCKET_VERSION,
};
use crate::config::Config;
use crate::connection::misuse::LocalProtocolError;
use crate::connection::state::ConnectionState;
use crate::connection::Connection;
use crate::event::{AcceptConnection, Event, Headers, RejectConnection, RejectData, Request};
use crate::extensions::Extension;
use crate::role::ConnectionType;
use crate::wire::headers::list_contains_token;

/// Request headers that do not go into [`Request::extra_headers`] on the server.
const REQUEST_OWN_HEADERS: [&str; 3] = ["host", "sec-websocket-extensions", "sec-websocket-protocol"];

/// What a server needs from the request to answer it.
#[derive(Debug)]
pub(super) struct ReceivedRequest {
    /// The `Sec-WebSocket-Key` of an HTTP/1.1 upgrade; `None` for an HTTP/2 extended CONNECT
    /// (RFC 8441), which has no key and is answered with a 200.
    key: Option<String>,
    subprotocols: Vec<String>,
    extension_offers: Vec<String>,
}

/// A 101 response ready to be written: its headers and the extensions it negotiated.
pub(crate) struct PreparedAccept {
    pub(crate) headers: Headers,
    /// The response status: 101 (HTTP/1.1 upgrade) or 200 (HTTP/2 extended CONNECT).
    pub(crate) status: u16,
    extensions: Vec<Box<dyn Extension>>,
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
    check_version(&headers)?;
    let key = head::merged(&headers, "sec-websocket-key")?
        .ok_or(RemoteProtocolError::MissingHeader("Sec-WebSocket-Key"))?;
    if !accept::is_valid_key(&key) {
        return Err(RemoteProtocolError::InvalidKey);
    }
    let upgrade = head::merged(&headers, "upgrade")?;
    if !upgrade.is_some_and(|u| list_contains_token(&u, WEBSOCKET_UPGRADE)) {
        return Err(RemoteProtocolError::MissingHeader("Upgrade: websocket"));
    }
    let host = single_host(&headers)?;
    finish_request(host, target, headers, Some(key))
}

/// HTTP/1.1-only headers, which RFC 9113 §8.2.2 forbids in HTTP/2 requests.
const CONNECTION_SPECIFIC: [&str; 5] =
    ["connection", "upgrade", "keep-alive", "proxy-connection", "transfer-encoding"];

/// Server-side validation of an HTTP/2 extended CONNECT (RFC 8441 §4-5): `:protocol` is
/// `websocket`, `Sec-WebSocket-Version: 13`, no HTTP/1.1-only header, and no key (nor
/// accept token: HTTP/2 needs no proof of the upgrade). `host` is `:authority`.
fn validate_extended_connect(
    protocol: &str,
    target: &str,
    headers: Headers,
) -> Result<(Request, ReceivedRequest), RemoteProtocolError> {
    if !protocol.eq_ignore_ascii_case(WEBSOCKET_UPGRADE) {
        return Err(RemoteProtocolError::UnsupportedProtocol(protocol.to_owned()));
    }
    if target.is_empty() {
        return Err(bad_http("empty :path"));
    }
    if let Some(name) = CONNECTION_SPECIFIC.iter().find(|name| head::count(&headers, name) > 0) {
        return Err(RemoteProtocolError::ConnectionSpecificHeader((*name).to_owned()));
    }
    check_version(&headers)?;
    let host = single_host(&headers)?;
    finish_request(host, target, headers, None)
}

/// `Sec-WebSocket-Version: 13`, in both HTTP versions (426 otherwise, with the version we
/// speak).
fn check_version(headers: &Headers) -> Result<(), RemoteProtocolError> {
    match head::merged(headers, "sec-websocket-version")? {
        None => Err(RemoteProtocolError::MissingHeader(VERSION_HEADER)),
        Some(v) if v != WEBSOCKET_VERSION => Err(RemoteProtocolError::UnsupportedVersion(v)),
        Some(_) => Ok(()),
    }
}

/// The one `Host` (`:authority` in HTTP/2) of a request.
fn single_host(headers: &Headers) -> Result<String, RemoteProtocolError> {
    match head::count(headers, "host") {
        0 => Err(RemoteProtocolError::MissingHeader("Host")),
        1 => Ok(head::merged(headers, "host")?.unwrap_or_default()),
        _ => Err(RemoteProtocolError::MultipleHosts),
    }
}

/// The `Request` event and what answering it needs, from a validated request.
fn finish_request(
    host: String,
    target: &str,
    headers: Headers,
    key: Option<String>,
) -> Result<(Request, ReceivedRequest), RemoteProtocolError> {
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

/// The server's side of the opening handshake (python wsproto's `H11Handshake` as a server).
///
/// Same call protocol as [`Connection`]: [`receive_data`](Self::receive_data) /
/// [`receive_eof`](Self::receive_eof) in (or a request another HTTP stack parsed:
/// [`initiate_upgrade_connection`](Self::initiate_upgrade_connection),
/// [`initiate_extended_connect`](Self::initiate_extended_connect)),
/// [`next_event`](Self::next_event) out, [`send`](Self::send) for the answer. States:
/// CONNECTING → (receive the request: `Request` event; send `AcceptConnection`) → OPEN; or send
/// `RejectConnection` → CLOSED, or → REJECTING while `RejectData` flows → CLOSED.
///
/// After a [`RemoteProtocolError`] the handshake is dead: further input returns the same
/// error. Send the error's [`event_hint`](RemoteProtocolError::event_hint), the rejection the
/// violation calls for (CONNECTING still allows `RejectConnection`). After a rejection,
/// received bytes are ignored.
///
/// Once OPEN, [`into_connection`](Self::into_connection) gives the [`Connection`] with the
/// negotiated extensions and the bytes the client pipelined behind its request.
pub struct ServerHandshake {
    common: Common,
    phase: ServerPhase,
}

#[derive(Debug)]
enum ServerPhase {
    /// Waiting for the request.
    Idle,
    /// Request received (early bytes wait in `head`), our answer pending.
    RequestReceived(ReceivedRequest),
    /// Sending a rejection body.
    SendingRejection(BodyWriter),
    /// Handshake complete, with the negotiated extensions for the connection.
    Open(Vec<Box<dyn Extension>>),
    /// Rejected.
    Closed,
}

impl Default for ServerHandshake {
    fn default() -> Self {
        Self::new()
    }
}

impl ServerHandshake {
    /// A server handshake with the default [`Config`].
    pub fn new() -> Self {
        Self::with_config(Config::default())
    }

    /// A server handshake; `config` (its limits: the head size, the early data) also goes to
    /// the [`Connection`] it creates.
    pub fn with_config(config: Config) -> Self {
        ServerHandshake { common: Common::new(config), phase: ServerPhase::Idle }
    }

    /// Adds an extension that may accept one of the client's offers when `AcceptConnection`
    /// is sent. The negotiated ones end up in the [`Connection`] ([`Connection::extensions`]).
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
            ServerPhase::Idle | ServerPhase::RequestReceived(_) => ConnectionState::Connecting,
            ServerPhase::SendingRejection(_) => ConnectionState::Rejecting,
            ServerPhase::Open(_) => ConnectionState::Open,
            ServerPhase::Closed => ConnectionState::Closed,
        }
    }

    /// The error that killed the handshake, if the client violated it.
    pub fn failure(&self) -> Option<&RemoteProtocolError> {
        self.common.failed.as_ref()
    }

    /// The next handshake event (`Request`), or `None`.
    #[must_use]
    pub fn next_event(&mut self) -> Option<Event> {
        self.common.events.pop_front()
    }

    /// An iterator over the queued handshake events.
    pub fn events(&mut self) -> impl Iterator<Item = Event> + '_ {
        std::iter::from_fn(move || self.next_event())
    }

    /// Feeds bytes read from the transport: the request, and whatever the client pipelines
    /// behind it (at most one largest frame while our answer is pending).
    ///
    /// A violation is a [`ProtocolError::Remote`] carrying the rejection to answer with (400
    /// by default, 426 for a bad `Sec-WebSocket-Version`, 431 for a head over the limit or
    /// with too many headers). Once OPEN, bytes belong to the connection
    /// ([`into_connection`](Self::into_connection)).
    pub fn receive_data(&mut self, data: &[u8]) -> Result<(), ProtocolError> {
        if let Some(e) = &self.common.failed {
            if !matches!(self.phase, ServerPhase::SendingRejection(_) | ServerPhase::Closed) {
                return Err(e.clone().into());
            }
        }
        match &mut self.phase {
            ServerPhase::Idle => {
                self.common.head.push(data);
                self.parse_head()
            }
            ServerPhase::RequestReceived(_) => {
                self.common.head.push(data);
                let cap = self.early_data_cap();
                if self.common.head.len() > cap {
                    return Err(self.fail(RemoteProtocolError::TooMuchEarlyData { limit: cap }));
                }
                Ok(())
            }
            ServerPhase::Open(_) => Err(LocalProtocolError::HandshakeComplete.into()),
            ServerPhase::SendingRejection(_) | ServerPhase::Closed => Ok(()),
        }
    }

    /// Reports EOF on the transport. Before any byte of a request this is a no-op; in the
    /// middle of the request head it is a [`RemoteProtocolError`]. A handshake that already
    /// got the request remembers it: once OPEN, the connection it hands over reports the 1006
    /// closure.
    pub fn receive_eof(&mut self) -> Result<(), ProtocolError> {
        if self.common.failed.is_some() {
            return Ok(());
        }
        self.common.eof = true;
        match &self.phase {
            ServerPhase::Idle if !self.common.head.is_empty() => {
                Err(self.fail(bad_http("connection closed in the middle of the request")))
            }
            _ => Ok(()),
        }
    }

    /// Serialises `event` into `dst`: `AcceptConnection` after a `Request` was received (its
    /// `subprotocol` must be one the client offered; the extensions given to the handshake
    /// each get the chance to accept the client's offers); `RejectConnection` while
    /// CONNECTING (a `content-length: 0` header is added when `has_body` is false; with a body
    /// and no `Content-Length` or `Transfer-Encoding` header, `transfer-encoding: chunked` is
    /// added and the `RejectData` chunks are encoded accordingly); `RejectData` while
    /// REJECTING.
    ///
    /// Anything else, or a header value with CR/LF, is a [`LocalProtocolError`] and writes
    /// nothing.
    pub fn send(&mut self, event: impl Into<Event>, dst: &mut BytesMut) -> Result<(), LocalProtocolError> {
        match event.into() {
            Event::AcceptConnection(accept) => {
                let prepared = self.prepare_accept(*accept)?;
                if prepared.status != 101 {
                    self.cancel_accept(prepared);
                    return Err(LocalProtocolError::AnswerThroughHttp2);
                }
                write_accept(&prepared.headers, dst);
                self.commit_accept(prepared);
                Ok(())
            }
            Event::RejectConnection(reject) => self.send_reject(reject, dst),
            Event::RejectData(data) => self.send_reject_data(data, dst),
            Event::Request(_) => {
                Err(LocalProtocolError::WrongRole { action: "send a Request", role: ConnectionType::Server })
            }
            _ if matches!(self.phase, ServerPhase::Open(_)) => Err(LocalProtocolError::HandshakeComplete),
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
    /// received past the request, to decode first. Before that, the handshake is given back.
    /// Events not drained are dropped.
    // The handshake is given back by value when it is not done yet: a move on a cold path.
    #[allow(clippy::result_large_err)]
    pub fn into_connection(mut self) -> Result<(Connection, BytesMut), Self> {
        if !matches!(self.phase, ServerPhase::Open(_)) {
            return Err(self);
        }
        let ServerPhase::Open(extensions) = std::mem::replace(&mut self.phase, ServerPhase::Closed) else {
            unreachable!("checked above")
        };
        Ok(self.common.open(ConnectionType::Server, extensions))
    }

    /// The client violated the handshake: remembered, so further input returns it, while a
    /// rejection can still be sent.
    fn fail(&mut self, e: RemoteProtocolError) -> ProtocolError {
        self.common.fail(e)
    }

    fn parse_head(&mut self) -> Result<(), ProtocolError> {
        match self.common.parse_head(HeadKind::Request) {
            Ok(Some(head)) => self.handle_request(head),
            Ok(None) => Ok(()),
            Err(e) => Err(self.fail(e)),
        }
    }
}

impl fmt::Debug for ServerHandshake {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerHandshake")
            .field("state", &self.state())
            .field("phase", &self.phase)
            .field("queued_events", &self.common.events.len())
            .field("failed", &self.common.failed)
            .finish_non_exhaustive()
    }
}

impl ServerHandshake {
    /// A request head arrived: validate it and queue the `Request` event.
    pub(super) fn handle_request(&mut self, head: Head) -> Result<(), ProtocolError> {
        match validate_request(&head.method, head.version, &head.target, head.headers) {
            Ok((request, received)) => {
                self.common.events.push_back(Event::Request(Box::new(request)));
                self.phase = ServerPhase::RequestReceived(received);
                let cap = self.early_data_cap();
                if self.common.head.len() > cap {
                    return Err(self.fail(RemoteProtocolError::TooMuchEarlyData { limit: cap }));
                }
                Ok(())
            }
            Err(e) => Err(self.fail(e)),
        }
    }

    /// Server: feeds a request already parsed by another HTTP layer (`headers` as received,
    /// `target` the path and query). The same validation applies as for request bytes, and the
    /// same `Request` event follows; then answer with [`send`](Self::send) as usual (or let
    /// the other layer send the 101, see the `http` feature).
    pub fn initiate_upgrade_connection(
        &mut self,
        headers: impl IntoIterator<Item = (impl AsRef<[u8]>, impl AsRef<[u8]>)>,
        target: &str,
    ) -> Result<(), ProtocolError> {
        let headers = head::lowercase_headers(headers);
        self.initiate_upgrade("GET", headers, target)
    }

    /// [`initiate_upgrade_connection`](Self::initiate_upgrade_connection) with the method.
    pub(crate) fn initiate_upgrade(
        &mut self,
        method: &str,
        headers: Headers,
        target: &str,
    ) -> Result<(), ProtocolError> {
        self.check_can_receive_request()?;
        self.receive_request(validate_request(method, 1, target, headers))
    }

    /// Server: feeds an HTTP/2 extended CONNECT (RFC 8441) parsed by an HTTP/2 stack:
    /// `protocol` is its `:protocol` pseudo-header, `target` its `:path`, `headers` its
    /// headers with `host` set from `:authority`. The same `Request` event follows; the answer
    /// is a 200 that the HTTP/2 stack sends (see the `http` feature's `accept_response`), after
    /// which the stream's DATA frames carry the WebSocket frames.
    pub fn initiate_extended_connect(
        &mut self,
        protocol: &str,
        headers: impl IntoIterator<Item = (impl AsRef<[u8]>, impl AsRef<[u8]>)>,
        target: &str,
    ) -> Result<(), ProtocolError> {
        let headers = head::lowercase_headers(headers);
        self.check_can_receive_request()?;
        self.receive_request(validate_extended_connect(protocol, target, headers))
    }

    /// Refuses a request another HTTP layer received (it is not a WebSocket handshake): the
    /// handshake fails with `violation`, whose hint is the rejection to send.
    #[cfg(feature = "http")]
    pub(crate) fn refuse(&mut self, violation: RemoteProtocolError) -> ProtocolError {
        if let Err(e) = self.check_can_receive_request() {
            return e;
        }
        self.fail(violation)
    }

    /// Whether a request may be given now (server, nothing received yet, not failed).
    fn check_can_receive_request(&self) -> Result<(), ProtocolError> {
        if let Some(e) = &self.common.failed {
            return Err(e.clone().into());
        }
        if !matches!(self.phase, ServerPhase::Idle) || !self.common.head.is_empty() {
            return Err(LocalProtocolError::RequestAlreadyReceived.into());
        }
        Ok(())
    }

    /// Queues the `Request` event of a validated request, or fails the handshake.
    fn receive_request(
        &mut self,
        validated: Result<(Request, ReceivedRequest), RemoteProtocolError>,
    ) -> Result<(), ProtocolError> {
        match validated {
            Ok((request, received)) => {
                self.common.events.push_back(Event::Request(Box::new(request)));
                self.phase = ServerPhase::RequestReceived(received);
                Ok(())
            }
            Err(e) => Err(self.fail(e)),
        }
    }

    /// Most bytes a server buffers between the request and its answer: one largest frame, and
    /// never more than one frame of the default limit (16 MiB), even with
    /// [`Limits::unlimited`](crate::Limits::unlimited): a client has no reason to send before
    /// the answer, so nothing legitimate needs more.
    pub(super) fn early_data_cap(&self) -> usize {
        let frame =
            self.common.config.limits.max_frame_size.min(crate::config::Limits::DEFAULT_MAX_FRAME_SIZE);
        frame + crate::frame::MAX_HEADER_LEN
    }

    /// Checks an `AcceptConnection` and computes the 101's headers, changing nothing yet.
    pub(crate) fn prepare_accept(
        &mut self,
        accept: AcceptConnection,
    ) -> Result<PreparedAccept, LocalProtocolError> {
        if self.common.failed.is_some() {
            return Err(LocalProtocolError::HandshakeFailed);
        }
        let ServerPhase::RequestReceived(request) = &self.phase else {
            return Err(match self.phase {
                ServerPhase::Idle => LocalProtocolError::NoRequestReceived,
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
        let mut extensions = std::mem::take(&mut self.common.extensions);
        let negotiated = server_extensions_handshake(&request.extension_offers, &mut extensions);
        if let Some(value) = &negotiated {
            if let Err(e) = check_value("Sec-WebSocket-Extensions", value.as_bytes()) {
                self.common.extensions = extensions;
                return Err(e);
            }
        }
        let (mut headers, status): (Headers, u16) = match &request.key {
            Some(key) => (
                vec![
                    (Bytes::from_static(b"Upgrade"), Bytes::from_static(WEBSOCKET_UPGRADE.as_bytes())),
                    (Bytes::from_static(b"Connection"), Bytes::from_static(b"Upgrade")),
                    (Bytes::from_static(b"Sec-WebSocket-Accept"), Bytes::from(generate_accept_token(key))),
                ],
                101,
            ),
            // HTTP/2: a 200, no upgrade headers and no accept token (RFC 8441 §5).
            None => (Vec::new(), 200),
        };
        if let Some(protocol) = accept.subprotocol {
            headers.push((Bytes::from_static(b"Sec-WebSocket-Protocol"), Bytes::from(protocol)));
        }
        if let Some(value) = negotiated {
            headers.push((Bytes::from_static(b"Sec-WebSocket-Extensions"), Bytes::from(value)));
        }
        headers.extend(accept.extra_headers);
        Ok(PreparedAccept { headers, status, extensions })
    }

    /// Server: accepts an extended CONNECT (see
    /// [`initiate_extended_connect`](Self::initiate_extended_connect)) without the `http`
    /// crate: the headers of the 200 for the HTTP/2 stack to send. The state becomes OPEN.
    pub fn accept_extended_connect(
        &mut self,
        accept: AcceptConnection,
    ) -> Result<Headers, LocalProtocolError> {
        let prepared = self.prepare_accept(accept)?;
        if prepared.status != 200 {
            self.cancel_accept(prepared);
            return Err(LocalProtocolError::EventNotAllowed {
                event: "AcceptConnection",
                state: self.state(),
            });
        }
        let headers = prepared.headers.clone();
        self.commit_accept(prepared);
        Ok(headers)
    }

    /// Gives back the extensions of a prepared 101 that will not be sent.
    pub(crate) fn cancel_accept(&mut self, prepared: PreparedAccept) {
        self.common.extensions = prepared.extensions;
    }

    /// Moves to OPEN after a prepared 101 was written: creates the connection with the
    /// negotiated extensions and the bytes received behind the request.
    pub(crate) fn commit_accept(&mut self, prepared: PreparedAccept) {
        // The bytes received behind the request stay in `head` for `into_connection`.
        self.phase = ServerPhase::Open(prepared.extensions);
    }

    pub(super) fn send_reject(
        &mut self,
        reject: RejectConnection,
        dst: &mut BytesMut,
    ) -> Result<(), LocalProtocolError> {
        if !matches!(self.phase, ServerPhase::Idle | ServerPhase::RequestReceived(_)) {
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
        let (writer, add_header) = BodyWriter::for_rejection(reject.has_body, &reject.headers)?;

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
            Some(writer) => ServerPhase::SendingRejection(writer),
            None => ServerPhase::Closed,
        };
        Ok(())
    }

    pub(super) fn send_reject_data(
        &mut self,
        data: RejectData,
        dst: &mut BytesMut,
    ) -> Result<(), LocalProtocolError> {
        let ServerPhase::SendingRejection(writer) = &mut self.phase else {
            return Err(LocalProtocolError::EventNotAllowed { event: "RejectData", state: self.state() });
        };
        writer.write(&data.data, data.body_finished, dst)?;
        if data.body_finished {
            self.phase = ServerPhase::Closed;
        }
        Ok(())
    }
}
