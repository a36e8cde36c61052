//! Incremental reading of an HTTP/1.1 head (request or status line plus headers) with a size
//! limit, and lookups in the parsed header list.

use bytes::{Bytes, BytesMut};

use super::error::RemoteProtocolError;
use crate::event::Headers;

/// Most headers accepted in a head; more is rejected with 431.
pub const MAX_HEADERS: usize = 64;

/// A parsed head, owned.
#[derive(Debug)]
pub(crate) struct Head {
    /// Request method (requests only).
    pub(crate) method: String,
    /// Request target (requests only).
    pub(crate) target: String,
    /// Status code (responses only).
    pub(crate) status: u16,
    /// Minor HTTP version: 1 for HTTP/1.1.
    pub(crate) version: u8,
    /// Headers in order, names lower-cased, values as received.
    pub(crate) headers: Headers,
}

#[derive(Clone, Copy, Debug, Eq, PartialEq)]
pub(crate) enum HeadKind {
    Request,
    Response,
}

/// Buffers bytes until a whole head has arrived, never more than the limit (plus the last
/// chunk given).
#[derive(Debug, Default)]
pub(crate) struct HeadReader {
    buf: BytesMut,
    /// Bytes already searched for the end of the head.
    scanned: usize,
}

impl HeadReader {
    pub(crate) fn push(&mut self, data: &[u8]) {
        self.buf.extend_from_slice(data);
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    pub(crate) fn len(&self) -> usize {
        self.buf.len()
    }

    /// Takes the buffered bytes (what follows a parsed head).
    pub(crate) fn take(&mut self) -> BytesMut {
        self.scanned = 0;
        std::mem::take(&mut self.buf)
    }

    /// Parses the head if it is complete: returns it and leaves the bytes after it buffered.
    ///
    /// Each byte is searched once for the blank line ending the head, so feeding a head byte
    /// by byte stays linear; httparse runs once the blank line is there.
    pub(crate) fn parse(
        &mut self,
        kind: HeadKind,
        limit: usize,
    ) -> Result<Option<Head>, RemoteProtocolError> {
        let from = self.scanned.saturating_sub(2);
        let end = find_blank_line(&self.buf[from..]).map(|e| from + e);
        self.scanned = self.buf.len();
        let Some(end) = end else {
            return if self.buf.len() > limit { Err(too_large(limit)) } else { Ok(None) };
        };
        if end > limit {
            return Err(too_large(limit));
        }
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let parsed = match kind {
            HeadKind::Request => {
                let mut req = httparse::Request::new(&mut headers);
                match req.parse(&self.buf) {
                    Ok(httparse::Status::Complete(n)) => Some((
                        n,
                        Head {
                            method: req.method.unwrap_or_default().to_owned(),
                            target: req.path.unwrap_or_default().to_owned(),
                            status: 0,
                            version: req.version.unwrap_or_default(),
                            headers: owned_headers(req.headers),
                        },
                    )),
                    Ok(httparse::Status::Partial) => None,
                    Err(e) => return Err(parse_error(e)),
                }
            }
            HeadKind::Response => {
                let mut resp = httparse::Response::new(&mut headers);
                match resp.parse(&self.buf) {
                    Ok(httparse::Status::Complete(n)) => Some((
                        n,
                        Head {
                            method: String::new(),
                            target: String::new(),
                            status: resp.code.unwrap_or_default(),
                            version: resp.version.unwrap_or_default(),
                            headers: owned_headers(resp.headers),
                        },
                    )),
                    Ok(httparse::Status::Partial) => None,
                    Err(e) => return Err(parse_error(e)),
                }
            }
        };
        match parsed {
            Some((n, head)) if n <= limit => {
                let _ = self.buf.split_to(n);
                self.scanned = 0;
                Ok(Some(head))
            }
            Some(_) => Err(too_large(limit)),
            // A blank line that did not end the head (e.g. leading empty lines): keep reading.
            None if self.buf.len() > limit => Err(too_large(limit)),
            None => Ok(None),
        }
    }
}

/// The index just past the first empty line (`\n\n` or `\n\r\n`), if any.
fn find_blank_line(buf: &[u8]) -> Option<usize> {
    let mut i = 0;
    while let Some(pos) = buf.get(i..)?.iter().position(|&b| b == b'\n') {
        let nl = i + pos;
        match (buf.get(nl + 1), buf.get(nl + 2)) {
            (Some(b'\n'), _) => return Some(nl + 2),
            (Some(b'\r'), Some(b'\n')) => return Some(nl + 3),
            _ => i = nl + 1,
        }
    }
    None
}

fn owned_headers(headers: &[httparse::Header<'_>]) -> Headers {
    lowercase_headers(headers.iter().map(|h| (h.name, h.value)))
}

/// Headers as the handshake keeps them: owned, names lower-case, values as received (from the
/// wire, or from another HTTP layer).
///
/// Every name and value is a view of one shared buffer, so a request or response kept for
/// the life of a connection (`let (ws, request) = accept(..)`) holds three allocations, not
/// two per header.
pub(crate) fn lowercase_headers(
    headers: impl IntoIterator<Item = (impl AsRef<[u8]>, impl AsRef<[u8]>)>,
) -> Headers {
    let mut text = BytesMut::new();
    // (name start, value start, value end) in `text`.
    let mut spans = Vec::new();
    for (name, value) in headers {
        let (name, value) = (name.as_ref(), value.as_ref());
        let start = text.len();
        text.extend(name.iter().map(u8::to_ascii_lowercase));
        text.extend_from_slice(value);
        spans.push((start, start + name.len(), text.len()));
    }
    let text = text.freeze();
    spans.into_iter().map(|(n, v, end)| (text.slice(n..v), text.slice(v..end))).collect()
}

fn too_large(limit: usize) -> RemoteProtocolError {
    RemoteProtocolError::HeadTooLarge { limit }
}

fn parse_error(e: httparse::Error) -> RemoteProtocolError {
    match e {
        httparse::Error::TooManyHeaders => RemoteProtocolError::TooManyHeaders,
        e => bad_http(e),
    }
}

/// `Bad HTTP message: <detail>` with a 400 hint.
pub(crate) fn bad_http(detail: impl std::fmt::Display) -> RemoteProtocolError {
    RemoteProtocolError::MalformedHttp(detail.to_string())
}

/// The values of every header called `name` (lower-case), in order.
pub(crate) fn values<'a>(
    headers: &'a [(Bytes, Bytes)],
    name: &'a str,
) -> impl Iterator<Item = &'a [u8]> + 'a {
    headers.iter().filter(move |(n, _)| n.eq_ignore_ascii_case(name.as_bytes())).map(|(_, v)| &v[..])
}

/// All values of header `name` joined with `", "` (RFC 7230 §3.2.2), as text; `Ok(None)` when
/// absent, an error when a value is not UTF-8.
pub(crate) fn merged(headers: &[(Bytes, Bytes)], name: &str) -> Result<Option<String>, RemoteProtocolError> {
    let mut out: Option<String> = None;
    for value in values(headers, name) {
        let value = std::str::from_utf8(value).map_err(|_| bad_http(format!("non-UTF-8 {name} header")))?;
        match &mut out {
            None => out = Some(value.trim().to_owned()),
            Some(acc) => {
                acc.push_str(", ");
                acc.push_str(value.trim());
            }
        }
    }
    Ok(out)
}

/// How many headers called `name` there are.
pub(crate) fn count(headers: &[(Bytes, Bytes)], name: &str) -> usize {
    values(headers, name).count()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kept_headers_are_views_of_one_buffer() {
        // Names lower-cased, values as received, and every one a slice of a single buffer (a
        // request kept for a connection's life costs three allocations, not two per header).
        let headers = lowercase_headers([
            ("Host", "a.example"),
            ("Sec-WebSocket-Key", "k=="),
            ("X-Empty", ""),
            ("UPGRADE", "WebSocket"),
        ]);
        let pairs: Vec<(&[u8], &[u8])> = headers.iter().map(|(n, v)| (&n[..], &v[..])).collect();
        let expected: [(&[u8], &[u8]); 4] = [
            (b"host", b"a.example"),
            (b"sec-websocket-key", b"k=="),
            (b"x-empty", b""),
            (b"upgrade", b"WebSocket"),
        ];
        assert_eq!(pairs, expected);
        let start = headers[0].0.as_ptr() as usize;
        let total: usize = headers.iter().map(|(n, v)| n.len() + v.len()).sum();
        for (n, v) in headers.iter().filter(|(_, v)| !v.is_empty()) {
            for part in [n, v] {
                let at = part.as_ptr() as usize;
                assert!(
                    at >= start && at + part.len() <= start + total,
                    "{part:?} is not in the shared buffer"
                );
            }
        }
    }

    #[test]
    fn blank_line() {
        assert_eq!(find_blank_line(b"a\r\n\r\nb"), Some(5));
        assert_eq!(find_blank_line(b"a\n\nb"), Some(3));
        assert_eq!(find_blank_line(b"a\r\nb\r\n"), None);
        assert_eq!(find_blank_line(b""), None);
        assert_eq!(find_blank_line(b"\n"), None);
    }

    #[test]
    fn byte_by_byte() {
        let head = b"HTTP/1.1 200 OK\r\nA: 1\r\nA: 2\r\n\r\nrest";
        let mut reader = HeadReader::default();
        let mut parsed = None;
        for &b in head.iter() {
            reader.push(&[b]);
            if let Some(h) = reader.parse(HeadKind::Response, 1024).unwrap() {
                parsed = Some(h);
                break;
            }
        }
        let parsed = parsed.unwrap();
        assert_eq!(parsed.status, 200);
        assert_eq!(merged(&parsed.headers, "a").unwrap().as_deref(), Some("1, 2"));
        reader.push(b"rest");
        assert_eq!(&reader.take()[..], b"rest");
    }

    #[test]
    fn limit() {
        let mut reader = HeadReader::default();
        reader.push(&[b'x'; 100]);
        assert_eq!(reader.parse(HeadKind::Request, 99).unwrap_err().status(), 431);
    }
}
