//! Rejection bodies: decoding one on the client (Content-Length, chunked, or until EOF) and
//! framing one on the server.

use std::collections::VecDeque;

use bytes::{BufMut, Bytes, BytesMut};

use super::head::{self, bad_http};
use crate::error::{LocalProtocolError, RemoteProtocolError};
use crate::event::{Event, Headers, RejectData};
use crate::headers::split_comma_list;

/// Longest chunk-size line accepted (size, extensions and line break).
const MAX_CHUNK_LINE: usize = 4096;

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
        if let Some(te) = head::merged(headers, "transfer-encoding")? {
            let codings = split_comma_list(&te);
            return Ok(match codings.last() {
                Some(last) if last.eq_ignore_ascii_case("chunked") => {
                    BodyReader::Chunked(Chunked::Size(Vec::new()))
                }
                _ => BodyReader::UntilEof,
            });
        }
        match head::merged(headers, "content-length")? {
            None => Ok(BodyReader::UntilEof),
            Some(value) => {
                let mut length = None;
                for item in value.split(',').map(str::trim) {
                    let n = parse_content_length(item)
                        .ok_or_else(|| bad_http(format!("invalid Content-Length {value:?}")))?;
                    if length.is_some_and(|l| l != n) {
                        return Err(bad_http(format!("conflicting Content-Length {value:?}")));
                    }
                    length = Some(n);
                }
                length.map(BodyReader::Length).ok_or_else(|| bad_http("empty Content-Length"))
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

impl BodyWriter {
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
