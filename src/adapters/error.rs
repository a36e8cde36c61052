//! The one error of the tokio layer: handshake helpers and sessions alike.

use std::fmt;

use crate::adapters::codec;
use crate::adapters::upgrade::Rejection;
use crate::connection::misuse::LocalProtocolError;
use crate::handshake::error::{ProtocolError, RemoteProtocolError};
use crate::lifecycle::Timeout;

/// The error of the tokio layer (feature `tokio`): of the handshake helpers, the
/// [`Session`](crate::session::Session) and the integrations alike, so `?` works across a whole
/// connection handler. Who is at fault is in the variant: the transport ([`Io`](Self::Io)), us
/// ([`Local`](Self::Local), [`InvalidUrl`](Self::InvalidUrl)), the peer
/// ([`Remote`](Self::Remote), [`Rejected`](Self::Rejected), [`ProxyRefused`](Self::ProxyRefused)),
/// or time ([`ConnectTimeout`](Self::ConnectTimeout), [`HandshakeTimeout`](Self::HandshakeTimeout),
/// [`Timeout`](Self::Timeout)).
///
/// A peer's violation after the handshake is not an error: it arrives as a received
/// [`CloseConnection`](crate::CloseConnection) whose close frame the session sends. The bare
/// codec's [`codec::Error`] converts into this type, and this type into [`std::io::Error`].
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
    /// [`connect`](crate::upgrade::connect) could not establish the transport in time: the TCP
    /// connection, the proxy's tunnel, or TLS (see
    /// [`UpgradeConfig::connect_timeout`](crate::upgrade::UpgradeConfig::connect_timeout)).
    ConnectTimeout,
    /// A [`Session`](crate::session::Session) ended on a timeout (see [`Timeout`]).
    Timeout(Timeout),
    /// The HTTP proxy refused to open a tunnel (its status code).
    ProxyRefused(u16),
    /// The URL given to [`connect`](crate::upgrade::connect) is not one it can connect to (the reason says why).
    InvalidUrl {
        /// The URL as given.
        url: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// TLS for `wss://` cannot be set up (features `rustls`, `rustls-no-provider`): roots
    /// that are not PEM certificates, or no crypto provider (the reason says which).
    TlsConfig {
        /// What is wrong and how to fix it.
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
            Error::ConnectTimeout => f.write_str("connecting timed out (TCP, proxy tunnel or TLS)"),
            Error::Timeout(t) => write!(f, "session ended: {t}"),
            Error::ProxyRefused(status) => {
                write!(f, "the proxy refused the tunnel with HTTP status {status}")
            }
            Error::InvalidUrl { url, reason } => write!(f, "invalid WebSocket URL {url:?}: {reason}"),
            Error::TlsConfig { reason } => write!(f, "TLS configuration: {reason}"),
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
    Error::Timeout: Timeout,
});

impl From<ProtocolError> for Error {
    fn from(e: ProtocolError) -> Self {
        match e {
            ProtocolError::Local(e) => Error::Local(e),
            ProtocolError::Remote(e) => Error::Remote(e),
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
            Error::Io(_) => match e {
                Error::Io(e) => return e,
                _ => ErrorKind::Other,
            },
            Error::Local(_) | Error::InvalidUrl { .. } | Error::TlsConfig { .. } => ErrorKind::InvalidInput,
            Error::Remote(_) => ErrorKind::InvalidData,
            Error::Rejected(_) | Error::ProxyRefused(_) => ErrorKind::ConnectionRefused,
            Error::HandshakeTimeout | Error::ConnectTimeout | Error::Timeout(_) => ErrorKind::TimedOut,
        };
        std::io::Error::new(kind, e)
    }
}
