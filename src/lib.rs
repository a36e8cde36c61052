#![doc = include_str!("../README.md")]
#![deny(unsafe_code)]
#![warn(missing_docs, unreachable_pub, rust_2018_idioms)]
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod close;
#[cfg(feature = "tokio")]
pub mod codec;
pub mod config;
pub mod connection;
pub mod error;
pub mod event;
pub mod extensions;
pub mod frame;
pub mod handshake;
pub mod headers;
#[cfg(feature = "http")]
pub mod http_compat;
pub mod mask;
mod role;
pub mod state;
#[cfg(feature = "tokio")]
pub mod upgrade;
pub mod utf8;
pub mod ws_connection;

pub use close::CloseCode;
pub use config::{Config, Delivery, Limits};
pub use connection::{Connection, Events};
pub use error::{ExtensionError, LocalProtocolError, PeerViolation, ProtocolError, RemoteProtocolError};
pub use event::{
    AcceptConnection, BytesMessage, CloseConnection, CloseSource, Event, Headers, Ping, Pong,
    RejectConnection, RejectData, Request, TextMessage,
};
#[cfg(feature = "deflate")]
pub use extensions::PerMessageDeflate;
pub use handshake::Handshake;
pub use mask::KeySource;
pub use role::ConnectionType;
pub use state::ConnectionState;
pub use utf8::Utf8Bytes;
pub use ws_connection::WsConnection;
