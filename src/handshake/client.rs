//! The client's side of the opening handshake: the request it sends, and the response it
//! validates (a 101) or reads (a rejection and its body).

use bytes::{BufMut, Bytes, BytesMut};

use super::body::BodyReader;
use super::error::{ProtocolError, RemoteProtocolError};
use super::negotiate::{self, client_extensions_handshake};
use super::write::{self, check_header, check_value, header};
use super::{
    accept, comma_items, generate_accept_token, head, Handshake, Phase, WEBSOCKET_UPGRADE, WEBSOCKET_VERSION,
};
use crate::connection::misuse::LocalProtocolError;
use crate::event::{AcceptConnection, Event, Headers, RejectConnection, RejectData, Request};
use crate::extensions::Extension;
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
/// pseudo-headers and headers. See [`Handshake::extended_connect`].
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
/// See [`Handshake::upgrade_request`].
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

impl Handshake {
    /// Client: the RFC 8441 extended CONNECT for `request`, for an HTTP/2 stack to send on a
    /// new stream (a server that advertised `SETTINGS_ENABLE_CONNECT_PROTOCOL`). The
    /// extensions given to the handshake are offered as over HTTP/1.1. Then feed the response
    /// to [`receive_response_head`](Self::receive_response_head); once
    /// OPEN, the stream's DATA carries the frames ([`into_connection`](Self::into_connection)).
    ///
    /// ```
    /// use wsproto::handshake::Handshake;
    /// use wsproto::{ConnectionType, Event, Request};
    ///
    /// let mut client = Handshake::new(ConnectionType::Client);
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
        let Phase::AwaitingResponse(offer) = &self.phase else {
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
        self.phase = Phase::Closed;
        self.events.push_back(Event::RejectConnection(RejectConnection {
            status_code: status,
            headers,
            has_body: false,
        }));
        Ok(())
    }

    /// Validates an accepting response and moves to OPEN.
    fn accept_response(&mut self, headers: Headers) -> Result<(), ProtocolError> {
        let Phase::AwaitingResponse(offer) = std::mem::replace(&mut self.phase, Phase::Closed) else {
            return Ok(());
        };
        let (accept, extensions) = match validate_response(headers, offer) {
            Ok(ok) => ok,
            Err(e) => return Err(self.fail(e)),
        };
        // The bytes behind a 101 stay in `head` for `into_connection`.
        self.phase = Phase::Open(extensions);
        self.events.push_back(Event::AcceptConnection(Box::new(accept)));
        Ok(())
    }

    pub(super) fn handle_response(&mut self, status: u16, headers: Headers) -> Result<(), ProtocolError> {
        if status == 101 {
            return self.accept_response(headers);
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

    pub(super) fn feed_body(&mut self, data: &[u8]) -> Result<(), ProtocolError> {
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

    pub(super) fn finish_rejection(&mut self) {
        self.events.push_back(Event::RejectData(RejectData { data: Bytes::new(), body_finished: true }));
        self.phase = Phase::Closed;
    }

    /// Client: the HTTP/1.1 upgrade request for `request` as data, for an HTTP stack that
    /// writes requests itself (hyper's client, say): the target and every header, `Host`,
    /// `Upgrade`, `Connection` and a fresh `Sec-WebSocket-Key` included. Feed the response's
    /// head to [`receive_response_head`](Self::receive_response_head).
    ///
    /// ```
    /// use wsproto::handshake::Handshake;
    /// use wsproto::{ConnectionType, Request};
    ///
    /// let mut client = Handshake::new(ConnectionType::Client);
    /// let request = client.upgrade_request(Request::new("example.com", "/chat")).unwrap();
    /// assert_eq!(request.target, "/chat");
    /// assert!(request.headers.iter().any(|(name, _)| name.as_ref() == b"sec-websocket-key"));
    /// ```
    pub fn upgrade_request(&mut self, request: Request) -> Result<UpgradeRequest, LocalProtocolError> {
        let target = request.target.clone();
        let extra = request.extra_headers.clone();
        let prepared = self.prepare_request(request)?;
        let nonce = accept::nonce_from(&self.config.key_source);
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
        if !self.role.is_client() {
            return Err(LocalProtocolError::WrongRole { action: "send a Request", role: self.role });
        }
        if !matches!(self.phase, Phase::Idle) {
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
        Ok(PreparedRequest {
            host,
            subprotocols: request.subprotocols,
            extensions: (!items.is_empty()).then_some(extensions_value),
            offered,
        })
    }

    /// The request is out: wait for the response that answers it.
    fn await_response(&mut self, prepared: PreparedRequest, nonce: Option<String>) {
        self.phase = Phase::AwaitingResponse(ClientOffer {
            nonce,
            subprotocols: prepared.subprotocols,
            extensions: prepared.offered,
        });
    }
}
