//! The tokio adapters: codec over in-memory pipes and real TCP, the upgrade helper, leftover
//! bytes behind the handshake, one-byte reads, cancel safety, whole-message mode.
#![cfg(feature = "tokio")]

mod support;

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, DuplexStream, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::codec::Framed;
use wsproto::codec::{Error, WsCodec};
use wsproto::upgrade::{self, Decision, Rejection, UpgradeConfig};
use wsproto::Delivery;
use wsproto::{
    AcceptConnection, BytesMessage, CloseConnection, Config, Connection, ConnectionState, ConnectionType,
    Event, Ping, Request, TextMessage,
};

fn framed(io: DuplexStream, role: ConnectionType) -> Framed<DuplexStream, WsCodec> {
    Framed::new(io, WsCodec::new(Connection::new(role, Config::default())))
}

async fn next(ws: &mut (impl StreamExt<Item = Result<Event, Error>> + Unpin)) -> Event {
    tokio::time::timeout(Duration::from_secs(5), ws.next()).await.expect("timely").expect("open").expect("ok")
}

#[tokio::test]
async fn codec_over_duplex_both_roles() {
    let (a, b) = tokio::io::duplex(64);
    let mut client = framed(a, ConnectionType::Client);
    let mut server = framed(b, ConnectionType::Server);
    for (from_client, text) in [(true, "from client"), (false, "from server")] {
        let (tx, rx) = if from_client { (&mut client, &mut server) } else { (&mut server, &mut client) };
        tx.send(TextMessage::new(text).into()).await.unwrap();
        // Small pipe: the message arrives in chunks; join them.
        let mut got = String::new();
        loop {
            let Event::TextMessage(m) = next(rx).await else { panic!() };
            got.push_str(&m.data);
            if m.message_finished {
                break;
            }
        }
        assert_eq!(got, text);
        tx.send(Ping::new("p").into()).await.unwrap();
        assert_eq!(next(rx).await, Event::Ping(Ping::new("p")));
    }
    client.send(CloseConnection::new(1000u16).into()).await.unwrap();
    let Event::CloseConnection(close) = next(&mut server).await else { panic!() };
    server.send(close.response().into()).await.unwrap();
    assert!(matches!(next(&mut client).await, Event::CloseConnection(c) if c.code == 1000));
    assert_eq!(client.codec().connection().state(), ConnectionState::Closed);
    assert_eq!(server.codec().connection().state(), ConnectionState::Closed);
}

async fn tcp_pair(
    decide: fn(&Request) -> Decision,
) -> (Framed<upgrade::MaybeTlsStream, WsCodec>, Framed<TcpStream, WsCodec>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        let (stream, _) = listener.accept().await.unwrap();
        upgrade::server(stream, decide, UpgradeConfig::default()).await.unwrap().0.into_inner()
    });
    let (client, accept) = upgrade::connect(&format!("ws://{addr}/chat")).await.unwrap();
    assert_eq!(accept.subprotocol, None);
    (client.into_inner(), server.await.unwrap())
}

#[tokio::test]
async fn end_to_end_over_tcp() {
    let (mut client, mut server) = tcp_pair(|r| {
        assert_eq!(r.target, "/chat");
        Decision::Accept(AcceptConnection::new())
    })
    .await;
    let big = Bytes::from(vec![42u8; 200_000]);
    client.send(BytesMessage::new(big.clone()).into()).await.unwrap();
    let mut got = BytesMut::new();
    loop {
        let Event::BytesMessage(m) = next(&mut server).await else { panic!() };
        got.extend_from_slice(&m.data);
        if m.message_finished {
            break;
        }
    }
    assert_eq!(got.freeze(), big);
    server.send(TextMessage::new("ok").into()).await.unwrap();
    assert_eq!(next(&mut client).await, Event::TextMessage(TextMessage::new("ok")));
    server.send(Ping::new("x").into()).await.unwrap();
    let Event::Ping(ping) = next(&mut client).await else { panic!() };
    client.send(ping.response().into()).await.unwrap();
    assert!(matches!(next(&mut server).await, Event::Pong(p) if p.payload == "x"));
    // Close initiated by the server this time.
    server.send(CloseConnection::with_reason(1001u16, "bye").into()).await.unwrap();
    let Event::CloseConnection(close) = next(&mut client).await else { panic!() };
    client.send(close.response().into()).await.unwrap();
    assert!(matches!(next(&mut server).await, Event::CloseConnection(c) if c.code == 1001));
    drop(server);
    // The server closed TCP after a complete close handshake: the stream just ends.
    assert!(client.next().await.is_none());
}

#[tokio::test]
async fn frames_glued_behind_the_101_are_not_lost() {
    let (a, mut b) = tokio::io::duplex(4096);
    let server = tokio::spawn(async move {
        let mut buf = vec![0u8; 4096];
        let mut head = Vec::new();
        while !head.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = b.read(&mut buf).await.unwrap();
            head.extend_from_slice(&buf[..n]);
        }
        let text = String::from_utf8(head).unwrap();
        let key = text
            .lines()
            .find_map(|l| {
                l.strip_prefix("Sec-WebSocket-Key: ").or_else(|| l.strip_prefix("sec-websocket-key: "))
            })
            .unwrap()
            .trim()
            .to_string();
        let accept = wsproto::handshake::generate_accept_token(key.as_bytes());
        let mut response = format!(
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\n\r\n"
        )
        .into_bytes();
        response.extend_from_slice(&support::unmasked(0x81, b"glued"));
        b.write_all(&response).await.unwrap();
        b
    });
    let mut ws =
        upgrade::client(a, Request::new("h", "/"), UpgradeConfig::default()).await.unwrap().0.into_inner();
    assert_eq!(next(&mut ws).await, Event::TextMessage(TextMessage::new("glued")));
    drop(server.await.unwrap());
}

#[tokio::test]
async fn frames_pipelined_behind_the_request_are_not_lost() {
    let (mut a, b) = tokio::io::duplex(4096);
    let server =
        tokio::spawn(
            async move { upgrade::accept(b, UpgradeConfig::default()).await.unwrap().0.into_inner() },
        );
    let mut request = b"GET / HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        .to_vec();
    request.extend_from_slice(&support::masked(0x82, b"early"));
    a.write_all(&request).await.unwrap();
    let mut server = server.await.unwrap();
    assert_eq!(next(&mut server).await, Event::BytesMessage(BytesMessage::new("early")));
}

#[tokio::test]
async fn an_upgraded_connection_starts_with_idle_sized_buffers() {
    // Not `Framed`'s 8 KiB each: when thousands of connections arrive at once, each would touch
    // a page of its read buffer before the first decode shrinks it, and the allocator keeps it.
    let (a, b) = tokio::io::duplex(4096);
    let server = tokio::spawn(async move { upgrade::accept(b, UpgradeConfig::default()).await.unwrap().0 });
    let (client, _) = upgrade::client(a, Request::new("h", "/"), UpgradeConfig::default()).await.unwrap();
    for framed in [server.await.unwrap().into_inner(), client.into_inner()] {
        assert!(framed.read_buffer().capacity() <= 1 << 10, "read {}", framed.read_buffer().capacity());
        assert_eq!(framed.write_buffer().capacity(), 0);
    }
}

#[tokio::test]
async fn rejection_with_a_body_reaches_the_client() {
    let (a, b) = tokio::io::duplex(4096);
    let server = tokio::spawn(async move {
        let decide = |r: &Request| {
            assert_eq!(r.target, "/nope");
            Decision::Reject(
                Rejection::new(404).with_header("content-type", "text/plain").with_body("Path not found"),
            )
        };
        upgrade::server(b, decide, UpgradeConfig::default()).await
    });
    let err = upgrade::client(a, Request::new("h", "/nope"), UpgradeConfig::default()).await.unwrap_err();
    let wsproto::Error::Rejected(rejection) = err else { panic!("{err:?}") };
    assert_eq!(rejection.status_code, 404);
    assert_eq!(rejection.body, "Path not found");
    assert!(rejection
        .headers
        .iter()
        .any(|(n, v)| n.eq_ignore_ascii_case(b"content-type") && v == "text/plain"));
    assert!(matches!(server.await.unwrap(), Err(wsproto::Error::Rejected(_))));
}

#[tokio::test]
async fn a_rejection_body_longer_than_the_limit_is_kept_up_to_it_as_a_prefix() {
    // 30,000 bytes arrive in reads of at most 4 KiB; 10,000 are kept: the first 10,000, not
    // whichever reads happened to fit.
    let body: Vec<u8> = (0..30_000u32).map(|i| (i % 251) as u8).collect();
    let (a, mut b) = tokio::io::duplex(4096);
    let sent = body.clone();
    let server = tokio::spawn(async move {
        let mut request = [0u8; 1024];
        let _ = b.read(&mut request).await.unwrap();
        let head = format!("HTTP/1.1 403 Forbidden\r\nContent-Length: {}\r\n\r\n", sent.len());
        b.write_all(head.as_bytes()).await.unwrap();
        b.write_all(&sent).await.unwrap();
        b
    });
    let config = UpgradeConfig::default().max_reject_body(10_000);
    let err = upgrade::client(a, Request::new("h", "/"), config).await.unwrap_err();
    let wsproto::Error::Rejected(rejection) = err else { panic!("{err:?}") };
    assert_eq!(rejection.status_code, 403);
    assert_eq!(rejection.body.len(), 10_000);
    assert_eq!(rejection.body, body[..10_000]);
    drop(server.await.unwrap());
}

#[tokio::test]
async fn invalid_request_gets_the_hinted_rejection() {
    let (mut a, b) = tokio::io::duplex(4096);
    let server = tokio::spawn(async move { upgrade::accept(b, UpgradeConfig::default()).await });
    a.write_all(b"GET / HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 8\r\n\r\n").await.unwrap();
    let mut response = Vec::new();
    a.read_to_end(&mut response).await.unwrap();
    let response = String::from_utf8(response).unwrap();
    assert!(response.starts_with("HTTP/1.1 426"), "{response}");
    assert!(response.to_ascii_lowercase().contains("sec-websocket-version: 13"));
    assert!(matches!(server.await.unwrap(), Err(wsproto::Error::Remote(_))));
}

#[tokio::test(start_paused = true)]
async fn slow_handshake_times_out() {
    let (mut a, b) = tokio::io::duplex(4096);
    let server = tokio::spawn(async move {
        upgrade::accept(b, UpgradeConfig::default().handshake_timeout(Duration::from_secs(3))).await
    });
    for byte in b"GET / HTTP/1.1\r\nHost: h\r\n" {
        a.write_all(&[*byte]).await.unwrap();
        tokio::time::sleep(Duration::from_secs(1)).await;
        if server.is_finished() {
            break;
        }
    }
    assert!(matches!(server.await.unwrap(), Err(wsproto::Error::HandshakeTimeout)));
}

/// Delivers at most one byte per read.
struct OneByte<T>(T);

impl<T: AsyncRead + Unpin> AsyncRead for OneByte<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let mut one = [0u8; 1];
        let mut small = ReadBuf::new(&mut one);
        match Pin::new(&mut self.0).poll_read(cx, &mut small) {
            Poll::Ready(Ok(())) => {
                buf.put_slice(small.filled());
                Poll::Ready(Ok(()))
            }
            other => other,
        }
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for OneByte<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

#[tokio::test]
async fn one_byte_per_read_through_the_whole_upgrade() {
    let (a, b) = tokio::io::duplex(4096);
    let server = tokio::spawn(async move {
        let mut ws = upgrade::accept(OneByte(b), UpgradeConfig::default()).await.unwrap().0.into_inner();
        let event = next(&mut ws).await;
        ws.send(event).await.unwrap();
        ws
    });
    let mut client = upgrade::client(OneByte(a), Request::new("h", "/"), UpgradeConfig::default())
        .await
        .unwrap()
        .0
        .into_inner();
    client.send(TextMessage::new("byte by byte: ünïcödé").into()).await.unwrap();
    assert_eq!(next(&mut client).await, Event::TextMessage(TextMessage::new("byte by byte: ünïcödé")));
    drop(server.await.unwrap());
}

#[tokio::test]
async fn cancel_safety_dropping_next_mid_frame_loses_nothing() {
    let (a, mut b) = tokio::io::duplex(4096);
    let conn = Connection::new(ConnectionType::Server, Config::default().delivery(Delivery::Messages));
    let mut server = Framed::new(a, WsCodec::new(conn));
    let frame = support::masked(0x81, "cancel-safe message".as_bytes());
    b.write_all(&frame[..9]).await.unwrap();
    // The future is dropped while the frame is incomplete.
    assert!(tokio::time::timeout(Duration::from_millis(20), server.next()).await.is_err());
    b.write_all(&frame[9..]).await.unwrap();
    assert_eq!(next(&mut server).await, Event::TextMessage(TextMessage::new("cancel-safe message")));
}

#[tokio::test]
async fn whole_messages_assemble_fragments_and_enforce_the_limit() {
    let (a, mut b) = tokio::io::duplex(1 << 16);
    let config = Config::default().max_message_size(10).delivery(Delivery::Messages);
    let mut server = Framed::new(a, WsCodec::new(Connection::new(ConnectionType::Server, config)));
    let input = [
        support::masked(0x01, b"hel"),
        support::masked(0x89, b"ping"),
        support::masked(0x80, b"lo"),
        support::masked(0x82, b"0123456789"),
        support::masked(0x02, b"01234"),
        support::masked(0x80, b"567890"),
    ]
    .concat();
    b.write_all(&input).await.unwrap();
    assert_eq!(next(&mut server).await, Event::Ping(Ping::new("ping")), "control frames pass through");
    assert_eq!(next(&mut server).await, Event::TextMessage(TextMessage::new("hello")));
    assert_eq!(next(&mut server).await, Event::BytesMessage(BytesMessage::new("0123456789")));
    assert!(matches!(next(&mut server).await, Event::CloseConnection(c) if c.code == 1009));
}

/// Whole-message mode reserves the size of the previous fragmented message at the first
/// fragment of the next; a small message after a large one must come out right-sized, not
/// pinning the large reservation for as long as the user keeps it.
#[test]
fn regression_small_fragmented_message_does_not_pin_the_previous_reservation() {
    use tokio_util::codec::Decoder;
    let config = Config::default().delivery(Delivery::Messages);
    let mut codec = WsCodec::new(Connection::new(ConnectionType::Server, config));
    let fragmented = |total: usize| {
        let piece = vec![b'x'; total / 4];
        let mut frames = vec![support::masked(0x02, &piece)];
        frames.extend((0..2).map(|_| support::masked(0x00, &piece)));
        frames.push(support::masked(0x80, &piece));
        BytesMut::from(&frames.concat()[..])
    };
    for total in [1 << 20, 1 << 20, 64] {
        let mut src = fragmented(total);
        let Some(Event::BytesMessage(m)) = codec.decode(&mut src).unwrap() else { panic!("message") };
        assert_eq!(m.data.len(), total);
        assert!(src.is_empty());
        let capacity = m.data.try_into_mut().expect("the only handle").capacity();
        assert!(capacity < 2 * total.max(4096), "{total} B message holds {capacity} B");
    }
}

#[tokio::test]
async fn peer_vanishing_mid_frame_yields_1006() {
    let (a, mut b) = tokio::io::duplex(4096);
    let mut server = framed(a, ConnectionType::Server);
    let frame = support::masked(0x82, &[1; 50]);
    b.write_all(&[support::masked(0x81, b"whole"), frame[..20].to_vec()].concat()).await.unwrap();
    drop(b);
    assert_eq!(next(&mut server).await, Event::TextMessage(TextMessage::new("whole")));
    // The partial frame may be delivered as a chunk before EOF is seen.
    loop {
        match next(&mut server).await {
            Event::BytesMessage(m) => assert!(!m.message_finished),
            Event::CloseConnection(c) => {
                assert_eq!(c.code, 1006);
                break;
            }
            other => panic!("{other:?}"),
        }
    }
    assert!(server.next().await.is_none());
}

#[tokio::test]
async fn sending_after_close_is_a_local_error() {
    let (a, _b) = tokio::io::duplex(4096);
    let mut client = framed(a, ConnectionType::Client);
    client.send(CloseConnection::new(1000u16).into()).await.unwrap();
    let err = client.send(TextMessage::new("late").into()).await.unwrap_err();
    assert!(matches!(err, Error::Local(_)), "{err:?}");
}

#[tokio::test]
async fn regression_write_buffer_released_after_a_large_message() {
    // Found by the memory benchmark: after a 16 MiB echo in whole-message mode the flushed
    // write buffer kept its 16 MiB allocation (a flushed BytesMut reports capacity 0).
    let (a, mut b) = tokio::io::duplex(1 << 20);
    let mut ws = framed(a, ConnectionType::Server);
    let reader = tokio::spawn(async move {
        let mut sink = vec![0u8; 1 << 16];
        while b.read(&mut sink).await.unwrap_or(0) > 0 {}
    });
    ws.send(BytesMessage::new(vec![1u8; 4 << 20]).into()).await.unwrap();
    ws.send(BytesMessage::new(vec![2u8; 16]).into()).await.unwrap();
    assert!(ws.write_buffer().capacity() <= 64 << 10, "write buffer kept {}", ws.write_buffer().capacity());
    drop(ws);
    reader.await.unwrap();
}

#[test]
fn read_ahead_grows_while_reads_fill_the_buffer_and_drops_when_they_do_not() {
    use tokio_util::codec::Decoder;
    let frame = support::masked(0x82, &[7u8; 16]);
    let server = || WsCodec::new(Connection::new(ConnectionType::Server, Config::default()));
    // A "read" that filled every byte of the buffer with complete frames.
    let full_read = |count: usize| {
        let mut src = BytesMut::with_capacity(frame.len() * count);
        while src.len() + frame.len() <= src.capacity() {
            src.extend_from_slice(&frame);
        }
        src
    };
    let drain = |codec: &mut WsCodec, src: &mut BytesMut| {
        let mut events = 0;
        while let Some(event) = codec.decode(src).unwrap() {
            assert!(matches!(event, Event::BytesMessage(m) if m.data.len() == 16));
            events += 1;
        }
        events
    };

    let mut codec = server();
    let mut src = full_read(100);
    assert_eq!(src.len(), src.capacity(), "the test read must fill the buffer");
    assert_eq!(drain(&mut codec, &mut src), 100);
    let spare = src.capacity() - src.len();
    assert!(spare >= 16 << 10, "after a full read the next read has room for more: {spare}");

    // A read that leaves room: no read-ahead is kept beyond what the buffer has.
    let mut codec = server();
    let mut src = BytesMut::with_capacity(64 << 10);
    src.extend_from_slice(&frame);
    assert_eq!(drain(&mut codec, &mut src), 1);
    assert!(src.capacity() <= 64 << 10, "no growth after a partial read: {}", src.capacity());
}

/// The upgrade helper hands back `Framed<T, WsCodec>`: the type a user builds by hand, so a
/// function written for one takes the other (it used to wrap the stream in a second type).
#[tokio::test]
async fn upgrade_helper_returns_the_framed_users_build_by_hand() {
    fn stream_of(ws: &Framed<DuplexStream, WsCodec>) -> &DuplexStream {
        ws.get_ref()
    }
    let (a, b) = tokio::io::duplex(4096);
    let server =
        tokio::spawn(
            async move { upgrade::accept(a, UpgradeConfig::default()).await.unwrap().0.into_inner() },
        );
    let mut client =
        upgrade::client(b, Request::new("h", "/"), UpgradeConfig::default()).await.unwrap().0.into_inner();
    let mut server: Framed<DuplexStream, WsCodec> = server.await.unwrap();
    let _ = (stream_of(&client), stream_of(&server));
    let by_hand = framed(tokio::io::duplex(64).0, ConnectionType::Server);
    let _ = stream_of(&by_hand);
    client.send(TextMessage::new("same type").into()).await.unwrap();
    assert_eq!(next(&mut server).await, Event::TextMessage(TextMessage::new("same type")));
}
