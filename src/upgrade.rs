//! Async opening handshake over any `AsyncRead + AsyncWrite`, returning a `Framed` transport.
//!
//! The helper drives the sans-IO [`WsConnection`] over the I/O object: it makes no protocol
//! decision of its own. Bytes read past the handshake (frames a peer pipelined behind its
//! request or its 101) are moved into the `Framed` read buffer, never lost.
//!
//! ```no_run
//! # async fn run() -> Result<(), wsproto::upgrade::Error> {
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

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_util::codec::{Framed, FramedParts};

use crate::codec::{self, WsCodec};
use crate::config::{Config, Delivery};
use crate::error::{LocalProtocolError, ProtocolError, RemoteProtocolError};
use crate::event::{AcceptConnection, Event, Headers, RejectConnection, RejectData, Request};
use crate::extensions::Extension;
use crate::lifecycle::SessionConfig;
use crate::role::ConnectionType;
use crate::session::Session;
use crate::ws_connection::WsConnection;

/// A WebSocket transport: any I/O object framed with [`WsCodec`], the same type as
/// `Framed::new(io, WsCodec::new(connection))` (reach the stream with `ws.get_ref()`).
pub type WebSocket<T> = Framed<T, WsCodec>;

/// Errors of the upgrade helper: the transport's, ours, the peer's handshake violations, a
/// rejection, or the handshake timing out.
///
/// After the handshake, the codec's [`codec::Error`] is all that can happen; it converts into
/// this type, and this type converts into [`std::io::Error`].
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// The transport failed (or ended during the handshake: `UnexpectedEof`).
    Io(std::io::Error),
    /// We misused the API.
    Local(LocalProtocolError),
    /// The peer violated the opening handshake (a server has already sent the rejection the
    /// violation calls for).
    Remote(RemoteProtocolError),
    /// The server rejected the upgrade (client), or `decide` did (server; the rejection was
    /// sent).
    Rejected(Box<Rejection>),
    /// The opening handshake did not finish in time.
    HandshakeTimeout,
    /// A [`Session`] ended on a timeout (its errors convert into this type, so one error
    /// type serves a whole connection handler).
    Timeout(crate::lifecycle::Timeout),
    /// The HTTP proxy refused to open a tunnel (its status code).
    ProxyRefused(u16),
    /// The URL given to [`connect`] is not one it can connect to (the reason says why).
    InvalidUrl {
        /// The URL as given.
        url: String,
        /// What is wrong with it.
        reason: &'static str,
    },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Io(e) => write!(f, "I/O error: {e}"),
            Error::Local(e) => write!(f, "local protocol error: {e}"),
            Error::Remote(e) => write!(f, "remote protocol error: {e}"),
            Error::Rejected(r) => write!(f, "upgrade rejected with HTTP status {}", r.status_code),
            Error::HandshakeTimeout => f.write_str("opening handshake timed out"),
            Error::Timeout(t) => write!(f, "session ended: {t}"),
            Error::ProxyRefused(status) => {
                write!(f, "the proxy refused the tunnel with HTTP status {status}")
            }
            Error::InvalidUrl { url, reason } => write!(f, "invalid WebSocket URL {url:?}: {reason}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Io(e) => Some(e),
            Error::Local(e) => Some(e),
            Error::Remote(e) => Some(e),
            _ => None,
        }
    }
}

crate::error::wrap_errors!(Error {
    Error::Io: std::io::Error,
    Error::Local: LocalProtocolError,
    Error::Remote: RemoteProtocolError,
});

impl From<ProtocolError> for Error {
    fn from(e: ProtocolError) -> Self {
        match e {
            ProtocolError::Local(e) => Error::Local(e),
            ProtocolError::Remote(e) => Error::Remote(e),
        }
    }
}

impl From<crate::session::Error> for Error {
    fn from(e: crate::session::Error) -> Self {
        match e {
            crate::session::Error::Io(e) => Error::Io(e),
            crate::session::Error::Local(e) => Error::Local(e),
            crate::session::Error::Timeout(t) => Error::Timeout(t),
        }
    }
}

impl From<codec::Error> for Error {
    fn from(e: codec::Error) -> Self {
        match e {
            codec::Error::Io(e) => Error::Io(e),
            codec::Error::Local(e) => Error::Local(e),
        }
    }
}

impl From<Error> for std::io::Error {
    fn from(e: Error) -> Self {
        use std::io::ErrorKind;
        let kind = match &e {
            Error::Io(_) => {
                return match e {
                    Error::Io(e) => e,
                    _ => unreachable!(),
                }
            }
            Error::Local(_) | Error::InvalidUrl { .. } => ErrorKind::InvalidInput,
            Error::Remote(_) => ErrorKind::InvalidData,
            Error::Rejected(_) | Error::ProxyRefused(_) => ErrorKind::ConnectionRefused,
            Error::HandshakeTimeout | Error::Timeout(_) => ErrorKind::TimedOut,
        };
        std::io::Error::new(kind, e)
    }
}

/// Default time allowed for the whole opening handshake.
pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Makes a fresh extension object for each connection.
type ExtensionFactory = Arc<dyn Fn() -> Box<dyn Extension> + Send + Sync>;

/// Settings of the upgrade helper.
#[derive(Clone)]
#[non_exhaustive]
pub struct UpgradeConfig {
    /// Connection settings and limits (including the handshake head limit). Its
    /// [`delivery`](Config::delivery) defaults to whole messages here.
    pub config: Config,
    /// Time allowed for the whole handshake (a slowloris peer is cut off after it).
    pub handshake_timeout: Duration,
    /// Time allowed to establish the TCP connection ([`connect`]), and the proxy's tunnel.
    pub connect_timeout: Duration,
    /// An HTTP proxy that [`connect_with`] tunnels through (`CONNECT`), if any.
    pub proxy: Option<Proxy>,
    /// The TLS client configuration for `wss://` in [`connect_with`] (default: webpki-roots).
    #[cfg(feature = "rustls")]
    pub tls: Option<Arc<tokio_rustls::rustls::ClientConfig>>,
    /// Largest rejection body a client reads.
    pub max_reject_body: usize,
    /// What the session returned by [`accept_session`] and [`connect_session`] does by
    /// itself (replies, keepalive, timeouts).
    pub session: SessionConfig,
    /// Subprotocols in order of preference: a client created from a URL offers them; a
    /// server ([`accept`], the `hyper` and `axum` helpers) selects the first one the client
    /// offered.
    pub subprotocols: Vec<String>,
    /// Extensions to offer (client) or negotiate (server), one fresh object per connection.
    extensions: Vec<ExtensionFactory>,
}

impl Default for UpgradeConfig {
    fn default() -> Self {
        UpgradeConfig {
            config: Config::default(),
            handshake_timeout: DEFAULT_HANDSHAKE_TIMEOUT,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            proxy: None,
            #[cfg(feature = "rustls")]
            tls: None,
            max_reject_body: 64 << 10,
            session: SessionConfig::default(),
            subprotocols: Vec::new(),
            extensions: Vec::new(),
        }
    }
}

impl fmt::Debug for UpgradeConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UpgradeConfig")
            .field("config", &self.config)
            .field("handshake_timeout", &self.handshake_timeout)
            .field("connect_timeout", &self.connect_timeout)
            .field("proxy", &self.proxy)
            .field("max_reject_body", &self.max_reject_body)
            .field("session", &self.session)
            .field("subprotocols", &self.subprotocols)
            .field("extensions", &self.extensions.len())
            .finish()
    }
}

impl UpgradeConfig {
    /// Sets the connection configuration.
    pub fn config(mut self, config: Config) -> Self {
        self.config = config;
        self
    }

    /// Sets the TLS client configuration for `wss://` (roots to trust, client certificates,
    /// ALPN...). Without one, the webpki-roots certificates are trusted.
    #[cfg(feature = "rustls")]
    pub fn tls_config(mut self, config: Arc<tokio_rustls::rustls::ClientConfig>) -> Self {
        self.tls = Some(config);
        self
    }

    /// Connects through an HTTP `CONNECT` proxy (see [`Proxy`]).
    pub fn proxy(mut self, proxy: Proxy) -> Self {
        self.proxy = Some(proxy);
        self
    }

    /// Sets the subprotocols, in order of preference: a client offers them (connecting to a
    /// URL), a server selects the first one the client offered (none if there is no match).
    ///
    /// ```
    /// use wsproto::upgrade::UpgradeConfig;
    /// let config = UpgradeConfig::default().subprotocols(["chat.v2", "chat.v1"]);
    /// # let _ = config;
    /// ```
    pub fn subprotocols<I, P>(mut self, protocols: I) -> Self
    where
        I: IntoIterator<Item = P>,
        P: Into<String>,
    {
        self.subprotocols = protocols.into_iter().map(Into::into).collect();
        self
    }

    /// The subprotocol a server selects for `request`: the first of ours the client offered.
    #[cfg(feature = "hyper")]
    pub(crate) fn select_subprotocol(&self, request: &Request) -> Option<String> {
        first_offered(&self.subprotocols, request)
    }

    /// The request a client sends for `url`, offering our subprotocols.
    pub(crate) fn url_request(&self, url: &WsUrl) -> Request {
        url.request().with_subprotocols(self.subprotocols.iter().cloned())
    }

    /// Sets the handshake timeout.
    pub fn handshake_timeout(mut self, timeout: Duration) -> Self {
        self.handshake_timeout = timeout;
        self
    }

    /// Sets how received data is delivered (default here: [`Delivery::Messages`]; use
    /// [`Delivery::DEFAULT_CHUNKS`] to receive huge messages in bounded memory).
    pub fn delivery(mut self, delivery: Delivery) -> Self {
        self.config.delivery = Some(delivery);
        self
    }

    /// Adds an extension, built by `make` for each connection: a client offers it, a server
    /// negotiates it against the client's offers.
    ///
    /// ```
    /// use wsproto::upgrade::UpgradeConfig;
    /// use wsproto::extensions::PerMessageDeflate;
    /// let config = UpgradeConfig::default().extension(PerMessageDeflate::new);
    /// let tuned = UpgradeConfig::default().extension(|| PerMessageDeflate::new().server_no_context_takeover(true));
    /// # let _ = (config, tuned);
    /// ```
    pub fn extension<E, F>(mut self, make: F) -> Self
    where
        E: Extension,
        F: Fn() -> E + Send + Sync + 'static,
    {
        self.extensions.push(Arc::new(move || Box::new(make()) as Box<dyn Extension>));
        self
    }

    /// A handshake endpoint for `role` with these settings and fresh extensions.
    pub(crate) fn endpoint(&self, role: ConnectionType) -> WsConnection {
        let mut config = self.config.clone();
        config.delivery.get_or_insert(Delivery::Messages);
        self.extensions
            .iter()
            .fold(WsConnection::with_config(role, config), |ws, make| ws.with_boxed_extension(make()))
    }
}

/// The first of `ours` (in our order of preference) that `request` offers.
fn first_offered(ours: &[String], request: &Request) -> Option<String> {
    ours.iter().find(|p| request.subprotocols.contains(p)).cloned()
}

/// An HTTP rejection: what a client received, or what a server's callback decided.
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
) -> impl Future<Output = Result<(WebSocket<T>, AcceptConnection), Error>>
where
    T: AsyncRead + AsyncWrite + Unpin,
{
    // Boxed whole (the timer, the settings, the handshake state): while the handshake runs,
    // the caller's future holds one pointer, instead of being enlarged by all of it for the
    // connection's whole life.
    Box::pin(async move {
        let timeout = config.handshake_timeout;
        with_timeout(timeout, client_handshake(io, request, config)).await
    })
}

async fn client_handshake<T>(
    mut io: T,
    request: Request,
    config: UpgradeConfig,
) -> Result<(WebSocket<T>, AcceptConnection), Error>
where
    T: AsyncRead + AsyncWrite + Unpin,
{
    let mut ws = config.endpoint(ConnectionType::Client);
    let bytes = ws.send_bytes(request)?;
    io.write_all(&bytes).await?;
    io.flush().await?;
    let mut buf = BytesMut::with_capacity(1024);
    let mut rejection: Option<Rejection> = None;
    loop {
        while let Some(event) = ws.next_event() {
            match event {
                Event::AcceptConnection(accept) => return Ok((into_framed(io, ws), *accept)),
                Event::RejectConnection(reject) => {
                    let finished = !reject.has_body;
                    rejection = Some(Rejection {
                        status_code: reject.status_code,
                        headers: reject.headers,
                        body: Bytes::new(),
                    });
                    if finished {
                        return Err(rejected(rejection));
                    }
                }
                Event::RejectData(RejectData { data, body_finished }) => {
                    if let Some(r) = rejection.as_mut() {
                        if r.body.len() + data.len() <= config.max_reject_body {
                            let mut body = BytesMut::from(&r.body[..]);
                            body.extend_from_slice(&data);
                            r.body = body.freeze();
                        }
                    }
                    if body_finished {
                        return Err(rejected(rejection));
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
                return Err(Error::Rejected(Box::new(r)));
            }
            return Err(Error::Io(std::io::ErrorKind::UnexpectedEof.into()));
        }
        ws.receive_data(&buf)?;
    }
}

fn rejected(rejection: Option<Rejection>) -> Error {
    Error::Rejected(Box::new(rejection.unwrap_or_else(|| Rejection::new(0))))
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
) -> impl Future<Output = Result<(WebSocket<T>, Request), Error>>
where
    T: AsyncRead + AsyncWrite + Unpin,
    F: FnOnce(&Request) -> Decision,
{
    // Boxed whole, as in `client`: an idle server connection's task does not keep room for
    // the handshake.
    Box::pin(async move {
        let timeout = config.handshake_timeout;
        with_timeout(timeout, server_handshake(io, decide, config)).await
    })
}

/// [`server`] accepting every valid request, with the first of `config`'s
/// [`subprotocols`](UpgradeConfig::subprotocols) the client offered, and `config`'s extensions.
pub fn accept<T>(io: T, config: UpgradeConfig) -> impl Future<Output = Result<(WebSocket<T>, Request), Error>>
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
) -> Result<(WebSocket<T>, Request), Error>
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
            let bytes = ws.send_bytes(accept)?;
            io.write_all(&bytes).await?;
            io.flush().await?;
            Ok((into_framed(io, ws), *request))
        }
        Decision::Reject(rejection) => {
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

/// [`accept`], with the connection's lifecycle handled: a [`Session`] configured by
/// `config.session` (replies, keepalive, timeouts, clean close).
pub fn accept_session<T>(io: T, config: UpgradeConfig) -> impl Future<Output = Result<Session<T>, Error>>
where
    T: AsyncRead + AsyncWrite + Unpin,
{
    let session = config.session.clone();
    let accepted = accept(io, config);
    async move {
        let (ws, _request) = accepted.await?;
        Ok(Session::new(ws, session))
    }
}

/// [`connect`], with the connection's lifecycle handled (a [`Session`] with the default
/// [`SessionConfig`]).
pub async fn connect_session(url: &str) -> Result<(Session<MaybeTlsStream>, AcceptConnection), Error> {
    let (ws, accept) = connect(url).await?;
    Ok((Session::new(ws, SessionConfig::default()), accept))
}

/// Connects over plain TCP to a `ws://` URL and performs the client handshake, offering
/// permessage-deflate (with the `deflate` feature), within [`DEFAULT_CONNECT_TIMEOUT`] for the
/// TCP connection and [`DEFAULT_HANDSHAKE_TIMEOUT`] for the handshake. See [`connect_with`]
/// for other settings and for what URLs are accepted.
pub async fn connect(url: &str) -> Result<(WebSocket<MaybeTlsStream>, AcceptConnection), Error> {
    let config = UpgradeConfig::default();
    #[cfg(feature = "deflate")]
    let config = config.extension(crate::extensions::PerMessageDeflate::new);
    connect_with(url, config).await
}

/// [`connect`] with `config` (extensions, limits, delivery, timeouts): only what `config`
/// offers is offered.
///
/// The URL is parsed by the `url` crate: `ws` in any case (`WS://h/`), default port 80, IPv6
/// literals in brackets (`ws://[::1]:9001/`, sent as `Host: [::1]:9001`), international host
/// names IDNA-encoded, a query with or without a path (`ws://h?x=1` requests `/?x=1`). A
/// fragment is not sent. `wss` (port 443) connects with TLS when the `rustls` feature is on:
/// the server's certificate is checked for the URL's host (also sent as SNI) against the
/// webpki-roots certificates, or against your own `rustls::ClientConfig`
/// (`UpgradeConfig::tls_config`). Refused with [`Error::InvalidUrl`], saying why: another
/// scheme, `wss` without the `rustls` feature (connect TLS yourself and use [`client_url`]),
/// user information (`ws://user:pass@h/`: credentials are not sent by this helper), no host.
pub async fn connect_with(
    url: &str,
    config: UpgradeConfig,
) -> Result<(WebSocket<MaybeTlsStream>, AcceptConnection), Error> {
    let target = WsUrl::parse(url)?;
    if target.secure && cfg!(not(feature = "rustls")) {
        return Err(Error::InvalidUrl {
            url: url.to_owned(),
            reason: "wss:// needs the `rustls` feature (or connect TLS yourself: upgrade::client_url)",
        });
    }
    let connect = async {
        match &config.proxy {
            None => Ok(TcpStream::connect((target.host.as_str(), target.port)).await?),
            Some(proxy) => proxy.tunnel(&target).await,
        }
    };
    let io = match tokio::time::timeout(config.connect_timeout, connect).await {
        Ok(io) => io?,
        Err(_) => {
            return Err(Error::Io(std::io::Error::new(std::io::ErrorKind::TimedOut, "connect timed out")))
        }
    };
    io.set_nodelay(true)?;
    #[cfg(feature = "rustls")]
    let io = if target.secure {
        tls::connect(io, &target.host, &config).await.map_err(|e| match e {
            tls::Failure::Name => {
                Error::InvalidUrl { url: url.to_owned(), reason: "not a valid TLS server name" }
            }
            tls::Failure::Io(e) => Error::Io(e),
        })?
    } else {
        MaybeTlsStream::Plain(io)
    };
    #[cfg(not(feature = "rustls"))]
    let io = MaybeTlsStream::Plain(io);
    client(io, config.url_request(&target), config).await
}

/// The stream under a WebSocket opened by [`connect`]: plain TCP for `ws://`, TLS over TCP
/// for `wss://` (feature `rustls`).
#[derive(Debug)]
#[non_exhaustive]
pub enum MaybeTlsStream {
    /// `ws://`.
    Plain(TcpStream),
    /// `wss://`: tokio-rustls over TCP.
    #[cfg(feature = "rustls")]
    Rustls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
}

impl AsyncRead for MaybeTlsStream {
    fn poll_read(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        match self.get_mut() {
            MaybeTlsStream::Plain(io) => std::pin::Pin::new(io).poll_read(cx, buf),
            #[cfg(feature = "rustls")]
            MaybeTlsStream::Rustls(io) => std::pin::Pin::new(io.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for MaybeTlsStream {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        match self.get_mut() {
            MaybeTlsStream::Plain(io) => std::pin::Pin::new(io).poll_write(cx, buf),
            #[cfg(feature = "rustls")]
            MaybeTlsStream::Rustls(io) => std::pin::Pin::new(io.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        match self.get_mut() {
            MaybeTlsStream::Plain(io) => std::pin::Pin::new(io).poll_flush(cx),
            #[cfg(feature = "rustls")]
            MaybeTlsStream::Rustls(io) => std::pin::Pin::new(io.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        match self.get_mut() {
            MaybeTlsStream::Plain(io) => std::pin::Pin::new(io).poll_shutdown(cx),
            #[cfg(feature = "rustls")]
            MaybeTlsStream::Rustls(io) => std::pin::Pin::new(io.as_mut()).poll_shutdown(cx),
        }
    }
}

/// TLS for `wss://` (feature `rustls`).
#[cfg(feature = "rustls")]
mod tls {
    use std::sync::Arc;

    use tokio::net::TcpStream;
    use tokio_rustls::rustls::pki_types::ServerName;
    use tokio_rustls::rustls::{ClientConfig, RootCertStore};
    use tokio_rustls::TlsConnector;

    use super::{MaybeTlsStream, UpgradeConfig};

    pub(super) enum Failure {
        Name,
        Io(std::io::Error),
    }

    /// The default client configuration: webpki-roots, the ring provider, safe defaults.
    fn default_config() -> Arc<ClientConfig> {
        let roots = RootCertStore { roots: webpki_roots::TLS_SERVER_ROOTS.to_vec() };
        let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
        let config = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("the ring provider supports the default protocol versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
        Arc::new(config)
    }

    pub(super) async fn connect(
        io: TcpStream,
        host: &str,
        config: &UpgradeConfig,
    ) -> Result<MaybeTlsStream, Failure> {
        let name = ServerName::try_from(host.to_owned()).map_err(|_| Failure::Name)?;
        let tls = config.tls.clone().unwrap_or_else(default_config);
        let stream = TlsConnector::from(tls).connect(name, io).await.map_err(Failure::Io)?;
        Ok(MaybeTlsStream::Rustls(Box::new(stream)))
    }
}

/// The client handshake over `io` (a TCP or TLS stream you connected) for `url`: the `Host`
/// header and the request target come from the URL, parsed as by [`connect_with`] (`wss`
/// URLs are fine here: the TLS is yours).
pub async fn client_url<T>(
    io: T,
    url: &str,
    config: UpgradeConfig,
) -> Result<(WebSocket<T>, AcceptConnection), Error>
where
    T: AsyncRead + AsyncWrite + Unpin,
{
    let target = WsUrl::parse(url)?;
    client(io, config.url_request(&target), config).await
}

/// An HTTP proxy that [`connect_with`] opens a tunnel through with `CONNECT`, for `ws://` and
/// `wss://` alike (TLS runs end to end, through the tunnel).
///
/// ```
/// use wsproto::upgrade::{Proxy, UpgradeConfig};
/// let proxy = Proxy::http("http://user:secret@proxy.example:3128").unwrap();
/// let config = UpgradeConfig::default().proxy(proxy);
/// # let _ = config;
/// ```
#[derive(Clone)]
pub struct Proxy {
    host: String,
    port: u16,
    /// `Proxy-Authorization` value (Basic), from the URL's user information.
    authorization: Option<String>,
}

impl fmt::Debug for Proxy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Proxy")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("authorization", &self.authorization.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

impl Proxy {
    /// A proxy from its URL: `http://host[:port]` (port 80 by default), with
    /// `http://user:password@host:port` for Basic authentication (percent-decoded).
    pub fn http(url: &str) -> Result<Proxy, Error> {
        let bad = |reason| Error::InvalidUrl { url: url.to_owned(), reason };
        let parsed = url::Url::parse(url).map_err(|_| bad("malformed proxy URL"))?;
        if parsed.scheme() != "http" {
            return Err(bad("not an http:// proxy URL"));
        }
        let host = match parsed.host() {
            Some(url::Host::Domain(name)) => name.to_owned(),
            Some(url::Host::Ipv4(ip)) => ip.to_string(),
            Some(url::Host::Ipv6(ip)) => ip.to_string(),
            None => return Err(bad("no host")),
        };
        let authorization = if parsed.username().is_empty() && parsed.password().is_none() {
            None
        } else {
            use base64::Engine as _;
            let decode = |s: &str| {
                percent_encoding::percent_decode_str(s)
                    .decode_utf8()
                    .map(|s| s.into_owned())
                    .map_err(|_| bad("user information is not UTF-8"))
            };
            let user = decode(parsed.username())?;
            let password = decode(parsed.password().unwrap_or(""))?;
            let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
            Some(format!("Basic {token}"))
        };
        Ok(Proxy { host, port: parsed.port().unwrap_or(80), authorization })
    }

    /// Connects to the proxy and asks it for a tunnel to `target`.
    async fn tunnel(&self, target: &WsUrl) -> Result<TcpStream, Error> {
        let mut io = TcpStream::connect((self.host.as_str(), self.port)).await?;
        let authority = match target.host.parse::<std::net::Ipv6Addr>() {
            Ok(_) => format!("[{}]:{}", target.host, target.port),
            Err(_) => format!("{}:{}", target.host, target.port),
        };
        let mut request = format!("CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n");
        if let Some(authorization) = &self.authorization {
            request.push_str(&format!("Proxy-Authorization: {authorization}\r\n"));
        }
        request.push_str("\r\n");
        io.write_all(request.as_bytes()).await?;
        // Read the response head byte by byte: nothing past it may be consumed (the tunnel's
        // first bytes belong to TLS or the WebSocket handshake).
        let mut head = Vec::with_capacity(256);
        while !head.ends_with(b"\r\n\r\n") {
            if head.len() > 16 << 10 {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    "proxy response head too large",
                )
                .into());
            }
            let mut byte = [0u8; 1];
            if io.read(&mut byte).await? == 0 {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "proxy closed the connection",
                )
                .into());
            }
            head.push(byte[0]);
        }
        let mut headers = [httparse::EMPTY_HEADER; 64];
        let mut response = httparse::Response::new(&mut headers);
        match response.parse(&head) {
            Ok(httparse::Status::Complete(_)) => {}
            _ => {
                return Err(
                    std::io::Error::new(std::io::ErrorKind::InvalidData, "malformed proxy response").into()
                )
            }
        }
        match response.code {
            Some(code) if (200..300).contains(&code) => Ok(io),
            Some(code) => Err(Error::ProxyRefused(code)),
            None => {
                Err(std::io::Error::new(std::io::ErrorKind::InvalidData, "malformed proxy response").into())
            }
        }
    }
}

/// Default time allowed to establish the TCP connection in [`connect`].
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// A `ws://` or `wss://` URL, taken apart for a request.
#[derive(Debug, PartialEq)]
pub(crate) struct WsUrl {
    pub(crate) secure: bool,
    /// The host to connect to (an IPv6 literal without brackets; a name IDNA-encoded).
    host: String,
    port: u16,
    /// The `Host` header: the host (IPv6 in brackets) and the port unless it is the default.
    host_header: String,
    /// Path and query.
    target: String,
}

impl WsUrl {
    pub(crate) fn parse(input: &str) -> Result<WsUrl, Error> {
        let bad = |reason| Error::InvalidUrl { url: input.to_owned(), reason };
        let url = url::Url::parse(input).map_err(|e| {
            bad(match e {
                url::ParseError::EmptyHost => "no host",
                url::ParseError::InvalidPort => "invalid port",
                url::ParseError::InvalidIpv6Address => "invalid IPv6 address",
                url::ParseError::IdnaError => "invalid international host name",
                url::ParseError::RelativeUrlWithoutBase => "not an absolute URL (ws://host/path)",
                _ => "malformed URL",
            })
        })?;
        let secure = match url.scheme() {
            "ws" => false,
            "wss" => true,
            _ => return Err(bad("not a ws:// or wss:// URL")),
        };
        if !url.username().is_empty() || url.password().is_some() {
            return Err(bad("user information in the URL is not sent: remove `user@`"));
        }
        let (host, bracketed) = match url.host() {
            Some(url::Host::Domain(name)) => (name.to_owned(), name.to_owned()),
            Some(url::Host::Ipv4(ip)) => (ip.to_string(), ip.to_string()),
            Some(url::Host::Ipv6(ip)) => (ip.to_string(), format!("[{ip}]")),
            None => return Err(bad("no host")),
        };
        let default_port = if secure { 443 } else { 80 };
        let port = url.port().unwrap_or(default_port);
        let host_header = if port == default_port { bracketed } else { format!("{bracketed}:{port}") };
        let mut target = url.path().to_owned();
        if target.is_empty() {
            target.push('/');
        }
        if let Some(query) = url.query() {
            target.push('?');
            target.push_str(query);
        }
        Ok(WsUrl { secure, host, port, host_header, target })
    }

    pub(crate) fn request(&self) -> Request {
        Request::new(self.host_header.clone(), self.target.clone())
    }
}

/// Moves the established connection and every byte read past the handshake into a `Framed`.
fn into_framed<T>(io: T, ws: WsConnection) -> WebSocket<T>
where
    T: AsyncRead + AsyncWrite,
{
    let mut conn = ws.into_connection().expect("handshake finished: the connection exists");
    let read_buf = conn.take_buffered();
    let mut parts = FramedParts::new::<Event>(io, WsCodec::new(conn));
    parts.read_buf = read_buf;
    Framed::from_parts(parts)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let ok = |url: &str, host: &str, port: u16, header: &str, target: &str| {
            let parsed = WsUrl::parse(url).unwrap_or_else(|e| panic!("{url}: {e}"));
            assert_eq!(
                (parsed.host.as_str(), parsed.port, parsed.host_header.as_str(), parsed.target.as_str()),
                (host, port, header, target),
                "{url}"
            );
        };
        ok("ws://h:9001/p?q", "h", 9001, "h:9001", "/p?q");
        ok("ws://h", "h", 80, "h", "/");
        ok("ws://h:80/", "h", 80, "h", "/");
        ok("WS://Example.COM/Chat", "example.com", 80, "example.com", "/Chat");
        ok("ws://h?x=1", "h", 80, "h", "/?x=1");
        ok("ws://h/p#frag", "h", 80, "h", "/p");
        ok("ws://[::1]:9030/", "::1", 9030, "[::1]:9030", "/");
        ok("ws://[::1]/", "::1", 80, "[::1]", "/");
        ok("ws://127.0.0.1:5/a%20b", "127.0.0.1", 5, "127.0.0.1:5", "/a%20b");
        ok("ws://bücher.example/", "xn--bcher-kva.example", 80, "xn--bcher-kva.example", "/");
        ok("wss://h/", "h", 443, "h", "/");
        ok("wss://h:8443/", "h", 8443, "h:8443", "/");
        assert!(WsUrl::parse("wss://h/").unwrap().secure);
        for (bad, why) in [
            ("http://h/", "not a ws://"),
            ("ws://h:x/", "invalid port"),
            ("ws://h:99999/", "invalid port"),
            ("ws://user:pw@h/", "user information"),
            ("ws://user@h/", "user information"),
            ("ws://", "host"),
            ("h:9001/p", "not a ws://"),
            ("ws://[::1/", "IPv6"),
        ] {
            let e = WsUrl::parse(bad).unwrap_err();
            assert!(e.to_string().contains(why), "{bad}: {e}");
        }
    }
}
