//! Interop with the [`http`] crate (feature `http`), for servers whose HTTP layer (hyper, axum,
//! an HTTP/2 stack) parses the upgrade request and sends the response itself.
//!
//! Feed the framework's request with [`WsConnection::initiate_upgrade_request`], read the
//! `Request` event, answer with [`WsConnection::accept_response`] (an `http::Response` for the
//! 101 instead of bytes) or send a [`rejection_response`], then run the connection over the
//! upgraded stream.
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

use crate::error::{LocalProtocolError, ProtocolError};
use crate::event::{AcceptConnection, Headers, RejectConnection};
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
    for (name, value) in headers {
        let name = HeaderName::from_bytes(name).map_err(|_| LocalProtocolError::InvalidHeader {
            name: String::from_utf8_lossy(name).into_owned(),
        })?;
        let value = HeaderValue::from_bytes(value)
            .map_err(|_| LocalProtocolError::InvalidHeader { name: name.to_string() })?;
        response.headers_mut().append(name, value);
    }
    Ok(response)
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
        if request.version() >= http::Version::HTTP_2 {
            if request.method() == http::Method::CONNECT {
                return Err(LocalProtocolError::ProtocolNeeded.into());
            }
            // HTTP/2 has no Upgrade: a GET with Connection/Upgrade headers is not a handshake.
            return Err(handshake.refuse(crate::RemoteProtocolError::NotExtendedConnect));
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
                Some(handshake) => Err(handshake.refuse(crate::RemoteProtocolError::NotExtendedConnect)),
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
}
