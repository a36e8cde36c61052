//! The `tracing` feature: what a server's log says about each connection, captured by a
//! subscriber of the test's own (one `info` line per connection, `debug` lines that explain the
//! close, the `websocket` span's fields).
#![cfg(all(feature = "tracing", feature = "tokio"))]

mod support;

use std::sync::{Arc, Mutex};

use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event as TracingEvent, Level, Subscriber};
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::Layer;
use wsproto::upgrade::{self, UpgradeConfig};
use wsproto::{CloseCode, Event, TextMessage};

/// One captured event: its level, message, fields, and the fields of the spans around it.
#[derive(Clone, Debug)]
struct Line {
    level: Level,
    message: String,
    fields: Vec<(String, String)>,
    spans: Vec<(String, String)>,
}

impl Line {
    fn field(&self, name: &str) -> Option<&str> {
        self.fields.iter().chain(&self.spans).find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }
}

#[derive(Default)]
struct Fields(Vec<(String, String)>);

impl Visit for Fields {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0.push((field.name().to_string(), format!("{value:?}").trim_matches('"').to_string()));
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.push((field.name().to_string(), value.to_string()));
    }
}

/// Captures every event with the fields of its spans (kept in the span's extensions).
#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<Line>>>);

impl<S: Subscriber + for<'a> LookupSpan<'a>> Layer<S> for Capture {
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let mut fields = Fields::default();
        attrs.record(&mut fields);
        ctx.span(id).unwrap().extensions_mut().insert(fields);
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        let span = ctx.span(id).unwrap();
        let mut extensions = span.extensions_mut();
        if let Some(fields) = extensions.get_mut::<Fields>() {
            values.record(fields);
        }
    }

    fn on_event(&self, event: &TracingEvent<'_>, ctx: Context<'_, S>) {
        let mut fields = Fields::default();
        event.record(&mut fields);
        let message =
            fields.0.iter().find(|(n, _)| n == "message").map(|(_, v)| v.clone()).unwrap_or_default();
        let mut spans = Vec::new();
        if let Some(scope) = ctx.event_scope(event) {
            for span in scope {
                if let Some(f) = span.extensions().get::<Fields>() {
                    spans.extend(f.0.iter().cloned());
                }
            }
        }
        self.0.lock().unwrap().push(Line {
            level: *event.metadata().level(),
            message,
            fields: fields.0,
            spans,
        });
    }
}

/// Runs `test` on a current-thread runtime with the capturing subscriber; returns the lines.
fn captured(test: impl std::future::Future<Output = ()>) -> Vec<Line> {
    let capture = Capture::default();
    let subscriber = tracing_subscriber::registry().with(capture.clone());
    tracing::subscriber::with_default(subscriber, || {
        tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(test)
    });
    let lines = capture.0.lock().unwrap().clone();
    lines
}

/// [`captured`] on tokio's paused clock (for timeouts, over in-memory pipes).
fn captured_paused(test: impl std::future::Future<Output = ()>) -> Vec<Line> {
    let capture = Capture::default();
    let subscriber = tracing_subscriber::registry().with(capture.clone());
    tracing::subscriber::with_default(subscriber, || {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().start_paused(true).build();
        runtime.unwrap().block_on(test)
    });
    let lines = capture.0.lock().unwrap().clone();
    lines
}

/// A server session and a client session over an in-memory pipe.
async fn session_pair(
    config: UpgradeConfig,
) -> (wsproto::session::Session<tokio::io::DuplexStream>, wsproto::session::Session<tokio::io::DuplexStream>)
{
    let (a, b) = tokio::io::duplex(1 << 16);
    let server = tokio::spawn(async move { upgrade::accept(b, config).await.unwrap().0 });
    // A client that never pings (its keepalive would keep the server from idling).
    let quiet = UpgradeConfig::default()
        .session(wsproto::SessionConfig::default().keepalive(None, std::time::Duration::from_secs(1)));
    let (client, _) = upgrade::client(a, wsproto::Request::new("h", "/"), quiet).await.unwrap();
    (server.await.unwrap(), client)
}

/// A listener on a free port, and its address.
async fn listener() -> (tokio::net::TcpListener, String) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    (listener, addr)
}

/// A raw TCP client that has sent an upgrade request to `addr`, with `extra` header lines
/// (each ending in CRLF) after the key.
async fn raw_upgrade(addr: &str, extra: &str) -> tokio::net::TcpStream {
    let mut raw = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!(
        "GET / HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n{extra}\r\n"
    );
    raw.write_all(request.as_bytes()).await.unwrap();
    raw
}

#[test]
fn one_info_line_per_connection_says_how_it_ended_inside_the_websocket_span() {
    let lines = captured(async {
        let (listener, addr) = listener().await;
        let server = tokio::spawn(async move {
            let (stream, _) = listener.accept().await.unwrap();
            let (mut ws, _) = upgrade::accept(stream, UpgradeConfig::default()).await.unwrap();
            while let Some(Ok(event)) = ws.next().await {
                if let Event::TextMessage(m) = event {
                    ws.send(m.into()).await.unwrap();
                }
            }
        });
        let (mut client, _) = upgrade::connect(&format!("ws://{addr}/")).await.unwrap();
        client.send(TextMessage::new("hello").into()).await.unwrap();
        assert!(matches!(client.next().await, Some(Ok(Event::TextMessage(_)))));
        client.close_with(CloseCode::NORMAL_CLOSURE, "bye").await.unwrap();
        server.await.unwrap();
    });
    let info: Vec<&Line> = lines.iter().filter(|l| l.level == Level::INFO).collect();
    assert_eq!(info.len(), 2, "one line for each end of the one connection: {lines:#?}");
    for line in &info {
        assert_eq!(line.message, "websocket closed");
        assert_eq!(line.field("code"), Some("1000"));
        assert_eq!(line.field("messages_in"), Some("1"));
        assert_eq!(line.field("messages_out"), Some("1"));
        assert_eq!(line.field("http"), Some("1.1"), "the span's fields: {line:?}");
        assert_eq!(line.field("extensions"), Some("permessage-deflate"), "negotiated by default: {line:?}");
    }
    let closed_by =
        |role: &str| info.iter().find(|l| l.field("role") == Some(role)).unwrap().field("closed_by");
    assert_eq!(closed_by("client"), Some("us"));
    assert_eq!(closed_by("server"), Some("peer"));
    // Debug explains it: the client's close sent, the server's close received with its reason.
    let debug = |message: &str, role: &str| {
        lines.iter().any(|l| l.level == Level::DEBUG && l.message == message && l.field("role") == Some(role))
    };
    assert!(debug("close sent", "client") && debug("close received", "server"), "{lines:#?}");
    assert!(lines.iter().any(|l| l.message == "close received" && l.field("reason") == Some("bye")));
}

#[test]
fn a_peer_violation_is_logged_with_the_close_code_it_earned() {
    let lines = captured(async {
        let (listener, addr) = listener().await;
        let server = tokio::spawn(async move {
            let (stream, _) = listener.accept().await.unwrap();
            let (mut ws, _) =
                upgrade::accept(stream, UpgradeConfig::default().compression(false)).await.unwrap();
            while ws.next().await.is_some() {}
        });
        let mut raw = raw_upgrade(&addr, "Sec-WebSocket-Version: 13\r\n").await;
        let mut head = vec![0; 1024];
        let _ = raw.read(&mut head).await.unwrap();
        // Invalid UTF-8 in a text frame: close 1007.
        raw.write_all(&support::masked(0x81, b"\xff")).await.unwrap();
        let mut rest = Vec::new();
        let _ = raw.read_to_end(&mut rest).await;
        server.await.unwrap();
    });
    let violation =
        lines.iter().find(|l| l.message.starts_with("peer violated the protocol")).expect("logged");
    assert_eq!(violation.level, Level::DEBUG);
    assert_eq!(violation.field("code"), Some("1007"));
    let closed = lines.iter().find(|l| l.message == "websocket closed").expect("the connection's line");
    assert_eq!(closed.field("code"), Some("1007"));
    assert_eq!(closed.field("closed_by"), Some("us (peer violation)"));
}

#[test]
fn a_refused_handshake_is_the_connections_one_info_line() {
    let lines = captured(async {
        let (listener, addr) = listener().await;
        let server = tokio::spawn(async move {
            let (stream, _) = listener.accept().await.unwrap();
            let refused = upgrade::accept(stream, UpgradeConfig::default()).await;
            assert!(refused.is_err());
        });
        // No Sec-WebSocket-Version: 400.
        let mut raw = raw_upgrade(&addr, "").await;
        let mut response = Vec::new();
        let _ = raw.read_to_end(&mut response).await;
        assert!(response.starts_with(b"HTTP/1.1 400"), "{}", String::from_utf8_lossy(&response));
        server.await.unwrap();
    });
    let info: Vec<&Line> = lines.iter().filter(|l| l.level == Level::INFO).collect();
    assert_eq!(info.len(), 1, "{lines:#?}");
    assert_eq!(info[0].message, "websocket handshake refused");
    assert_eq!(info[0].field("status"), Some("400"));
    assert_eq!(info[0].field("role"), Some("server"));
}

#[test]
fn a_handshake_that_times_out_is_the_connections_one_info_line() {
    let lines = captured(async {
        let (listener, addr) = listener().await;
        let server = tokio::spawn(async move {
            let (stream, _) = listener.accept().await.unwrap();
            let config = UpgradeConfig::default().handshake_timeout(std::time::Duration::from_millis(50));
            assert!(matches!(upgrade::accept(stream, config).await, Err(wsproto::Error::HandshakeTimeout)));
        });
        let _silent = tokio::net::TcpStream::connect(&addr).await.unwrap();
        server.await.unwrap();
    });
    let info: Vec<&Line> = lines.iter().filter(|l| l.level == Level::INFO).collect();
    assert_eq!(info.len(), 1, "{lines:#?}");
    assert_eq!(info[0].message, "websocket handshake failed");
    assert_eq!(info[0].field("role"), Some("server"));
}

#[test]
fn a_session_ended_by_a_timeout_error_gets_its_line_when_the_application_stops_there() {
    let lines = captured_paused(async {
        let session = wsproto::SessionConfig::default()
            .keepalive(None, std::time::Duration::from_secs(1))
            .idle_timeout(Some(std::time::Duration::from_secs(60)));
        let (mut server, mut client) = session_pair(UpgradeConfig::default().session(session)).await;
        // The README's loop: the first error ends it, and the session is dropped.
        let app = tokio::spawn(async move {
            while let Some(event) = server.next().await {
                if event.is_err() {
                    return;
                }
            }
        });
        app.await.unwrap();
        // The client still reads the 1001 the idle timeout owed.
        let got = client.next().await;
        let Some(Ok(Event::CloseConnection(close))) = got else { panic!("a close: {got:?}") };
        assert_eq!(close.code, CloseCode::GOING_AWAY);
    });
    let server: Vec<&Line> =
        lines.iter().filter(|l| l.level == Level::INFO && l.field("role") == Some("server")).collect();
    assert_eq!(server.len(), 1, "{lines:#?}");
    assert_eq!(server[0].message, "websocket closed");
    assert!(server[0].field("timeout").is_some_and(|t| t.contains("idle")), "{:?}", server[0]);
    assert_eq!(server[0].field("code"), Some("1001"));
    assert_eq!(server[0].field("closed_by"), Some("us"));
}

#[test]
fn a_session_the_application_drops_while_open_still_gets_its_line() {
    let lines = captured_paused(async {
        let (server, client) = session_pair(UpgradeConfig::default()).await;
        drop(server);
        let client_into_framed = client.into_inner();
        drop(client_into_framed);
    });
    let info: Vec<&Line> = lines.iter().filter(|l| l.level == Level::INFO).collect();
    // The server's line; none for the client, whose connection went on as a bare `Framed`.
    assert_eq!(info.len(), 1, "{lines:#?}");
    assert_eq!(info[0].field("role"), Some("server"));
    assert_eq!(info[0].field("closed_by"), Some("nobody (the application dropped the session)"));
}
