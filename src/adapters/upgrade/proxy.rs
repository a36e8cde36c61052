//! HTTP `CONNECT` proxies for clients.

use std::fmt;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::url::{port_of, split_userinfo, WsUrl};
use crate::adapters::error::Error;
use crate::handshake::head::{HeadKind, HeadReader};

/// Largest proxy response head read.
const MAX_PROXY_HEAD: usize = 16 << 10;

/// An HTTP proxy that [`connect_with`](crate::upgrade::connect_with) opens a tunnel through with `CONNECT`, for `ws://` and
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
        let parsed: http::Uri = url.parse().map_err(|_| bad("malformed proxy URL"))?;
        if !parsed.scheme_str().is_some_and(|s| s.eq_ignore_ascii_case("http")) {
            return Err(bad("not an http:// proxy URL"));
        }
        let authority = parsed.authority().ok_or_else(|| bad("no host"))?;
        let host = authority.host();
        let host = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(host);
        if host.is_empty() {
            return Err(bad("no host"));
        }
        let port = port_of(authority).unwrap_or(Ok(80)).map_err(|()| bad("invalid port"))?;
        let authorization = match split_userinfo(authority).0 {
            None => None,
            Some(userinfo) => {
                use base64::Engine as _;
                let decode = |s: &str| {
                    percent_encoding::percent_decode_str(s)
                        .decode_utf8()
                        .map(|s| s.into_owned())
                        .map_err(|_| bad("user information is not UTF-8"))
                };
                let (user, password) = userinfo.split_once(':').unwrap_or((userinfo, ""));
                let (user, password) = (decode(user)?, decode(password)?);
                let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
                Some(format!("Basic {token}"))
            }
        };
        Ok(Proxy { host: host.to_ascii_lowercase(), port, authorization })
    }

    /// Connects to the proxy and asks it for a tunnel to `target`.
    pub(super) async fn tunnel(&self, target: &WsUrl) -> Result<TcpStream, Error> {
        let mut io = TcpStream::connect((self.host.as_str(), self.port)).await?;
        let authority = &target.authority;
        let mut request = format!("CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n");
        if let Some(authorization) = &self.authorization {
            request.push_str(&format!("Proxy-Authorization: {authorization}\r\n"));
        }
        request.push_str("\r\n");
        io.write_all(request.as_bytes()).await?;
        // The response head, read with the handshake's head reader (the same limits and
        // parser as a 101). Nothing may follow it: the tunnel's first bytes come from the
        // target, which speaks only after our TLS hello or WebSocket request.
        let invalid = |why: String| Error::Io(std::io::Error::new(std::io::ErrorKind::InvalidData, why));
        let mut reader = HeadReader::default();
        let mut chunk = [0u8; 1024];
        let head = loop {
            let n = io.read(&mut chunk).await?;
            if n == 0 {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "proxy closed the connection",
                )
                .into());
            }
            reader.push(&chunk[..n]);
            match reader.parse(HeadKind::Response, MAX_PROXY_HEAD) {
                Ok(Some(head)) => break head,
                Ok(None) => {}
                Err(e) => return Err(invalid(format!("malformed proxy response: {e}"))),
            }
        };
        if !reader.is_empty() {
            return Err(invalid("the proxy sent data before the tunnel was used".to_owned()));
        }
        match head.status {
            200..=299 => Ok(io),
            code => Err(Error::ProxyRefused(code)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proxy_urls_give_host_port_and_basic_credentials() {
        let p = Proxy::http("http://user:p%40ss@Proxy.Example:3128").unwrap();
        assert_eq!((p.host.as_str(), p.port), ("proxy.example", 3128));
        assert_eq!(p.authorization.as_deref(), Some("Basic dXNlcjpwQHNz")); // user:p@ss
        let p = Proxy::http("http://[::1]:8080/").unwrap();
        assert_eq!((p.host.as_str(), p.port, p.authorization), ("::1", 8080, None));
        assert_eq!(Proxy::http("http://h").unwrap().port, 80);
        for (bad, why) in
            [("http://h:x/", "invalid port"), ("https://h/", "not an http://"), ("h:1", "not an http://")]
        {
            let e = Proxy::http(bad).expect_err(bad);
            assert!(e.to_string().contains(why), "{bad}: {e}");
        }
    }
}
