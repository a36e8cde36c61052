//! Async opening handshake over any `AsyncRead + AsyncWrite`, returning a [`Session`].
//!
//! The helper drives the sans-IO [`WsConnection`] over the I/O object: it makes no protocol
//! decision of its own. Bytes read past the handshake (frames a peer pipelined behind its
//! request or its 101) are moved into the session's read buffer, never lost. The session is
//! configured by [`UpgradeConfig::session`]; [`Session::into_inner`] gives the bare `Framed`.
//!
//! ```no_run
//! # async fn run() -> Result<(), wsproto::Error> {
//! use futures_util::{SinkExt, StreamExt};
//! use wsproto::{Event, TextMessage};
//!
//! let (mut ws, _accept) = wsproto::upgrade::connect("ws://127.0.0.1:9001/").await?;
//! ws.send(TextMessage::new("hello").into()).await?;
//! while let Some(event) = ws.next().await {
//!     if let Event::TextMessage(m) = event? {
//!         println!("{}", m.data);
//!         break;
//!     }
//! }
//! # Ok(()) }
//! ```

use std::future::Future;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio_util::codec::Framed;

use crate::adapters::codec::WsCodec;
use crate::adapters::error::Error;
use crate::adapters::session::Session;
use crate::event::{AcceptConnection, Event, Headers, RejectConnection, RejectData, Request};
use crate::handshake::error::ProtocolError;
use crate::role::ConnectionType;
use crate::trace;
use crate::ws_connection::WsConnection;

mod config;
mod connect;
mod proxy;
mod stream;
#[cfg(feature = "rustls-no-provider")]
mod tls;
pub(crate) mod url;

pub use config::{UpgradeConfig, DEFAULT_CONNECT_TIMEOUT, DEFAULT_HANDSHAKE_TIMEOUT};
pub use connect::{client_url, connect, connect_with};
pub use proxy::Proxy;
pub use stream::MaybeTlsStream;
#[cfg(feature = "hyper")]
pub(crate) use url::WsUrl;

/// The first of `ours` (in our order of preference) that `request` offers.
fn first_offered(ours: &[String], request: &Request) -> Option<String> {
    ours.iter().find(|p| request.subprotocols.contains(p)).cloned()
}

/// An HTTP rejection: what a client received, or what a server's callback decided.
// Exhaustive by decision: an HTTP response's parts: status, headers, body.
#[allow(clippy::exhaustive_structs)]
#[derive(Clone, Debug, Eq, PartialEq)]
pub struct Rejection {
    /// HTTP status code.
    pub status_code: u16,
    /// Response headers.
    pub headers: Headers,
    /// Response body.
    pub body: Bytes,
}

impl Rejection {
    /// A rejection with `status_code`, no header and no body.
    pub fn new(status_code: u16) -> Self {
        Rejection { status_code, headers: Vec::new(), body: Bytes::new() }
    }

    /// Adds a header.
    pub fn with_header(mut self, name: impl Into<Bytes>, value: impl Into<Bytes>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Sets the body (a `content-length` header is added for it).
    pub fn with_body(mut self, body: impl Into<Bytes>) -> Self {
        self.body = body.into();
        self
    }
}

/// A server's answer to an upgrade request.
// Exhaustive by decision: an upgrade is accepted or rejected.
#[allow(clippy::exhaustive_enums)]
#[derive(Debug)]
pub enum Decision {
    /// Accept, with a subprotocol, extensions and extra headers.
    Accept(AcceptConnection),
    /// Reject with an HTTP response.
    Reject(Rejection),
}

/// Client handshake over `io`: sends `request`, waits for the response.
///
/// Returns the transport and the server's [`AcceptConnection`] (negotiated subprotocol and
/// extensions), or [`Error::Rejected`] with the status, headers and body of a rejection.
pub fn client<T>(
    io: T,
    request: Request,
    config: UpgradeConfig,
) -> impl Future<Output = Result<(Session<T>, AcceptConnection), Error>>
where
    T: AsyncRead + AsyncWrite + Unpin,
{
    // Boxed whole (the timer, the settings, the handshake state): while the handshake runs,
    // the caller's future holds one pointer, instead of being enlarged by all of it for the
    // connection's whole life.
    Box::pin(async move {
        let timeout = config.handshake_timeout;
        logged_failure(
            ConnectionType::Client,
            with_timeout(timeout, client_handshake(io, request, config)).await,
        )
    })
}

async fn client_handshake<T>(
    mut io: T,
    request: Request,
    config: UpgradeConfig,
) -> Result<(Session<T>, AcceptConnection), Error>
where
    T: AsyncRead + AsyncWrite + Unpin,
{
    let mut ws = config.endpoint(ConnectionType::Client);
    let bytes = ws.send_bytes(request)?;
    io.write_all(&bytes).await?;
    io.flush().await?;
    let mut buf = BytesMut::with_capacity(1024);
    let mut rejection: Option<Rejection> = None;
    let mut body = BytesMut::new();
    loop {
        while let Some(event) = ws.next_event() {
            match event {
                Event::AcceptConnection(accept) => {
                    let session = into_session(io, ws, &config);
                    session.record_handshake("1.1", accept.subprotocol.as_deref());
                    return Ok((session, *accept));
                }
                Event::RejectConnection(reject) => {
                    let finished = !reject.has_body;
                    rejection = Some(Rejection {
                        status_code: reject.status_code,
                        headers: reject.headers,
                        body: Bytes::new(),
                    });
                    if finished {
                        return Err(rejected(rejection, body));
                    }
                }
                Event::RejectData(RejectData { data, body_finished }) => {
                    // The first `max_reject_body` bytes are kept; the rest is read and dropped.
                    let room = config.max_reject_body.saturating_sub(body.len());
                    body.extend_from_slice(&data[..data.len().min(room)]);
                    if body_finished {
                        return Err(rejected(rejection, body));
                    }
                }
                _ => {}
            }
        }
        buf.clear();
        if io.read_buf(&mut buf).await? == 0 {
            // EOF ends a body delimited by the connection close; any other EOF is an error.
            let _ = ws.receive_eof();
            if let Some(r) = rejection.take() {
                // A body delimited by EOF ends here.
                while ws.next_event().is_some() {}
                return Err(rejected(Some(r), body));
            }
            return Err(Error::Io(std::io::ErrorKind::UnexpectedEof.into()));
        }
        ws.receive_data(&buf)?;
    }
}

/// A handshake that failed other than by a refusal (those are logged where they are
/// answered): timed out, the transport failed, our own misuse.
fn logged_failure<R>(role: ConnectionType, result: Result<R, Error>) -> Result<R, Error> {
    if let Err(error) = &result {
        if !matches!(error, Error::Remote(_) | Error::Rejected(_)) {
            trace::handshake_failed(role, error);
        }
    }
    result
}

/// The server's rejection, with the part of its body kept.
fn rejected(rejection: Option<Rejection>, body: BytesMut) -> Error {
    let mut rejection = rejection.unwrap_or_else(|| Rejection::new(0));
    rejection.body = body.freeze();
    trace::handshake_refused(ConnectionType::Client, rejection.status_code, &"rejected by the server");
    Error::Rejected(Box::new(rejection))
}

/// Server handshake over `io`: reads the request, asks `decide`, answers.
///
/// Returns the transport and the client's [`Request`]. A request that violates the protocol is
/// answered with the suggested rejection (400, 426 or 431) and returned as
/// [`Error::Remote`]; a request `decide` rejects is answered and returned as
/// [`Error::Rejected`].
pub fn server<T, F>(
    io: T,
    decide: F,
    config: UpgradeConfig,
) -> impl Future<Output = Result<(Session<T>, Request), Error>>
where
    T: AsyncRead + AsyncWrite + Unpin,
    F: FnOnce(&Request) -> Decision,
{
    // Boxed whole, as in `client`: an idle server connection's task does not keep room for
    // the handshake.
    Box::pin(async move {
        let timeout = config.handshake_timeout;
        logged_failure(
            ConnectionType::Server,
            with_timeout(timeout, server_handshake(io, decide, config)).await,
        )
    })
}

/// [`server`](server) accepting every valid request, with the first of `config`'s
/// [`subprotocols`](UpgradeConfig::subprotocols) the client offered, and `config`'s extensions.
pub fn accept<T>(io: T, config: UpgradeConfig) -> impl Future<Output = Result<(Session<T>, Request), Error>>
where
    T: AsyncRead + AsyncWrite + Unpin,
{
    let select = config.subprotocols.clone();
    let decide = move |request: &Request| {
        let mut accept = AcceptConnection::new();
        accept.subprotocol = first_offered(&select, request);
        Decision::Accept(accept)
    };
    server(io, decide, config)
}

async fn server_handshake<T, F>(
    mut io: T,
    decide: F,
    config: UpgradeConfig,
) -> Result<(Session<T>, Request), Error>
where
    T: AsyncRead + AsyncWrite + Unpin,
    F: FnOnce(&Request) -> Decision,
{
    let mut ws = config.endpoint(ConnectionType::Server);
    let mut buf = BytesMut::with_capacity(1024);
    let request = loop {
        if let Some(event) = ws.next_event() {
            match event {
                Event::Request(request) => break request,
                _ => continue,
            }
        }
        buf.clear();
        if io.read_buf(&mut buf).await? == 0 {
            return Err(Error::Io(std::io::ErrorKind::UnexpectedEof.into()));
        }
        if let Err(e) = ws.receive_data(&buf) {
            if let ProtocolError::Remote(remote) = &e {
                trace::handshake_refused(ConnectionType::Server, remote.event_hint().status_code, remote);
                if let Ok(bytes) = ws.send_bytes(remote.event_hint()) {
                    let _ = io.write_all(&bytes).await;
                    let _ = io.flush().await;
                }
            }
            return Err(e.into());
        }
    };
    match decide(&request) {
        Decision::Accept(accept) => {
            let subprotocol = accept.subprotocol.clone();
            let bytes = ws.send_bytes(accept)?;
            io.write_all(&bytes).await?;
            io.flush().await?;
            let session = into_session(io, ws, &config);
            session.record_handshake("1.1", subprotocol.as_deref());
            Ok((session, *request))
        }
        Decision::Reject(rejection) => {
            trace::handshake_refused(
                ConnectionType::Server,
                rejection.status_code,
                &"rejected by the application",
            );
            let mut reject = RejectConnection::new(rejection.status_code);
            reject.headers = rejection.headers.clone();
            let mut out = BytesMut::new();
            if rejection.body.is_empty() {
                ws.send(reject, &mut out)?;
            } else {
                let len = rejection.body.len().to_string();
                reject.headers.push((Bytes::from_static(b"content-length"), Bytes::from(len)));
                reject.has_body = true;
                ws.send(reject, &mut out)?;
                ws.send(RejectData::new(rejection.body.clone()), &mut out)?;
            }
            io.write_all(&out).await?;
            io.flush().await?;
            Err(Error::Rejected(Box::new(rejection)))
        }
    }
}

/// The session over the established connection, with `config`'s session settings.
fn into_session<T>(io: T, ws: WsConnection, config: &UpgradeConfig) -> Session<T>
where
    T: AsyncRead + AsyncWrite + Unpin,
{
    Session::new(into_framed(io, ws), config.session.clone())
}

/// Moves the established connection and every byte read past the handshake into a `Framed`.
pub(crate) fn into_framed<T>(io: T, ws: WsConnection) -> Framed<T, WsCodec>
where
    T: AsyncRead + AsyncWrite,
{
    let mut conn = ws.into_connection().expect("handshake finished: the connection exists");
    let leftover = conn.take_buffered();
    crate::adapters::codec::upgraded_framed(io, WsCodec::new(conn), leftover)
}

async fn with_timeout<F, R>(timeout: Duration, fut: F) -> Result<R, Error>
where
    F: Future<Output = Result<R, Error>>,
{
    match tokio::time::timeout(timeout, fut).await {
        Ok(result) => result,
        Err(_) => Err(Error::HandshakeTimeout),
    }
}
