//! Writing HTTP/1.1 heads, with checks that nothing we write can break the message framing.

use bytes::{BufMut, BytesMut};

use crate::error::LocalProtocolError;
use crate::headers::is_token;

/// Appends `name: value\r\n`.
pub(crate) fn header(dst: &mut BytesMut, name: &[u8], value: &[u8]) {
    dst.put_slice(name);
    dst.put_slice(b": ");
    dst.put_slice(value);
    dst.put_slice(b"\r\n");
}

/// Checks a caller-supplied header: the name must be a token, the value free of CR, LF and NUL
/// (which would let it end the header or the head early).
pub(crate) fn check_header(name: &[u8], value: &[u8]) -> Result<(), LocalProtocolError> {
    if !std::str::from_utf8(name).is_ok_and(is_token) {
        return Err(LocalProtocolError::InvalidHeader { name: String::from_utf8_lossy(name).into_owned() });
    }
    check_value(&String::from_utf8_lossy(name), value)
}

/// Checks a header value (see [`check_header`]).
pub(crate) fn check_value(what: &str, value: &[u8]) -> Result<(), LocalProtocolError> {
    if value.iter().any(|&b| matches!(b, b'\r' | b'\n' | 0)) {
        return Err(LocalProtocolError::InvalidHeader { name: what.to_owned() });
    }
    Ok(())
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
