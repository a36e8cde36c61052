#![doc = include_str!("../README.md")]
//!
//! ## Crate map
//!
//! * Sans-IO core: [`WsConnection`] (handshake, then frames), or [`handshake::Handshake`] and
//!   [`Connection`] on their own; [`Event`] and its structs; [`Config`], [`Delivery`],
//!   [`Limits`].
//! * Broadcast: [`PreparedMessage`], a message framed (and compressed) once and sent to many
//!   connections.
//! * Errors: [`LocalProtocolError`] (our misuse), [`RemoteProtocolError`] (the peer's handshake
//!   violation), [`PeerViolation`] (the peer's violation after it, inside a received
//!   [`CloseConnection`]).
//! * Layers: [`frame`] (opcodes, headers, masking), [`extensions`] (the extension trait and
//!   permessage-deflate), [`handshake`] (the HTTP/1.1 upgrade and its helpers).
//! * With the `tokio` feature: `codec` (the tokio-util codec), `upgrade` (the async
//!   handshake helper, `connect`) and `session` (replies, keepalive, timeouts, clean close);
//!   with `http`: `http_compat`; with `hyper`: `hyper` (servers and clients on hyper 1.x,
//!   HTTP/1.1 and HTTP/2); with `axum`: `axum` (the `WebSocketUpgrade` extractor).
#![deny(unsafe_code)]
#![warn(missing_docs, unreachable_pub, rust_2018_idioms)]
// Every public type decides: `#[non_exhaustive]`, or exhaustive with the reason (rustls's rule).
#![warn(clippy::exhaustive_enums, clippy::exhaustive_structs)]
#![cfg_attr(docsrs, feature(doc_cfg))]

// One public path per type: the core's types are re-exported here from private modules; the
// public modules hold what belongs to one layer (frames, extensions, the handshake, the tokio
// adapters).
//
// Floors: a module imports only from its own floor or below (scripts/check-layers.sh checks it
// in CI; scripts/layers-allow.txt lists the exceptions still to pay off).
//   1 wire          wire/ (close, mask, utf8, headers)
//   2 vocabulary    role, config, error, event
//   3 frames        frame/
//   4 messages      message, extensions/
//   5 connection    connection/ (the connection, state, misuse, prepared)
//   6 handshake     handshake/, trace (the log events, feature `tracing`)
//   7 endpoint      ws_connection, lifecycle/
//   8 tokio         adapters/ (codec, session, upgrade)
//   9 integrations  integrations/ (http_compat, hyper, axum)
#[cfg(feature = "tokio")]
mod adapters;
mod config;
mod connection;
mod error;
mod event;
pub mod extensions;
pub mod frame;
pub mod handshake;
mod integrations;
mod lifecycle;
mod message;
mod role;
mod trace;
mod wire;
mod ws_connection;

#[cfg(feature = "tokio")]
pub use adapters::{codec, error::Error, session, upgrade};
pub use config::{Config, Delivery, Limits};
pub use connection::misuse::LocalProtocolError;
pub use connection::prepared::PreparedMessage;
pub use connection::state::ConnectionState;
pub use connection::traffic::Traffic;
pub use connection::{Connection, Events};
pub use error::{ExtensionError, PeerViolation};
pub use event::{
    AcceptConnection, BytesMessage, CloseConnection, CloseSource, Event, Headers, Ping, Pong,
    RejectConnection, RejectData, Request, TextMessage,
};
pub use handshake::error::{ProtocolError, RemoteProtocolError};
#[cfg(feature = "axum")]
pub use integrations::axum;
#[cfg(feature = "http")]
pub use integrations::http_compat;
#[cfg(feature = "hyper")]
pub use integrations::hyper;
pub use lifecycle::{Lifecycle, LifecyclePhase, SessionConfig, Timeout};
pub use role::ConnectionType;
pub use wire::close::CloseCode;
pub use wire::mask::KeySource;
pub use wire::utf8::Utf8Bytes;
pub use ws_connection::WsConnection;

/// The rustls crate this crate's `wss://` support is built on (features `rustls`,
/// `rustls-no-provider`), for [`UpgradeConfig::tls_config`](crate::upgrade::UpgradeConfig::tls_config):
/// with it a `ClientConfig` needs no `rustls` dependency of your own, and so no second
/// crypto provider.
#[cfg(feature = "rustls-no-provider")]
pub use tokio_rustls::rustls;
