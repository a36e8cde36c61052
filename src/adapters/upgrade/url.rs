//! `ws://` and `wss://` URLs, taken apart for a request.

use crate::adapters::error::Error;
use crate::event::Request;

/// A `ws://` or `wss://` URL, taken apart for a request.
#[derive(Debug, PartialEq)]
pub(crate) struct WsUrl {
    pub(crate) secure: bool,
    /// The host to connect to (an IPv6 literal without brackets; a name IDNA-encoded).
    pub(super) host: String,
    pub(super) port: u16,
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
