//! WebSocket with hyper 1.x (feature `hyper`), over HTTP/1.1 and HTTP/2.
//!
//! hyper parses the HTTP and sends the responses; wsproto validates the upgrade, negotiates
//! subprotocol and extensions, writes the response head, and runs the connection on hyper's
//! upgraded stream. The same code serves both HTTP versions:
//!
//! * HTTP/1.1: a `GET` with `Upgrade: websocket`, answered with a 101. Serve the connection
//!   with `http1::Builder::serve_connection(..).with_upgrades()`.
//! * HTTP/2: an extended CONNECT (RFC 8441) with `:protocol: websocket`, answered with a 200;
//!   the WebSocket runs on that one HTTP/2 stream. Allow it with
//!   `http2::Builder::enable_connect_protocol()`.
//!
//! # Server
//!
//! [`IncomingUpgrade::from_request`] checks the request (a [`Refused`] carries the response
//! the violation calls for: 400, 426 or 431); [`IncomingUpgrade::accept`] gives the response
//! for hyper to send and a [`PendingUpgrade`] that resolves to the WebSocket once hyper hands
//! over the stream.
//!
//! ```no_run
//! use std::convert::Infallible;
//! use futures_util::{SinkExt, StreamExt};
//! use wsproto::hyper::IncomingUpgrade;
//! use wsproto::upgrade::UpgradeConfig;
//! use wsproto::{AcceptConnection, Event};
//!
//! async fn handle<B>(mut request: http::Request<B>) -> Result<http::Response<String>, Infallible> {
//!     let incoming = match IncomingUpgrade::from_request(&mut request) {
//!         Ok(incoming) => incoming,
//!         Err(refused) => return Ok(refused.response()),
//!     };
//!     let config = UpgradeConfig::default();
//!     let (response, pending) = match incoming.accept(AcceptConnection::new(), &config) {
//!         Ok(accepted) => accepted,
//!         Err(refused) => return Ok(refused.response()),
//!     };
//!     tokio::spawn(async move {
//!         let Ok(mut ws) = pending.await else { return };
//!         while let Some(Ok(event)) = ws.next().await {
//!             if let Event::TextMessage(m) = event {
//!                 let _ = ws.send(m.into()).await;
//!             }
//!         }
//!     });
//!     Ok(response.map(|()| String::new()))
//! }
//! ```
//!
//! # Client
//!
//! [`client_request`] builds the request for hyper's client (either version) and a
//! [`ClientUpgrade`] that checks the response.
//!
//! ```ignore
//! # // Needs hyper's `client` feature: see the `hyper_client` example of the interop member.
//! # async fn run(mut sender: hyper::client::conn::http1::SendRequest<http_body_util::Empty<bytes::Bytes>>) -> Result<(), Box<dyn std::error::Error>> {
//! use wsproto::upgrade::UpgradeConfig;
//!
//! let config = UpgradeConfig::default();
//! let (request, upgrade) = wsproto::hyper::client_request("ws://example.com/chat", http::Version::HTTP_11, &config)?;
//! let mut response = sender.send_request(request).await?;
//! let (_accept, pending) = upgrade.finish(&mut response)?;
//! let ws = pending.await?;
//! # let _ = ws; Ok(()) }
//! ```

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use ::hyper::ext::Protocol;
use ::hyper::upgrade::OnUpgrade;
use bytes::{Bytes, BytesMut};
use http::{Extensions, HeaderMap, Method, StatusCode, Uri, Version};
use hyper_util::rt::TokioIo;

use crate::adapters::error::Error;
use crate::codec::WsCodec;
use crate::connection::Connection;
use crate::event::{AcceptConnection, Event, RejectConnection, Request};
use crate::handshake::error::{ProtocolError, RemoteProtocolError};
use crate::lifecycle::SessionConfig;
use crate::role::ConnectionType;
use crate::session::Session;
use crate::trace;
use crate::upgrade::{Rejection, UpgradeConfig, WsUrl};
use crate::ws_connection::WsConnection;

/// hyper's upgraded stream (an HTTP/1.1 connection after its 101, or one HTTP/2 stream),
/// with tokio's I/O traits.
pub type UpgradedIo = TokioIo<::hyper::upgrade::Upgraded>;

/// The `:protocol` of a WebSocket extended CONNECT.
const WEBSOCKET: &str = "websocket";

/// What an upgrade request carried, kept to negotiate once the server chooses its settings.
#[derive(Debug)]
struct RequestHead {
    method: Method,
    uri: Uri,
    version: Version,
    headers: HeaderMap,
    /// The `:protocol` of an extended CONNECT.
    protocol: Option<String>,
}

impl RequestHead {
    /// Feeds the request to a server endpoint: its `Request` event, or the refusal.
    fn feed(&self, ws: &mut WsConnection) -> Result<Request, Refused> {
        let mut request = http::Request::new(());
        *request.method_mut() = self.method.clone();
        *request.uri_mut() = self.uri.clone();
        *request.version_mut() = self.version;
        *request.headers_mut() = self.headers.clone();
        let fed = match (&self.protocol, self.version >= Version::HTTP_2) {
            (Some(protocol), true) => ws.initiate_extended_connect_request(&request, protocol),
            // A CONNECT without `:protocol` is an ordinary tunnel request, not a WebSocket.
            (None, true) if self.method == Method::CONNECT => {
                Err(ProtocolError::Remote(RemoteProtocolError::NotExtendedConnect))
            }
            _ => ws.initiate_upgrade_request(&request),
        };
        fed.map_err(Refused::from_protocol)?;
        match ws.next_event() {
            Some(Event::Request(request)) => Ok(*request),
            _ => Err(Refused::internal("the handshake gave no Request event")),
        }
    }
}

/// A valid WebSocket upgrade request received by a hyper server, not answered yet.
///
/// Look at the [`request`](Self::request) (target, subprotocols and extensions offered,
/// headers), then [`accept`](Self::accept) it, or answer with any response of your own.
#[derive(Debug)]
pub struct IncomingUpgrade {
    head: RequestHead,
    request: Request,
    on_upgrade: OnUpgrade,
}

impl IncomingUpgrade {
    /// Checks that `request` is a WebSocket upgrade (an HTTP/1.1 `GET` with the upgrade
    /// headers, or an HTTP/2 extended CONNECT) and takes hyper's upgrade handle out of it.
    /// A violation gives the rejection to send (see [`Refused::response`]).
    pub fn from_request<B>(request: &mut http::Request<B>) -> Result<Self, Refused> {
        let (method, uri, version) = (request.method().clone(), request.uri().clone(), request.version());
        let headers = request.headers().clone();
        Self::from_head(method, uri, version, headers, request.extensions_mut())
    }

    /// [`from_request`](Self::from_request) for a request split into parts (what a
    /// framework's extractor sees).
    pub fn from_parts(parts: &mut http::request::Parts) -> Result<Self, Refused> {
        let headers = parts.headers.clone();
        Self::from_head(
            parts.method.clone(),
            parts.uri.clone(),
            parts.version,
            headers,
            &mut parts.extensions,
        )
    }

    fn from_head(
        method: Method,
        uri: Uri,
        version: Version,
        headers: HeaderMap,
        extensions: &mut Extensions,
    ) -> Result<Self, Refused> {
        let protocol = extensions.get::<Protocol>().map(|p| p.as_str().to_owned());
        let head = RequestHead { method, uri, version, headers, protocol };
        let request = head.feed(&mut WsConnection::new(ConnectionType::Server))?;
        let on_upgrade = extensions.remove::<OnUpgrade>().ok_or_else(|| {
            Refused::internal(
                "hyper cannot upgrade this connection (HTTP/1.1: serve it with `.with_upgrades()`; \
                 HTTP/2: `enable_connect_protocol()`)",
            )
        })?;
        Ok(IncomingUpgrade { head, request, on_upgrade })
    }

    /// The request: target, `Host`, subprotocols and extensions offered, other headers.
    pub fn request(&self) -> &Request {
        &self.request
    }

    /// The HTTP version of the request: `HTTP/1.1`, or `HTTP/2` for an extended CONNECT.
    pub fn version(&self) -> Version {
        self.head.version
    }

    /// Accepts with `accept` (subprotocol, extra headers; without a subprotocol, the first of
    /// `config`'s [`subprotocols`](UpgradeConfig::subprotocols) the client offered) and
    /// `config`'s connection settings and extensions (negotiated against the client's offers): the response for hyper to
    /// send (101 over HTTP/1.1, 200 over HTTP/2), and the WebSocket to come once it is sent.
    ///
    /// A refusal (an extension negotiation that fails, a subprotocol the client did not
    /// offer) carries the response to send instead.
    pub fn accept(
        self,
        accept: AcceptConnection,
        config: &UpgradeConfig,
    ) -> Result<(http::Response<()>, PendingUpgrade), Refused> {
        let mut accept = accept;
        if accept.subprotocol.is_none() {
            accept.subprotocol = config.select_subprotocol(&self.request);
        }
        let mut ws = config.endpoint(ConnectionType::Server);
        self.head.feed(&mut ws)?;
        let http = if self.version() == Version::HTTP_2 { "2" } else { "1.1" };
        let subprotocol = accept.subprotocol.clone();
        let response = ws.accept_response(accept).map_err(|e| Refused::internal(&e.to_string()))?;
        let connection =
            ws.into_connection().ok_or_else(|| Refused::internal("the handshake did not open"))?;
        let pending = PendingUpgrade {
            on_upgrade: self.on_upgrade,
            connection: Some(connection),
            session: config.session.clone(),
            handshake: (http, subprotocol),
        };
        Ok((response, pending))
    }
}

/// An upgrade request refused: why, and the response to send.
#[derive(Debug)]
pub struct Refused {
    reject: RejectConnection,
    /// The client's violation; `None` when the fault is the server's.
    error: Option<RemoteProtocolError>,
    message: String,
}

impl Refused {
    fn from_protocol(error: ProtocolError) -> Refused {
        let refused = match error {
            ProtocolError::Remote(remote) => {
                Refused { reject: remote.event_hint(), message: remote.to_string(), error: Some(remote) }
            }
            ProtocolError::Local(local) => return Refused::internal(&local.to_string()),
        };
        trace::handshake_refused(ConnectionType::Server, refused.reject.status_code, &refused.message);
        refused
    }

    fn internal(message: &str) -> Refused {
        trace::handshake_refused(ConnectionType::Server, 500, &message);
        Refused { reject: RejectConnection::new(500), error: None, message: message.to_owned() }
    }

    /// The status to answer with: 400, 426 (an unsupported version), 431 (a head too large),
    /// or 500 when the server cannot upgrade (see [`error`](Self::error)).
    pub fn status(&self) -> StatusCode {
        StatusCode::from_u16(self.reject.status_code).unwrap_or(StatusCode::BAD_REQUEST)
    }

    /// The client's violation, or `None` when the fault is on the server's side (hyper not
    /// set up for upgrades, settings the handshake refused).
    pub fn error(&self) -> Option<&RemoteProtocolError> {
        self.error.as_ref()
    }

    /// The response to send: the status, the headers the violation calls for
    /// (`Sec-WebSocket-Version: 13` with a 426) and the reason as a text body.
    pub fn response(&self) -> http::Response<String> {
        let mut response = http::Response::new(format!("{}\n", self.message));
        *response.status_mut() = self.status();
        for (name, value) in &self.reject.headers {
            if let (Ok(name), Ok(value)) =
                (http::HeaderName::from_bytes(name), http::HeaderValue::from_bytes(value))
            {
                response.headers_mut().append(name, value);
            }
        }
        response
            .headers_mut()
            .insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static("text/plain; charset=utf-8"));
        response
    }
}

impl fmt::Display for Refused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "WebSocket upgrade refused with {}: {}", self.status(), self.message)
    }
}

impl std::error::Error for Refused {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.error.as_ref().map(|e| e as _)
    }
}

/// The WebSocket to come once hyper has sent the accepting response and hands over the
/// stream: await it for a [`Session`] configured by the [`UpgradeConfig::session`] given to
/// `accept` or `client_request`, as every entry point of the crate gives
/// ([`Session::into_inner`] for the bare `Framed`).
#[must_use = "the WebSocket exists only once this is awaited"]
#[derive(Debug)]
pub struct PendingUpgrade {
    on_upgrade: OnUpgrade,
    connection: Option<Connection>,
    session: SessionConfig,
    /// The HTTP version and the subprotocol agreed, for the session's log.
    handshake: (&'static str, Option<String>),
}

impl Future for PendingUpgrade {
    type Output = Result<Session<UpgradedIo>, Error>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let upgraded = ready!(Pin::new(&mut self.on_upgrade).poll(cx))
            .map_err(|e| Error::Io(std::io::Error::new(std::io::ErrorKind::ConnectionAborted, e)))?;
        let Some(connection) = self.connection.take() else {
            return Poll::Ready(Err(Error::Io(std::io::Error::other(
                "PendingUpgrade polled after completion",
            ))));
        };
        let ws = crate::adapters::codec::upgraded_framed(
            TokioIo::new(upgraded),
            WsCodec::new(connection),
            BytesMut::new(),
        );
        let session = Session::new(ws, self.session.clone());
        session.record_handshake(self.handshake.0, self.handshake.1.as_deref());
        Poll::Ready(Ok(session))
    }
}

/// Client: the request for `url` (`ws://` or `wss://`; see
/// [`connect_with`](crate::upgrade::connect_with)) in the form of `version` — an HTTP/1.1
/// `GET` with the upgrade headers, or an HTTP/2 extended CONNECT (the server must have
/// enabled it) — for hyper's client to send on a connection you opened to the URL's host.
/// `config`'s subprotocols and extensions are offered. Then hand the response to [`ClientUpgrade::finish`].
pub fn client_request<B: Default>(
    url: &str,
    version: Version,
    config: &UpgradeConfig,
) -> Result<(http::Request<B>, ClientUpgrade), Error> {
    let url = WsUrl::parse(url)?;
    let mut ws = config.endpoint(ConnectionType::Client);
    let request = if version >= Version::HTTP_2 {
        let scheme = if url.secure { http::uri::Scheme::HTTPS } else { http::uri::Scheme::HTTP };
        let mut request = ws.extended_connect_request_http(config.url_request(&url), scheme)?;
        request.extensions_mut().insert(Protocol::from_static(WEBSOCKET));
        request
    } else {
        ws.upgrade_request_http(config.url_request(&url))?
    };
    let upgrade = ClientUpgrade { ws, session: config.session.clone() };
    Ok((request.map(|()| B::default()), upgrade))
}

/// Client: the request of [`client_request`] is out; [`finish`](Self::finish) checks the
/// response.
#[derive(Debug)]
pub struct ClientUpgrade {
    ws: WsConnection,
    session: SessionConfig,
}

impl ClientUpgrade {
    /// Checks `response` (a 101 over HTTP/1.1, a 2xx over HTTP/2, with the right accept key,
    /// subprotocol and extensions) and takes hyper's upgrade handle out of it: the server's
    /// [`AcceptConnection`] and the WebSocket to come.
    ///
    /// Another status is [`Error::Rejected`] with its status and headers; the body is left
    /// in `response` for you to read.
    pub fn finish<B>(
        mut self,
        response: &mut http::Response<B>,
    ) -> Result<(AcceptConnection, PendingUpgrade), Error> {
        self.ws.receive_response(response)?;
        match self.ws.next_event() {
            Some(Event::AcceptConnection(accept)) => {
                let connection = self
                    .ws
                    .into_connection()
                    .ok_or_else(|| Error::Io(std::io::Error::other("the handshake did not open")))?;
                let http = if response.version() == Version::HTTP_2 { "2" } else { "1.1" };
                let pending = PendingUpgrade {
                    on_upgrade: ::hyper::upgrade::on(response),
                    connection: Some(connection),
                    session: self.session,
                    handshake: (http, accept.subprotocol.clone()),
                };
                Ok((*accept, pending))
            }
            Some(Event::RejectConnection(reject)) => {
                trace::handshake_refused(
                    ConnectionType::Client,
                    reject.status_code,
                    &"rejected by the server",
                );
                Err(Error::Rejected(Box::new(Rejection {
                    status_code: reject.status_code,
                    headers: reject.headers,
                    body: Bytes::new(),
                })))
            }
            _ => Err(Error::Io(std::io::Error::other("the handshake gave no response event"))),
        }
    }
}
