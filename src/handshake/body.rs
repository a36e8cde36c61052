//! Rejection bodies: decoding one on the client (Content-Length, chunked, or until EOF) and
//! framing one on the server.

use std::collections::VecDeque;

use bytes::{BufMut, Bytes, BytesMut};

use super::error::RemoteProtocolError;
use super::head::{self, bad_http};
use crate::connection::misuse::LocalProtocolError;
use crate::event::{Event, Headers, RejectData};
use crate::wire::headers::split_comma_list;

/// Longest chunk-size line accepted (size, extensions and line break).
const MAX_CHUNK_LINE: usize = 4096;

/// How a body is delimited, from its `Transfer-Encoding` and `Content-Length` headers
/// (RFC 7230 §3.3.3): parsed once, here, for the client reading a rejection and for the server
/// writing one.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
pub(crate) enum Framing {
    /// A `Transfer-Encoding` whose last coding is `chunked`.
    Chunked,
    /// Another `Transfer-Encoding`: the body ends when the connection closes.
    UntilClose,
    /// `Content-Length` (a list of equal values counts as one).
    Length(u64),
    /// Neither header.
    Unspecified,
}

/// Why framing headers cannot be used.
#[derive(Clone, Debug, Eq, PartialEq)]
pub(crate) enum FramingError {
    /// The named header is not UTF-8.
    NonUtf8(&'static str),
    /// `Content-Length` is not one decimal number (the value as given).
    InvalidContentLength(String),
}

impl Framing {
    /// The framing `headers` announce; `Transfer-Encoding` wins over `Content-Length`.
    pub(crate) fn of(headers: &Headers) -> Result<Framing, FramingError> {
        let text = |name: &'static str| head::merged(headers, name).map_err(|_| FramingError::NonUtf8(name));
        if let Some(te) = text("transfer-encoding")? {
            let chunked = split_comma_list(&te).last().is_some_and(|c| c.eq_ignore_ascii_case("chunked"));
            return Ok(if chunked { Framing::Chunked } else { Framing::UntilClose });
        }
        let Some(value) = text("content-length")? else { return Ok(Framing::Unspecified) };
        let mut length = None;
        for item in value.split(',').map(str::trim) {
            match parse_content_length(item) {
                Some(n) if length.is_none_or(|l| l == n) => length = Some(n),
                _ => return Err(FramingError::InvalidContentLength(value)),
            }
        }
        length.map(Framing::Length).ok_or(FramingError::InvalidContentLength(value))
    }
}

/// How a received response body is delimited.
#[derive(Debug)]
pub(crate) enum BodyReader {
    /// `remaining` bytes left (Content-Length).
    Length(u64),
    /// Chunked transfer coding.
    Chunked(Chunked),
    /// Read until the peer closes.
    UntilEof,
}

#[derive(Debug)]
pub(crate) enum Chunked {
    /// Reading a chunk-size line (bytes so far).
    Size(Vec<u8>),
    /// Inside a chunk's data.
    Data(u64),
    /// After a chunk's data: expecting CRLF (`true` once the CR was seen).
    DataEnd(bool),
    /// Reading trailer lines: bytes of the current line, and of all trailers.
    Trailers { line: usize, total: usize },
}

impl BodyReader {
    /// The framing of a response body from its status and headers (RFC 7230 §3.3.3).
    pub(crate) fn for_response(status: u16, headers: &Headers) -> Result<BodyReader, RemoteProtocolError> {
        if status == 204 || status == 304 {
            return Ok(BodyReader::Length(0));
        }
        match Framing::of(headers) {
            Ok(Framing::Chunked) => Ok(BodyReader::Chunked(Chunked::Size(Vec::new()))),
            Ok(Framing::UntilClose | Framing::Unspecified) => Ok(BodyReader::UntilEof),
            Ok(Framing::Length(n)) => Ok(BodyReader::Length(n)),
            Err(FramingError::NonUtf8(name)) => Err(bad_http(format!("non-UTF-8 {name} header"))),
            Err(FramingError::InvalidContentLength(value)) => {
                Err(bad_http(format!("invalid Content-Length {value:?}")))
            }
        }
    }

    /// Whether the body is already complete (nothing left to read).
    pub(crate) fn is_done(&self) -> bool {
        matches!(self, BodyReader::Length(0))
    }

    /// Consumes body bytes from `data`, queueing a `RejectData` for the data found. Returns
    /// `true` once the body is complete (bytes after it are ignored).
    pub(crate) fn feed(
        &mut self,
        mut data: &[u8],
        limit: usize,
        out: &mut VecDeque<Event>,
    ) -> Result<bool, RemoteProtocolError> {
        let mut chunk = BytesMut::new();
        let done = loop {
            if self.is_done() {
                break true;
            }
            if data.is_empty() {
                break false;
            }
            match self {
                BodyReader::UntilEof => {
                    chunk.extend_from_slice(data);
                    data = &[];
                }
                BodyReader::Length(remaining) => {
                    let n = usize::try_from(*remaining).unwrap_or(usize::MAX).min(data.len());
                    chunk.extend_from_slice(&data[..n]);
                    data = &data[n..];
                    *remaining -= n as u64;
                }
                BodyReader::Chunked(state) => match state.step(&mut data, &mut chunk, limit)? {
                    true => break true,
                    false => continue,
                },
            }
        };
        if !chunk.is_empty() {
            out.push_back(Event::RejectData(RejectData { data: chunk.freeze(), body_finished: false }));
        }
        Ok(done)
    }

    /// The peer closed: fine for a body delimited by EOF, an error for a truncated one.
    pub(crate) fn eof(&self) -> Result<(), RemoteProtocolError> {
        match self {
            BodyReader::UntilEof => Ok(()),
            _ if self.is_done() => Ok(()),
            _ => Err(bad_http("connection closed before the end of the response body")),
        }
    }
}

impl Chunked {
    /// Advances over `data`; returns `true` at the end of the body.
    fn step(
        &mut self,
        data: &mut &[u8],
        chunk: &mut BytesMut,
        limit: usize,
    ) -> Result<bool, RemoteProtocolError> {
        match self {
            Chunked::Size(line) => {
                let Some(nl) = data.iter().position(|&b| b == b'\n') else {
                    line.extend_from_slice(data);
                    *data = &[];
                    return check_line(line.len()).map(|()| false);
                };
                line.extend_from_slice(&data[..=nl]);
                *data = &data[nl + 1..];
                check_line(line.len())?;
                let size = match httparse::parse_chunk_size(line) {
                    Ok(httparse::Status::Complete((_, size))) => size,
                    _ => return Err(bad_http("invalid chunk size")),
                };
                *self = if size == 0 { Chunked::Trailers { line: 0, total: 0 } } else { Chunked::Data(size) };
            }
            Chunked::Data(remaining) => {
                let n = usize::try_from(*remaining).unwrap_or(usize::MAX).min(data.len());
                chunk.extend_from_slice(&data[..n]);
                *data = &data[n..];
                *remaining -= n as u64;
                if *remaining == 0 {
                    *self = Chunked::DataEnd(false);
                }
            }
            Chunked::DataEnd(cr) => {
                let (&b, rest) = data.split_first().ok_or_else(|| bad_http("truncated chunk"))?;
                *data = rest;
                match b {
                    b'\r' if !*cr => *cr = true,
                    b'\n' => *self = Chunked::Size(Vec::new()),
                    _ => return Err(bad_http("missing line break after chunk data")),
                }
            }
            Chunked::Trailers { line, total } => {
                let (&b, rest) = data.split_first().ok_or_else(|| bad_http("truncated trailers"))?;
                *data = rest;
                *total += 1;
                if *total > limit {
                    return Err(bad_http("trailers too large"));
                }
                match b {
                    b'\n' if *line == 0 => return Ok(true),
                    b'\n' => *line = 0,
                    b'\r' if *line == 0 => {}
                    _ => *line += 1,
                }
            }
        }
        Ok(false)
    }
}

fn check_line(len: usize) -> Result<(), RemoteProtocolError> {
    if len > MAX_CHUNK_LINE {
        Err(bad_http("chunk size line too long"))
    } else {
        Ok(())
    }
}

fn parse_content_length(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// How the server frames the body of a rejection it sends.
#[derive(Debug)]
pub(crate) enum BodyWriter {
    /// Chunked transfer coding (added by us when the caller gave no framing header).
    Chunked,
    /// `Content-Length` given by the caller: this many bytes still owed.
    Length(u64),
    /// A non-chunked `Transfer-Encoding` given by the caller: delimited by closing the stream.
    Raw,
}

/// A header the server adds to frame a rejection the caller left unframed.
pub(crate) type AddedHeader = Option<(&'static [u8], &'static [u8])>;

impl BodyWriter {
    /// How to frame a rejection: `None` without a body. Adds `content-length: 0` to a
    /// rejection without body or framing, and `transfer-encoding: chunked` to one with a body
    /// and no framing; refuses framing headers on a rejection without body.
    pub(crate) fn for_rejection(
        has_body: bool,
        headers: &Headers,
    ) -> Result<(Option<BodyWriter>, AddedHeader), LocalProtocolError> {
        let framing = Framing::of(headers).map_err(|e| match e {
            FramingError::NonUtf8(name) => LocalProtocolError::InvalidHeader { name: name.to_owned() },
            FramingError::InvalidContentLength(value) => LocalProtocolError::InvalidContentLength(value),
        })?;
        Ok(match (has_body, framing) {
            (false, Framing::Unspecified) => (None, Some((b"content-length", b"0"))),
            (false, Framing::Length(0)) => (None, None),
            (false, _) => return Err(LocalProtocolError::BodyHeadersWithoutBody),
            (true, Framing::Chunked) => (Some(BodyWriter::Chunked), None),
            (true, Framing::UntilClose) => (Some(BodyWriter::Raw), None),
            (true, Framing::Length(n)) => (Some(BodyWriter::Length(n)), None),
            (true, Framing::Unspecified) => {
                (Some(BodyWriter::Chunked), Some((b"transfer-encoding", b"chunked")))
            }
        })
    }

    /// Writes one `RejectData`; an error (nothing written) if it breaks the announced length.
    pub(crate) fn write(
        &mut self,
        data: &Bytes,
        finished: bool,
        dst: &mut BytesMut,
    ) -> Result<(), LocalProtocolError> {
        match self {
            BodyWriter::Chunked => {
                if !data.is_empty() {
                    dst.put_slice(format!("{:x}\r\n", data.len()).as_bytes());
                    dst.put_slice(data);
                    dst.put_slice(b"\r\n");
                }
                if finished {
                    dst.put_slice(b"0\r\n\r\n");
                }
            }
            BodyWriter::Length(remaining) => {
                let len = data.len() as u64;
                if len > *remaining || (finished && len != *remaining) {
                    return Err(LocalProtocolError::BodyLengthMismatch { sent: len, remaining: *remaining });
                }
                *remaining -= len;
                dst.put_slice(data);
            }
            BodyWriter::Raw => dst.put_slice(data),
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(reader: &mut BodyReader, input: &[&[u8]]) -> (Vec<u8>, bool) {
        let mut out = VecDeque::new();
        let mut done = false;
        for piece in input {
            done = reader.feed(piece, 1024, &mut out).unwrap();
            if done {
                break;
            }
        }
        let mut body = Vec::new();
        for ev in out {
            let Event::RejectData(d) = ev else { panic!() };
            body.extend_from_slice(&d.data);
        }
        (body, done)
    }

    #[test]
    fn chunked() {
        let wire = b"5;ext=1\r\nHello\r\n7\r\n, world\r\n0\r\nX-T: 1\r\n\r\ngarbage";
        let mut r = BodyReader::Chunked(Chunked::Size(Vec::new()));
        assert_eq!(decode(&mut r, &[wire]), (b"Hello, world".to_vec(), true));
        let mut r = BodyReader::Chunked(Chunked::Size(Vec::new()));
        let pieces: Vec<&[u8]> = wire.chunks(1).collect();
        assert_eq!(decode(&mut r, &pieces), (b"Hello, world".to_vec(), true));
        let mut r = BodyReader::Chunked(Chunked::Size(Vec::new()));
        assert!(r.feed(b"zz\r\n", 1024, &mut VecDeque::new()).is_err());
    }

    #[test]
    fn length() {
        let mut r = BodyReader::Length(3);
        assert_eq!(decode(&mut r, &[b"ab", b"cdef"]), (b"abc".to_vec(), true));
        let headers = vec![(Bytes::from("content-length"), Bytes::from("3, 4"))];
        assert!(BodyReader::for_response(200, &headers).is_err());
    }

    #[test]
    fn writer() {
        let mut dst = BytesMut::new();
        BodyWriter::Chunked.write(&Bytes::from("abc"), true, &mut dst).unwrap();
        assert_eq!(&dst[..], b"3\r\nabc\r\n0\r\n\r\n");
        let mut w = BodyWriter::Length(2);
        assert!(w.write(&Bytes::from("abc"), false, &mut dst).is_err());
        assert!(w.write(&Bytes::from("a"), true, &mut dst).is_err());
    }
}
