use std::fmt;
use std::sync::Arc;
use std::time::Duration;

#[cfg(feature = "hyper")]
use super::first_offered;
use super::url::WsUrl;
use super::Proxy;
use crate::config::{Config, Delivery};
use crate::event::Request;
use crate::extensions::Extension;
#[cfg(feature = "deflate")]
use crate::extensions::{DeflatePool, PerMessageDeflate};
use crate::lifecycle::SessionConfig;
use crate::role::ConnectionType;
use crate::ws_connection::WsConnection;

/// Default time allowed for the whole opening handshake.
pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Makes a fresh extension object for each connection.
type ExtensionFactory = Arc<dyn Fn() -> Box<dyn Extension> + Send + Sync>;

/// Makes the permessage-deflate object of each connection.
#[cfg(feature = "deflate")]
type DeflateFactory = Arc<dyn Fn() -> PerMessageDeflate + Send + Sync>;

/// Settings of the upgrade helper.
///
/// Every entry point (`connect`, `connect_with`, `client`, `client_url`, `accept`, `server`,
/// the `hyper` and `axum` helpers) takes its settings from here, so they share one set of
/// defaults: with the `deflate` feature, permessage-deflate is offered by clients and accepted
/// by servers unless turned off with [`compression(false)`](Self::compression), and setting
/// anything else keeps it.
///
/// The config owns a [`DeflatePool`] (made by `default()`, shared by the config's clones)
/// that every connection made with it uses: clone one config for all the connections of a
/// server to share their compression states.
#[derive(Clone)]
#[non_exhaustive]
pub struct UpgradeConfig {
    /// Connection settings and limits (including the handshake head limit). Its
    /// [`delivery`](Config::delivery) defaults to whole messages here.
    pub config: Config,
    /// Time allowed for the whole handshake (a slowloris peer is cut off after it).
    pub handshake_timeout: Duration,
    /// Time allowed to establish the transport in [`connect`](crate::upgrade::connect): the TCP
    /// connection (or the proxy's tunnel) and, for `wss://`, the TLS handshake; past it,
    /// [`Error::ConnectTimeout`](crate::Error::ConnectTimeout).
    pub connect_timeout: Duration,
    /// An HTTP proxy that [`connect_with`](crate::upgrade::connect_with) tunnels through (`CONNECT`), if any.
    pub proxy: Option<Proxy>,
    /// The TLS client configuration for `wss://` in [`connect_with`](crate::upgrade::connect_with) (default: webpki-roots
    /// and the roots of [`tls_roots_pem`](Self::tls_roots_pem)).
    #[cfg(feature = "rustls-no-provider")]
    pub tls: Option<Arc<tokio_rustls::rustls::ClientConfig>>,
    /// Certificates trusted besides webpki-roots when no `tls` configuration is given.
    #[cfg(feature = "rustls-no-provider")]
    pub(crate) tls_roots: Vec<tokio_rustls::rustls::pki_types::CertificateDer<'static>>,
    /// Most bytes of a rejection's body a client keeps in [`Rejection::body`](super::Rejection)
    /// (default 64 KiB): the body is read to its end and cut there.
    pub max_reject_body: usize,
    /// What the session every entry point returns does by itself (replies, keepalive,
    /// timeouts).
    pub session: SessionConfig,
    /// Subprotocols in order of preference: a client created from a URL offers them; a
    /// server ([`accept`](crate::upgrade::accept), the `hyper` and `axum` helpers) selects the first one the client
    /// offered.
    pub subprotocols: Vec<String>,
    /// Extensions to offer (client) or negotiate (server), one fresh object per connection.
    extensions: Vec<ExtensionFactory>,
    /// permessage-deflate for each connection, if on.
    #[cfg(feature = "deflate")]
    deflate: Option<DeflateFactory>,
    /// The pool the permessage-deflate of every connection made with this config uses.
    #[cfg(feature = "deflate")]
    deflate_pool: DeflatePool,
}

impl Default for UpgradeConfig {
    fn default() -> Self {
        UpgradeConfig {
            config: Config::default(),
            handshake_timeout: DEFAULT_HANDSHAKE_TIMEOUT,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            proxy: None,
            #[cfg(feature = "rustls-no-provider")]
            tls: None,
            #[cfg(feature = "rustls-no-provider")]
            tls_roots: Vec::new(),
            max_reject_body: 64 << 10,
            session: SessionConfig::default(),
            subprotocols: Vec::new(),
            extensions: Vec::new(),
            #[cfg(feature = "deflate")]
            deflate: Some(default_deflate()),
            #[cfg(feature = "deflate")]
            deflate_pool: DeflatePool::new(),
        }
    }
}

/// The permessage-deflate of [`UpgradeConfig::default`].
#[cfg(feature = "deflate")]
fn default_deflate() -> DeflateFactory {
    Arc::new(PerMessageDeflate::new)
}

impl fmt::Debug for UpgradeConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut f = f.debug_struct("UpgradeConfig");
        f.field("config", &self.config)
            .field("handshake_timeout", &self.handshake_timeout)
            .field("connect_timeout", &self.connect_timeout)
            .field("proxy", &self.proxy)
            .field("max_reject_body", &self.max_reject_body)
            .field("session", &self.session)
            .field("subprotocols", &self.subprotocols)
            .field("extensions", &self.extensions.len());
        #[cfg(feature = "deflate")]
        f.field("deflate", &self.deflate.is_some()).field("deflate_pool", &self.deflate_pool);
        f.finish()
    }
}

impl UpgradeConfig {
    /// Sets the connection configuration.
    pub fn config(mut self, config: Config) -> Self {
        self.config = config;
        self
    }

    /// Sets the whole TLS client configuration for `wss://` (roots to trust, client
    /// certificates, ALPN, crypto provider...), built with the re-exported
    /// [`rustls`](crate::rustls). Without one, the webpki-roots certificates and those of
    /// [`tls_roots_pem`](Self::tls_roots_pem) are trusted, with the process-level crypto
    /// provider if one is installed, else ring (feature `rustls`).
    ///
    /// To trust a private CA, [`tls_roots_pem`](Self::tls_roots_pem) needs no rustls code.
    /// Building a `ClientConfig` yourself, prefer
    /// `ClientConfig::builder_with_provider(..)` when your app links more than one provider:
    /// `ClientConfig::builder()` panics if it cannot tell which one to use.
    #[cfg(feature = "rustls-no-provider")]
    pub fn tls_config(mut self, config: Arc<tokio_rustls::rustls::ClientConfig>) -> Self {
        self.tls = Some(config);
        self
    }

    /// Trusts the certificates of a PEM input (a private CA, a self-signed server) for
    /// `wss://`, besides the webpki-roots certificates. Can be called more than once; the
    /// roots add up. Ignored when a whole [`tls_config`](Self::tls_config) is given, which
    /// carries its own roots.
    ///
    /// Refused with [`Error::TlsConfig`](crate::Error::TlsConfig) when the input holds no
    /// `CERTIFICATE` block, is malformed, or holds a certificate that cannot be a trust anchor.
    ///
    /// ```no_run
    /// # async fn run() -> Result<(), wsproto::Error> {
    /// use wsproto::upgrade::{self, UpgradeConfig};
    ///
    /// let ca = std::fs::read("ca.pem")?;
    /// let config = UpgradeConfig::default().tls_roots_pem(&ca)?;
    /// let (ws, _) = upgrade::connect_with("wss://internal.example/ws", config).await?;
    /// # drop(ws); Ok(()) }
    /// ```
    #[cfg(feature = "rustls-no-provider")]
    pub fn tls_roots_pem(mut self, pem: &[u8]) -> Result<Self, crate::adapters::error::Error> {
        self.tls_roots.extend(super::tls::parse_roots(pem)?);
        Ok(self)
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

    /// Sets what the session does by itself (replies, keepalive, timeouts; see
    /// [`SessionConfig`]).
    ///
    /// ```
    /// use std::time::Duration;
    /// use wsproto::upgrade::UpgradeConfig;
    /// use wsproto::SessionConfig;
    /// let config = UpgradeConfig::default()
    ///     .session(SessionConfig::default().keepalive(Some(Duration::from_secs(5)), Duration::from_secs(5)));
    /// # let _ = config;
    /// ```
    pub fn session(mut self, session: SessionConfig) -> Self {
        self.session = session;
        self
    }

    /// Sets the time allowed to establish the TCP connection (and the proxy's tunnel) when
    /// connecting to a URL.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Sets the largest rejection body a client keeps (a longer one is cut there: the
    /// rejection is reported all the same).
    pub fn max_reject_body(mut self, bytes: usize) -> Self {
        self.max_reject_body = bytes;
        self
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

    /// Turns permessage-deflate on (the default, with the `deflate` feature) or off: when
    /// on, clients offer it and servers accept it on every entry point. Turning it on again
    /// after [`deflate`](Self::deflate) keeps those settings.
    ///
    /// ```
    /// use wsproto::upgrade::UpgradeConfig;
    /// let plain = UpgradeConfig::default().compression(false);
    /// # let _ = plain;
    /// ```
    #[cfg(feature = "deflate")]
    pub fn compression(mut self, enabled: bool) -> Self {
        self.deflate = match (enabled, self.deflate.take()) {
            (false, _) => None,
            (true, current) => Some(current.unwrap_or_else(default_deflate)),
        };
        self
    }

    /// Turns permessage-deflate on with the settings `make` builds for each connection (a
    /// pool given there is kept, else the config's [`deflate_pool`](Self::deflate_pool) is
    /// used).
    ///
    /// ```
    /// use wsproto::upgrade::UpgradeConfig;
    /// use wsproto::extensions::PerMessageDeflate;
    /// let tuned = UpgradeConfig::default().deflate(|| PerMessageDeflate::new().server_no_context_takeover(true));
    /// # let _ = tuned;
    /// ```
    #[cfg(feature = "deflate")]
    pub fn deflate<F>(mut self, make: F) -> Self
    where
        F: Fn() -> PerMessageDeflate + Send + Sync + 'static,
    {
        self.deflate = Some(Arc::new(make));
        self
    }

    /// Replaces the pool of compression states shared by the connections made with this
    /// config (and its clones made after this call), e.g. to share one between several
    /// configs or to set its capacity.
    #[cfg(feature = "deflate")]
    pub fn deflate_pool(mut self, pool: DeflatePool) -> Self {
        self.deflate_pool = pool;
        self
    }

    /// Adds an extension, built by `make` for each connection: a client offers it, a server
    /// negotiates it against the client's offers. An extension named `permessage-deflate`
    /// replaces the config's own (set up with [`deflate`](Self::deflate) instead, which
    /// gives it the config's pool).
    ///
    /// ```
    /// use wsproto::upgrade::UpgradeConfig;
    /// # use wsproto::extensions::PerMessageDeflate as MyExtension;
    /// let config = UpgradeConfig::default().extension(MyExtension::new);
    /// # let _ = config;
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
        let extensions: Vec<Box<dyn Extension>> = self.extensions.iter().map(|make| make()).collect();
        #[cfg(feature = "deflate")]
        let extensions = {
            let mut extensions = extensions;
            let replaced = extensions.iter().any(|e| e.name() == PerMessageDeflate::NAME);
            if let (Some(make), false) = (&self.deflate, replaced) {
                extensions.push(Box::new(make().pool_if_none(&self.deflate_pool)));
            }
            extensions
        };
        extensions
            .into_iter()
            .fold(WsConnection::with_config(role, config), |ws, extension| ws.with_boxed_extension(extension))
    }
}

/// Default time allowed to establish the transport (TCP or the proxy's tunnel, then TLS) in
/// [`connect`](crate::upgrade::connect).
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
