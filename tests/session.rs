//! The session: replies, keepalive, timeouts, clean close, lingering and graceful shutdown,
//! over `tokio::io::duplex` with tokio's paused clock (deterministic: no real sleeps).
#![cfg(feature = "tokio")]

mod support;

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};
use tokio_util::codec::Framed;
use wsproto::codec::WsCodec;
use wsproto::session::{Session, Shutdown};
use wsproto::{
    BytesMessage, CloseCode, CloseConnection, CloseSource, Config, Connection, ConnectionType, Delivery,
    Error, Event, KeySource, Ping, Pong, SessionConfig, TextMessage, Timeout,
};

/// A server session and the raw client end of the pipe.
fn pair(config: SessionConfig) -> (Session<DuplexStream>, Framed<DuplexStream, WsCodec>) {
    pair_with(config, 1 << 16)
}

fn pair_with(config: SessionConfig, pipe: usize) -> (Session<DuplexStream>, Framed<DuplexStream, WsCodec>) {
    let (a, b) = tokio::io::duplex(pipe);
    let server = Connection::new(ConnectionType::Server, Config::default().delivery(Delivery::Messages));
    let client = Connection::new(
        ConnectionType::Client,
        Config::default().delivery(Delivery::Messages).key_source(KeySource::fixed(support::KEY)),
    );
    (Session::new(Framed::new(a, WsCodec::new(server)), config), Framed::new(b, WsCodec::new(client)))
}

async fn next(peer: &mut Framed<DuplexStream, WsCodec>) -> Event {
    peer.next().await.expect("open").expect("ok")
}

#[tokio::test(start_paused = true)]
async fn pings_are_answered_while_the_application_only_reads() {
    let (mut session, mut peer) = pair(SessionConfig::default());
    peer.send(Ping::new("are you there").into()).await.unwrap();
    peer.send(TextMessage::new("hello").into()).await.unwrap();
    // The application sees the ping (informational) and the message; it sends nothing.
    assert_eq!(session.next().await.unwrap().unwrap(), Ping::new("are you there").into());
    assert_eq!(session.next().await.unwrap().unwrap(), TextMessage::new("hello").into());
    assert_eq!(next(&mut peer).await, Pong::new("are you there").into());
}

#[tokio::test(start_paused = true)]
async fn keepalive_measures_the_round_trip_and_fails_a_silent_peer_with_1011() {
    let config = SessionConfig::default().keepalive(Some(Duration::from_secs(20)), Duration::from_secs(20));
    let (mut session, mut peer) = pair(config);
    let reader = tokio::spawn(async move {
        let mut events = Vec::new();
        while let Some(event) = session.next().await {
            events.push(event.map_err(|e| e.to_string()));
        }
        (events, session.rtt())
    });
    // A ping after 20 s of silence; answered after 50 ms.
    let start = tokio::time::Instant::now();
    let Event::Ping(ping) = next(&mut peer).await else { panic!("a keepalive ping") };
    assert_eq!(start.elapsed(), Duration::from_secs(20));
    tokio::time::sleep(Duration::from_millis(50)).await;
    peer.send(ping.response().into()).await.unwrap();
    // The next ping is not answered: 20 s later the session closes with 1011.
    let Event::Ping(_) = next(&mut peer).await else { panic!("a second ping") };
    let Event::CloseConnection(close) = next(&mut peer).await else { panic!("a close") };
    assert_eq!(close.code, CloseCode::INTERNAL_ERROR);
    assert_eq!(start.elapsed(), Duration::from_millis(20_050 + 20_000 + 20_000));
    drop(peer);
    let (events, rtt) = reader.await.unwrap();
    assert_eq!(rtt, Some(Duration::from_millis(50)));
    assert!(events.iter().any(|e| matches!(e, Err(m) if m.contains("keepalive"))), "{events:?}");
}

#[tokio::test(start_paused = true)]
async fn idle_timeout_closes_with_1001() {
    let config = SessionConfig::default()
        .keepalive(None, Duration::from_secs(1))
        .idle_timeout(Some(Duration::from_secs(60)));
    let (mut session, mut peer) = pair(config);
    let reader = tokio::spawn(async move {
        let mut last = None;
        while let Some(event) = session.next().await {
            last = Some(event.map_err(|e| matches!(e, Error::Timeout(Timeout::Idle))));
        }
        last
    });
    let Event::CloseConnection(close) = next(&mut peer).await else { panic!("a close") };
    assert_eq!(close.code, CloseCode::GOING_AWAY);
    peer.send(close.reply().unwrap().into()).await.unwrap();
    drop(peer);
    assert!(reader.await.unwrap().is_some());
}

#[tokio::test(start_paused = true)]
async fn a_loop_that_stops_at_a_timeout_error_still_sends_the_close_the_timeout_owes() {
    // The README's loop ends at the first error (`event?`) and drops the session: the close
    // frame of the timeout (1001 idle, 1011 keepalive) must already be on its way.
    for (config, code) in [
        (
            SessionConfig::default()
                .keepalive(None, Duration::from_secs(1))
                .idle_timeout(Some(Duration::from_secs(60))),
            CloseCode::GOING_AWAY,
        ),
        (
            SessionConfig::default().keepalive(Some(Duration::from_secs(20)), Duration::from_secs(20)),
            CloseCode::INTERNAL_ERROR,
        ),
    ] {
        let (mut session, mut peer) = pair(config);
        let app = tokio::spawn(async move {
            while let Some(event) = session.next().await {
                if let Err(e) = event {
                    return e;
                }
            }
            panic!("the stream ended without the timeout error");
        });
        assert!(matches!(app.await.unwrap(), Error::Timeout(_)));
        loop {
            match next(&mut peer).await {
                Event::Ping(_) => continue, // the keepalive's unanswered ping
                Event::CloseConnection(close) => {
                    assert_eq!(close.code, code);
                    break;
                }
                other => panic!("{other:?}"),
            }
        }
    }
}

#[tokio::test(start_paused = true)]
async fn a_peer_that_closes_and_vanishes_is_heard_as_its_close_not_as_a_failed_reply() {
    // The reply to its close cannot be written (the pipe is gone): the application still gets
    // the peer's close, then the end of the stream.
    let (mut session, mut peer) = pair(SessionConfig::default());
    peer.send(CloseConnection::with_reason(CloseCode::GOING_AWAY, "bye").into()).await.unwrap();
    drop(peer);
    let Some(Ok(Event::CloseConnection(close))) = session.next().await else { panic!("the peer's close") };
    assert_eq!((close.code, close.reason.as_deref()), (CloseCode::GOING_AWAY, Some("bye")));
    assert!(session.next().await.is_none());
}

#[tokio::test(start_paused = true)]
async fn a_peer_that_pings_sends_and_vanishes_is_heard_in_full_before_the_failed_pong() {
    // Its ping, a message and a second ping arrive in one read; the pong cannot be written
    // (the pipe is gone). The application gets all three, then the write's error, then the end.
    let (mut session, mut peer) = pair(SessionConfig::default());
    peer.feed(Ping::new("one").into()).await.unwrap();
    peer.feed(TextMessage::new("last words").into()).await.unwrap();
    peer.feed(Ping::new("two").into()).await.unwrap();
    peer.flush().await.unwrap();
    drop(peer);
    assert_eq!(session.next().await.unwrap().unwrap(), Ping::new("one").into());
    assert_eq!(session.next().await.unwrap().unwrap(), TextMessage::new("last words").into());
    assert_eq!(session.next().await.unwrap().unwrap(), Ping::new("two").into());
    let error = session.next().await.unwrap().unwrap_err();
    assert!(matches!(&error, Error::Io(e) if e.kind() == std::io::ErrorKind::BrokenPipe), "{error}");
    assert!(session.next().await.is_none());
}

#[tokio::test(start_paused = true)]
async fn a_peer_that_pings_and_closes_and_vanishes_is_heard_as_its_close() {
    // The pong fails; the buffered close that follows still reaches the application, and the
    // stream ends after it (as when the close itself arrives with the write failing).
    let (mut session, mut peer) = pair(SessionConfig::default());
    peer.feed(Ping::new("one").into()).await.unwrap();
    peer.feed(CloseConnection::with_reason(CloseCode::NORMAL_CLOSURE, "done").into()).await.unwrap();
    peer.flush().await.unwrap();
    drop(peer);
    assert_eq!(session.next().await.unwrap().unwrap(), Ping::new("one").into());
    let Some(Ok(Event::CloseConnection(close))) = session.next().await else { panic!("the peer's close") };
    assert_eq!(close.code, CloseCode::NORMAL_CLOSURE);
    assert!(session.next().await.is_none());
}

#[tokio::test(start_paused = true)]
async fn a_peer_that_stops_reading_is_cut_off_by_the_send_timeout() {
    let config = SessionConfig::default()
        .keepalive(None, Duration::from_secs(1))
        .send_timeout(Some(Duration::from_secs(30)));
    let (mut session, _peer) = pair_with(config, 4096);
    let start = tokio::time::Instant::now();
    let message = BytesMessage::new(vec![0u8; 1024]);
    let error = loop {
        if let Err(e) = session.send(message.clone().into()).await {
            break e;
        }
        assert!(start.elapsed() < Duration::from_secs(60), "never blocked");
    };
    assert!(matches!(error, Error::Timeout(Timeout::Send)), "{error}");
    assert_eq!(start.elapsed(), Duration::from_secs(30));
}

#[tokio::test(start_paused = true)]
async fn the_write_buffer_is_bounded_by_its_high_water_mark() {
    let config = SessionConfig::default().keepalive(None, Duration::from_secs(1)).write_buffer(8 << 10);
    let (mut session, _peer) = pair_with(config, 4096);
    let message = BytesMessage::new(vec![0u8; 1000]);
    let mut sent = 0;
    // The peer never reads: feeding stops being ready once the buffer passes 8 KiB.
    loop {
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        match session.poll_ready_unpin(&mut cx) {
            std::task::Poll::Ready(Ok(())) => {
                session.start_send_unpin(message.clone().into()).unwrap();
                sent += 1;
            }
            std::task::Poll::Pending => break,
            std::task::Poll::Ready(Err(e)) => panic!("{e}"),
        }
        assert!(sent < 1000, "never blocked");
    }
    let buffered = session.into_inner().write_buffer().len();
    assert!(buffered <= (8 << 10) + 1010, "write buffer {buffered} within the mark plus one message");
    assert!(sent >= 8, "the pipe and the buffer took some first ({sent})");
}

#[tokio::test(start_paused = true)]
async fn close_sends_the_frame_waits_for_the_reply_and_shuts_down() {
    let (mut session, mut peer) = pair(SessionConfig::default());
    let closer = tokio::spawn(async move { session.close_with(CloseCode::NORMAL_CLOSURE, "bye").await });
    let Event::CloseConnection(close) = next(&mut peer).await else { panic!("a close") };
    assert_eq!((close.code, close.reason.as_deref()), (CloseCode::NORMAL_CLOSURE, Some("bye")));
    peer.send(close.reply().unwrap().into()).await.unwrap();
    closer.await.unwrap().unwrap();
    // The session shut its side down: the peer reads EOF, no reset.
    assert!(peer.next().await.is_none());
}

#[tokio::test(start_paused = true)]
async fn a_close_code_that_cannot_be_sent_is_refused_and_the_session_carries_on() {
    let (mut session, mut peer) = pair(SessionConfig::default());
    for (code, reason) in [(1006u16, ""), (1005, "why"), (999, ""), (1004, ""), (5000, "")] {
        let refused = session.close_with(code, reason).await.unwrap_err();
        assert!(matches!(refused, Error::Local(_)), "{code}: {refused}");
    }
    // Nothing was sent, nothing changed: the session still sends and closes normally.
    session.send(TextMessage::new("still open").into()).await.unwrap();
    assert_eq!(next(&mut peer).await, Event::TextMessage(TextMessage::new("still open")));
    let closer = tokio::spawn(async move { session.close_with(1014u16, "upstream").await });
    let Event::CloseConnection(close) = next(&mut peer).await else { panic!("a close") };
    assert_eq!((close.code, close.reason.as_deref()), (CloseCode::BAD_GATEWAY, Some("upstream")));
    peer.send(close.reply().unwrap().into()).await.unwrap();
    closer.await.unwrap().unwrap();
}

#[tokio::test(start_paused = true)]
async fn sink_close_sends_1000_and_the_peer_close_ends_the_stream() {
    let (mut session, mut peer) = pair(SessionConfig::default());
    let closer = tokio::spawn(async move { session.close_with(CloseCode::NORMAL_CLOSURE, "").await });
    let Event::CloseConnection(close) = next(&mut peer).await else { panic!("a close") };
    assert_eq!(close.code, CloseCode::NORMAL_CLOSURE);
    peer.send(close.reply().unwrap().into()).await.unwrap();
    closer.await.unwrap().unwrap();

    // SinkExt::close does the same with 1000.
    let (mut session, mut peer) = pair(SessionConfig::default());
    let closer = tokio::spawn(async move { SinkExt::close(&mut session).await });
    let Event::CloseConnection(close) = next(&mut peer).await else { panic!("a close") };
    assert_eq!(close.code, CloseCode::NORMAL_CLOSURE);
    peer.send(close.reply().unwrap().into()).await.unwrap();
    closer.await.unwrap().unwrap();

    // The peer closes: the session replies by itself, and the stream ends after the close event.
    let (mut session, mut peer) = pair(SessionConfig::default());
    peer.send(CloseConnection::with_reason(CloseCode::GOING_AWAY, "later").into()).await.unwrap();
    let Event::CloseConnection(close) = session.next().await.unwrap().unwrap() else { panic!() };
    assert_eq!((close.source, close.reply_owed), (CloseSource::Peer, true));
    let Event::CloseConnection(reply) = next(&mut peer).await else { panic!("the reply") };
    assert_eq!(reply.code, CloseCode::GOING_AWAY);
    drop(peer);
    assert!(session.next().await.is_none());
}

#[tokio::test(start_paused = true)]
async fn a_violation_lingers_so_a_peer_still_sending_reads_the_close_code() {
    let (mut session, peer) = pair(SessionConfig::default());
    let (mut rd, mut wr) = tokio::io::split(peer.into_inner());
    // Invalid UTF-8, then more data the peer keeps sending.
    wr.write_all(&support::masked(0x81, b"\xff")).await.unwrap();
    let server = tokio::spawn(async move {
        let mut seen = Vec::new();
        while let Some(event) = session.next().await {
            seen.push(event.unwrap());
        }
        seen
    });
    for _ in 0..10 {
        wr.write_all(&support::masked(0x82, &[0; 1000])).await.unwrap();
    }
    let mut buf = vec![0u8; 64];
    let n = rd.read(&mut buf).await.unwrap();
    assert_eq!(&buf[..4], &[0x88, 0x1f, 0x03, 0xef], "close 1007 with its reason ({n} bytes)");
    let seen = server.await.unwrap();
    let Event::CloseConnection(close) = &seen[0] else { panic!("{seen:?}") };
    assert_eq!(close.code, CloseCode::INVALID_FRAME_PAYLOAD_DATA);
}

#[tokio::test(start_paused = true)]
async fn graceful_shutdown_of_a_thousand_sessions_within_the_deadline() {
    let shutdown = Shutdown::new();
    let mut peers = Vec::new();
    for _ in 0..1000 {
        let (session, mut peer) = pair(SessionConfig::default());
        let mut session = session.with_shutdown(&shutdown);
        tokio::spawn(async move { while session.next().await.is_some() {} });
        // Each peer answers the close it receives.
        peers.push(tokio::spawn(async move {
            loop {
                match peer.next().await {
                    Some(Ok(Event::CloseConnection(close))) => {
                        if let Some(reply) = close.reply() {
                            let _ = peer.send(reply.into()).await;
                        }
                        return close.code;
                    }
                    Some(Ok(_)) => {}
                    _ => return CloseCode::ABNORMAL_CLOSURE,
                }
            }
        }));
    }
    tokio::task::yield_now().await;
    assert_eq!(shutdown.live(), 1000);
    let left = shutdown.graceful(Duration::from_secs(5)).await;
    assert_eq!(left, 0);
    for peer in peers {
        assert_eq!(peer.await.unwrap(), CloseCode::GOING_AWAY);
    }
}

#[tokio::test(start_paused = true)]
async fn graceful_shutdown_mid_traffic_completes_every_closing_handshake_under_an_echo_loop() {
    // The echo loop as the README writes it (`send(..).await?`): messages that arrive after the
    // shutdown's close was sent are still echoed, and those sends must not end the loop before
    // the closing handshake.
    const WINDOW: usize = 4;
    let shutdown = Shutdown::new();
    let (mut servers, mut peers) = (Vec::new(), Vec::new());
    for _ in 0..1000 {
        let (session, mut peer) = pair(SessionConfig::default());
        let mut ws = session.with_shutdown(&shutdown);
        servers.push(tokio::spawn(async move {
            while let Some(event) = ws.next().await {
                match event? {
                    Event::TextMessage(m) => ws.send(m.into()).await?,
                    Event::BytesMessage(m) => ws.send(m.into()).await?,
                    _ => {}
                }
            }
            Ok::<_, Error>(())
        }));
        peers.push(tokio::spawn(async move {
            let (mut sent, mut echoed) = (0usize, 0usize);
            for _ in 0..WINDOW {
                peer.send(TextMessage::new(format!("message {sent}")).into()).await.unwrap();
                sent += 1;
            }
            loop {
                match peer.next().await {
                    Some(Ok(Event::TextMessage(m))) => {
                        assert_eq!(m.data, format!("message {echoed}"), "echoes byte for byte, in order");
                        echoed += 1;
                        if peer.send(TextMessage::new(format!("message {sent}")).into()).await.is_ok() {
                            sent += 1;
                        }
                    }
                    Some(Ok(Event::CloseConnection(close))) => {
                        if let Some(reply) = close.reply() {
                            peer.send(reply.into()).await.unwrap();
                        }
                        return (close.code, echoed);
                    }
                    Some(Ok(_)) => {}
                    _ => return (CloseCode::ABNORMAL_CLOSURE, echoed),
                }
            }
        }));
    }
    // Let traffic flow, then shut down with every connection mid-exchange.
    for _ in 0..20 {
        tokio::task::yield_now().await;
    }
    assert_eq!(shutdown.graceful(Duration::from_secs(5)).await, 0);
    for server in servers {
        server.await.unwrap().expect("the echo loop ends cleanly, after the closing handshake");
    }
    for peer in peers {
        let (code, _echoed) = peer.await.unwrap();
        assert_eq!(code, CloseCode::GOING_AWAY);
    }
}

/// A client that always has another masked text frame ready (its reads never wait) until
/// the server's close frame has been written to it; then EOF. Records what the server wrote.
struct Firehose {
    frame: Vec<u8>,
    pos: usize,
    written: Vec<u8>,
}

impl Firehose {
    fn new() -> Self {
        // "hi", masked with the key 0x01020304.
        Firehose { frame: vec![0x81, 0x82, 1, 2, 3, 4, b'h' ^ 1, b'i' ^ 2], pos: 0, written: Vec::new() }
    }

    /// Whether a close frame with code 1001 (going away) was written.
    fn close_written(&self) -> bool {
        going_away(&self.written)
    }
}

/// Whether `written` holds an unmasked close frame with code 1001 (any reason).
fn going_away(written: &[u8]) -> bool {
    written.windows(4).any(|w| w[0] == 0x88 && w[1] < 126 && w[2..] == [0x03, 0xe9])
}

impl tokio::io::AsyncRead for Firehose {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        if self.close_written() {
            return std::task::Poll::Ready(Ok(())); // EOF
        }
        while buf.remaining() > 0 {
            let this = &mut *self;
            let n = buf.remaining().min(this.frame.len() - this.pos);
            buf.put_slice(&this.frame[this.pos..this.pos + n]);
            this.pos = (this.pos + n) % this.frame.len();
        }
        std::task::Poll::Ready(Ok(()))
    }
}

impl tokio::io::AsyncWrite for Firehose {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        self.written.extend_from_slice(buf);
        std::task::Poll::Ready(Ok(buf.len()))
    }
    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }
    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }
}

#[tokio::test(start_paused = true)]
async fn a_session_whose_input_never_waits_still_closes_on_a_shutdown_request() {
    // The request is checked on every poll, not only when the session waits for input (where
    // its wake-up is registered): this session always has input and never waits.
    let shutdown = Shutdown::new();
    let server = Connection::new(ConnectionType::Server, Config::default());
    let mut ws = Session::new(Framed::new(Firehose::new(), WsCodec::new(server)), SessionConfig::default())
        .with_shutdown(&shutdown);
    let task = tokio::spawn(async move {
        let mut messages = 0;
        while let Some(event) = ws.next().await {
            if let Ok(Event::TextMessage(_)) = event {
                messages += 1;
            }
            if messages == 100_000 {
                break; // the request was never seen
            }
            // Lets the test's task run; the session itself never returned `Pending`.
            tokio::task::yield_now().await;
        }
        (messages, ws.into_inner().into_parts().io.written)
    });
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
    shutdown.graceful(Duration::from_secs(5)).await;
    let (messages, written) = task.await.unwrap();
    assert!(messages > 0, "traffic flowed before the request");
    assert!(going_away(&written), "close 1001 (going away) written: {written:02x?}");
}

#[tokio::test(start_paused = true)]
async fn a_session_registered_after_the_shutdown_request_closes_when_first_polled() {
    let shutdown = Shutdown::new();
    assert_eq!(shutdown.graceful(Duration::from_secs(1)).await, 0);
    assert!(shutdown.is_requested());
    let (session, mut peer) = pair(SessionConfig::default());
    let mut ws = session.with_shutdown(&shutdown);
    let server = tokio::spawn(async move { while ws.next().await.is_some() {} });
    let Event::CloseConnection(close) = next(&mut peer).await else { panic!("a close first") };
    assert_eq!(close.code, CloseCode::GOING_AWAY);
    peer.send(close.reply().unwrap().into()).await.unwrap();
    server.await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn split_halves_keep_replies_working_under_concurrent_pings_and_reunite() {
    let (session, mut peer) = pair(SessionConfig::default());
    let (mut reader, mut writer) = session.split();
    // The reader only reads; the writer only writes, from another task.
    let read_task = tokio::spawn(async move {
        let mut texts = 0;
        while let Some(event) = reader.next().await {
            if let Event::TextMessage(_) = event.unwrap() {
                texts += 1;
                if texts == 50 {
                    break;
                }
            }
        }
        reader
    });
    let write_task = tokio::spawn(async move {
        for i in 0..50 {
            writer.send(TextMessage::new(format!("from the writer {i}")).into()).await.unwrap();
            tokio::task::yield_now().await;
        }
        writer
    });
    // The peer pings between its own messages and reads everything that comes back.
    for i in 0..50u8 {
        peer.send(Ping::new(vec![i]).into()).await.unwrap();
        peer.send(TextMessage::new("to the reader").into()).await.unwrap();
    }
    let (mut pongs, mut texts) = (Vec::new(), 0);
    while pongs.len() < 50 || texts < 50 {
        match next(&mut peer).await {
            Event::Pong(pong) => pongs.push(pong.payload[0]),
            Event::TextMessage(_) => texts += 1,
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(pongs, (0..50).collect::<Vec<u8>>(), "every ping answered, in order");
    let (reader, writer) = (read_task.await.unwrap(), write_task.await.unwrap());
    assert_eq!(reader.state(), writer.state());
    let mut session = reader.reunite(writer).expect("halves of one session");
    let closer = tokio::spawn(async move { session.close_with(CloseCode::NORMAL_CLOSURE, "").await });
    let Event::CloseConnection(close) = next(&mut peer).await else { panic!("a close") };
    peer.send(close.reply().unwrap().into()).await.unwrap();
    closer.await.unwrap().unwrap();
}

#[tokio::test(start_paused = true)]
async fn closing_against_a_peer_that_does_not_read_ends_within_the_linger_time() {
    let config = SessionConfig::default()
        .keepalive(None, Duration::from_secs(1))
        .send_timeout(None)
        .write_buffer(1 << 20);
    let (mut session, mut peer) = pair_with(config, 2048);
    // 64 KiB the peer will never read waits in our write buffer; then the peer closes.
    session.feed(BytesMessage::new(vec![0u8; 64 << 10]).into()).await.unwrap();
    peer.send(CloseConnection::new(CloseCode::GOING_AWAY).into()).await.unwrap();
    let start = tokio::time::Instant::now();
    let events = tokio::time::timeout(Duration::from_secs(60), async {
        let mut events = 0;
        while let Some(event) = session.next().await {
            event.unwrap();
            events += 1;
        }
        events
    })
    .await
    .expect("the session ends by itself");
    assert_eq!(events, 1, "the close event, then the end");
    // Our reply cannot be flushed: the session gives up after the linger time, not never.
    assert_eq!(start.elapsed(), Duration::from_secs(2));
    drop(peer);
}

// Over TCP, where a socket dropped with unread input is reset (no paused clock: real sockets).

async fn tcp_pair(config: SessionConfig) -> (Session<tokio::net::TcpStream>, tokio::net::TcpStream) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let client = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (server, _) = listener.accept().await.unwrap();
    let conn = Connection::new(ConnectionType::Server, Config::default().delivery(Delivery::Messages));
    (Session::new(Framed::new(server, WsCodec::new(conn)), config), client)
}

#[tokio::test]
async fn over_tcp_pongs_flow_while_only_reading_and_a_violation_reaches_a_peer_still_sending() {
    tokio::time::timeout(Duration::from_secs(20), async {
        let (mut session, client) = tcp_pair(SessionConfig::default().linger(Duration::from_millis(500))).await;
        let (mut rd, mut wr) = client.into_split();
        let server = tokio::spawn(async move {
            let mut events = Vec::new();
            while let Some(event) = session.next().await {
                events.push(event.unwrap());
            }
            events
        });
        // A ping: the pong comes back though the application never sends.
        wr.write_all(&support::masked(0x89, b"tcp")).await.unwrap();
        let mut pong = [0u8; 5];
        rd.read_exact(&mut pong).await.unwrap();
        assert_eq!(pong, [0x8a, 0x03, b't', b'c', b'p']);
        // Invalid UTF-8 while the peer keeps sending 1 MiB: the close code arrives intact
        // (the session drains instead of dropping the socket with unread input: a reset).
        wr.write_all(&support::masked(0x81, b"\xff")).await.unwrap();
        let writer = tokio::spawn(async move {
            let chunk = support::masked(0x82, &[0; 16 << 10]);
            for _ in 0..64 {
                if wr.write_all(&chunk).await.is_err() {
                    break;
                }
            }
            wr
        });
        let mut head = [0u8; 4];
        rd.read_exact(&mut head).await.expect("the close frame, not a reset");
        assert_eq!(head, [0x88, 0x1f, 0x03, 0xef], "close 1007");
        let events = server.await.unwrap();
        assert!(matches!(&events[..], [Event::Ping(_), Event::CloseConnection(c)] if c.code == CloseCode::INVALID_FRAME_PAYLOAD_DATA), "{events:?}");
        drop(writer.await.unwrap());
    })
    .await
    .expect("test timed out");
}

/// A server ends at once after a clean closing handshake, without waiting for an EOF the peer
/// may never send (browsers over HTTP/2 never end a closed WebSocket's stream); a client waits
/// for the server to close first (RFC 6455), bounded by the linger time.
#[tokio::test(start_paused = true)]
async fn after_a_clean_close_a_server_ends_at_once_and_a_client_waits_for_the_server() {
    // Server: the peer closes, the session replies, and the stream ends at once although the
    // peer keeps its end open.
    let (mut session, mut peer) = pair(SessionConfig::default());
    let start = tokio::time::Instant::now();
    peer.send(CloseConnection::new(CloseCode::NORMAL_CLOSURE).into()).await.unwrap();
    let Event::CloseConnection(_) = session.next().await.unwrap().unwrap() else { panic!("the close") };
    assert!(session.next().await.is_none());
    assert_eq!(start.elapsed(), Duration::ZERO);
    let Event::CloseConnection(reply) = next(&mut peer).await else { panic!("the reply") };
    assert_eq!(reply.code, CloseCode::NORMAL_CLOSURE);
    assert!(peer.next().await.is_none(), "the server shut its side down");

    // Client: the same close, but the session waits for the server's EOF, up to the linger.
    let (a, b) = tokio::io::duplex(1 << 16);
    let client = Connection::new(
        ConnectionType::Client,
        Config::default().delivery(Delivery::Messages).key_source(KeySource::fixed(support::KEY)),
    );
    let server = Connection::new(ConnectionType::Server, Config::default().delivery(Delivery::Messages));
    let mut session = Session::new(Framed::new(a, WsCodec::new(client)), SessionConfig::default());
    let mut server = Framed::new(b, WsCodec::new(server));
    let start = tokio::time::Instant::now();
    server.send(CloseConnection::new(CloseCode::NORMAL_CLOSURE).into()).await.unwrap();
    let Event::CloseConnection(_) = session.next().await.unwrap().unwrap() else { panic!("the close") };
    assert!(session.next().await.is_none());
    assert_eq!(start.elapsed(), SessionConfig::default().linger);
    drop(server);
}

/// A server session on a write-counting transport, and the raw client end.
fn counting_pair(
    config: SessionConfig,
) -> (Session<TestIo>, Framed<DuplexStream, WsCodec>, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    let (a, b) = tokio::io::duplex(1 << 20);
    let writes = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let server = Connection::new(ConnectionType::Server, Config::default().delivery(Delivery::Messages));
    let client = Connection::new(
        ConnectionType::Client,
        Config::default().delivery(Delivery::Messages).key_source(KeySource::fixed(support::KEY)),
    );
    let io = TestIo {
        inner: a,
        writes: writes.clone(),
        vectored: false,
        max: usize::MAX,
        slices: Slices::default(),
    };
    (
        Session::new(Framed::new(io, WsCodec::new(server)), config),
        Framed::new(b, WsCodec::new(client)),
        writes,
    )
}

/// The README's echo loop, as written: `send` per message.
async fn echo_loop<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin>(mut ws: Session<T>) {
    while let Some(Ok(event)) = ws.next().await {
        if let Event::TextMessage(m) = event {
            if ws.send(m.into()).await.is_err() {
                return;
            }
        }
    }
}

/// Sends `n` messages in one write, then reads their echoes, checking each.
async fn pipeline(peer: &mut Framed<DuplexStream, WsCodec>, n: usize) {
    for i in 0..n {
        peer.feed(TextMessage::new(format!("message {i}")).into()).await.unwrap();
    }
    peer.flush().await.unwrap();
    for i in 0..n {
        assert_eq!(next(peer).await, TextMessage::new(format!("message {i}")).into());
    }
}

#[tokio::test(start_paused = true)]
async fn replies_to_pipelined_messages_go_out_in_one_write() {
    let (session, mut peer, writes) = counting_pair(SessionConfig::default());
    tokio::spawn(echo_loop(session));
    pipeline(&mut peer, 16).await;
    assert_eq!(writes.load(std::sync::atomic::Ordering::Relaxed), 1, "16 echoes, one write");

    // A single message is written at once, in a write of its own.
    pipeline(&mut peer, 1).await;
    assert_eq!(writes.load(std::sync::atomic::Ordering::Relaxed), 2);
}

#[tokio::test(start_paused = true)]
async fn without_coalescing_each_reply_is_its_own_write() {
    let (session, mut peer, writes) = counting_pair(SessionConfig::default().coalesce_writes(false));
    tokio::spawn(echo_loop(session));
    pipeline(&mut peer, 16).await;
    assert_eq!(writes.load(std::sync::atomic::Ordering::Relaxed), 16);
}

#[tokio::test(start_paused = true)]
async fn a_held_back_reply_goes_out_when_reading_would_wait() {
    let (mut session, mut peer, _) = counting_pair(SessionConfig::default());
    peer.feed(TextMessage::new("answer me").into()).await.unwrap();
    peer.feed(TextMessage::new("not me").into()).await.unwrap();
    peer.flush().await.unwrap();
    let server = tokio::spawn(async move {
        assert_eq!(session.next().await.unwrap().unwrap(), TextMessage::new("answer me").into());
        // More input is buffered: this send is held back...
        session.send(TextMessage::new("answer").into()).await.unwrap();
        assert_eq!(session.next().await.unwrap().unwrap(), TextMessage::new("not me").into());
        // ...and goes out here, where the session waits for input.
        session.next().await.map(|e| e.map_err(|e| e.to_string()))
    });
    assert_eq!(next(&mut peer).await, TextMessage::new("answer").into());
    peer.send(CloseConnection::new(CloseCode::NORMAL_CLOSURE).into()).await.unwrap();
    let last = server.await.unwrap();
    assert!(matches!(last, Some(Ok(Event::CloseConnection(_)))), "{last:?}");
}

#[tokio::test(start_paused = true)]
async fn held_back_replies_are_flushed_at_the_write_buffer_bound() {
    // 200 pipelined 1 KiB messages against a 16 KiB bound: written in bounded batches.
    let (session, mut peer, writes) = counting_pair(SessionConfig::default().write_buffer(16 << 10));
    tokio::spawn(echo_loop(session));
    let body = "x".repeat(1 << 10);
    for _ in 0..200 {
        peer.feed(TextMessage::new(body.clone()).into()).await.unwrap();
    }
    peer.flush().await.unwrap();
    for _ in 0..200 {
        assert_eq!(next(&mut peer).await, TextMessage::new(body.clone()).into());
    }
    let writes = writes.load(std::sync::atomic::Ordering::Relaxed);
    assert!((2..200).contains(&writes), "{writes} writes");
}

#[tokio::test]
async fn after_a_large_message_the_buffers_return_to_their_idle_size() {
    let (mut session, mut peer) = pair_with(SessionConfig::default(), 1 << 20);
    let big: Vec<u8> = (0..8u32 << 20).map(|i| (i % 251) as u8).collect();
    let client = tokio::spawn(async move {
        peer.send(BytesMessage::new(big.clone()).into()).await.unwrap();
        assert_eq!(next(&mut peer).await, BytesMessage::new(big).into());
        peer.send(TextMessage::new("small").into()).await.unwrap();
        assert_eq!(next(&mut peer).await, TextMessage::new("small").into());
        peer
    });
    for _ in 0..2 {
        let event = session.next().await.unwrap().unwrap();
        session.send(event).await.unwrap();
    }
    let _peer = client.await.unwrap();
    // Wait for the next message as an echo loop does (nothing comes): the codec sizes its
    // buffers for a connection waiting at a frame boundary.
    let waiting = tokio::time::timeout(std::time::Duration::from_millis(50), session.next()).await;
    assert!(waiting.is_err(), "no third message: {waiting:?}");
    // The 8 MiB read and write buffers are given back once the message is through, and the
    // small message after it leaves the idle connection's sizes: a 1 KiB read buffer, no
    // write buffer over 1 KiB (what the memory table of bench/RESULTS.md is made of).
    let framed = session.into_inner();
    assert!(
        framed.read_buffer().capacity() <= 1 << 10,
        "read buffer kept {}",
        framed.read_buffer().capacity()
    );
    assert!(
        framed.write_buffer().capacity() <= 1 << 10,
        "write buffer kept {}",
        framed.write_buffer().capacity()
    );
}

#[tokio::test(start_paused = true)]
async fn split_halves_never_hold_a_write_back() {
    // The reader may be parked on something else than the stream: each send is written at once.
    let (session, mut peer, writes) = counting_pair(SessionConfig::default());
    let (mut reader, mut writer) = session.split();
    tokio::spawn(async move {
        while let Some(Ok(event)) = reader.next().await {
            if let Event::TextMessage(m) = event {
                writer.send(m.into()).await.unwrap();
            }
        }
    });
    pipeline(&mut peer, 16).await;
    assert_eq!(writes.load(std::sync::atomic::Ordering::Relaxed), 16);
}

#[tokio::test(start_paused = true)]
async fn stats_count_the_echo_and_the_quiet_time() {
    let (mut session, mut peer) = pair_with(SessionConfig::default(), 1 << 16);
    let client = tokio::spawn(async move {
        for text in ["one", "two", "three"] {
            peer.send(TextMessage::new(text).into()).await.unwrap();
            assert_eq!(next(&mut peer).await, TextMessage::new(text).into());
        }
        peer
    });
    for _ in 0..3 {
        let event = session.next().await.unwrap().unwrap();
        session.send(event).await.unwrap();
    }
    let _peer = client.await.unwrap();
    tokio::time::advance(std::time::Duration::from_secs(7)).await;
    let stats = session.stats();
    assert_eq!((stats.traffic.messages_received, stats.traffic.messages_sent), (3, 3));
    assert_eq!((stats.traffic.payload_received, stats.traffic.payload_sent), (11, 11));
    // Masked from the client (6-byte headers), unmasked from the server (2-byte headers).
    assert_eq!((stats.traffic.bytes_received, stats.traffic.bytes_sent), (11 + 3 * 6, 11 + 3 * 2));
    assert_eq!(stats.write_buffered, 0);
    assert!(
        stats.since_last_received >= std::time::Duration::from_secs(7),
        "{:?}",
        stats.since_last_received
    );
    assert_eq!((stats.rtt, stats.smoothed_rtt), (None, None), "no keepalive answered yet");
}

// Large payloads: written from the sender's buffer with vectored writes, in order.

/// A transport over a pipe that counts the writes made to it and, if `vectored`, takes
/// vectored writes (as TCP and TLS streams do), at most `max` bytes per write, recording where
/// each written slice started in memory.
struct TestIo {
    inner: DuplexStream,
    writes: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    vectored: bool,
    max: usize,
    slices: Slices,
}

impl tokio::io::AsyncRead for TestIo {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl tokio::io::AsyncWrite for TestIo {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        self.writes.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let max = self.max.min(buf.len());
        std::pin::Pin::new(&mut self.inner).poll_write(cx, &buf[..max])
    }
    fn poll_write_vectored(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> std::task::Poll<std::io::Result<usize>> {
        if !self.vectored {
            let first = bufs.iter().find(|b| !b.is_empty()).map_or(&[][..], |b| &**b);
            return self.poll_write(cx, first);
        }
        self.writes.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.slices.lock().unwrap().extend(bufs.iter().map(|b| b.as_ptr() as usize));
        let mut gathered = Vec::new();
        for buf in bufs {
            gathered.extend_from_slice(&buf[..buf.len().min(self.max - gathered.len())]);
        }
        std::pin::Pin::new(&mut self.inner).poll_write(cx, &gathered)
    }
    fn is_write_vectored(&self) -> bool {
        self.vectored
    }
    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

type Slices = std::sync::Arc<std::sync::Mutex<Vec<usize>>>;

/// A server session on a vectored transport over a pipe of `pipe` bytes, and the client end.
fn vectored_pair(
    config: SessionConfig,
    pipe: usize,
    max: usize,
) -> (Session<TestIo>, Framed<DuplexStream, WsCodec>, Slices) {
    let (a, b) = tokio::io::duplex(pipe);
    let slices = Slices::default();
    let server = Connection::new(ConnectionType::Server, Config::default().delivery(Delivery::Messages));
    let client = Connection::new(
        ConnectionType::Client,
        Config::default().delivery(Delivery::Messages).key_source(KeySource::fixed(support::KEY)),
    );
    let io = TestIo { inner: a, writes: Default::default(), vectored: true, max, slices: slices.clone() };
    (
        Session::new(Framed::new(io, WsCodec::new(server)), config),
        Framed::new(b, WsCodec::new(client)),
        slices,
    )
}

fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len).map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed)).collect()
}

#[tokio::test(start_paused = true)]
async fn a_large_payload_is_written_from_the_senders_buffer_not_copied() {
    let (mut session, mut peer, slices) = vectored_pair(SessionConfig::default(), 4 << 20, usize::MAX);
    let payload = bytes::Bytes::from(pattern(1 << 20, 1));
    let at = payload.as_ptr() as usize;
    session.send(BytesMessage::new(payload.clone()).into()).await.unwrap();
    assert!(slices.lock().unwrap().contains(&at), "the payload's own memory was given to the write");
    assert_eq!(session.stats().write_buffered, 0);
    assert_eq!(next(&mut peer).await, BytesMessage::new(payload).into());
    // A small message is still encoded into the write buffer.
    let small = bytes::Bytes::from(pattern(100, 2));
    session.send(BytesMessage::new(small.clone()).into()).await.unwrap();
    assert!(!slices.lock().unwrap().contains(&(small.as_ptr() as usize)));
    assert_eq!(next(&mut peer).await, BytesMessage::new(small).into());
}

#[tokio::test(start_paused = true)]
async fn large_and_small_frames_and_replies_arrive_in_order_through_partial_writes() {
    // A pipe smaller than the messages and writes of at most 5,000 bytes: every large payload
    // goes out in many pieces, while the peer pings and more is sent behind it.
    let (mut session, mut peer, _) = vectored_pair(SessionConfig::default(), 32 << 10, 5_000);
    let big = pattern(300 << 10, 3);
    let prepared = wsproto::PreparedMessage::text("p".repeat(100 << 10));
    let messages: Vec<Event> = vec![
        TextMessage::new("first").into(),
        BytesMessage::new(big.clone()).into(),
        prepared.clone().into(),
        BytesMessage::new(pattern(20 << 10, 4)).into(),
        TextMessage::new("x".repeat(70 << 10)).into(),
        TextMessage::new("last").into(),
    ];
    let expected = messages.clone();
    let server = tokio::spawn(async move {
        for message in messages {
            session.feed(message).await.unwrap();
        }
        // A fragmented large message: each fragment's payload is large too.
        let mut part = BytesMessage::new(pattern(40 << 10, 5));
        part.message_finished = false;
        session.feed(part.into()).await.unwrap();
        session.feed(BytesMessage::new(pattern(40 << 10, 6)).into()).await.unwrap();
        session.flush().await.unwrap();
        // Reading answers the peer's ping (owed replies go behind what is queued) and ends
        // with the peer's close.
        while let Some(event) = session.next().await {
            event.unwrap();
        }
    });
    peer.send(Ping::new(&b"between"[..]).into()).await.unwrap();
    for message in &expected {
        let got = next(&mut peer).await;
        let want = match message {
            Event::PreparedMessage(_) => TextMessage::new("p".repeat(100 << 10)).into(),
            other => other.clone(),
        };
        assert_eq!(got, want);
    }
    let whole: Vec<u8> = [pattern(40 << 10, 5), pattern(40 << 10, 6)].concat();
    assert_eq!(next(&mut peer).await, BytesMessage::new(whole).into());
    assert_eq!(next(&mut peer).await, Pong::new(&b"between"[..]).into());
    peer.send(CloseConnection::new(CloseCode::NORMAL_CLOSURE).into()).await.unwrap();
    assert!(
        matches!(next(&mut peer).await, Event::CloseConnection(c) if c.code == CloseCode::NORMAL_CLOSURE)
    );
    server.await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn the_bare_transport_taken_mid_write_still_holds_every_byte_sent() {
    let (mut session, mut peer, _) = vectored_pair(SessionConfig::default(), 64 << 10, usize::MAX);
    let big = pattern(1 << 20, 7);
    // The peer is not reading: the send stalls with part of the message written.
    let stalled =
        tokio::time::timeout(Duration::from_millis(10), session.send(BytesMessage::new(big.clone()).into()))
            .await;
    assert!(stalled.is_err(), "a 1 MiB message cannot fit a 64 KiB pipe");
    let mut framed = session.into_inner();
    assert!(!framed.write_buffer().is_empty(), "the rest of the message is in the write buffer");
    let reader = tokio::spawn(async move { (next(&mut peer).await, next(&mut peer).await) });
    framed.send(TextMessage::new("after").into()).await.unwrap();
    let (first, second) = reader.await.unwrap();
    assert_eq!(first, BytesMessage::new(big).into());
    assert_eq!(second, TextMessage::new("after").into());
}

#[tokio::test(start_paused = true)]
async fn a_peer_that_stops_reading_large_echoes_is_cut_off_by_the_send_timeout() {
    // The payloads wait uncopied in the session's queue; the bound and the timeout hold.
    let config = SessionConfig::default().send_timeout(Some(Duration::from_secs(5)));
    let (mut session, mut peer, _) = vectored_pair(config, 64 << 10, usize::MAX);
    let client = tokio::spawn(async move {
        for i in 0..8u8 {
            if peer.send(BytesMessage::new(pattern(200 << 10, i)).into()).await.is_err() {
                break;
            }
        }
        peer // never reads
    });
    let started = tokio::time::Instant::now();
    let ended = loop {
        match session.next().await {
            Some(Ok(Event::BytesMessage(m))) => {
                if let Err(e) = session.send(m.into()).await {
                    break e;
                }
            }
            Some(Ok(_)) => {}
            Some(Err(e)) => break e,
            None => panic!("the stream ended without the timeout"),
        }
    };
    assert!(matches!(ended, Error::Timeout(Timeout::Send)), "{ended}");
    let took = started.elapsed();
    assert!(took >= Duration::from_secs(5) && took < Duration::from_secs(7), "{took:?}");
    assert!(
        session.stats().write_buffered <= (64 << 10) + (200 << 10) + 14,
        "bounded: {:?}",
        session.stats()
    );
    drop(client);
}
