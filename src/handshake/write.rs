//! Writing HTTP/1.1 heads, with checks that nothing we write can break the message framing.

use std::borrow::Cow;
use std::net::Ipv6Addr;

use bytes::{BufMut, BytesMut};

use crate::connection::misuse::LocalProtocolError;
use crate::wire::headers::is_token;

/// Appends `name: value\r\n`.
pub(crate) fn header(dst: &mut BytesMut, name: &[u8], value: &[u8]) {
    dst.put_slice(name);
    dst.put_slice(b": ");
    dst.put_slice(value);
    dst.put_slice(b"\r\n");
}

/// Checks a caller-supplied header: the name must be a token, the value free of control bytes
/// but tab (CR, LF and NUL would let it end the header or the head early; the others are not
/// field content in RFC 9110 either, and the `http` crate refuses them too).
pub(crate) fn check_header(name: &[u8], value: &[u8]) -> Result<(), LocalProtocolError> {
    if !std::str::from_utf8(name).is_ok_and(is_token) {
        return Err(LocalProtocolError::InvalidHeader { name: String::from_utf8_lossy(name).into_owned() });
    }
    check_value(&String::from_utf8_lossy(name), value)
}

/// Checks a header value (see [`check_header`]).
pub(crate) fn check_value(what: &str, value: &[u8]) -> Result<(), LocalProtocolError> {
    if value.iter().any(|&b| (b < 0x20 && b != b'\t') || b == 0x7f) {
        return Err(LocalProtocolError::InvalidHeader { name: what.to_owned() });
    }
    Ok(())
}

/// The `Host` header value for a request's `host` (`host` or `host:port`), checked: an IPv6
/// literal is written in brackets (`::1` becomes `[::1]`); a host that is not ASCII (IDNA-encode
/// it first), an unbracketed IPv6 literal with a port, or characters a `Host` header cannot
/// carry are refused.
pub(crate) fn host_header(host: &str) -> Result<Cow<'_, str>, LocalProtocolError> {
    let invalid = || LocalProtocolError::InvalidHost(host.to_owned());
    if host.is_empty() {
        return Err(LocalProtocolError::MissingHost);
    }
    if !host.is_ascii() {
        return Err(invalid());
    }
    if host.parse::<Ipv6Addr>().is_ok() {
        return Ok(Cow::Owned(format!("[{host}]")));
    }
    let (name, port) = match host.strip_prefix('[') {
        Some(rest) => {
            let (ip, after) = rest.split_once(']').ok_or_else(invalid)?;
            ip.parse::<Ipv6Addr>().map_err(|_| invalid())?;
            match after {
                "" => (None, None),
                _ => (None, Some(after.strip_prefix(':').ok_or_else(invalid)?)),
            }
        }
        None => match host.rsplit_once(':') {
            Some((name, port)) => (Some(name), Some(port)),
            None => (Some(host), None),
        },
    };
    // RFC 3986 reg-name or IPv4address: unreserved, sub-delims and percent-encodings.
    let name_ok = name.is_none_or(|n| {
        !n.is_empty() && n.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=%".contains(&b))
    });
    let port_ok = port.is_none_or(|p| !p.is_empty() && p.len() <= 5 && p.parse::<u16>().is_ok());
    if name_ok && port_ok {
        Ok(Cow::Borrowed(host))
    } else {
        Err(invalid())
    }
}

/// The standard reason phrase of a status code, or `""`.
pub(crate) fn reason_phrase(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        101 => "Switching Protocols",
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        204 => "No Content",
        301 => "Moved Permanently",
        302 => "Found",
        303 => "See Other",
        304 => "Not Modified",
        307 => "Temporary Redirect",
        308 => "Permanent Redirect",
        400 => "Bad Request",
        401 => "Unauthorized",
        402 => "Payment Required",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        406 => "Not Acceptable",
        407 => "Proxy Authentication Required",
        408 => "Request Timeout",
        409 => "Conflict",
        410 => "Gone",
        411 => "Length Required",
        412 => "Precondition Failed",
        413 => "Content Too Large",
        414 => "URI Too Long",
        415 => "Unsupported Media Type",
        418 => "I'm a teapot",
        421 => "Misdirected Request",
        422 => "Unprocessable Content",
        426 => "Upgrade Required",
        428 => "Precondition Required",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        451 => "Unavailable For Legal Reasons",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        505 => "HTTP Version Not Supported",
        _ => "",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_headers() {
        for (host, expected) in [
            ("example.com", "example.com"),
            ("example.com:9001", "example.com:9001"),
            ("127.0.0.1:80", "127.0.0.1:80"),
            ("xn--bcher-kva.example", "xn--bcher-kva.example"),
            ("::1", "[::1]"),
            ("fe80::1", "[fe80::1]"),
            ("[::1]", "[::1]"),
            ("[::1]:9030", "[::1]:9030"),
        ] {
            assert_eq!(host_header(host).unwrap(), expected, "{host}");
        }
        assert_eq!(host_header(""), Err(LocalProtocolError::MissingHost));
        for bad in [
            "bücher.example",
            "::1:9030x",
            "[::1",
            "[::1]x",
            "[zz]:80",
            "h:",
            "h:99999",
            "h:x",
            "a b",
            "h/p",
            "u@h",
            ":80",
        ] {
            assert_eq!(host_header(bad), Err(LocalProtocolError::InvalidHost(bad.to_owned())), "{bad}");
        }
    }
}
