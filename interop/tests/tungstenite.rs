//! Interop with tokio-tungstenite, an independent implementation, over real TCP on 127.0.0.1,
//! in both roles:
//!
//! - wsproto server (`upgrade::server`) ↔ tokio-tungstenite client (`client_async`);
//! - tokio-tungstenite server (`accept_async`) ↔ wsproto client (`upgrade::client`/`connect`).
//!
//! Each side runs a small scripted echo peer: text and binary (1 MiB) messages are echoed,
//! fragmented messages (with a ping between fragments) go both ways, pings are answered in
//! both directions, and the close handshake is started once by each side.
//!
//! permessage-deflate: tungstenite 0.30 has no permessage-deflate support, so compression
//! cannot be exercised against it; the tests check that an offer it does not make, or an offer
//! it ignores, leaves an uncompressed connection that works.

use std::future::Future;
use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{CloseCode as TCloseCode, Data, OpCode};
use tokio_tungstenite::tungstenite::protocol::frame::Frame;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;
use tokio_util::codec::Framed;
use wsproto::codec::WsCodec;
use wsproto::upgrade::{self, Decision, UpgradeConfig};
use wsproto::{
    AcceptConnection, BytesMessage, CloseCode, CloseConnection, CloseSource, ConnectionState, Event, Ping,
    Pong, Request, TextMessage,
};

const MIB: usize = 1 << 20;
const SERVER_PING: &[u8] = b"server ping";

/// A deterministic, incompressible-enough payload.
fn payload(len: usize) -> Bytes {
    (0..len).map(|i| (i.wrapping_mul(31) % 251) as u8).collect::<Vec<u8>>().into()
}

async fn within<T>(fut: impl Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(20), fut).await.expect("test timed out")
}

async fn listener() -> (TcpListener, u16) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    (listener, port)
}

// ---------------------------------------------------------------------------------------------
// wsproto server, tokio-tungstenite client
// ---------------------------------------------------------------------------------------------

/// What the wsproto server saw.
#[derive(Debug, Default)]
struct ServerLog {
    target: String,
    subprotocols: Vec<String>,
    extension_offers: Vec<String>,
    pongs: Vec<Bytes>,
    /// The close event that ended the connection, and the state it left.
    close: Option<(CloseConnection, ConnectionState)>,
}

/// Scripted wsproto server: echoes whole messages and pings, and obeys three commands:
/// `ping me` (sends a ping, then reports the pong as text), `fragments please` (sends a
/// fragmented text message with a ping inside) and `close me` (starts the close handshake).
async fn wsproto_server(listener: TcpListener) -> ServerLog {
    let (stream, _) = listener.accept().await.unwrap();
    let decide = |request: &Request| {
        let mut accept = AcceptConnection::new();
        if request.subprotocols.iter().any(|p| p == "echo.v1") {
            accept = accept.with_subprotocol("echo.v1");
        }
        Decision::Accept(accept)
    };
    let config = UpgradeConfig::default();
    let (ws, request) = upgrade::server(stream, decide, config).await.unwrap();
    // The bare codec on purpose: this server answers pings and closes by hand.
    let mut ws = ws.into_inner();
    let mut log = ServerLog {
        target: request.target,
        subprotocols: request.subprotocols,
        extension_offers: request.extensions,
        ..ServerLog::default()
    };
    assert!(ws.codec().connection().extensions().is_empty(), "nothing to negotiate with tungstenite");

    while let Some(event) = ws.next().await {
        match event.unwrap() {
            Event::TextMessage(m) => match m.data.as_str() {
                "ping me" => ws.send(Ping::new(SERVER_PING).into()).await.unwrap(),
                "fragments please" => {
                    ws.feed(TextMessage::fragment("frag-1 ").into()).await.unwrap();
                    ws.feed(Ping::new("between").into()).await.unwrap();
                    ws.feed(TextMessage::fragment("frag-2 ").into()).await.unwrap();
                    ws.send(TextMessage::new("end").into()).await.unwrap();
                }
                "binary fragments please" => {
                    let data = payload(MIB);
                    ws.feed(BytesMessage::fragment(data.slice(..1000)).into()).await.unwrap();
                    ws.feed(BytesMessage::fragment(data.slice(1000..MIB / 2)).into()).await.unwrap();
                    ws.send(BytesMessage::new(data.slice(MIB / 2..)).into()).await.unwrap();
                }
                "close me" => {
                    let close = CloseConnection::with_reason(CloseCode::GOING_AWAY, "server bye");
                    ws.send(close.into()).await.unwrap();
                    assert_eq!(ws.codec().connection().state(), ConnectionState::LocalClosing);
                }
                _ => ws.send(m.into()).await.unwrap(),
            },
            Event::BytesMessage(m) => ws.send(m.into()).await.unwrap(),
            Event::Ping(ping) => ws.send(ping.response().into()).await.unwrap(),
            Event::Pong(pong) => {
                let text = format!("pong: {}", String::from_utf8_lossy(&pong.payload));
                log.pongs.push(pong.payload);
                ws.send(TextMessage::new(text).into()).await.unwrap();
            }
            Event::CloseConnection(close) => {
                if let Some(reply) = close.reply() {
                    ws.send(reply.into()).await.unwrap();
                }
                log.close = Some((*close, ws.codec().connection().state()));
                break;
            }
            other => panic!("unexpected event {other:?}"),
        }
    }
    // After the close handshake the server closes the TCP connection first (RFC 6455 §7.1.1):
    // tungstenite's client waits for it.
    ws.close().await.unwrap();
    log
}

type TungsteniteClient = WebSocketStream<TcpStream>;

async fn tungstenite_client(port: u16) -> TungsteniteClient {
    let stream = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let mut request = format!("ws://127.0.0.1:{port}/interop?x=1").into_client_request().unwrap();
    request.headers_mut().insert("sec-websocket-protocol", "other, echo.v1".parse().unwrap());
    let (ws, response) = tokio_tungstenite::client_async(request, stream).await.unwrap();
    assert_eq!(response.status(), 101);
    assert_eq!(response.headers()["sec-websocket-protocol"], "echo.v1");
    // Our server supports permessage-deflate, but tungstenite does not offer it.
    assert!(response.headers().get("sec-websocket-extensions").is_none());
    ws
}

/// The next message (tungstenite surfaces control frames as messages too).
async fn next_message(ws: &mut TungsteniteClient) -> Message {
    ws.next().await.expect("stream ended").expect("tungstenite error")
}

/// Messages, fragments, pings both ways, seen from the tungstenite client.
async fn tungstenite_client_script(ws: &mut TungsteniteClient) {
    ws.send(Message::text("hello")).await.unwrap();
    assert_eq!(next_message(ws).await, Message::text("hello"));

    let big = payload(MIB);
    ws.send(Message::binary(big.clone())).await.unwrap();
    assert_eq!(next_message(ws).await, Message::binary(big.clone()));

    // A fragmented text message, a code point split across fragments, a ping in between.
    let text = "Hello wörld".as_bytes();
    ws.feed(Message::Frame(Frame::message(&text[..3], OpCode::Data(Data::Text), false))).await.unwrap();
    ws.feed(Message::Frame(Frame::message(&text[3..8], OpCode::Data(Data::Continue), false))).await.unwrap();
    ws.feed(Message::Ping(Bytes::from_static(b"mid"))).await.unwrap();
    ws.send(Message::Frame(Frame::message(&text[8..], OpCode::Data(Data::Continue), true))).await.unwrap();
    assert_eq!(next_message(ws).await, Message::Pong(Bytes::from_static(b"mid")));
    assert_eq!(next_message(ws).await, Message::text("Hello wörld"));

    // A fragmented 1 MiB binary message.
    ws.feed(Message::Frame(Frame::message(big.slice(..MIB / 4), OpCode::Data(Data::Binary), false)))
        .await
        .unwrap();
    ws.send(Message::Frame(Frame::message(big.slice(MIB / 4..), OpCode::Data(Data::Continue), true)))
        .await
        .unwrap();
    assert_eq!(next_message(ws).await, Message::binary(big.clone()));

    // Client ping, server pong.
    ws.send(Message::Ping(Bytes::from_static(b"are you there"))).await.unwrap();
    assert_eq!(next_message(ws).await, Message::Pong(Bytes::from_static(b"are you there")));

    // Server ping: tungstenite answers it by itself; the server reports the pong it got.
    ws.send(Message::text("ping me")).await.unwrap();
    assert_eq!(next_message(ws).await, Message::Ping(Bytes::from_static(SERVER_PING)));
    assert_eq!(next_message(ws).await, Message::text("pong: server ping"));

    // Fragments from the server, with a ping between them.
    ws.send(Message::text("fragments please")).await.unwrap();
    assert_eq!(next_message(ws).await, Message::Ping(Bytes::from_static(b"between")));
    assert_eq!(next_message(ws).await, Message::text("frag-1 frag-2 end"));
    // The pong tungstenite sent for the ping between the fragments.
    assert_eq!(next_message(ws).await, Message::text("pong: between"));
    ws.send(Message::text("binary fragments please")).await.unwrap();
    assert_eq!(next_message(ws).await, Message::binary(big));
}

#[tokio::test]
async fn wsproto_server_tungstenite_client_closes() {
    within(async {
        let (listener, port) = listener().await;
        let server = tokio::spawn(wsproto_server(listener));
        let mut ws = tungstenite_client(port).await;
        tungstenite_client_script(&mut ws).await;

        // The client starts the close handshake.
        let frame = CloseFrame { code: TCloseCode::Normal, reason: "client bye".into() };
        ws.send(Message::Close(Some(frame.clone()))).await.unwrap();
        assert_eq!(next_message(&mut ws).await, Message::Close(Some(frame)));
        assert!(ws.next().await.is_none(), "the server closed the TCP connection");

        let log = server.await.unwrap();
        assert_eq!(log.target, "/interop?x=1");
        assert_eq!(log.subprotocols, ["other", "echo.v1"]);
        assert!(log.extension_offers.is_empty());
        assert_eq!(log.pongs, [Bytes::from_static(SERVER_PING), Bytes::from_static(b"between")]);
        let (close, state) = log.close.unwrap();
        assert_eq!(close.response(), CloseConnection::with_reason(CloseCode::NORMAL_CLOSURE, "client bye"));
        assert_eq!((close.source, close.reply_owed), (CloseSource::Peer, true));
        assert_eq!(state, ConnectionState::Closed);
    })
    .await;
}

#[tokio::test]
async fn wsproto_server_tungstenite_client_server_closes() {
    within(async {
        let (listener, port) = listener().await;
        let server = tokio::spawn(wsproto_server(listener));
        let mut ws = tungstenite_client(port).await;
        ws.send(Message::text("hello")).await.unwrap();
        assert_eq!(next_message(&mut ws).await, Message::text("hello"));

        // The server starts the close handshake; tungstenite answers it by itself.
        ws.send(Message::text("close me")).await.unwrap();
        let frame = CloseFrame { code: TCloseCode::Away, reason: "server bye".into() };
        assert_eq!(next_message(&mut ws).await, Message::Close(Some(frame)));
        assert!(ws.next().await.is_none());

        let log = server.await.unwrap();
        let (close, state) = log.close.unwrap();
        // The peer's answer echoes our code and reason.
        assert_eq!(close.response(), CloseConnection::with_reason(CloseCode::GOING_AWAY, "server bye"));
        assert_eq!((close.source, close.reply_owed), (CloseSource::Peer, false));
        assert_eq!(state, ConnectionState::Closed);
    })
    .await;
}

// ---------------------------------------------------------------------------------------------
// tokio-tungstenite server, wsproto client
// ---------------------------------------------------------------------------------------------

/// Scripted tungstenite server with the same commands as [`wsproto_server`]. Returns every
/// close frame it read (tungstenite answers a close by itself).
async fn tungstenite_server(listener: TcpListener) -> Vec<Option<CloseFrame>> {
    let (stream, _) = listener.accept().await.unwrap();
    let mut ws = tokio_tungstenite::accept_async(stream).await.unwrap();
    let mut closes = Vec::new();
    while let Some(message) = ws.next().await {
        match message.unwrap() {
            Message::Text(text) if text == "ping me" => {
                ws.send(Message::Ping(Bytes::from_static(SERVER_PING))).await.unwrap()
            }
            Message::Text(text) if text == "fragments please" => {
                let frame =
                    |data: &'static str, opcode, fin| Message::Frame(Frame::message(data, opcode, fin));
                ws.feed(frame("frag-1 ", OpCode::Data(Data::Text), false)).await.unwrap();
                ws.feed(Message::Ping(Bytes::from_static(b"between"))).await.unwrap();
                ws.feed(frame("frag-2 ", OpCode::Data(Data::Continue), false)).await.unwrap();
                ws.send(frame("end", OpCode::Data(Data::Continue), true)).await.unwrap();
            }
            Message::Text(text) if text == "binary fragments please" => {
                let data = payload(MIB);
                let frame = |data, opcode, fin| Message::Frame(Frame::message(data, opcode, fin));
                ws.feed(frame(data.slice(..1000), OpCode::Data(Data::Binary), false)).await.unwrap();
                ws.feed(frame(data.slice(1000..MIB / 2), OpCode::Data(Data::Continue), false)).await.unwrap();
                ws.send(frame(data.slice(MIB / 2..), OpCode::Data(Data::Continue), true)).await.unwrap();
            }
            Message::Text(text) if text == "close me" => {
                let frame = CloseFrame { code: TCloseCode::Away, reason: "server bye".into() };
                ws.send(Message::Close(Some(frame))).await.unwrap();
            }
            message @ (Message::Text(_) | Message::Binary(_)) => ws.send(message).await.unwrap(),
            Message::Pong(payload) => {
                let text = format!("pong: {}", String::from_utf8_lossy(&payload));
                ws.send(Message::text(text)).await.unwrap();
            }
            Message::Ping(_) => {} // answered by tungstenite
            Message::Close(frame) => closes.push(frame),
            Message::Frame(_) => unreachable!("never yielded when reading"),
        }
    }
    closes
}

async fn wsproto_client(port: u16) -> Framed<TcpStream, WsCodec> {
    let io = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let request = Request::new(format!("127.0.0.1:{port}"), "/interop").with_header("x-test", "interop");
    let config = UpgradeConfig::default();
    let (ws, accept) = upgrade::client(io, request, config).await.unwrap();
    let ws = ws.into_inner();
    assert_eq!(accept.subprotocol, None);
    // Offered, but tungstenite does not implement permessage-deflate: declined, uncompressed.
    assert!(ws.codec().connection().extensions().is_empty());
    ws
}

async fn next_event<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin>(
    ws: &mut Framed<T, WsCodec>,
) -> Event {
    ws.next().await.expect("stream ended").expect("wsproto error")
}

fn text(s: &str) -> Event {
    TextMessage::new(s).into()
}

/// Messages, fragments, pings both ways, seen from the wsproto client.
async fn wsproto_client_script(ws: &mut Framed<TcpStream, WsCodec>) {
    ws.send(text("hello")).await.unwrap();
    assert_eq!(next_event(ws).await, text("hello"));

    let big = payload(MIB);
    ws.send(BytesMessage::new(big.clone()).into()).await.unwrap();
    assert_eq!(next_event(ws).await, BytesMessage::new(big.clone()).into());

    // Fragments, a ping in between (answered by tungstenite before its echo).
    ws.feed(TextMessage::fragment("Hel").into()).await.unwrap();
    ws.feed(TextMessage::fragment("lo ").into()).await.unwrap();
    ws.feed(Ping::new("mid").into()).await.unwrap();
    ws.send(text("wörld")).await.unwrap();
    assert_eq!(next_event(ws).await, Pong::new("mid").into());
    assert_eq!(next_event(ws).await, text("Hello wörld"));

    ws.feed(BytesMessage::fragment(big.slice(..MIB / 4)).into()).await.unwrap();
    ws.send(BytesMessage::new(big.slice(MIB / 4..)).into()).await.unwrap();
    assert_eq!(next_event(ws).await, BytesMessage::new(big.clone()).into());

    ws.send(Ping::new("are you there").into()).await.unwrap();
    assert_eq!(next_event(ws).await, Pong::new("are you there").into());

    // Server ping: we answer, the server reports the pong it got.
    ws.send(text("ping me")).await.unwrap();
    let Event::Ping(ping) = next_event(ws).await else { panic!("expected a ping") };
    assert_eq!(ping.payload, SERVER_PING);
    ws.send(ping.response().into()).await.unwrap();
    assert_eq!(next_event(ws).await, text("pong: server ping"));

    // Fragments from tungstenite, with a ping between them; assembled by the codec.
    ws.send(text("fragments please")).await.unwrap();
    let Event::Ping(ping) = next_event(ws).await else { panic!("expected a ping") };
    assert_eq!(ping.payload, "between");
    ws.send(ping.response().into()).await.unwrap();
    // The whole message was sent before the server read our pong.
    assert_eq!(next_event(ws).await, text("frag-1 frag-2 end"));
    assert_eq!(next_event(ws).await, text("pong: between"));
    ws.send(text("binary fragments please")).await.unwrap();
    assert_eq!(next_event(ws).await, BytesMessage::new(big).into());
}

#[tokio::test]
async fn tungstenite_server_wsproto_client_closes() {
    within(async {
        let (listener, port) = listener().await;
        let server = tokio::spawn(tungstenite_server(listener));
        let mut ws = wsproto_client(port).await;
        wsproto_client_script(&mut ws).await;

        // We start the close handshake; tungstenite answers with the same code.
        let close = CloseConnection::with_reason(CloseCode::NORMAL_CLOSURE, "client bye");
        ws.send(close.clone().into()).await.unwrap();
        assert_eq!(ws.codec().connection().state(), ConnectionState::LocalClosing);
        let Event::CloseConnection(answer) = next_event(&mut ws).await else { panic!("expected a close") };
        assert_eq!((answer.response(), answer.reply()), (close, None));
        assert_eq!(ws.codec().connection().state(), ConnectionState::Closed);
        // The server closes the TCP connection; the stream ends without a 1006 event.
        assert!(ws.next().await.is_none());

        let closes = server.await.unwrap();
        let frame = CloseFrame { code: TCloseCode::Normal, reason: "client bye".into() };
        assert_eq!(closes, [Some(frame)]);
    })
    .await;
}

#[tokio::test]
async fn tungstenite_server_wsproto_client_server_closes() {
    within(async {
        let (listener, port) = listener().await;
        let server = tokio::spawn(tungstenite_server(listener));
        // `connect`: plain TCP, default settings (chunks, not whole messages).
        let (ws, _) = upgrade::connect(&format!("ws://127.0.0.1:{port}/")).await.unwrap();
        let mut ws = ws.into_inner();
        ws.send(text("hello")).await.unwrap();
        assert_eq!(next_event(&mut ws).await, text("hello"));

        ws.send(text("close me")).await.unwrap();
        let Event::CloseConnection(close) = next_event(&mut ws).await else { panic!("expected a close") };
        assert_eq!((close.code, close.reason.as_deref()), (CloseCode::GOING_AWAY, Some("server bye")));
        assert_eq!(close.source, CloseSource::Peer);
        assert_eq!(ws.codec().connection().state(), ConnectionState::RemoteClosing);
        ws.send(close.reply().expect("the server closed first").into()).await.unwrap();
        assert_eq!(ws.codec().connection().state(), ConnectionState::Closed);
        assert!(ws.next().await.is_none());

        // Tungstenite reads our answer to its close.
        let closes = server.await.unwrap();
        let frame = CloseFrame { code: TCloseCode::Away, reason: "server bye".into() };
        assert_eq!(closes, [Some(frame)]);
    })
    .await;
}

// ---------------------------------------------------------------------------------------------
// A read-only session adapter stays connected to a client that pings
// ---------------------------------------------------------------------------------------------

/// The trap the session removes: an application that only reads (a `Stream` of texts) used to
/// leave the client's keepalive pings unanswered and be disconnected. Through a session the
/// pongs go out while the stream is polled, and the client's own ping timeout never fires.
#[tokio::test]
async fn read_only_session_answers_a_pinging_tungstenite_client() {
    within(async {
        let (listener, port) = listener().await;
        let server = tokio::spawn(async move {
            let (stream, _) = listener.accept().await.unwrap();
            let (session, _request) = upgrade::accept(stream, UpgradeConfig::default()).await.unwrap();
            // Read-only: texts out, nothing ever sent by the application.
            session
                .filter_map(|event| async move {
                    match event {
                        Ok(Event::TextMessage(m)) => Some(m.data.to_string()),
                        _ => None,
                    }
                })
                .collect::<Vec<String>>()
                .await
        });
        let stream = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
        let url = format!("ws://127.0.0.1:{port}/");
        let (mut ws, _) = tokio_tungstenite::client_async(url, stream).await.unwrap();
        for i in 0..5u8 {
            ws.send(Message::Ping(Bytes::from(vec![i]))).await.unwrap();
            ws.send(Message::text(format!("text {i}"))).await.unwrap();
            let answer = tokio::time::timeout(Duration::from_secs(2), ws.next()).await;
            let Ok(Some(Ok(Message::Pong(payload)))) = answer else { panic!("no pong: {answer:?}") };
            assert_eq!(payload, Bytes::from(vec![i]));
        }
        ws.close(None).await.unwrap();
        // The server answered the close and shut its side down: the client's stream ends.
        while let Some(Ok(_)) = ws.next().await {}
        drop(ws);
        // The server's stream ended with the connection: all texts arrived.
        let texts = server.await.unwrap();
        assert_eq!(texts, (0..5).map(|i| format!("text {i}")).collect::<Vec<_>>());
    })
    .await;
}
