//! Interop with the [`http`] crate (feature `http`), for servers whose HTTP layer (hyper, axum,
//! an HTTP/2 stack) parses the upgrade request and sends the response itself.
//!
//! Server: feed the framework's request with [`WsConnection::initiate_upgrade_request`] (or
//! [`initiate_extended_connect_request`](WsConnection::initiate_extended_connect_request) over
//! HTTP/2), read the `Request` event, answer with [`WsConnection::accept_response`] (an
//! `http::Response` for the 101 or the 200 instead of bytes) or send a
//! [`rejection_response`], then run the connection over the upgraded stream.
//!
//! Client: [`WsConnection::upgrade_request_http`] (HTTP/1.1) or
//! [`extended_connect_request_http`](WsConnection::extended_connect_request_http) (HTTP/2)
//! give the `http::Request` for the stack to send; feed its response head to
//! [`receive_response`](WsConnection::receive_response).
//!
//! The `hyper` feature builds on these for hyper 1.x (see `wsproto::hyper`).
//!
//! ```
//! use wsproto::{AcceptConnection, ConnectionState, ConnectionType, Event, WsConnection};
//!
//! let req = http::Request::get("/chat")
//!     .header("host", "example.com")
//!     .header("connection", "Upgrade")
//!     .header("upgrade", "websocket")
//!     .header("sec-websocket-version", "13")
//!     .header("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==")
//!     .body(())
//!     .unwrap();
//! let mut ws = WsConnection::new(ConnectionType::Server);
//! ws.initiate_upgrade_request(&req).unwrap();
//! let Some(Event::Request(request)) = ws.next_event() else { panic!() };
//! assert_eq!(request.target, "/chat");
//! let response = ws.accept_response(AcceptConnection::new()).unwrap();
//! assert_eq!(response.status(), 101);
//! assert_eq!(response.headers()["sec-websocket-accept"], "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
//! assert_eq!(ws.state(), ConnectionState::Open);
//! ```

use bytes::Bytes;
use http::header::{HeaderName, HeaderValue};
use http::{HeaderMap, StatusCode};

use crate::connection::misuse::LocalProtocolError;
use crate::event::{AcceptConnection, Headers, RejectConnection, Request};
use crate::handshake::error::ProtocolError;
use crate::ws_connection::WsConnection;

/// The headers of `map` as `(name, value)` pairs (names are lower-case in `http`).
pub fn headers_from_map(map: &HeaderMap) -> Headers {
    map.iter()
        .map(|(name, value)| {
            (Bytes::copy_from_slice(name.as_str().as_bytes()), Bytes::copy_from_slice(value.as_bytes()))
        })
        .collect()
}

/// The headers and target to give
/// [`initiate_upgrade_connection`](WsConnection::initiate_upgrade_connection): the request's
/// headers (plus a `host` from the URI's authority when there is no Host header, as in
/// HTTP/2), and its path and query (`/` when empty).
pub fn upgrade_parts<B>(request: &http::Request<B>) -> (Headers, String) {
    let mut headers = headers_from_map(request.headers());
    if !request.headers().contains_key(http::header::HOST) {
        if let Some(authority) = request.uri().authority() {
            headers
                .push((Bytes::from_static(b"host"), Bytes::copy_from_slice(authority.as_str().as_bytes())));
        }
    }
    let target = request.uri().path_and_query().map_or("/", |pq| pq.as_str());
    let target = if target.is_empty() { "/" } else { target };
    (headers, target.to_owned())
}

/// A response for a rejection (for example a
/// [`RemoteProtocolError`](crate::RemoteProtocolError)'s hint), to send through the framework. The body, if any, is
/// the framework's business.
pub fn rejection_response(reject: &RejectConnection) -> Result<http::Response<()>, LocalProtocolError> {
    let status = StatusCode::from_u16(reject.status_code)
        .map_err(|_| LocalProtocolError::InvalidStatus(reject.status_code))?;
    build_response(status, &reject.headers)
}

fn build_response(status: StatusCode, headers: &Headers) -> Result<http::Response<()>, LocalProtocolError> {
    let mut response = http::Response::new(());
    *response.status_mut() = status;
    *response.headers_mut() = header_map(headers)?;
    Ok(response)
}

/// `headers` as an `http` header map, checked.
fn header_map(headers: &Headers) -> Result<HeaderMap, LocalProtocolError> {
    let mut map = HeaderMap::with_capacity(headers.len());
    for (name, value) in headers {
        let name = HeaderName::from_bytes(name).map_err(|_| LocalProtocolError::InvalidHeader {
            name: String::from_utf8_lossy(name).into_owned(),
        })?;
        let value = HeaderValue::from_bytes(value)
            .map_err(|_| LocalProtocolError::InvalidHeader { name: name.to_string() })?;
        map.append(name, value);
    }
    Ok(map)
}

impl WsConnection {
    /// Server: feeds a request parsed by the `http` stack (method, headers, target; see
    /// [`upgrade_parts`]). The usual validation applies and a `Request` event follows.
    ///
    /// An HTTP/2 (or HTTP/3) request is refused with
    /// [`RemoteProtocolError::NotExtendedConnect`](crate::RemoteProtocolError) unless it is a
    /// `CONNECT`, which needs its `:protocol`: feed those to
    /// [`initiate_extended_connect_request`](Self::initiate_extended_connect_request).
    pub fn initiate_upgrade_request<B>(&mut self, request: &http::Request<B>) -> Result<(), ProtocolError> {
        let (headers, target) = upgrade_parts(request);
        let Some(handshake) = self.handshake_mut() else {
            return Err(LocalProtocolError::RequestAlreadyReceived.into());
        };
        let handshake = handshake.server_mut("receive an upgrade request")?;
        if request.version() >= http::Version::HTTP_2 {
            if request.method() == http::Method::CONNECT {
                return Err(LocalProtocolError::ProtocolNeeded.into());
            }
            // HTTP/2 has no Upgrade: a GET with Connection/Upgrade headers is not a handshake.
            return Err(handshake.refuse(crate::handshake::error::RemoteProtocolError::NotExtendedConnect));
        }
        if request.version() < http::Version::HTTP_11 {
            // As on the byte path: the handshake is HTTP/1.1 (RFC 6455 §4.1).
            return Err(handshake.refuse(crate::handshake::error::RemoteProtocolError::NotHttp11));
        }
        handshake.initiate_upgrade(request.method().as_str(), headers, &target)
    }

    /// Server: feeds an HTTP/2 (or HTTP/3) extended CONNECT (RFC 8441, RFC 9220) parsed by the
    /// `http` stack, with its `:protocol` (hyper: `request.extensions().get::<hyper::ext::Protocol>()`).
    /// The answer is a 200 from [`accept_response`](Self::accept_response).
    pub fn initiate_extended_connect_request<B>(
        &mut self,
        request: &http::Request<B>,
        protocol: &str,
    ) -> Result<(), ProtocolError> {
        let (headers, target) = upgrade_parts(request);
        if request.method() != http::Method::CONNECT {
            return match self.handshake_mut() {
                Some(handshake) => Err(handshake
                    .server_mut("receive an upgrade request")?
                    .refuse(crate::handshake::error::RemoteProtocolError::NotExtendedConnect)),
                None => Err(LocalProtocolError::RequestAlreadyReceived.into()),
            };
        }
        self.initiate_extended_connect(protocol, headers, &target)
    }

    /// Server: accepts like sending `accept`, but returns the 101 as an `http::Response` for
    /// the framework to send. The state becomes OPEN and the connection is ready for the
    /// upgraded stream. On error nothing changes.
    pub fn accept_response(
        &mut self,
        accept: AcceptConnection,
    ) -> Result<http::Response<()>, LocalProtocolError> {
        let state = self.state();
        let Some(handshake) = self.handshake_mut() else {
            return Err(LocalProtocolError::EventNotAllowed { event: "AcceptConnection", state });
        };
        let handshake = handshake.server_mut("send AcceptConnection")?;
        let prepared = handshake.prepare_accept(accept)?;
        let status = StatusCode::from_u16(prepared.status).unwrap_or(StatusCode::SWITCHING_PROTOCOLS);
        let response = match build_response(status, &prepared.headers) {
            Ok(response) => response,
            Err(e) => {
                handshake.cancel_accept(prepared);
                return Err(e);
            }
        };
        handshake.commit_accept(prepared);
        self.advance();
        Ok(response)
    }

    /// Client: `request` as an HTTP/1.1 `GET` with the upgrade headers (a fresh key
    /// included), for an HTTP stack to send; then [`receive_response`](Self::receive_response).
    ///
    /// ```
    /// use wsproto::{ConnectionType, Request, WsConnection};
    ///
    /// let mut ws = WsConnection::new(ConnectionType::Client);
    /// let request = ws.upgrade_request_http(Request::new("example.com", "/chat")).unwrap();
    /// assert_eq!(request.method(), http::Method::GET);
    /// assert_eq!(request.uri(), "/chat");
    /// assert_eq!(request.headers()["upgrade"], "websocket");
    /// ```
    pub fn upgrade_request_http(
        &mut self,
        request: Request,
    ) -> Result<http::Request<()>, LocalProtocolError> {
        check_for_http(&request, false)?;
        let handshake = self.client_handshake()?;
        let upgrade = handshake.upgrade_request(request)?;
        let builder = http::Request::get(upgrade.target.as_str()).version(http::Version::HTTP_11);
        build_request(builder, &upgrade.target, &upgrade.headers)
    }

    /// Client: `request` as an HTTP/2 extended CONNECT (RFC 8441) for an HTTP stack to send,
    /// its URI made of `scheme` (`https` for `wss`, `http` for `ws`), the host and the target.
    /// The stack must also send `:protocol: websocket`, which the `http` crate cannot carry
    /// (hyper: the `hyper::ext::Protocol` extension). Then
    /// [`receive_response`](Self::receive_response) with the 200.
    ///
    /// ```
    /// use wsproto::{ConnectionType, Request, WsConnection};
    ///
    /// let mut ws = WsConnection::new(ConnectionType::Client);
    /// let request = ws
    ///     .extended_connect_request_http(Request::new("example.com", "/chat"), http::uri::Scheme::HTTPS)
    ///     .unwrap();
    /// assert_eq!(request.method(), http::Method::CONNECT);
    /// assert_eq!(request.uri(), "https://example.com/chat");
    /// assert_eq!(request.headers()["sec-websocket-version"], "13");
    /// ```
    pub fn extended_connect_request_http(
        &mut self,
        request: Request,
        scheme: http::uri::Scheme,
    ) -> Result<http::Request<()>, LocalProtocolError> {
        check_for_http(&request, true)?;
        let handshake = self.client_handshake()?;
        let host = request.host.clone();
        let connect = handshake.extended_connect(request)?;
        let uri = http::Uri::builder()
            .scheme(scheme)
            .authority(connect.authority.as_str())
            .path_and_query(connect.path.as_str())
            .build()
            .map_err(|_| LocalProtocolError::InvalidHost(host))?;
        let builder = http::Request::connect(uri).version(http::Version::HTTP_2);
        build_request(builder, &connect.path, &connect.headers)
    }

    /// Client: the response head the HTTP stack received for the request of
    /// [`upgrade_request_http`](Self::upgrade_request_http) or
    /// [`extended_connect_request_http`](Self::extended_connect_request_http). An
    /// accepting response is validated and an `AcceptConnection` event follows (the state is
    /// then OPEN); another status gives a `RejectConnection` event (the body is the stack's).
    pub fn receive_response<B>(&mut self, response: &http::Response<B>) -> Result<(), ProtocolError> {
        let Some(handshake) = self.handshake_mut() else {
            return Err(LocalProtocolError::RequestNotSent.into());
        };
        let handshake = handshake.client_mut("receive a response")?;
        let headers = response.headers().iter().map(|(name, value)| (name.as_str(), value.as_bytes()));
        let result = handshake.receive_response_head(response.status().as_u16(), headers);
        self.advance();
        result
    }

    fn client_handshake(&mut self) -> Result<&mut crate::handshake::ClientHandshake, LocalProtocolError> {
        match self.handshake_mut() {
            Some(handshake) => handshake.client_mut("send a Request"),
            None => Err(LocalProtocolError::RequestAlreadySent),
        }
    }
}

/// Refuses, before the handshake commits to it (so nothing changes on error), what of
/// `request` the `http` crate cannot carry and the handshake's own checks let through: a
/// target it does not parse (as a path for an extended CONNECT), a host that is not an
/// authority. (Header names and values the handshake checks as the `http` crate does.)
fn check_for_http(request: &Request, extended: bool) -> Result<(), LocalProtocolError> {
    let target = request.target.as_str();
    let parsed = match extended {
        true => http::uri::PathAndQuery::try_from(target).is_ok(),
        false => http::Uri::try_from(target).is_ok(),
    };
    if !parsed {
        return Err(LocalProtocolError::InvalidTarget(request.target.clone()));
    }
    if extended {
        let authority = crate::handshake::write::host_header(&request.host)?;
        if http::uri::Authority::try_from(authority.as_ref()).is_err() {
            return Err(LocalProtocolError::InvalidHost(request.host.clone()));
        }
    }
    Ok(())
}

/// A request with `headers`; `target` names the request in the error if the builder refuses.
fn build_request(
    builder: http::request::Builder,
    target: &str,
    headers: &Headers,
) -> Result<http::Request<()>, LocalProtocolError> {
    let mut request = builder.body(()).map_err(|_| LocalProtocolError::InvalidTarget(target.to_owned()))?;
    *request.headers_mut() = header_map(headers)?;
    Ok(request)
}
