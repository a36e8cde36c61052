//! An axum extractor (feature `axum`, for axum 0.8): [`WebSocketUpgrade`], in the role of
//! axum's own, handing over wsproto's [`Session`] (or the bare transport) over HTTP/1.1 and
//! HTTP/2.
//!
//! ```no_run
//! use futures_util::{SinkExt, StreamExt};
//! use wsproto::axum::WebSocketUpgrade;
//! use wsproto::Event;
//!
//! // Route it with `Router::new().route("/ws", any(ws))`: `any`, not `get`, since over
//! // HTTP/2 the upgrade is a CONNECT.
//! async fn ws(upgrade: WebSocketUpgrade) -> axum_core::response::Response {
//!     upgrade.on_upgrade(|mut ws| async move {
//!         while let Some(Ok(event)) = ws.next().await {
//!             if let Event::TextMessage(m) = event {
//!                 if ws.send(m.into()).await.is_err() {
//!                     break;
//!                 }
//!             }
//!         }
//!     })
//! }
//! ```
//!
//! Over HTTP/2 (RFC 8441), serve with extended CONNECT enabled: with `axum::serve` it is on
//! for HTTP/2 connections; with hyper directly, `http2::Builder::enable_connect_protocol()`.

use std::future::Future;

use axum_core::extract::FromRequestParts;
use axum_core::response::{IntoResponse, Response};
use http::request::Parts;
use http::Version;

use crate::adapters::error::Error;
use crate::event::{AcceptConnection, Request};
use crate::integrations::hyper::{IncomingUpgrade, PendingUpgrade, Refused, UpgradedIo};
use crate::session::Session;
use crate::upgrade::UpgradeConfig;

/// Called with the error when the upgrade fails after the response was sent.
type FailedUpgrade = Box<dyn FnOnce(Error) + Send>;

/// Extractor of a WebSocket upgrade request (HTTP/1.1 `GET` with `Upgrade: websocket`, or
/// HTTP/2 extended CONNECT). Answer it with [`on_upgrade`](Self::on_upgrade), which returns
/// the response (101 or 200) and runs your callback on the WebSocket once it is up.
///
/// A request that is not a valid upgrade is refused by the extractor with the status the
/// violation calls for ([`Refused`]: 400, 426 with `Sec-WebSocket-Version: 13`, 431).
///
/// Defaults: the settings of an [`UpgradeConfig`] found in the request's extensions (put
/// there by a layer such as axum's `Extension(config)`, so that all requests share its
/// [`DeflatePool`](crate::extensions::DeflatePool)), else [`UpgradeConfig::default`] (a pool
/// per request): permessage-deflate is negotiated when the client offers it (feature `deflate`),
/// whole messages are delivered, limits are [`Limits::default`](crate::Limits), and the
/// session's keepalive and timeouts are [`SessionConfig::default`](crate::SessionConfig); set
/// others with [`config`](Self::config).
pub struct WebSocketUpgrade {
    incoming: IncomingUpgrade,
    config: UpgradeConfig,
    on_failed: Option<FailedUpgrade>,
}

impl std::fmt::Debug for WebSocketUpgrade {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebSocketUpgrade")
            .field("request", self.incoming.request())
            .field("version", &self.incoming.version())
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl<S: Send + Sync> FromRequestParts<S> for WebSocketUpgrade {
    type Rejection = Refused;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Refused> {
        let incoming = IncomingUpgrade::from_parts(parts)?;
        Ok(WebSocketUpgrade {
            incoming,
            config: parts.extensions.get::<UpgradeConfig>().cloned().unwrap_or_else(default_config),
            on_failed: None,
        })
    }
}

/// The settings of a request whose handler sets none: the defaults, with a pool of their own
/// (a connection's states stay its own). Share a config through [`WebSocketUpgrade::config`]
/// to share its pool.
fn default_config() -> UpgradeConfig {
    UpgradeConfig::default()
}

impl IntoResponse for Refused {
    fn into_response(self) -> Response {
        self.response().into_response()
    }
}

impl WebSocketUpgrade {
    /// Replaces the settings: limits, delivery, extensions, compression, subprotocols,
    /// session keepalive and timeouts. permessage-deflate stays on unless `config` turns it
    /// off ([`UpgradeConfig::compression`]). Hand every request a clone of one config so that
    /// its connections share the config's [`DeflatePool`](crate::extensions::DeflatePool).
    /// Call it before [`protocols`](Self::protocols), which sets `config`'s subprotocols.
    ///
    /// ```
    /// use wsproto::extensions::PerMessageDeflate;
    /// use wsproto::upgrade::UpgradeConfig;
    /// use wsproto::Config;
    ///
    /// let config = UpgradeConfig::default()
    ///     .config(Config::default().max_message_size(1 << 20))
    ///     .deflate(|| PerMessageDeflate::new().server_no_context_takeover(true));
    /// # let _ = config;
    /// ```
    pub fn config(mut self, config: UpgradeConfig) -> Self {
        self.config = config;
        self
    }

    /// Selects a subprotocol: the first of `protocols` (the server's, in preference order)
    /// that the client offered. Without a match, none is selected (check
    /// [`selected_protocol`](Self::selected_protocol) to refuse such clients).
    pub fn protocols<I, P>(mut self, protocols: I) -> Self
    where
        I: IntoIterator<Item = P>,
        P: Into<String>,
    {
        self.config = self.config.subprotocols(protocols);
        self
    }

    /// The subprotocol that will be selected (see [`protocols`](Self::protocols) and
    /// [`UpgradeConfig::subprotocols`]).
    pub fn selected_protocol(&self) -> Option<String> {
        self.config.select_subprotocol(self.incoming.request())
    }

    /// The request: target, subprotocols and extensions offered, headers.
    pub fn request(&self) -> &Request {
        self.incoming.request()
    }

    /// `HTTP/1.1`, or `HTTP/2` for an extended CONNECT.
    pub fn version(&self) -> Version {
        self.incoming.version()
    }

    /// Calls `callback` with the error if the connection fails to upgrade after the response
    /// (by default such errors are dropped: the client is gone).
    pub fn on_failed_upgrade(mut self, callback: impl FnOnce(Error) + Send + 'static) -> Self {
        self.on_failed = Some(Box::new(callback));
        self
    }

    /// The response to return from the handler; once it is sent, `callback` runs (in a new
    /// task) with the WebSocket as a [`Session`]: replies, keepalive and timeouts handled
    /// ([`Session::into_inner`] gives the bare `Framed` of a tokio-util pipeline).
    pub fn on_upgrade<F, Fut>(self, callback: F) -> Response
    where
        F: FnOnce(Session<UpgradedIo>) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let (response, pending) = match self.incoming.accept(AcceptConnection::new(), &self.config) {
            Ok(accepted) => accepted,
            Err(refused) => return refused.into_response(),
        };
        let on_failed = self.on_failed;
        tokio::spawn(run(pending, callback, on_failed));
        response.map(|()| axum_core::body::Body::empty())
    }
}

async fn run<F, Fut>(pending: PendingUpgrade, callback: F, on_failed: Option<FailedUpgrade>)
where
    F: FnOnce(Session<UpgradedIo>) -> Fut,
    Fut: Future<Output = ()>,
{
    match pending.await {
        Ok(ws) => callback(ws).await,
        Err(e) => {
            if let Some(on_failed) = on_failed {
                on_failed(e);
            }
        }
    }
}
