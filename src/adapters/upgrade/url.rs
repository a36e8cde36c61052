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
    /// The host (IPv6 in brackets) and the port, always: a proxy's `CONNECT` target.
    pub(super) authority: String,
    /// Path and query.
    target: String,
}

impl WsUrl {
    pub(crate) fn parse(input: &str) -> Result<WsUrl, Error> {
        let bad = |reason| Error::InvalidUrl { url: input.to_owned(), reason };
        let ascii = ascii_host(input).map_err(bad)?;
        let uri: http::Uri = ascii.parse().map_err(|_| bad(malformed(&ascii)))?;
        let secure = match uri.scheme_str().map(str::to_ascii_lowercase).as_deref() {
            Some("ws") => false,
            Some("wss") => true,
            _ => return Err(bad("not a ws:// or wss:// URL")),
        };
        let authority = uri.authority().ok_or_else(|| bad("no host"))?;
        if split_userinfo(authority).0.is_some() {
            return Err(bad("user information in the URL is not sent: remove `user@`"));
        }
        let host = authority.host();
        if host.is_empty() {
            return Err(bad("no host"));
        }
        let (host, bracketed) = match host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
            Some(v6) => {
                let ip: std::net::Ipv6Addr = v6.parse().map_err(|_| bad("invalid IPv6 address"))?;
                (ip.to_string(), format!("[{ip}]"))
            }
            None => {
                let name = host.to_ascii_lowercase();
                (name.clone(), name)
            }
        };
        let default_port = if secure { 443 } else { 80 };
        let port = port_of(authority).unwrap_or(Ok(default_port)).map_err(|()| bad("invalid port"))?;
        let authority = format!("{bracketed}:{port}");
        let host_header = if port == default_port { bracketed } else { authority.clone() };
        let mut target = uri.path().to_owned();
        if target.is_empty() {
            target.push('/');
        }
        if let Some(query) = uri.query() {
            target.push('?');
            target.push_str(query);
        }
        Ok(WsUrl { secure, host, port, host_header, authority, target })
    }

    pub(crate) fn request(&self) -> Request {
        Request::new(self.host_header.clone(), self.target.clone())
    }
}

/// The user information of `authority` (before its `@`), if any, and the rest (host and port).
pub(super) fn split_userinfo(authority: &http::uri::Authority) -> (Option<&str>, &str) {
    match authority.as_str().rsplit_once('@') {
        Some((userinfo, hostport)) => (Some(userinfo), hostport),
        None => (None, authority.as_str()),
    }
}

/// The port written in `authority` (after its host), if any. The URI parser accepts any text
/// there.
pub(super) fn port_of(authority: &http::uri::Authority) -> Option<Result<u16, ()>> {
    let rest = split_userinfo(authority).1.strip_prefix(authority.host()).unwrap_or("");
    let port = rest.strip_prefix(':')?;
    Some(port.parse::<u16>().map_err(|_| ()))
}

/// Why `input` did not parse, as far as it can be told.
fn malformed(input: &str) -> &'static str {
    match input.split_once("://") {
        None => "not an absolute URL (ws://host/path)",
        Some((_, rest)) if rest.is_empty() || rest.starts_with(['/', '?', '#']) => "no host",
        Some((_, rest)) if rest.starts_with('[') && !rest.contains(']') => "invalid IPv6 address",
        Some((_, rest)) => {
            let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
            match authority.rsplit_once(':') {
                Some((_, port)) if !port.contains(']') && port.parse::<u16>().is_err() => "invalid port",
                _ => "malformed URL",
            }
        }
    }
}

/// `input` with an international host name converted to its ASCII form (IDNA, feature
/// `idna`); everything else is left to the URI parser, which accepts only ASCII.
fn ascii_host(input: &str) -> Result<std::borrow::Cow<'_, str>, &'static str> {
    if input.is_ascii() {
        return Ok(input.into());
    }
    let Some((scheme, rest)) = input.split_once("://") else { return Err("malformed URL") };
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    if !tail.is_ascii() {
        return Err("the path and query must be percent-encoded ASCII");
    }
    let (host, port) = match authority.rsplit_once(':') {
        Some((host, port)) if port.bytes().all(|b| b.is_ascii_digit()) => (host, Some(port)),
        _ => (authority, None),
    };
    let host = international_host(host)?;
    let port = port.map(|p| format!(":{p}")).unwrap_or_default();
    Ok(format!("{scheme}://{host}{port}{tail}").into())
}

#[cfg(feature = "idna")]
fn international_host(host: &str) -> Result<String, &'static str> {
    idna::domain_to_ascii(host).map_err(|_| "invalid international host name")
}

#[cfg(not(feature = "idna"))]
fn international_host(_host: &str) -> Result<String, &'static str> {
    Err("international host names need the `idna` feature (or give the name in its xn-- form)")
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
        // A proxy's CONNECT target always names the port, IPv6 in brackets.
        assert_eq!(WsUrl::parse("wss://[::1]/").unwrap().authority, "[::1]:443");
        assert_eq!(WsUrl::parse("ws://H.example/").unwrap().authority, "h.example:80");
        ok("ws://h", "h", 80, "h", "/");
        ok("ws://h:80/", "h", 80, "h", "/");
        ok("WS://Example.COM/Chat", "example.com", 80, "example.com", "/Chat");
        ok("ws://h?x=1", "h", 80, "h", "/?x=1");
        ok("ws://h/p#frag", "h", 80, "h", "/p");
        ok("ws://[::1]:9030/", "::1", 9030, "[::1]:9030", "/");
        ok("ws://[::1]/", "::1", 80, "[::1]", "/");
        ok("ws://127.0.0.1:5/a%20b", "127.0.0.1", 5, "127.0.0.1:5", "/a%20b");
        ok("ws://xn--bcher-kva.example/", "xn--bcher-kva.example", 80, "xn--bcher-kva.example", "/");
        #[cfg(feature = "idna")]
        ok("ws://bücher.example:81/", "xn--bcher-kva.example", 81, "xn--bcher-kva.example:81", "/");
        #[cfg(not(feature = "idna"))]
        assert!(WsUrl::parse("ws://bücher.example/").unwrap_err().to_string().contains("`idna` feature"));
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
            ("h:9001/p", "not an absolute URL"),
            ("ws://h/p q", "malformed"),
            ("ws://[::1/", "IPv6"),
        ] {
            let e = WsUrl::parse(bad).expect_err(bad);
            assert!(e.to_string().contains(why), "{bad}: {e}");
        }
    }
}
