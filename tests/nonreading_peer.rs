//! A peer that does not read is cut off as such: whatever it sends meanwhile (a ping flood,
//! data, nothing), a session whose writes make no progress ends with the send timeout
//! (`Error::Timeout(Timeout::Send)`), never with the keepalive's 1011, even with a keepalive
//! shorter than the send timeout. And a peer that only paused reading is not cut off: the
//! replies held in the write buffer go out once it reads again.
//!
//! `tokio::io::duplex` with a 4 KiB pipe and tokio's paused clock: deterministic, no real
//! sleeps.
#![cfg(feature = "tokio")]

mod support;

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::io::DuplexStream;
use tokio::time::Instant;
use tokio_util::codec::Framed;
use wsproto::codec::WsCodec;
use wsproto::session::Session;
use wsproto::{
    BytesMessage, Config, Connection, ConnectionType, Delivery, Error, Event, KeySource, Ping, SessionConfig,
    Timeout,
};

/// A keepalive (2 s + 2 s) that would fire well before the send timeout (10 s) if it ran
/// while the writes are stalled.
fn config() -> SessionConfig {
    SessionConfig::default()
        .keepalive(Some(Duration::from_secs(2)), Duration::from_secs(2))
        .send_timeout(Some(Duration::from_secs(10)))
}

/// A server session and the raw client end of a 4 KiB pipe.
fn pair(config: SessionConfig) -> (Session<DuplexStream>, Framed<DuplexStream, WsCodec>) {
    let (a, b) = tokio::io::duplex(4096);
    let server = Connection::new(ConnectionType::Server, Config::default().delivery(Delivery::Messages));
    let client = Connection::new(
        ConnectionType::Client,
        Config::default().delivery(Delivery::Messages).key_source(KeySource::fixed(support::KEY)),
    );
    (Session::new(Framed::new(a, WsCodec::new(server)), config), Framed::new(b, WsCodec::new(client)))
}

/// The README's echo loop; returns the error that ended it (if any) and when the stream ended.
fn spawn_echo(mut ws: Session<DuplexStream>) -> tokio::task::JoinHandle<(Option<Error>, Instant)> {
    tokio::spawn(async move {
        let mut error = None;
        while let Some(event) = ws.next().await {
            let sent = match event {
                Ok(Event::TextMessage(m)) => ws.send(m.into()).await,
                Ok(Event::BytesMessage(m)) => ws.send(m.into()).await,
                Ok(_) => Ok(()),
                Err(e) => Err(e),
            };
            if let Err(e) = sent {
                error = Some(e);
                break;
            }
        }
        (error, Instant::now())
    })
}

/// Sends `event()` every `every` until the session drops the transport (or `limit` passes);
/// never reads.
async fn flood(
    peer: &mut Framed<DuplexStream, WsCodec>,
    every: Duration,
    limit: Duration,
    event: impl Fn(u64) -> Event,
) {
    let start = Instant::now();
    let mut n = 0;
    while start.elapsed() < limit {
        // The session may stop reading (an echo blocked on its send): a write then waits.
        match tokio::time::timeout(every, peer.send(event(n))).await {
            Ok(Err(_)) => return, // the session dropped the transport
            Ok(Ok(())) => tokio::time::sleep(every).await,
            Err(_) => {}
        }
        n += 1;
    }
}

fn ping(n: u64) -> Event {
    let mut payload = vec![b'p'; 117];
    payload.extend_from_slice(&n.to_be_bytes());
    Ping::new(payload).into()
}

fn assert_send_timeout(error: Option<Error>, start: Instant, ended: Instant) {
    let error = error.expect("the session ended with an error");
    assert!(matches!(error, Error::Timeout(Timeout::Send)), "ended with {error}, not the send timeout");
    // Within the send timeout of the first stalled write (the pipe fills in well under 5 s).
    let took = ended - start;
    assert!(took >= Duration::from_secs(10) && took < Duration::from_secs(15), "ended after {took:?}");
}

#[tokio::test(start_paused = true)]
async fn a_peer_flooding_pings_without_reading_is_cut_off_by_the_send_timeout_not_the_keepalive() {
    let (session, mut peer) = pair(config());
    let start = Instant::now();
    let server = spawn_echo(session);
    // 125-byte pings every 50 ms: the pongs fill the 4 KiB pipe within about 2 s.
    flood(&mut peer, Duration::from_millis(50), Duration::from_secs(60), ping).await;
    let (error, ended) = server.await.unwrap();
    assert_send_timeout(error, start, ended);
}

#[tokio::test(start_paused = true)]
async fn a_peer_sending_data_and_pings_without_reading_is_cut_off_by_the_send_timeout() {
    let (session, mut peer) = pair(config());
    let start = Instant::now();
    let server = spawn_echo(session);
    // 16 KiB messages between pings: the echo loop blocks in its send once the write buffer
    // passes its mark, and stops reading (the pings then wait in the pipe).
    flood(&mut peer, Duration::from_millis(50), Duration::from_secs(60), |n| {
        if n % 2 == 0 {
            BytesMessage::new(vec![n as u8; 16 << 10]).into()
        } else {
            ping(n)
        }
    })
    .await;
    let (error, ended) = server.await.unwrap();
    assert_send_timeout(error, start, ended);
}

#[tokio::test(start_paused = true)]
async fn a_peer_that_floods_then_falls_silent_without_reading_is_cut_off_by_the_send_timeout() {
    let (session, mut peer) = pair(config());
    let start = Instant::now();
    let server = spawn_echo(session);
    // Pings for 3 s (the pipe is full after about 2 s), then silence: the keepalive comes due
    // 2 s later, while the writes are still stalled.
    flood(&mut peer, Duration::from_millis(50), Duration::from_secs(3), ping).await;
    let (error, ended) = server.await.unwrap();
    assert_send_timeout(error, start, ended);
}

#[tokio::test(start_paused = true)]
async fn a_peer_that_pauses_reading_gets_the_pongs_once_it_reads_again() {
    let (session, peer) = pair(config().keepalive(None, Duration::from_secs(1)));
    let server = spawn_echo(session);
    let (mut tx, mut rx) = peer.split();
    // Pings for 3 s without reading: the pongs fill the pipe and the session's writes stall.
    let mut n = 0;
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(3) {
        tx.send(ping(n)).await.unwrap();
        n += 1;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Then it reads (well within the send timeout): every pong owed comes out, the last
    // ping's included, and the session is still open after the send timeout has passed.
    let last = n - 1;
    let reader = tokio::spawn(async move {
        loop {
            match rx.next().await {
                Some(Ok(Event::Pong(pong))) if pong.payload[117..] == last.to_be_bytes() => return Ok(rx),
                Some(Ok(_)) => {}
                other => return Err(format!("{other:?}")),
            }
        }
    });
    let got = tokio::time::timeout(Duration::from_secs(5), reader).await;
    let rx = got.expect("the last pong arrived within 5 s").unwrap().expect("the stream stayed open");
    tokio::time::sleep(Duration::from_secs(20)).await;
    assert!(!server.is_finished(), "the session ended although the peer reads again");
    drop((rx, tx));
    let (error, _) = server.await.unwrap();
    assert!(error.is_none(), "{error:?}");
}

#[tokio::test(start_paused = true)]
async fn a_peer_trickling_small_messages_without_reading_is_cut_off_by_the_send_timeout() {
    let (session, mut peer) = pair(config().keepalive(None, Duration::from_secs(1)));
    let start = Instant::now();
    let server = spawn_echo(session);
    // 1 KiB every 2 s: the echoes fill the pipe after about 8 s, then stay far below the write
    // buffer's mark for minutes; each echo must not restart the send timeout.
    flood(&mut peer, Duration::from_secs(2), Duration::from_secs(300), |n| {
        BytesMessage::new(vec![n as u8; 1024]).into()
    })
    .await;
    let (error, ended) = server.await.unwrap();
    let error = error.expect("the session ended with an error");
    assert!(matches!(error, Error::Timeout(Timeout::Send)), "ended with {error}, not the send timeout");
    let took = ended - start;
    assert!(took < Duration::from_secs(25), "ended after {took:?}");
}
