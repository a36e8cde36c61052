//! The server's side of the opening handshake: the request it validates, and the 101 or the
//! rejection (with its body) it answers with.

use bytes::{BufMut, Bytes, BytesMut};

use super::body::BodyWriter;
use super::error::{ProtocolError, RemoteProtocolError};
use super::head::{self, bad_http, Head};
use super::write::{self, check_header, check_value, header};
use super::{
    accept, comma_items, generate_accept_token, server_extensions_handshake, Handshake, Phase,
    VERSION_HEADER, WEBSOCKET_UPGRADE, WEBSOCKET_VERSION,
};
use crate::connection::misuse::LocalProtocolError;
use crate::event::{AcceptConnection, Event, Headers, RejectConnection, RejectData, Request};
use crate::extensions::Extension;
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
pub(super) fn write_accept(headers: &Headers, dst: &mut BytesMut) {
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
    match head::merged(&headers, "sec-websocket-version")? {
        None => return Err(RemoteProtocolError::MissingHeader(VERSION_HEADER)),
        Some(v) if v != WEBSOCKET_VERSION => return Err(RemoteProtocolError::UnsupportedVersion(v)),
        Some(_) => {}
    }
    let host = match head::count(&headers, "host") {
        0 => return Err(RemoteProtocolError::MissingHeader("Host")),
        1 => head::merged(&headers, "host")?.unwrap_or_default(),
        _ => return Err(RemoteProtocolError::MultipleHosts),
    };
    finish_request(host, target, headers, None)
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

impl Handshake {
    /// A request head arrived: validate it and queue the `Request` event.
    pub(super) fn handle_request(&mut self, head: Head) -> Result<(), ProtocolError> {
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
        Ok(())
    }

    /// Queues the `Request` event of a validated request, or fails the handshake.
    fn receive_request(
        &mut self,
        validated: Result<(Request, ReceivedRequest), RemoteProtocolError>,
    ) -> Result<(), ProtocolError> {
        match validated {
            Ok((request, received)) => {
                self.events.push_back(Event::Request(Box::new(request)));
                self.phase = Phase::RequestReceived(received);
                Ok(())
            }
            Err(e) => Err(self.fail(e)),
        }
    }

    /// Most bytes a server buffers between the request and its answer: one largest frame.
    pub(super) fn early_data_cap(&self) -> usize {
        self.config.limits.max_frame_size.saturating_add(14)
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
        self.extensions = prepared.extensions;
    }

    /// Moves to OPEN after a prepared 101 was written: creates the connection with the
    /// negotiated extensions and the bytes received behind the request.
    pub(crate) fn commit_accept(&mut self, prepared: PreparedAccept) {
        // The bytes received behind the request stay in `head` for `into_connection`.
        self.phase = Phase::Open(prepared.extensions);
    }

    pub(super) fn send_reject(
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
            Some(writer) => Phase::SendingRejection(writer),
            None => Phase::Closed,
        };
        Ok(())
    }

    pub(super) fn send_reject_data(
        &mut self,
        data: RejectData,
        dst: &mut BytesMut,
    ) -> Result<(), LocalProtocolError> {
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
