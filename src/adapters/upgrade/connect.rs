//! Clients from a URL: TCP (through a proxy if asked), TLS for `wss://`, then the handshake.

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

#[cfg(feature = "rustls-no-provider")]
use super::tls;
use super::url::WsUrl;
use super::{client, MaybeTlsStream, UpgradeConfig};
use crate::adapters::error::Error;
use crate::adapters::session::Session;
use crate::event::AcceptConnection;

/// Connects over plain TCP to a `ws://` URL and performs the client handshake, offering
/// permessage-deflate (with the `deflate` feature), within [`DEFAULT_CONNECT_TIMEOUT`](super::DEFAULT_CONNECT_TIMEOUT) for the
/// transport (TCP, and TLS for `wss://`; [`Error::ConnectTimeout`] past it) and
/// [`DEFAULT_HANDSHAKE_TIMEOUT`](super::DEFAULT_HANDSHAKE_TIMEOUT) for the HTTP handshake. See [`connect_with`](crate::upgrade::connect_with)
/// for other settings and for what URLs are accepted.
pub async fn connect(url: &str) -> Result<(Session<MaybeTlsStream>, AcceptConnection), Error> {
    connect_with(url, UpgradeConfig::default()).await
}

/// [`connect`](crate::upgrade::connect) with `config` (extensions, limits, delivery, timeouts): only what `config`
/// offers is offered (permessage-deflate unless [turned off](UpgradeConfig::compression)).
///
/// The URL is parsed by the `http` crate's URI parser: `ws` in any case (`WS://h/`), default
/// port 80, IPv6 literals in brackets (`ws://[::1]:9001/`, sent as `Host: [::1]:9001`),
/// international host names IDNA-encoded with the `idna` feature (without it, give them in
/// their `xn--` form), a query with or without a path (`ws://h?x=1` requests `/?x=1`). A
/// fragment is not sent. `wss` (port 443) connects with TLS when the `rustls` feature is on:
/// the server's certificate is checked for the URL's host (also sent as SNI) against the
/// webpki-roots certificates, or against your own `rustls::ClientConfig`
/// (`UpgradeConfig::tls_config`). Refused with [`Error::InvalidUrl`], saying why: another
/// scheme, `wss` without the `rustls` feature (connect TLS yourself and use [`client_url`](crate::upgrade::client_url)),
/// user information (`ws://user:pass@h/`: credentials are not sent by this helper), no host.
pub async fn connect_with(
    url: &str,
    config: UpgradeConfig,
) -> Result<(Session<MaybeTlsStream>, AcceptConnection), Error> {
    let target = WsUrl::parse(url)?;
    if target.secure && cfg!(not(feature = "rustls-no-provider")) {
        return Err(Error::InvalidUrl {
            url: url.to_owned(),
            reason: "wss:// needs the `rustls` feature (or connect TLS yourself: upgrade::client_url)",
        });
    }
    #[cfg(feature = "rustls-no-provider")]
    let tls_config = match target.secure {
        true => Some(tls::client_config(&config)?),
        false => None,
    };
    // One deadline for the transport: TCP (or the proxy's tunnel) and, for `wss`, TLS. A server
    // that accepts TCP and stalls the TLS handshake is cut off like one that never answers.
    let transport = async {
        let io = match &config.proxy {
            None => TcpStream::connect((target.host.as_str(), target.port)).await?,
            Some(proxy) => proxy.tunnel(&target).await?,
        };
        io.set_nodelay(true)?;
        #[cfg(feature = "rustls-no-provider")]
        if let Some(tls_config) = tls_config {
            return tls::connect(io, &target.host, tls_config).await.map_err(|e| match e {
                tls::Failure::Name => {
                    Error::InvalidUrl { url: url.to_owned(), reason: "not a valid TLS server name" }
                }
                tls::Failure::Io(e) => Error::Io(e),
            });
        }
        Ok::<_, Error>(MaybeTlsStream::Plain(io))
    };
    let Ok(io) = tokio::time::timeout(config.connect_timeout, transport).await else {
        return Err(Error::ConnectTimeout);
    };
    let io = io?;
    client(io, config.url_request(&target), config).await
}

/// The client handshake over `io` (a TCP or TLS stream you connected) for `url`: the `Host`
/// header and the request target come from the URL, parsed as by [`connect_with`](crate::upgrade::connect_with) (`wss`
/// URLs are fine here: the TLS is yours).
pub async fn client_url<T>(
    io: T,
    url: &str,
    config: UpgradeConfig,
) -> Result<(Session<T>, AcceptConnection), Error>
where
    T: AsyncRead + AsyncWrite + Unpin,
{
    let target = WsUrl::parse(url)?;
    client(io, config.url_request(&target), config).await
}
