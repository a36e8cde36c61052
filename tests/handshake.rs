//! The HTTP/1.1 opening handshake and `WsConnection` (issue 3).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use bytes::{Bytes, BytesMut};
use wsproto::extensions::Extension;
use wsproto::handshake::{
    client_extensions_handshake, generate_accept_token, generate_nonce, server_extensions_handshake,
};
use wsproto::handshake::{ClientHandshake, Handshake};
use wsproto::{
    AcceptConnection, BytesMessage, CloseCode, CloseConnection, CloseSource, Config, Connection,
    ConnectionState, ConnectionType, Event, ExtensionError, KeySource, Limits, LocalProtocolError, Ping,
    Pong, ProtocolError, RejectConnection, RejectData, RemoteProtocolError, Request, TextMessage,
    WsConnection,
};

const RFC_KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";
const RFC_ACCEPT: &str = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";

/// Nonces are RFC 6455's sample nonce, masking keys the RFC §5.7 key.
fn rfc_keys() -> KeySource {
    KeySource::from_fn(|buf| {
        if buf.len() == 16 {
            buf.copy_from_slice(b"the sample nonce");
        } else {
            for (i, b) in buf.iter_mut().enumerate() {
                *b = [0x37, 0xfa, 0x21, 0x3d][i & 3];
            }
        }
    })
}

fn config() -> Config {
    Config::default().key_source(rfc_keys())
}

fn client() -> WsConnection {
    WsConnection::with_config(ConnectionType::Client, config())
}

fn server() -> WsConnection {
    WsConnection::with_config(ConnectionType::Server, config())
}

fn drain(ws: &mut WsConnection) -> Vec<Event> {
    ws.events().collect()
}

const REQUEST: &str =
    "GET /chat HTTP/1.1\r\nHost: example.com\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
                       Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";

const RESPONSE: &str = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
                        Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n";

/// A client that has sent `Request::new("example.com", "/chat")` with `subprotocols`.
fn client_after_request(subprotocols: &[&str]) -> WsConnection {
    let mut c = client();
    c.send_bytes(Request::new("example.com", "/chat").with_subprotocols(subprotocols.iter().copied()))
        .unwrap();
    c
}

fn remote(result: Result<(), ProtocolError>) -> RemoteProtocolError {
    match result {
        Err(ProtocolError::Remote(e)) => e,
        other => panic!("expected a remote protocol error, got {other:?}"),
    }
}

fn local<T: std::fmt::Debug>(result: Result<T, LocalProtocolError>) -> LocalProtocolError {
    result.expect_err("expected a local protocol error")
}

fn hint_status(e: &RemoteProtocolError) -> u16 {
    e.event_hint().status_code
}

fn server_error(request: &str) -> RemoteProtocolError {
    let mut s = server();
    let e = remote(s.receive_data(request.as_bytes()));
    assert!(drain(&mut s).is_empty());
    assert_eq!(s.state(), ConnectionState::Connecting);
    e
}

fn client_error(response: &str) -> RemoteProtocolError {
    let mut c = client_after_request(&["chat.v1"]);
    let e = remote(c.receive_data(response.as_bytes()));
    assert!(drain(&mut c).is_empty());
    assert!(c.connection().is_none());
    e
}

fn request_event(events: Vec<Event>) -> Request {
    match <[Event; 1]>::try_from(events) {
        Ok([Event::Request(r)]) => *r,
        other => panic!("expected one Request, got {other:?}"),
    }
}

fn accept_event(event: Event) -> AcceptConnection {
    match event {
        Event::AcceptConnection(a) => *a,
        other => panic!("expected AcceptConnection, got {other:?}"),
    }
}

fn text(event: &Event) -> &str {
    match event {
        Event::TextMessage(m) => m.data.as_str(),
        other => panic!("expected a text message, got {other:?}"),
    }
}

/// The body of a received rejection: (head, concatenated data, number of non-final chunks).
fn rejection(events: Vec<Event>) -> (RejectConnection, Vec<u8>, usize) {
    let mut it = events.into_iter();
    let Some(Event::RejectConnection(head)) = it.next() else { panic!("expected RejectConnection") };
    let mut body = Vec::new();
    let mut chunks = 0;
    let mut finished = false;
    for event in it {
        let Event::RejectData(d) = event else { panic!("expected RejectData, got {event:?}") };
        assert!(!finished, "data after the final chunk");
        if d.body_finished {
            assert!(d.data.is_empty());
            finished = true;
        } else {
            body.extend_from_slice(&d.data);
            chunks += 1;
        }
    }
    assert!(finished || !head.has_body, "no final RejectData");
    (head, body, chunks)
}

fn header<'a>(headers: &'a [(Bytes, Bytes)], name: &str) -> Option<&'a [u8]> {
    headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name.as_bytes())).map(|(_, v)| &v[..])
}

// ---------------------------------------------------------------------------------------------
// Accept token and nonce

#[test]
fn rfc6455_accept_vector() {
    assert_eq!(generate_accept_token(RFC_KEY), RFC_ACCEPT);
    assert_eq!(generate_accept_token(RFC_KEY.as_bytes()), RFC_ACCEPT);
}

#[test]
fn nonces_are_random_base64_of_16_bytes() {
    let a = generate_nonce();
    let b = generate_nonce();
    assert_eq!(a.len(), 24);
    assert!(a.ends_with("=="));
    assert_ne!(a, b);
}

// ---------------------------------------------------------------------------------------------
// Accepted handshakes

#[test]
fn client_request_bytes_exact() {
    let mut c = client();
    assert_eq!(c.state(), ConnectionState::Connecting);
    let bytes = c.send_bytes(Request::new("localhost", "/")).unwrap();
    assert_eq!(
        &bytes[..],
        b"GET / HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
          Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    );
    assert_eq!(c.state(), ConnectionState::Connecting);

    let mut c = client();
    let request = Request::new("example.com", "/chat?room=1")
        .with_subprotocols(["chat.v2", "chat.v1"])
        .with_header("X-Token", "abc")
        .with_header("Origin", "http://example.com");
    let bytes = c.send_bytes(request).unwrap();
    assert_eq!(
        std::str::from_utf8(&bytes).unwrap(),
        "GET /chat?room=1 HTTP/1.1\r\nHost: example.com\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\
         Sec-WebSocket-Protocol: chat.v2, chat.v1\r\nX-Token: abc\r\nOrigin: http://example.com\r\n\r\n"
    );
}

#[test]
fn server_accept_bytes_exact() {
    let mut s = server();
    s.receive_data(REQUEST.as_bytes()).unwrap();
    let request = request_event(drain(&mut s));
    assert_eq!(request.host, "example.com");
    assert_eq!(request.target, "/chat");
    assert!(request.subprotocols.is_empty());
    assert!(request.extensions.is_empty());
    assert_eq!(s.state(), ConnectionState::Connecting);
    let bytes = s.send_bytes(AcceptConnection::new()).unwrap();
    assert_eq!(&bytes[..], RESPONSE.as_bytes());
    assert_eq!(s.state(), ConnectionState::Open);
    assert!(s.connection().is_some());
}

#[test]
fn full_handshake_with_subprotocol_and_extra_headers() {
    let mut c = client();
    let mut s = server();
    let request = Request::new("example.com", "/chat")
        .with_subprotocols(["chat.v2", "chat.v1"])
        .with_header("X-Token", "abc");
    s.receive_data(&c.send_bytes(request).unwrap()).unwrap();

    let request = request_event(drain(&mut s));
    assert_eq!(request.subprotocols, ["chat.v2", "chat.v1"]);
    let names: Vec<&[u8]> = request.extra_headers.iter().map(|(n, _)| &n[..]).collect();
    assert_eq!(
        names,
        [&b"upgrade"[..], b"connection", b"sec-websocket-key", b"sec-websocket-version", b"x-token"],
        "names lower-cased; host and the negotiation headers left out"
    );
    assert_eq!(header(&request.extra_headers, "x-token"), Some(&b"abc"[..]));

    let response = s
        .send_bytes(AcceptConnection::new().with_subprotocol("chat.v1").with_header("X-Server", "wsproto"))
        .unwrap();
    assert!(std::str::from_utf8(&response)
        .unwrap()
        .contains("Sec-WebSocket-Protocol: chat.v1\r\nX-Server: wsproto\r\n"));

    c.receive_data(&response).unwrap();
    let events = drain(&mut c);
    assert_eq!(events.len(), 1);
    let accept = accept_event(events.into_iter().next().unwrap());
    assert_eq!(accept.subprotocol.as_deref(), Some("chat.v1"));
    assert_eq!(accept.extra_headers, vec![(Bytes::from("x-server"), Bytes::from("wsproto"))]);
    assert!(accept.extensions.is_empty());
    assert_eq!(c.state(), ConnectionState::Open);
    assert_eq!(s.state(), ConnectionState::Open);

    // Frames flow both ways afterwards.
    s.receive_data(&c.send_bytes(TextMessage::new("ping?")).unwrap()).unwrap();
    assert_eq!(text(&drain(&mut s)[0]), "ping?");
    c.receive_data(&s.send_bytes(BytesMessage::new(&b"\x00\x01"[..])).unwrap()).unwrap();
    assert_eq!(drain(&mut c), vec![Event::BytesMessage(BytesMessage::new(&b"\x00\x01"[..]))]);
}

#[test]
fn no_subprotocol_accepted_when_offered() {
    let mut c = client_after_request(&["a", "b"]);
    c.receive_data(RESPONSE.as_bytes()).unwrap();
    let accept = accept_event(drain(&mut c).remove(0));
    assert_eq!(accept.subprotocol, None);
}

#[test]
fn header_names_case_insensitive_and_repeated_headers_merged() {
    let request = "GET / HTTP/1.1\r\nhost: h\r\nUPGRADE: WebSocket\r\nconnection: keep-alive\r\nConnection: Upgrade\r\n\
                   sec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\nSEC-WEBSOCKET-VERSION: 13\r\n\
                   Sec-WebSocket-Protocol: a, b\r\nSec-WebSocket-Protocol: c\r\n\
                   Sec-WebSocket-Extensions: x; p=\"1,2\", y\r\nSec-WebSocket-Extensions: z\r\n\r\n";
    let mut s = server();
    s.receive_data(request.as_bytes()).unwrap();
    let request = request_event(drain(&mut s));
    assert_eq!(request.host, "h");
    assert_eq!(request.subprotocols, ["a", "b", "c"]);
    assert_eq!(request.extensions, ["x; p=\"1,2\"", "y", "z"], "quoted commas do not split");
    let response = s.send_bytes(AcceptConnection::new().with_subprotocol("c")).unwrap();
    assert!(std::str::from_utf8(&response).unwrap().contains("Sec-WebSocket-Protocol: c\r\n"));
}

#[test]
fn handshake_fed_byte_by_byte() {
    let mut c = client();
    let mut s = server();
    let request = c.send_bytes(Request::new("example.com", "/chat").with_subprotocols(["p"])).unwrap();
    for (i, b) in request.iter().enumerate() {
        s.receive_data(&[*b]).unwrap();
        let events = drain(&mut s);
        if i + 1 < request.len() {
            assert!(events.is_empty());
        } else {
            assert_eq!(request_event(events).subprotocols, ["p"]);
        }
    }
    let response = s.send_bytes(AcceptConnection::new().with_subprotocol("p")).unwrap();
    let mut events = Vec::new();
    for b in response.iter() {
        c.receive_data(&[*b]).unwrap();
        events.extend(drain(&mut c));
    }
    assert_eq!(events.len(), 1);
    assert_eq!(accept_event(events.remove(0)).subprotocol.as_deref(), Some("p"));
    assert_eq!(c.state(), ConnectionState::Open);
}

#[test]
fn client_frames_glued_to_the_request_reach_the_server() {
    // A client that pipelines a frame behind its request (python wsproto dropped it).
    let mut early = Connection::new(ConnectionType::Client, config());
    let frame = early.send_bytes(TextMessage::new("early bird")).unwrap();
    let ping = early.send_bytes(Ping::new("p")).unwrap();
    let mut wire = REQUEST.as_bytes().to_vec();
    wire.extend_from_slice(&frame);

    for chunk_size in [wire.len(), 1, 5] {
        let mut s = server();
        let mut events = Vec::new();
        for chunk in wire.chunks(chunk_size) {
            s.receive_data(chunk).unwrap();
            events.extend(drain(&mut s));
        }
        request_event(events);
        s.receive_data(&ping).unwrap(); // more bytes before the answer are kept too
        assert!(drain(&mut s).is_empty(), "frames wait for the accept");
        s.send_bytes(AcceptConnection::new()).unwrap();
        let events = drain(&mut s);
        assert_eq!(events.len(), 2);
        assert_eq!(text(&events[0]), "early bird");
        assert_eq!(events[1], Event::Ping(Ping::new("p")));
    }
}

#[test]
fn server_frames_glued_to_the_101_reach_the_client_in_one_drain() {
    let mut s = server();
    s.receive_data(REQUEST.as_bytes()).unwrap();
    let _ = drain(&mut s);
    let mut wire = s.send_bytes(AcceptConnection::new()).unwrap().to_vec();
    wire.extend_from_slice(&s.send_bytes(TextMessage::new("welcome")).unwrap());
    wire.extend_from_slice(&s.send_bytes(Ping::new("x")).unwrap());

    // Whole.
    let mut c = client_after_request(&[]);
    c.receive_data(&wire).unwrap();
    let events = drain(&mut c);
    assert_eq!(events.len(), 3, "{events:?}");
    assert!(matches!(events[0], Event::AcceptConnection(_)));
    assert_eq!(text(&events[1]), "welcome");
    assert_eq!(events[2], Event::Ping(Ping::new("x")));

    // Byte by byte.
    let mut c = client_after_request(&[]);
    let mut events = Vec::new();
    for b in &wire {
        c.receive_data(&[*b]).unwrap();
        events.extend(drain(&mut c));
    }
    let texts: String = events
        .iter()
        .filter_map(|e| if let Event::TextMessage(m) = e { Some(m.data.as_str()) } else { None })
        .collect();
    assert!(matches!(events[0], Event::AcceptConnection(_)));
    assert_eq!(texts, "welcome");
    assert_eq!(events.last(), Some(&Event::Ping(Ping::new("x"))));
}

#[test]
fn into_connection_keeps_unparsed_bytes() {
    let mut s = server();
    s.receive_data(REQUEST.as_bytes()).unwrap();
    let _ = drain(&mut s);
    let mut wire = s.send_bytes(AcceptConnection::new()).unwrap().to_vec();
    wire.extend_from_slice(&s.send_bytes(TextMessage::new("later")).unwrap());
    let mut c = client_after_request(&[]);
    c.receive_data(&wire).unwrap();
    let mut conn = c.into_connection().expect("connection");
    let rest = conn.take_buffered();
    assert_eq!(&rest[..], b"\x81\x05later");
}

#[test]
fn initiate_upgrade_connection_pre_parsed() {
    let headers = [
        ("Host", "example.com"),
        ("Upgrade", "websocket"),
        ("Connection", "Upgrade"),
        ("Sec-WebSocket-Key", RFC_KEY),
        ("Sec-WebSocket-Version", "13"),
        ("Sec-WebSocket-Protocol", "chat.v1"),
    ];
    let mut s = server();
    s.initiate_upgrade_connection(headers, "/chat").unwrap();
    let request = request_event(drain(&mut s));
    assert_eq!(request.target, "/chat");
    assert_eq!(request.subprotocols, ["chat.v1"]);
    let response = s.send_bytes(AcceptConnection::new().with_subprotocol("chat.v1")).unwrap();
    assert!(response.starts_with(b"HTTP/1.1 101 "));
    assert_eq!(s.state(), ConnectionState::Open);

    // Same validation.
    let mut s = server();
    let e = remote(s.initiate_upgrade_connection([("Host", "h"), ("Connection", "Upgrade")], "/"));
    assert_eq!(hint_status(&e), 400);
    let mut s = server();
    let e = remote(s.initiate_upgrade_connection(
        [("Host", "h"), ("Connection", "Upgrade"), ("Upgrade", "websocket"), ("Sec-WebSocket-Version", "8")],
        "/",
    ));
    assert_eq!(hint_status(&e), 426);

    // Client-side and repeated calls are misuse.
    let mut c = client();
    assert!(matches!(c.initiate_upgrade_connection(headers, "/"), Err(ProtocolError::Local(_))));
    let mut s = server();
    s.initiate_upgrade_connection(headers, "/").unwrap();
    assert!(matches!(s.initiate_upgrade_connection(headers, "/"), Err(ProtocolError::Local(_))));
}

// ---------------------------------------------------------------------------------------------
// Rejections

#[test]
fn reject_without_body() {
    let mut c = client_after_request(&[]);
    let mut s = server();
    s.receive_data(REQUEST.as_bytes()).unwrap();
    let _ = drain(&mut s);
    let bytes = s.send_bytes(RejectConnection::new(403).with_header("Content-Type", "text/plain")).unwrap();
    assert_eq!(
        &bytes[..],
        b"HTTP/1.1 403 Forbidden\r\nContent-Type: text/plain\r\ncontent-length: 0\r\n\r\n"
    );
    assert_eq!(s.state(), ConnectionState::Closed);

    c.receive_data(&bytes).unwrap();
    let (head, body, chunks) = rejection(drain(&mut c));
    assert_eq!(head.status_code, 403);
    assert!(head.has_body, "a final response always announces a body, as in wsproto");
    assert_eq!(header(&head.headers, "content-type"), Some(&b"text/plain"[..]));
    assert_eq!((body.len(), chunks), (0, 0));
    assert_eq!(c.state(), ConnectionState::Closed);
    // Bytes after the rejection are ignored.
    c.receive_data(b"junk").unwrap();
    assert!(drain(&mut c).is_empty());
}

#[test]
fn reject_with_content_length_body_in_chunks() {
    let mut s = server();
    s.receive_data(REQUEST.as_bytes()).unwrap();
    let _ = drain(&mut s);
    let mut wire = s
        .send_bytes(RejectConnection::new(404).with_header("Content-Length", "14").with_body())
        .unwrap()
        .to_vec();
    assert_eq!(s.state(), ConnectionState::Rejecting);
    wire.extend_from_slice(&s.send_bytes(RejectData::chunk("Path ")).unwrap());
    assert_eq!(s.state(), ConnectionState::Rejecting);
    wire.extend_from_slice(&s.send_bytes(RejectData::new("not found")).unwrap());
    assert_eq!(s.state(), ConnectionState::Closed);
    assert!(wire.ends_with(b"\r\n\r\nPath not found"));

    // Whole, then in pieces.
    let mut c = client_after_request(&[]);
    c.receive_data(&wire).unwrap();
    let (head, body, _) = rejection(drain(&mut c));
    assert_eq!((head.status_code, &body[..]), (404, &b"Path not found"[..]));
    assert_eq!(c.state(), ConnectionState::Closed);

    let mut c = client_after_request(&[]);
    let mut events = Vec::new();
    let head_len = wire.len() - 14;
    c.receive_data(&wire[..head_len + 3]).unwrap();
    events.extend(drain(&mut c));
    assert_eq!(c.state(), ConnectionState::Rejecting);
    for piece in wire[head_len + 3..].chunks(4) {
        c.receive_data(piece).unwrap();
        events.extend(drain(&mut c));
    }
    let (_, body, chunks) = rejection(events);
    assert_eq!(&body[..], b"Path not found");
    assert!(chunks >= 4, "body streamed in several RejectData events");
    assert_eq!(c.state(), ConnectionState::Closed);
}

#[test]
fn reject_with_chunked_body() {
    let mut s = server();
    s.receive_data(REQUEST.as_bytes()).unwrap();
    let _ = drain(&mut s);
    // Explicit chunked framing.
    let mut wire = s
        .send_bytes(RejectConnection::new(500).with_header("Transfer-Encoding", "chunked").with_body())
        .unwrap()
        .to_vec();
    for part in ["one ", "two ", ""] {
        wire.extend_from_slice(&s.send_bytes(RejectData::chunk(part)).unwrap());
    }
    wire.extend_from_slice(&s.send_bytes(RejectData::new("three")).unwrap());
    assert!(wire.ends_with(b"4\r\none \r\n4\r\ntwo \r\n5\r\nthree\r\n0\r\n\r\n"));
    assert_eq!(s.state(), ConnectionState::Closed);

    for chunk_size in [wire.len(), 1, 3] {
        let mut c = client_after_request(&[]);
        let mut events = Vec::new();
        for piece in wire.chunks(chunk_size) {
            c.receive_data(piece).unwrap();
            events.extend(drain(&mut c));
        }
        let (head, body, _) = rejection(events);
        assert_eq!(head.status_code, 500);
        assert_eq!(&body[..], b"one two three");
        assert_eq!(c.state(), ConnectionState::Closed);
    }
}

#[test]
fn reject_body_until_eof() {
    let mut c = client_after_request(&[]);
    c.receive_data(b"HTTP/1.1 503 Busy\r\nContent-Type: text/plain\r\n\r\nback ").unwrap();
    c.receive_data(b"later").unwrap();
    assert_eq!(c.state(), ConnectionState::Rejecting);
    c.receive_eof().unwrap();
    let (head, body, chunks) = rejection(drain(&mut c));
    assert_eq!(head.status_code, 503);
    assert_eq!((&body[..], chunks), (&b"back later"[..], 2));
    assert_eq!(c.state(), ConnectionState::Closed);
}

#[test]
fn truncated_rejection_body_is_an_error() {
    let mut c = client_after_request(&[]);
    c.receive_data(b"HTTP/1.1 404 Not Found\r\nContent-Length: 10\r\n\r\nabc").unwrap();
    let e = remote(c.receive_eof());
    assert!(e.to_string().contains("Bad HTTP message"), "{e}");
    let mut c = client_after_request(&[]);
    let e = remote(c.receive_data(b"HTTP/1.1 404 Not Found\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"));
    assert_eq!(hint_status(&e), 400);
}

#[test]
fn informational_response_rejects_without_body() {
    let mut c = client_after_request(&[]);
    c.receive_data(b"HTTP/1.1 100 Continue\r\n\r\n").unwrap();
    let events = drain(&mut c);
    assert_eq!(events, vec![Event::RejectConnection(RejectConnection::new(100))]);
    assert_eq!(c.state(), ConnectionState::Closed);
}

#[test]
fn server_can_send_the_hint_after_a_bad_request() {
    let mut s = server();
    let e = remote(
        s.receive_data(b"GET / HTTP/1.1\r\nHost: h\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n"),
    );
    let hint = e.event_hint();
    assert_eq!(hint.status_code, 400);
    assert_eq!(hint.headers, vec![(Bytes::from("Sec-WebSocket-Version"), Bytes::from("13"))]);
    // The handshake is dead: more input repeats the error, accepting is refused.
    assert_eq!(remote(s.receive_data(b"more")), e);
    local(s.send_bytes(AcceptConnection::new()));
    let bytes = s.send_bytes(hint).unwrap();
    assert_eq!(
        &bytes[..],
        b"HTTP/1.1 400 Bad Request\r\nSec-WebSocket-Version: 13\r\ncontent-length: 0\r\n\r\n"
    );
    assert_eq!(s.state(), ConnectionState::Closed);
}

// ---------------------------------------------------------------------------------------------
// Invalid requests: the server's validation of the upgrade request, in python wsproto's order (method,
// Connection, Sec-WebSocket-Version, Sec-WebSocket-Key, Upgrade, Host); the first failure wins.

fn request_without(skip: &str, extra: &str) -> String {
    let mut out = String::new();
    for line in REQUEST.trim_end().split("\r\n") {
        if !skip.is_empty() && line.to_ascii_lowercase().starts_with(&skip.to_ascii_lowercase()) {
            continue;
        }
        out.push_str(line);
        out.push_str("\r\n");
    }
    out.push_str(extra);
    out.push_str("\r\n");
    out
}

#[test]
fn invalid_requests() {
    // (request, message fragment, hint status)
    let cases: Vec<(String, &str, u16)> = vec![
        (REQUEST.replacen("GET", "POST", 1), "method must be GET", 400),
        (REQUEST.replacen("HTTP/1.1", "HTTP/1.0", 1), "HTTP/1.1", 400),
        (request_without("Connection:", ""), "Connection: Upgrade", 400),
        (request_without("Connection:", "Connection: keep-alive\r\n"), "Connection: Upgrade", 400),
        (request_without("Connection:", "Connection: upgraded\r\n"), "Connection: Upgrade", 400),
        (request_without("Sec-WebSocket-Version:", ""), "Sec-WebSocket-Version", 400),
        (
            request_without("Sec-WebSocket-Version:", "Sec-WebSocket-Version: 8\r\n"),
            "Sec-WebSocket-Version",
            426,
        ),
        (
            request_without(
                "Sec-WebSocket-Version:",
                "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Version: 8\r\n",
            ),
            "Sec-WebSocket-Version",
            426,
        ),
        (request_without("Sec-WebSocket-Key:", ""), "Sec-WebSocket-Key", 400),
        (request_without("Sec-WebSocket-Key:", "Sec-WebSocket-Key: hello\r\n"), "Sec-WebSocket-Key", 400),
        (
            request_without("Sec-WebSocket-Key:", "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZXh4eA==\r\n"),
            "Sec-WebSocket-Key",
            400,
        ),
        (
            request_without(
                "Sec-WebSocket-Key:",
                &format!("Sec-WebSocket-Key: {RFC_KEY}\r\nSec-WebSocket-Key: {RFC_KEY}\r\n"),
            ),
            "Sec-WebSocket-Key",
            400,
        ),
        (request_without("Upgrade:", ""), "Upgrade: websocket", 400),
        (request_without("Upgrade:", "Upgrade: h2c\r\n"), "Upgrade: websocket", 400),
        (request_without("Host:", ""), "Host", 400),
        (request_without("", "Host: other\r\n"), "Host", 400),
        ("GARBAGE\r\n\r\n".to_owned(), "Bad HTTP message", 400),
        ("GET / HTTP/1.1\r\nBad Header\r\n\r\n".to_owned(), "Bad HTTP message", 400),
        ("GET / HTTP/1.1\r\nHost: \x01\r\n\r\n".to_owned(), "Bad HTTP message", 400),
    ];
    for (request, fragment, status) in cases {
        let e = server_error(&request);
        assert!(e.to_string().contains(fragment), "{request:?}: {e}");
        assert_eq!(hint_status(&e), status, "{request:?}: {e}");
        let hint = e.event_hint();
        assert!(!hint.has_body);
        if e.to_string().contains("Version") {
            assert_eq!(hint.headers, vec![(Bytes::from("Sec-WebSocket-Version"), Bytes::from("13"))]);
        } else {
            assert!(hint.headers.is_empty());
        }
    }
}

#[test]
fn checks_run_in_reference_order() {
    // Missing Connection and Upgrade: Connection is reported first (python wsproto's order).
    let request = request_without("Connection:", "").replace("Upgrade: websocket\r\n", "");
    assert!(server_error(&request).to_string().contains("Connection"));
    // Bad version and missing key: version first, with its 426.
    let request = request_without("Sec-WebSocket-Key:", "").replace("Version: 13", "Version: 7");
    assert_eq!(hint_status(&server_error(&request)), 426);
}

#[test]
fn too_many_headers_is_431() {
    let extra: String = (0..70).map(|i| format!("X-H{i}: v\r\n")).collect();
    let e = server_error(&request_without("", &extra));
    assert_eq!(hint_status(&e), 431);
}

#[test]
fn oversized_head_is_431_before_it_is_all_buffered() {
    // Default limit: 16 KiB. Feed a never-ending header in 1 KiB pieces.
    let mut s = server();
    s.receive_data(b"GET / HTTP/1.1\r\nX-Long: ").unwrap();
    let piece = vec![b'a'; 1024];
    let mut fed = 0;
    let e = loop {
        match s.receive_data(&piece) {
            Ok(()) => fed += piece.len(),
            Err(ProtocolError::Remote(e)) => break e,
            Err(e) => panic!("{e}"),
        }
        assert!(fed <= 17 * 1024, "kept buffering past the limit");
    };
    assert_eq!(hint_status(&e), 431);
    assert!(fed >= 15 * 1024);

    // A configured limit, with a complete head just over it.
    let mut s = WsConnection::with_config(ConnectionType::Server, Config::default().max_handshake_size(100));
    let e = remote(s.receive_data(REQUEST.as_bytes()));
    assert_eq!(hint_status(&e), 431);
    let mut s = WsConnection::with_config(
        ConnectionType::Server,
        Config::default().max_handshake_size(REQUEST.len()),
    );
    s.receive_data(REQUEST.as_bytes()).unwrap();

    // A client also bounds the response head.
    let mut c = client_after_request(&[]);
    let e = remote(c.receive_data(&vec![b'H'; 20 * 1024]));
    assert_eq!(hint_status(&e), 431);
}

#[test]
fn eof_during_the_request() {
    let mut s = server();
    s.receive_eof().unwrap(); // nothing received: nothing to report
    assert_eq!(s.state(), ConnectionState::Connecting);
    let mut s = server();
    s.receive_data(b"GET / HTTP/1.1\r\nHost:").unwrap();
    assert_eq!(hint_status(&remote(s.receive_eof())), 400);
    // EOF after the request: the connection reports the abnormal closure once accepted.
    let mut s = server();
    s.receive_data(REQUEST.as_bytes()).unwrap();
    s.receive_eof().unwrap();
    let _ = drain(&mut s);
    s.send_bytes(AcceptConnection::new()).unwrap();
    let events = drain(&mut s);
    let [Event::CloseConnection(close)] = &events[..] else { panic!("{events:?}") };
    assert_eq!(
        (close.code, &close.source, close.reply()),
        (CloseCode::ABNORMAL_CLOSURE, &CloseSource::TransportEnded, None)
    );
    assert_eq!(s.state(), ConnectionState::Closed);
}

// ---------------------------------------------------------------------------------------------
// Invalid responses: the client's validation of the 101 response, in python wsproto's order (Connection,
// Upgrade, Sec-WebSocket-Accept, Sec-WebSocket-Protocol, Sec-WebSocket-Extensions).

fn response_without(skip: &str, extra: &str) -> String {
    let mut out = String::new();
    for line in RESPONSE.trim_end().split("\r\n") {
        if !skip.is_empty() && line.starts_with(skip) {
            continue;
        }
        out.push_str(line);
        out.push_str("\r\n");
    }
    out.push_str(extra);
    out.push_str("\r\n");
    out
}

#[test]
fn invalid_responses() {
    let cases: Vec<(String, &str)> = vec![
        (response_without("Connection:", ""), "Connection: Upgrade"),
        (response_without("Connection:", "Connection: close\r\n"), "Connection: Upgrade"),
        (response_without("Upgrade:", ""), "Upgrade: websocket"),
        (response_without("Upgrade:", "Upgrade: websocket, h2c\r\n"), "Upgrade: websocket"),
        (response_without("Sec-WebSocket-Accept:", ""), "Bad accept token"),
        (response_without("Sec-WebSocket-Accept:", "Sec-WebSocket-Accept: bm9wZQ==\r\n"), "Bad accept token"),
        (response_without("", "Sec-WebSocket-Protocol: chat.v2\r\n"), "unrecognized subprotocol chat.v2"),
        (response_without("", "Sec-WebSocket-Extensions: permessage-deflate\r\n"), "unrecognized extension"),
        ("HTTP/1.1 abc\r\n\r\n".to_owned(), "Bad HTTP message"),
        ("HTTP/1.1 404 Not Found\r\nContent-Length: x\r\n\r\n".to_owned(), "Content-Length"),
    ];
    for (response, fragment) in cases {
        let e = client_error(&response);
        assert!(e.to_string().contains(fragment), "{response:?}: {e}");
        assert_eq!(e.event_hint(), RejectConnection::default(), "{response:?}");
    }
    // Case-insensitive where the RFC says so.
    let mut c = client_after_request(&["chat.v1"]);
    c.receive_data(
        response_without("Upgrade:", "UPGRADE: WebSocket\r\nsec-websocket-protocol: chat.v1\r\n")
            .replace("Connection: Upgrade", "connection: keep-alive, UPGRADE")
            .as_bytes(),
    )
    .unwrap();
    assert_eq!(accept_event(drain(&mut c).remove(0)).subprotocol.as_deref(), Some("chat.v1"));
}

#[test]
fn eof_before_the_response() {
    let mut c = client_after_request(&[]);
    let e = remote(c.receive_eof());
    assert_eq!(hint_status(&e), 400);
    let mut c = client_after_request(&[]);
    c.receive_data(b"HTTP/1.1 101 Switching").unwrap();
    remote(c.receive_eof());
    assert_eq!(c.state(), ConnectionState::Closed);
}

// ---------------------------------------------------------------------------------------------
// Misuse

#[test]
fn client_misuse() {
    let mut c = client();
    assert!(
        matches!(c.receive_data(b"HTTP/1.1 101 "), Err(ProtocolError::Local(_))),
        "data before the Request"
    );
    local(c.send_bytes(AcceptConnection::new()));
    local(c.send_bytes(RejectConnection::new(400)));
    local(c.send_bytes(RejectData::new("x")));
    local(c.send_bytes(TextMessage::new("too early")));
    local(c.send_bytes(Request::new("h", "/").with_header("X-Evil", "a\r\nInjected: 1")));
    local(c.send_bytes(Request::new("h", "/").with_header("Bad Name", "v")));
    local(c.send_bytes(Request::new("h\r\nX: 1", "/")));
    local(c.send_bytes(Request::new("h", "/a b")));
    local(c.send_bytes(Request::new("", "/")));
    local(c.send_bytes(Request::new("h", "/").with_subprotocols(["a b"])));
    let mut offers = Request::new("h", "/");
    offers.extensions.push("permessage-deflate".into());
    local(c.send_bytes(offers));
    assert_eq!(c.state(), ConnectionState::Connecting);
    c.send_bytes(Request::new("h", "/")).unwrap();
    local(c.send_bytes(Request::new("h", "/")));
    local(c.send_bytes(Ping::new("")));
    c.receive_data(RESPONSE.as_bytes()).unwrap();
    let _ = drain(&mut c);
    local(c.send_bytes(Request::new("h", "/")));
}

#[test]
fn server_misuse() {
    let mut s = server();
    local(s.send_bytes(Request::new("h", "/")));
    local(s.send_bytes(AcceptConnection::new()));
    local(s.send_bytes(RejectData::new("x")));
    local(s.send_bytes(TextMessage::new("x")));
    s.receive_data(REQUEST.as_bytes()).unwrap();
    let _ = drain(&mut s);
    // A subprotocol the client did not offer: refused, and nothing changed.
    let e = local(s.send_bytes(AcceptConnection::new().with_subprotocol("chat.v1")));
    assert!(e.to_string().contains("unexpected subprotocol chat.v1"), "{e}");
    local(s.send_bytes(AcceptConnection::new().with_header("X", "a\nb")));
    local(s.send_bytes(RejectConnection::new(101)));
    local(s.send_bytes(RejectConnection::new(400).with_header("Content-Length", "3")));
    local(s.send_bytes(RejectConnection::new(400).with_header("Transfer-Encoding", "chunked")));
    assert_eq!(s.state(), ConnectionState::Connecting);
    s.send_bytes(RejectConnection::new(400).with_header("Content-Length", "3").with_body()).unwrap();
    local(s.send_bytes(RejectConnection::new(400)));
    local(s.send_bytes(AcceptConnection::new()));
    local(s.send_bytes(RejectData::new("toolong")));
    local(s.send_bytes(RejectData::new("ab")));
    s.send_bytes(RejectData::chunk("ab")).unwrap();
    s.send_bytes(RejectData::new("c")).unwrap();
    assert_eq!(s.state(), ConnectionState::Closed);
    local(s.send_bytes(RejectData::new("")));
    // Bytes after a rejection are ignored.
    s.receive_data(b"whatever").unwrap();

    let mut s = server();
    s.receive_data(REQUEST.as_bytes()).unwrap();
    let _ = drain(&mut s);
    s.send_bytes(AcceptConnection::new()).unwrap();
    local(s.send_bytes(AcceptConnection::new()));
    local(s.send_bytes(RejectConnection::new(400)));
    local(s.send_bytes(RejectData::new("")));
}

/// The handshake on its own ends by value: the connection and the bytes read past the head
/// (a frame the client pipelined behind its request), which the connection decodes first.
#[test]
fn handshake_alone_ends_by_value_with_the_bytes_past_the_head() {
    let mut c = Handshake::with_config(ConnectionType::Client, config());
    let mut s = Handshake::new(ConnectionType::Server);
    let mut wire = c.send_bytes(Request::new("h", "/")).unwrap().to_vec();
    assert!(c.send_bytes(TextMessage::new("early")).is_err(), "not open yet");
    let c = match c.into_connection() {
        Err(handshake) => handshake,
        Ok(_) => panic!("no connection before the 101"),
    };
    let mut c = c;
    s.receive_data(&wire).unwrap();
    assert!(matches!(s.next_event(), Some(Event::Request(_))));
    c.receive_data(&s.send_bytes(AcceptConnection::new()).unwrap()).unwrap();
    let ev = c.events().next();
    assert!(matches!(ev, Some(Event::AcceptConnection(_))), "{ev:?} {:?}", c.failure());
    assert_eq!(c.state(), ConnectionState::Open);
    // Once open, the handshake does not drive the connection.
    assert_eq!(c.send_bytes(TextMessage::new("x")), Err(LocalProtocolError::HandshakeComplete));
    assert!(matches!(c.receive_data(b"x"), Err(ProtocolError::Local(LocalProtocolError::HandshakeComplete))));
    let (mut client_conn, trailing) = c.into_connection().unwrap();
    assert!(trailing.is_empty());

    // A frame glued to the request reaches the server's connection as trailing bytes.
    let mut s = Handshake::new(ConnectionType::Server);
    wire.extend_from_slice(&client_conn.send_bytes(TextMessage::new("x")).unwrap());
    s.receive_data(&wire).unwrap();
    assert!(matches!(s.next_event(), Some(Event::Request(_))));
    s.send_bytes(AcceptConnection::new()).unwrap();
    let (mut conn, trailing) = s.into_connection().unwrap();
    assert_eq!(conn.state(), ConnectionState::Open);
    conn.receive_data(&trailing).unwrap();
    assert_eq!(conn.next_event().map(|e| text(&e).to_owned()).as_deref(), Some("x"));
}

// ---------------------------------------------------------------------------------------------
// The seed's flows

/// The seed's server: accept `/chat` (with `chat.v1` when offered), reject anything else with
/// a 404 `text/plain` "Path not found". Returns the bytes to send.
fn chat_server(ws: &mut WsConnection, data: &[u8]) -> Vec<u8> {
    ws.receive_data(data).unwrap();
    let mut out = BytesMut::new();
    let events: Vec<Event> = ws.events().collect();
    for event in events {
        if let Event::Request(request) = event {
            if request.target == "/chat" {
                let mut accept = AcceptConnection::new();
                if request.subprotocols.iter().any(|p| p == "chat.v1") {
                    accept = accept.with_subprotocol("chat.v1");
                }
                ws.send(accept, &mut out).unwrap();
            } else {
                let reject = RejectConnection::new(404).with_header("content-type", "text/plain").with_body();
                ws.send(reject, &mut out).unwrap();
                ws.send(RejectData::new("Path not found"), &mut out).unwrap();
            }
        }
    }
    out.to_vec()
}

#[test]
fn seed_chat_server_accepts_chat_with_subprotocol() {
    for (offer, expected) in
        [(&["chat.v2", "chat.v1"][..], Some("chat.v1")), (&["chat.v2"][..], None), (&[][..], None)]
    {
        let mut s = WsConnection::new(ConnectionType::Server);
        let mut c = WsConnection::new(ConnectionType::Client);
        let request = c
            .send_bytes(Request::new("localhost", "/chat").with_subprotocols(offer.iter().copied()))
            .unwrap();
        let response = chat_server(&mut s, &request);
        assert_eq!(s.state(), ConnectionState::Open);
        c.receive_data(&response).unwrap();
        let accept = accept_event(c.next_event().unwrap());
        assert_eq!(accept.subprotocol.as_deref(), expected, "offer {offer:?}");
        assert_eq!(c.state(), ConnectionState::Open);
    }
}

#[test]
fn seed_chat_server_rejects_other_paths_with_404() {
    let mut s = WsConnection::new(ConnectionType::Server);
    let mut c = WsConnection::new(ConnectionType::Client);
    let request = c.send_bytes(Request::new("localhost", "/elsewhere")).unwrap();
    let response = chat_server(&mut s, &request);
    assert_eq!(s.state(), ConnectionState::Closed);
    let text = std::str::from_utf8(&response).unwrap();
    assert!(text.starts_with(
        "HTTP/1.1 404 Not Found\r\ncontent-type: text/plain\r\ntransfer-encoding: chunked\r\n\r\n"
    ));

    c.receive_data(&response).unwrap();
    let (head, body, _) = rejection(drain(&mut c));
    assert_eq!(head.status_code, 404);
    assert_eq!(header(&head.headers, "content-type"), Some(&b"text/plain"[..]));
    assert_eq!(&body[..], b"Path not found");
    assert_eq!(c.state(), ConnectionState::Closed);
}

/// The seed's `handle_client`, one `recv` worth of bytes at a time. Returns what it sends and
/// whether it returned (after answering a close).
fn handle_client(ws: &mut WsConnection, data: &[u8]) -> (Vec<u8>, bool) {
    let mut out = BytesMut::new();
    if data.is_empty() {
        return (Vec::new(), true);
    }
    ws.receive_data(data).unwrap();
    // Lazily, like the seed's generator: the state must not run ahead of the replies.
    while let Some(event) = ws.next_event() {
        match event {
            Event::Request(_) => ws.send(AcceptConnection::new(), &mut out).unwrap(),
            Event::TextMessage(m) => {
                ws.send(TextMessage::new(format!("Echo: {}", m.data)), &mut out).unwrap()
            }
            Event::BytesMessage(m) => {
                let mut echo = b"Echo: ".to_vec();
                echo.extend_from_slice(&m.data);
                ws.send(BytesMessage::new(echo), &mut out).unwrap();
            }
            Event::Ping(p) => ws.send(p.response(), &mut out).unwrap(),
            Event::CloseConnection(c) => {
                ws.send(c.response(), &mut out).unwrap();
                return (out.to_vec(), true);
            }
            _ => {}
        }
    }
    (out.to_vec(), false)
}

#[test]
fn seed_echo_loop_over_an_in_memory_pipe() {
    for recv_size in [4096, 7, 1] {
        // The seed echoes every chunk it gets as a whole message: with reads smaller than a
        // frame this relies on small frames being delivered whole (the default chunk minimum).
        let mut server = WsConnection::with_config(ConnectionType::Server, Config::default());
        let mut client = WsConnection::new(ConnectionType::Client);
        let mut to_server: VecDeque<u8> = VecDeque::new();
        let mut to_client: VecDeque<u8> = VecDeque::new();
        let mut received = Vec::new();
        let mut server_done = false;

        to_server.extend(client.send_bytes(Request::new("localhost", "/")).unwrap());
        let mut step = 0;
        let mut script_sent = false;
        while !(server_done && to_client.is_empty()) {
            step += 1;
            assert!(step < 100_000, "no progress");
            // Server side: recv up to `recv_size` bytes.
            if !server_done && !to_server.is_empty() {
                let n = recv_size.min(to_server.len());
                let chunk: Vec<u8> = to_server.drain(..n).collect();
                let (out, done) = handle_client(&mut server, &chunk);
                to_client.extend(out);
                server_done = done;
            }
            // Client side.
            if !to_client.is_empty() {
                let n = recv_size.min(to_client.len());
                let chunk: Vec<u8> = to_client.drain(..n).collect();
                client.receive_data(&chunk).unwrap();
                received.extend(client.events());
            }
            if !script_sent && client.state() == ConnectionState::Open {
                script_sent = true;
                let mut out = BytesMut::new();
                client.send(TextMessage::new("hello"), &mut out).unwrap();
                client.send(BytesMessage::new(&b"\x01\x02"[..]), &mut out).unwrap();
                client.send(Ping::new("are you there"), &mut out).unwrap();
                client.send(TextMessage::fragment("multi "), &mut out).unwrap();
                client.send(TextMessage::new("part"), &mut out).unwrap();
                client.send(CloseConnection::with_reason(1000u16, "bye"), &mut out).unwrap();
                assert_eq!(client.state(), ConnectionState::LocalClosing);
                to_server.extend(out);
            }
        }

        // Reassemble messages (chunks arrive partial with small reads).
        let mut texts = Vec::new();
        let mut binaries = Vec::new();
        let mut text_buf = String::new();
        let mut bin_buf = Vec::new();
        let mut others = Vec::new();
        for event in received {
            match event {
                Event::TextMessage(m) => {
                    text_buf.push_str(&m.data);
                    if m.message_finished {
                        texts.push(std::mem::take(&mut text_buf));
                    }
                }
                Event::BytesMessage(m) => {
                    bin_buf.extend_from_slice(&m.data);
                    if m.message_finished {
                        binaries.push(std::mem::take(&mut bin_buf));
                    }
                }
                other => others.push(other),
            }
        }
        assert!(matches!(others[0], Event::AcceptConnection(_)));
        assert_eq!(texts, ["Echo: hello", "Echo: multi ", "Echo: part"], "recv {recv_size}");
        assert_eq!(binaries, [b"Echo: \x01\x02".to_vec()]);
        assert_eq!(others[1], Event::Pong(Pong::new("are you there")));
        let Event::CloseConnection(close) = &others[2] else { panic!("{others:?}") };
        assert_eq!(
            (close.code, close.reason.as_deref(), close.reply_owed),
            (CloseCode(1000), Some("bye"), false)
        );
        assert_eq!(others.len(), 3);
        assert_eq!(server.state(), ConnectionState::Closed);
        assert_eq!(client.state(), ConnectionState::Closed);
    }
}

// ---------------------------------------------------------------------------------------------
// Extension negotiation plumbing

type Log = Arc<Mutex<Vec<String>>>;

/// A toy extension that logs its negotiation calls.
#[derive(Debug)]
struct Toy {
    name: &'static str,
    offer: Option<&'static str>,
    /// Accept only offers containing this text (any offer when `None`).
    accept_if: Option<&'static str>,
    finalize_error: bool,
    enabled: bool,
    log: Log,
}

impl Toy {
    fn new(name: &'static str, log: &Log) -> Toy {
        Toy {
            name,
            offer: Some(""),
            accept_if: None,
            finalize_error: false,
            enabled: false,
            log: log.clone(),
        }
    }
}

impl Extension for Toy {
    fn name(&self) -> &str {
        self.name
    }
    fn enabled(&self) -> bool {
        self.enabled
    }
    fn offer(&mut self) -> Option<String> {
        self.log.lock().unwrap().push(format!("{} offer", self.name));
        self.offer.map(str::to_owned)
    }
    fn accept(&mut self, offer: &str) -> Option<String> {
        self.log.lock().unwrap().push(format!("{} accept {offer}", self.name));
        if self.accept_if.is_some_and(|want| !offer.contains(want)) {
            return None;
        }
        self.enabled = true;
        Some(if offer.contains("p=1") { "p=1; ok".to_owned() } else { String::new() })
    }
    fn finalize(&mut self, response: &str) -> Result<(), ExtensionError> {
        self.log.lock().unwrap().push(format!("{} finalize {response}", self.name));
        if self.finalize_error {
            return Err(ExtensionError::new(CloseCode::MANDATORY_EXT, "cannot honour"));
        }
        self.enabled = true;
        Ok(())
    }
}

fn names(extensions: &[Box<dyn Extension>]) -> Vec<&str> {
    extensions.iter().map(|e| e.name()).collect()
}

#[test]
fn request_hosts_ipv6_in_brackets_non_ascii_refused() {
    let host_line = |host: &str| {
        let bytes = client().send_bytes(Request::new(host, "/")).unwrap();
        let text = String::from_utf8(bytes.to_vec()).unwrap();
        text.lines().find(|l| l.starts_with("Host: ")).unwrap().to_owned()
    };
    assert_eq!(host_line("::1"), "Host: [::1]");
    assert_eq!(host_line("[::1]:9030"), "Host: [::1]:9030");
    assert_eq!(host_line("example.com:8080"), "Host: example.com:8080");
    assert_eq!(host_line("xn--bcher-kva.example"), "Host: xn--bcher-kva.example");
    let mut c = client();
    let e = c.send_bytes(Request::new("bücher.example", "/")).unwrap_err();
    assert_eq!(e, LocalProtocolError::InvalidHost("bücher.example".into()));
    assert!(e.to_string().contains("IDNA"), "{e}");
    assert_eq!(c.state(), ConnectionState::Connecting, "nothing sent: the client can try again");
    c.send_bytes(Request::new("xn--bcher-kva.example", "/")).unwrap();
}

#[test]
fn extension_negotiation_end_to_end() {
    let client_log = Log::default();
    let server_log = Log::default();
    let mut quiet = Toy::new("x-quiet", &client_log);
    quiet.offer = None; // not offered at all
    let mut with_params = Toy::new("x-toy", &client_log);
    with_params.offer = Some("p=1");
    let mut c = client()
        .with_extension(with_params)
        .with_extension(quiet)
        .with_extension(Toy::new("x-bare", &client_log));
    // The server supports X-TOY (other case) and something the client did not offer.
    let mut s = server()
        .with_extension(Toy::new("x-other", &server_log))
        .with_extension(Toy::new("X-TOY", &server_log));
    let bytes = c.send_bytes(Request::new("h", "/")).unwrap();
    assert!(
        std::str::from_utf8(&bytes).unwrap().contains("\r\nSec-WebSocket-Extensions: x-toy; p=1, x-bare\r\n"),
        "{bytes:?}"
    );

    s.receive_data(&bytes).unwrap();
    let request = request_event(drain(&mut s));
    assert_eq!(request.extensions, ["x-toy; p=1", "x-bare"]);
    let response = s.send_bytes(AcceptConnection::new()).unwrap();
    assert!(std::str::from_utf8(&response)
        .unwrap()
        .contains("\r\nSec-WebSocket-Extensions: X-TOY; p=1; ok\r\n"));
    assert_eq!(*server_log.lock().unwrap(), ["X-TOY accept x-toy; p=1"]);
    assert_eq!(names(s.connection().unwrap().extensions()), ["X-TOY"], "only enabled extensions kept");

    c.receive_data(&response).unwrap();
    let accept = accept_event(c.next_event().unwrap());
    assert_eq!(accept.extensions, ["X-TOY; p=1; ok"], "what was agreed, as written by the server");
    assert_eq!(names(c.connection().unwrap().extensions()), ["x-toy"]);
    assert_eq!(
        *client_log.lock().unwrap(),
        ["x-toy offer", "x-quiet offer", "x-bare offer", "x-toy finalize X-TOY; p=1; ok"]
    );
}

#[test]
fn unrecognized_extension_in_response() {
    let log = Log::default();
    let mut c = client().with_extension(Toy::new("x-toy", &log));
    c.send_bytes(Request::new("h", "/")).unwrap();
    let response = response_without("", "Sec-WebSocket-Extensions: x-unknown\r\n");
    let e = remote(c.receive_data(response.as_bytes()));
    assert_eq!(e.to_string(), "unrecognized extension x-unknown");
    assert_eq!(e.event_hint(), RejectConnection::default());

    // An extension the client did not offer (offer() returned None) is not recognised either.
    let mut quiet = Toy::new("x-toy", &log);
    quiet.offer = None;
    let mut c = client().with_extension(quiet);
    c.send_bytes(Request::new("h", "/")).unwrap();
    let response = response_without("", "Sec-WebSocket-Extensions: x-toy\r\n");
    assert!(remote(c.receive_data(response.as_bytes())).to_string().contains("unrecognized extension"));
}

#[test]
fn server_extensions_handshake_first_acceptable_offer_wins() {
    let log = Log::default();
    let mut supported: Vec<Box<dyn Extension>> = vec![Box::new(Toy::new("x-toy", &log))];
    let offers = ["x-toy; a", "x-toy; b"];
    assert_eq!(server_extensions_handshake(&offers, &mut supported).as_deref(), Some("x-toy"));
    assert_eq!(*log.lock().unwrap(), ["x-toy accept x-toy; a"], "later offers are not applied");

    let log = Log::default();
    let mut picky = Toy::new("x-toy", &log);
    picky.accept_if = Some("b");
    let mut supported: Vec<Box<dyn Extension>> = vec![Box::new(picky)];
    assert_eq!(server_extensions_handshake(&offers, &mut supported).as_deref(), Some("x-toy"));
    assert_eq!(*log.lock().unwrap(), ["x-toy accept x-toy; a", "x-toy accept x-toy; b"]);

    // Nothing matching, malformed items skipped, names case-insensitive.
    let log = Log::default();
    let mut supported: Vec<Box<dyn Extension>> = vec![Box::new(Toy::new("x-toy", &log))];
    assert_eq!(server_extensions_handshake(&["other", "bad item; ="], &mut supported), None);
    assert_eq!(
        server_extensions_handshake(&["X-Toy; p=1".to_owned()], &mut supported).as_deref(),
        Some("x-toy; p=1; ok")
    );

    // Several extensions: response in the order of the offers.
    let log = Log::default();
    let mut supported: Vec<Box<dyn Extension>> =
        vec![Box::new(Toy::new("x-b", &log)), Box::new(Toy::new("x-a", &log))];
    assert_eq!(server_extensions_handshake(&["x-a", "x-b"], &mut supported).as_deref(), Some("x-a, x-b"));
}

#[test]
fn client_extensions_handshake_checks_the_response() {
    let log = Log::default();
    let offered = || -> Vec<Box<dyn Extension>> {
        vec![Box::new(Toy::new("x-a", &log)), Box::new(Toy::new("x-b", &log))]
    };

    let negotiated = client_extensions_handshake(["X-B", "x-a; q"], offered()).unwrap();
    assert_eq!(names(&negotiated), ["x-b", "x-a"]);
    assert!(negotiated.iter().all(|e| e.enabled()));

    assert!(client_extensions_handshake(Vec::<String>::new(), offered()).unwrap().is_empty());

    let e = client_extensions_handshake(["x-c"], offered()).unwrap_err();
    assert_eq!(e.to_string(), "unrecognized extension x-c");
    assert_eq!(e.event_hint(), RejectConnection::default());

    let e = client_extensions_handshake(["x-a", "x-a"], offered()).unwrap_err();
    assert!(e.to_string().contains("twice"), "{e}");

    let e = client_extensions_handshake(["x-a; p=\"unterminated"], offered()).unwrap_err();
    assert!(e.to_string().contains("malformed"), "{e}");

    let mut failing = Toy::new("x-a", &log);
    failing.finalize_error = true;
    let e = client_extensions_handshake(["x-a"], vec![Box::new(failing) as Box<dyn Extension>]).unwrap_err();
    assert!(e.to_string().contains("cannot honour"), "{e}");
}

#[test]
fn finalize_error_fails_the_client_handshake() {
    let log = Log::default();
    let mut failing = Toy::new("x-a", &log);
    failing.finalize_error = true;
    let mut c = client().with_extension(failing);
    c.send_bytes(Request::new("h", "/")).unwrap();
    let e = remote(c.receive_data(response_without("", "Sec-WebSocket-Extensions: x-a\r\n").as_bytes()));
    assert_eq!(hint_status(&e), 400);
    assert!(c.connection().is_none());
}

// ---------------------------------------------------------------------------------------------
// Robustness

/// Mutated handshakes in random chunkings: errors, never panics.
#[test]
fn mutated_input_never_panics() {
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let mut rand = move |n: usize| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        (seed % n as u64) as usize
    };
    let response_with_body =
        "HTTP/1.1 404 Not Found\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n".as_bytes();
    let mut good_101 = RESPONSE.as_bytes().to_vec();
    good_101.extend_from_slice(b"\x81\x02hi");
    let samples: [&[u8]; 4] =
        [REQUEST.as_bytes(), &good_101, response_with_body, b"HTTP/1.1 200 OK\r\n\r\nx"];
    for round in 0..3000 {
        let sample = samples[round % samples.len()];
        let mut input = sample.to_vec();
        for _ in 0..1 + rand(4) {
            let pos = rand(input.len() + 1);
            match rand(4) {
                0 if pos < input.len() => input[pos] = rand(256) as u8,
                1 => input.insert(pos, {
                    let pool = b"\r\n:;, \"0\x00\xff";
                    pool[rand(pool.len())]
                }),
                2 if pos < input.len() => {
                    input.remove(pos);
                }
                _ => input.truncate(pos),
            }
        }
        let is_request = round % samples.len() == 0;
        let mut ws = if is_request { server() } else { client_after_request(&["chat.v1"]) };
        let mut rest = &input[..];
        while !rest.is_empty() {
            let n = 1 + rand(rest.len());
            let _ = ws.receive_data(&rest[..n]);
            rest = &rest[n..];
            let _ = drain(&mut ws);
        }
        let _ = ws.receive_eof();
        let events = drain(&mut ws);
        if is_request
            && ws.state() == ConnectionState::Connecting
            && ws.handshake().is_some_and(|h| h.failure().is_none())
            && events.iter().any(|e| matches!(e, Event::Request(_)))
        {
            ws.send_bytes(AcceptConnection::new()).unwrap();
            let _ = drain(&mut ws);
        }
    }
}

#[cfg(feature = "http")]
#[test]
fn http_crate_interop() {
    use wsproto::http_compat::{rejection_response, upgrade_parts};

    // No Host header, authority in the URI (as HTTP/2 gives it).
    let req = http::Request::get("https://example.com/chat?x=1")
        .header("connection", "upgrade")
        .header("upgrade", "websocket")
        .header("sec-websocket-version", "13")
        .header("sec-websocket-key", RFC_KEY)
        .header("sec-websocket-protocol", "chat.v1")
        .body(())
        .unwrap();
    let (headers, target) = upgrade_parts(&req);
    assert_eq!(target, "/chat?x=1");
    assert_eq!(header(&headers, "host"), Some(&b"example.com"[..]));

    let mut ws = server();
    ws.initiate_upgrade_request(&req).unwrap();
    let request = request_event(drain(&mut ws));
    assert_eq!(request.host, "example.com");
    // A value `http` refuses leaves everything unchanged.
    local(ws.accept_response(AcceptConnection::new().with_header("x-bad", "\x01")));
    assert_eq!(ws.state(), ConnectionState::Connecting);
    let response = ws.accept_response(AcceptConnection::new().with_subprotocol("chat.v1")).unwrap();
    assert_eq!(response.status(), http::StatusCode::SWITCHING_PROTOCOLS);
    assert_eq!(response.headers()["sec-websocket-accept"], RFC_ACCEPT);
    assert_eq!(response.headers()["sec-websocket-protocol"], "chat.v1");
    assert_eq!(ws.state(), ConnectionState::Open);

    let post = http::Request::post("/").header("host", "h").body(()).unwrap();
    let mut ws = server();
    let e = remote(ws.initiate_upgrade_request(&post));
    let response = rejection_response(&e.event_hint()).unwrap();
    assert_eq!(response.status(), http::StatusCode::BAD_REQUEST);

    // HTTP/1.0 is refused as on the byte path.
    let mut old = req.clone();
    *old.version_mut() = http::Version::HTTP_10;
    let mut ws = server();
    assert_eq!(remote(ws.initiate_upgrade_request(&old)), RemoteProtocolError::NotHttp11);
}

#[cfg(feature = "http")]
#[test]
fn a_client_request_the_http_crate_refuses_changes_nothing() {
    // Refused before the handshake commits: the same connection then sends a good request.
    for extended in [false, true] {
        let mut ws = WsConnection::new(ConnectionType::Client);
        let send = |ws: &mut WsConnection, request: Request| match extended {
            false => ws.upgrade_request_http(request).map(drop),
            true => ws.extended_connect_request_http(request, http::uri::Scheme::HTTPS).map(drop),
        };
        local(send(&mut ws, Request::new("h", "/").with_header("x-a", "\x01")));
        local(send(&mut ws, Request::new("h", "/a<b>")));
        assert_eq!(ws.state(), ConnectionState::Connecting);
        send(&mut ws, Request::new("h", "/chat").with_header("x-a", "ok")).unwrap();
    }
}

#[cfg(feature = "deflate")]
#[test]
fn permessage_deflate_negotiated_through_the_handshake() {
    use wsproto::extensions::PerMessageDeflate;

    let mut c = client().with_extension(PerMessageDeflate::new());
    let mut s = server().with_extension(PerMessageDeflate::new());
    let request = c.send_bytes(Request::new("h", "/")).unwrap();
    assert!(std::str::from_utf8(&request).unwrap().contains("Sec-WebSocket-Extensions: permessage-deflate"));
    s.receive_data(&request).unwrap();
    let offers = request_event(drain(&mut s)).deflate_offers();
    assert_eq!(offers.len(), 1);
    assert_eq!(offers[0].client_max_window_bits, Some(None), "offered without a value");
    let response = s.send_bytes(AcceptConnection::new()).unwrap();
    c.receive_data(&response).unwrap();
    let accept = accept_event(c.next_event().unwrap());
    let agreed = accept.deflate().expect("the server agreed to permessage-deflate");
    assert!(!agreed.server_no_context_takeover);
    let params = c
        .connection()
        .unwrap()
        .extension::<PerMessageDeflate>()
        .and_then(|d| d.params())
        .expect("the connection reports the agreement");
    assert_eq!(params.server_max_window_bits, 15);
    assert_eq!(
        s.connection().unwrap().extension::<PerMessageDeflate>().and_then(|d| d.params()),
        Some(params.with_role(ConnectionType::Server))
    );
    assert_eq!(names(c.connection().unwrap().extensions()), ["permessage-deflate"]);
    assert_eq!(names(s.connection().unwrap().extensions()), ["permessage-deflate"]);

    let message = "hello hello hello hello hello";
    let frame = c.send_bytes(TextMessage::new(message)).unwrap();
    assert_eq!(frame[0] & 0x40, 0x40, "RSV1: compressed");
    s.receive_data(&frame).unwrap();
    let received: String = drain(&mut s).iter().map(|e| text(e).to_owned()).collect();
    assert_eq!(received, message);
}

// ---------------------------------------------------------------------------------------------
// WebSocket over HTTP/2 (RFC 8441): the extended CONNECT, server side

/// The headers of an extended CONNECT as an HTTP/2 stack hands them over (`host` from
/// `:authority`).
fn h2_headers(extra: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut headers = vec![
        ("host".to_string(), "example.com".to_string()),
        ("sec-websocket-version".to_string(), "13".to_string()),
        ("sec-websocket-protocol".to_string(), "chat, superchat".to_string()),
        ("sec-websocket-extensions".to_string(), "permessage-deflate; client_max_window_bits".to_string()),
    ];
    headers.extend(extra.iter().map(|(n, v)| (n.to_string(), v.to_string())));
    headers
}

#[test]
fn rfc8441_extended_connect_is_accepted_with_a_200_and_no_key() {
    let mut s = server();
    s.initiate_extended_connect("websocket", h2_headers(&[]), "/chat?room=1").unwrap();
    let request = request_event(drain(&mut s));
    assert_eq!((request.host.as_str(), request.target.as_str()), ("example.com", "/chat?room=1"));
    assert_eq!(request.subprotocols, ["chat", "superchat"]);
    assert_eq!(request.extensions, ["permessage-deflate; client_max_window_bits"]);
    // No bytes: HTTP/2 answers through its own stack.
    let e = s.send_bytes(AcceptConnection::new().with_subprotocol("chat")).unwrap_err();
    assert_eq!(e, LocalProtocolError::AnswerThroughHttp2);
    assert_eq!(s.state(), ConnectionState::Connecting, "nothing changed");
}

#[test]
fn rfc8441_refusals() {
    let refused = |protocol: &str, extra: &[(&str, &str)]| {
        let mut s = server();
        remote(s.initiate_extended_connect(protocol, h2_headers(extra), "/"))
    };
    assert_eq!(
        refused("websocket", &[("connection", "Upgrade")]),
        RemoteProtocolError::ConnectionSpecificHeader("connection".into())
    );
    assert_eq!(
        refused("websocket", &[("upgrade", "websocket")]),
        RemoteProtocolError::ConnectionSpecificHeader("upgrade".into())
    );
    assert_eq!(refused("h2c", &[]), RemoteProtocolError::UnsupportedProtocol("h2c".into()));
    let mut s = server();
    let headers: Vec<(String, String)> = vec![("host".into(), "h".into())];
    assert_eq!(
        remote(s.initiate_extended_connect("websocket", headers, "/")),
        RemoteProtocolError::MissingHeader("Sec-WebSocket-Version")
    );
    assert_eq!(refused("h2c", &[]).status(), 400);
    // A key is not needed, and nothing HTTP/1.1-specific is required.
    let mut s = server();
    s.initiate_extended_connect("WebSocket", h2_headers(&[]), "/").unwrap();
}

#[cfg(feature = "http")]
#[test]
fn rfc8441_through_the_http_types() {
    use wsproto::http_compat::rejection_response;

    let h2 = |method: http::Method| {
        http::Request::builder()
            .method(method)
            .version(http::Version::HTTP_2)
            .uri("https://example.com/chat")
            .header("sec-websocket-version", "13")
            .header("sec-websocket-protocol", "chat")
            .body(())
            .unwrap()
    };
    // Extended CONNECT: Request event, then a 200 for the HTTP/2 stack to send.
    let mut s = server();
    s.initiate_extended_connect_request(&h2(http::Method::CONNECT), "websocket").unwrap();
    let request = request_event(drain(&mut s));
    assert_eq!((request.host.as_str(), request.target.as_str()), ("example.com", "/chat"));
    let response = s.accept_response(AcceptConnection::new().with_subprotocol("chat")).unwrap();
    assert_eq!(response.status(), http::StatusCode::OK);
    assert_eq!(response.headers()["sec-websocket-protocol"], "chat");
    for absent in ["sec-websocket-accept", "upgrade", "connection"] {
        assert!(response.headers().get(absent).is_none(), "{absent} in an HTTP/2 response");
    }
    assert_eq!(s.state(), ConnectionState::Open);
    // The stream's DATA frames now carry WebSocket frames.
    let mut client = Connection::new(ConnectionType::Client, config());
    s.receive_data(&client.send_bytes(TextMessage::new("over h2")).unwrap()).unwrap();
    assert_eq!(drain(&mut s), vec![Event::TextMessage(TextMessage::new("over h2"))]);

    // An HTTP/2 GET with the HTTP/1.1 upgrade headers is not a handshake.
    let mut get = h2(http::Method::GET);
    get.headers_mut().insert("connection", "Upgrade".parse().unwrap());
    get.headers_mut().insert("upgrade", "websocket".parse().unwrap());
    let mut s = server();
    let e = remote(s.initiate_upgrade_request(&get));
    assert_eq!(e, RemoteProtocolError::NotExtendedConnect);
    assert_eq!(rejection_response(&e.event_hint()).unwrap().status(), http::StatusCode::BAD_REQUEST);
    // A CONNECT needs its :protocol.
    let mut s = server();
    assert!(matches!(
        s.initiate_upgrade_request(&h2(http::Method::CONNECT)),
        Err(ProtocolError::Local(LocalProtocolError::ProtocolNeeded))
    ));
}

/// Both roles of RFC 8441 joined in memory: the client's extended CONNECT, the server's 200,
/// then compressed WebSocket frames over what would be the HTTP/2 stream's DATA.
#[cfg(feature = "deflate")]
#[test]
fn rfc8441_both_roles_round_trip_with_permessage_deflate() {
    use wsproto::extensions::PerMessageDeflate;

    let mut client = ClientHandshake::with_config(config()).with_extension(PerMessageDeflate::new());
    let mut server = WsConnection::new(ConnectionType::Server).with_extension(PerMessageDeflate::new());
    let connect = client
        .extended_connect(
            Request::new("example.com", "/chat")
                .with_subprotocols(["chat"])
                .with_header("origin", "https://example.com"),
        )
        .unwrap();
    let names: Vec<&[u8]> = connect.headers.iter().map(|(n, _)| &n[..]).collect();
    assert_eq!(
        names,
        [&b"sec-websocket-version"[..], b"sec-websocket-protocol", b"sec-websocket-extensions", b"origin"]
    );

    // The HTTP/2 stack passes :authority as host.
    let mut headers = connect.headers.clone();
    headers.push((Bytes::from_static(b"host"), Bytes::from(connect.authority.clone())));
    server.initiate_extended_connect(connect.protocol, headers, &connect.path).unwrap();
    let request = request_event(drain(&mut server));
    assert!(request
        .extra_headers
        .contains(&(Bytes::from_static(b"origin"), Bytes::from_static(b"https://example.com"))));
    let response = server.accept_extended_connect(AcceptConnection::new().with_subprotocol("chat")).unwrap();
    assert!(response.iter().all(|(n, _)| !n.eq_ignore_ascii_case(b"sec-websocket-accept")));
    assert_eq!(server.state(), ConnectionState::Open);

    client.receive_response_head(200, response).unwrap();
    let accept = accept_event(client.next_event().unwrap());
    assert_eq!(accept.subprotocol.as_deref(), Some("chat"));
    assert!(accept.deflate().is_some());
    let (mut client, _) = client.into_connection().unwrap();
    let frame = client.send_bytes(TextMessage::new("compressed over h2 ".repeat(10))).unwrap();
    assert_eq!(frame[0] & 0x40, 0x40, "RSV1: compressed");
    server.receive_data(&frame).unwrap();
    assert_eq!(
        drain(&mut server),
        vec![Event::TextMessage(TextMessage::new("compressed over h2 ".repeat(10)))]
    );

    // A refusal is a RejectConnection without body (the body is the HTTP/2 stream's).
    let mut client = ClientHandshake::new();
    client.extended_connect(Request::new("h", "/")).unwrap();
    client.receive_response_head(403, Vec::<(&str, &str)>::new()).unwrap();
    assert_eq!(client.next_event(), Some(Event::RejectConnection(RejectConnection::new(403))));
    assert_eq!(client.state(), ConnectionState::Closed);
}

/// An HTTP stack that writes requests itself (hyper's client) gets the HTTP/1.1 request as
/// data and feeds back the response head: the same validation as the byte path.
#[test]
fn http1_request_as_data_and_response_head_from_an_http_stack() {
    let mut client = ClientHandshake::new();
    let request = client
        .upgrade_request(Request::new("example.com:8080", "/chat?x=1").with_subprotocols(["chat"]))
        .unwrap();
    assert_eq!(request.target, "/chat?x=1");
    let names: Vec<&[u8]> = request.headers.iter().map(|(n, _)| &n[..]).collect();
    assert_eq!(
        names,
        [
            &b"host"[..],
            b"upgrade",
            b"connection",
            b"sec-websocket-key",
            b"sec-websocket-version",
            b"sec-websocket-protocol"
        ]
    );
    // The same request, as the server's HTTP stack would pass it on.
    let mut server = WsConnection::new(ConnectionType::Server);
    server.initiate_upgrade_connection(request.headers.clone(), &request.target).unwrap();
    assert_eq!(request_event(drain(&mut server)).host, "example.com:8080");
    let bytes = server.send_bytes(AcceptConnection::new().with_subprotocol("chat")).unwrap();
    let mut parsed = [httparse::EMPTY_HEADER; 16];
    let mut response = httparse::Response::new(&mut parsed);
    response.parse(&bytes).unwrap();
    let head: Vec<(String, Vec<u8>)> =
        response.headers.iter().map(|h| (h.name.to_owned(), h.value.to_vec())).collect();

    // A wrong accept key is refused, whoever parsed the head.
    let mut forged = head.clone();
    for (name, value) in &mut forged {
        if name.eq_ignore_ascii_case("sec-websocket-accept") {
            *value = b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo=".to_vec();
        }
    }
    let mut other = ClientHandshake::new();
    other.upgrade_request(Request::new("example.com", "/")).unwrap();
    assert!(matches!(
        other.receive_response_head(101, forged),
        Err(ProtocolError::Remote(RemoteProtocolError::BadAccept))
    ));

    // A 200 does not accept an HTTP/1.1 upgrade: it is a rejection.
    let mut other = ClientHandshake::new();
    other.upgrade_request(Request::new("example.com", "/")).unwrap();
    other.receive_response_head(200, Vec::<(&str, &str)>::new()).unwrap();
    assert!(
        matches!(other.next_event(), Some(Event::RejectConnection(r)) if r.status_code == 200 && !r.has_body)
    );

    client.receive_response_head(101, head).unwrap();
    assert_eq!(accept_event(client.next_event().unwrap()).subprotocol.as_deref(), Some("chat"));
    assert_eq!(client.state(), ConnectionState::Open);
}

#[test]
fn data_before_the_answer_is_bounded_by_one_frame_even_with_unlimited_limits() {
    let header = wsproto::frame::MAX_HEADER_LEN;
    for (config, cap) in [
        (Config::default().max_frame_size(1024), 1024 + header),
        (Config::default().limits(Limits::unlimited()), Limits::DEFAULT_MAX_FRAME_SIZE + header),
    ] {
        let mut ws = WsConnection::with_config(ConnectionType::Server, config);
        ws.receive_data(REQUEST.as_bytes()).unwrap();
        ws.receive_data(&vec![0x82; cap]).unwrap();
        let e = remote(ws.receive_data(b"\x82"));
        assert_eq!(e, RemoteProtocolError::TooMuchEarlyData { limit: cap });
    }
}
