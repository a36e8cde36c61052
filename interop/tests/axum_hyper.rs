//! wsproto inside axum 0.8 and hyper 1.x, over HTTP/1.1 and HTTP/2 (RFC 8441), on real TCP.
//!
//! The server is an axum `Router` served by `axum::serve` (HTTP/1.1, and HTTP/2 with prior
//! knowledge, extended CONNECT enabled), with `wsproto::axum::WebSocketUpgrade` at `/ws`. It
//! first says which HTTP version and subprotocol it saw, then echoes.
//!
//! Clients: wsproto's `upgrade::connect_with` (HTTP/1.1), tokio-tungstenite (an independent
//! HTTP/1.1 client), and hyper's own clients driven by `wsproto::hyper::client_request`:
//! HTTP/1.1, and HTTP/2 extended CONNECT, with permessage-deflate negotiated and used.

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use axum::routing::any;
use axum::Router;
use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use http_body_util::Empty;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::Message;
use wsproto::axum::WebSocketUpgrade;
use wsproto::upgrade::{self, UpgradeConfig};
use wsproto::{BytesMessage, CloseCode, Event, TextMessage};

#[path = "../../examples/common/session_echo.rs"]
mod session_echo;

async fn within<T>(fut: impl Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(20), fut).await.expect("test timed out")
}

/// The handler: greets with "<version> <subprotocol>", then echoes until the close.
async fn ws(upgrade: WebSocketUpgrade) -> axum::response::Response {
    let upgrade = upgrade.protocols(["chat.v2", "chat.v1"]);
    let greeting = format!("{:?} {}", upgrade.version(), upgrade.selected_protocol().unwrap_or_default());
    upgrade.on_upgrade(move |mut ws| async move {
        if ws.send(TextMessage::new(greeting).into()).await.is_ok() {
            let _ = session_echo::echo(&mut ws).await;
        }
    })
}

async fn serve() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = Router::new().route("/ws", any(ws));
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

/// A compressible text of `len` bytes.
fn text(len: usize) -> String {
    "{\"user\":\"ada\",\"text\":\"hello over http/2\"} ".chars().cycle().take(len).collect()
}

/// Reads the greeting, echoes a text and a binary message, closes: the script every client
/// runs.
async fn greet_and_echo<S, E>(ws: &mut S) -> String
where
    S: futures_util::Stream<Item = Result<Event, E>> + futures_util::Sink<Event> + Unpin,
    E: std::fmt::Debug,
    <S as futures_util::Sink<Event>>::Error: std::fmt::Debug,
{
    let greeting = match ws.next().await.unwrap().unwrap() {
        Event::TextMessage(m) => m.data.to_string(),
        other => panic!("expected the greeting, got {other:?}"),
    };
    let big = text(300_000);
    ws.send(TextMessage::new(big.clone()).into()).await.unwrap();
    match ws.next().await.unwrap().unwrap() {
        Event::TextMessage(m) => assert_eq!(m.data.as_str(), big),
        other => panic!("expected the echo, got {other:?}"),
    }
    let binary = Bytes::from((0..70_000u32).map(|i| (i % 251) as u8).collect::<Vec<u8>>());
    ws.send(BytesMessage::new(binary.clone()).into()).await.unwrap();
    match ws.next().await.unwrap().unwrap() {
        Event::BytesMessage(m) => assert_eq!(m.data, binary),
        other => panic!("expected the echo, got {other:?}"),
    }
    ws.send(wsproto::CloseConnection::new(CloseCode::NORMAL_CLOSURE).into()).await.unwrap();
    loop {
        match ws.next().await {
            Some(Ok(Event::CloseConnection(close))) => {
                assert_eq!(close.code, CloseCode::NORMAL_CLOSURE);
                break;
            }
            Some(Ok(_)) => continue,
            other => panic!("expected the close reply, got {other:?}"),
        }
    }
    greeting
}

#[tokio::test]
async fn axum_over_http1_with_wsproto_connect_and_deflate() {
    let addr = serve().await;
    within(async {
        let config = UpgradeConfig::default().subprotocols(["chat.v1"]);
        let (ws, accept) = upgrade::connect_with(&format!("ws://{addr}/ws"), config).await.unwrap();
        let mut ws = ws.into_inner();
        assert_eq!(accept.subprotocol.as_deref(), Some("chat.v1"));
        assert!(accept.deflate().is_some(), "the extractor accepts deflate by default");
        assert_eq!(greet_and_echo(&mut ws).await, "HTTP/1.1 chat.v1");
    })
    .await;
}

#[tokio::test]
async fn axum_over_http1_with_tungstenite() {
    let addr = serve().await;
    within(async {
        let stream = TcpStream::connect(addr).await.unwrap();
        let (mut ws, response) =
            tokio_tungstenite::client_async(format!("ws://{addr}/ws"), stream).await.unwrap();
        assert_eq!(response.status(), 101);
        assert!(response.headers().get("sec-websocket-extensions").is_none());
        let Some(Ok(Message::Text(greeting))) = ws.next().await else { panic!("no greeting") };
        assert_eq!(greeting.as_str(), "HTTP/1.1 ");
        ws.send(Message::text("hi")).await.unwrap();
        let Some(Ok(Message::Text(echo))) = ws.next().await else { panic!("no echo") };
        assert_eq!(echo.as_str(), "hi");
        ws.close(None).await.unwrap();
    })
    .await;
}

/// hyper's HTTP/2 client, with prior knowledge, once the server's SETTINGS allow extended
/// CONNECT.
async fn h2_sender(addr: SocketAddr) -> hyper::client::conn::http2::SendRequest<Empty<Bytes>> {
    let io = TokioIo::new(TcpStream::connect(addr).await.unwrap());
    let (sender, conn) =
        hyper::client::conn::http2::Builder::new(TokioExecutor::new()).handshake(io).await.unwrap();
    tokio::spawn(conn);
    // The server's SETTINGS (with ENABLE_CONNECT_PROTOCOL) arrive with its first frames.
    let mut ping = sender.clone();
    let _ = ping.ready().await;
    for _ in 0..100 {
        tokio::task::yield_now().await;
    }
    sender
}

#[tokio::test]
async fn axum_over_http2_extended_connect_with_deflate() {
    let addr = serve().await;
    within(async {
        let mut sender = h2_sender(addr).await;
        let config = UpgradeConfig::default().subprotocols(["chat.v2"]);
        let url = format!("ws://{addr}/ws");
        // Two WebSockets on one HTTP/2 connection, one after the other's handshake.
        for _ in 0..2 {
            let (request, upgrade) =
                wsproto::hyper::client_request::<Empty<Bytes>>(&url, http::Version::HTTP_2, &config).unwrap();
            assert_eq!(request.method(), http::Method::CONNECT);
            let mut response = sender.send_request(request).await.unwrap();
            assert_eq!(response.status(), 200);
            let (accept, pending) = upgrade.finish(&mut response).unwrap();
            assert_eq!(accept.subprotocol.as_deref(), Some("chat.v2"));
            assert!(accept.deflate().is_some(), "deflate negotiated over HTTP/2");
            let mut ws = pending.await.unwrap();
            assert_eq!(greet_and_echo(&mut ws).await, "HTTP/2.0 chat.v2");
        }
    })
    .await;
}

#[tokio::test]
async fn hyper_http1_client_upgrade() {
    let addr = serve().await;
    within(async {
        let io = TokioIo::new(TcpStream::connect(addr).await.unwrap());
        let (mut sender, conn) = hyper::client::conn::http1::handshake::<_, Empty<Bytes>>(io).await.unwrap();
        tokio::spawn(conn.with_upgrades());
        // Deflate is offered by default; switched off, nothing is offered and nothing agreed.
        let config = UpgradeConfig::default().compression(false);
        let url = format!("ws://{addr}/ws");
        let (request, upgrade) =
            wsproto::hyper::client_request::<Empty<Bytes>>(&url, http::Version::HTTP_11, &config).unwrap();
        let mut response = sender.send_request(request).await.unwrap();
        assert_eq!(response.status(), 101);
        let (accept, pending) = upgrade.finish(&mut response).unwrap();
        assert!(accept.deflate().is_none(), "compression(false): nothing offered, nothing agreed");
        let mut ws = pending.await.unwrap();
        assert_eq!(greet_and_echo(&mut ws).await, "HTTP/1.1 ");
    })
    .await;
}

#[tokio::test]
async fn hyper_client_rejection_keeps_the_body() {
    let addr = serve().await;
    within(async {
        let io = TokioIo::new(TcpStream::connect(addr).await.unwrap());
        let (mut sender, conn) = hyper::client::conn::http1::handshake::<_, Empty<Bytes>>(io).await.unwrap();
        tokio::spawn(conn.with_upgrades());
        let url = format!("ws://{addr}/nowhere");
        let (request, upgrade) = wsproto::hyper::client_request::<Empty<Bytes>>(
            &url,
            http::Version::HTTP_11,
            &UpgradeConfig::default(),
        )
        .unwrap();
        let mut response = sender.send_request(request).await.unwrap();
        match upgrade.finish(&mut response) {
            Err(wsproto::Error::Rejected(rejection)) => assert_eq!(rejection.status_code, 404),
            other => panic!("expected a rejection, got {other:?}"),
        }
    })
    .await;
}

/// Sends a raw HTTP/1.1 head and returns the response head.
async fn raw_exchange(addr: SocketAddr, head: &str) -> String {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(head.as_bytes()).await.unwrap();
    let mut buf = vec![0; 4096];
    let mut len = 0;
    while !buf[..len].windows(4).any(|w| w == b"\r\n\r\n") {
        let n = stream.read(&mut buf[len..]).await.unwrap();
        assert!(n > 0, "connection closed before the response head");
        len += n;
    }
    String::from_utf8_lossy(&buf[..len]).to_lowercase()
}

#[tokio::test]
async fn the_extractor_refuses_bad_upgrades_with_the_right_status() {
    let addr = serve().await;
    within(async {
        let wrong_version = "GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
                             Sec-WebSocket-Version: 8\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n";
        let response = raw_exchange(addr, wrong_version).await;
        assert!(response.starts_with("http/1.1 426"), "{response}");
        assert!(response.contains("sec-websocket-version: 13"), "{response}");

        let no_key = "GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
                      Sec-WebSocket-Version: 13\r\n\r\n";
        let response = raw_exchange(addr, no_key).await;
        assert!(response.starts_with("http/1.1 400"), "{response}");

        let plain_get = "GET /ws HTTP/1.1\r\nHost: x\r\n\r\n";
        let response = raw_exchange(addr, plain_get).await;
        assert!(response.starts_with("http/1.1 400") || response.starts_with("http/1.1 426"), "{response}");
    })
    .await;
}
