//! Faulty peers beside healthy ones, on the multi-thread runtime over TCP: while 120 healthy
//! clients echo mixed messages through a session echo server (half tokio-tungstenite, half
//! wsproto with permessage-deflate), 50 other connections misbehave: a TCP reset in the middle
//! of a frame (SO_LINGER 0, then drop), a reset between the fragments of a message, a
//! half-close in the middle of a frame, a reader that sends large messages and never reads,
//! and handshakes that stop halfway. Every healthy echo must be exact with no error, and the
//! server must release every faulty connection, while the faulty peers still hold their
//! sockets, within a bound set by the test's short `SessionConfig` timeouts.
//!
//! Live connections are counted twice: the server's connection tasks (handshakes included) and
//! the sessions registered with a `Shutdown`.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::Message;
use wsproto::session::Shutdown;
use wsproto::upgrade::{self, UpgradeConfig};
use wsproto::{BytesMessage, Event, Request, SessionConfig, TextMessage};

const HEALTHY: usize = 120;
/// Faulty connections of each of the five kinds.
const EACH_FAULT: usize = 10;
const MESSAGES: usize = 12;
/// From the moment the healthy clients are done to every faulty connection released: the
/// largest timeout below (1 s) plus its linger and slack for a loaded machine.
const RELEASE_BOUND: Duration = Duration::from_secs(15);

/// Short timeouts, so that the faulty connections are released within seconds.
fn server_config() -> UpgradeConfig {
    UpgradeConfig::default()
        .session(
            SessionConfig::default()
                .keepalive(Some(Duration::from_secs(1)), Duration::from_secs(1))
                .send_timeout(Some(Duration::from_secs(1)))
                .close_timeout(Duration::from_secs(1))
                .linger(Duration::from_millis(300)),
        )
        .handshake_timeout(Duration::from_secs(1))
}

/// Counts a connection task while it runs.
struct Live(Arc<AtomicUsize>);

impl Live {
    fn new(count: &Arc<AtomicUsize>) -> Self {
        count.fetch_add(1, Ordering::SeqCst);
        Live(count.clone())
    }
}

impl Drop for Live {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// The README's echo loop, registered with `shutdown`; every connection counted in `tasks`.
async fn serve(
    listener: TcpListener,
    shutdown: Shutdown,
    tasks: Arc<AtomicUsize>,
    ended: Arc<Mutex<Vec<String>>>,
) {
    let config = Arc::new(server_config());
    loop {
        let (stream, _) = listener.accept().await.unwrap();
        let live = Live::new(&tasks);
        let (config, shutdown, ended) = (config.clone(), shutdown.clone(), ended.clone());
        tokio::spawn(async move {
            let _live = live;
            let outcome = async {
                let (ws, _) = upgrade::accept(stream, UpgradeConfig::clone(&config)).await?;
                let mut ws = ws.with_shutdown(&shutdown);
                while let Some(event) = ws.next().await {
                    match event? {
                        Event::TextMessage(m) => ws.send(m.into()).await?,
                        Event::BytesMessage(m) => ws.send(m.into()).await?,
                        _ => {}
                    }
                }
                Ok::<_, wsproto::Error>(())
            }
            .await;
            ended.lock().unwrap().push(match outcome {
                Ok(()) => "closed".to_string(),
                Err(e) => e.to_string(),
            });
        });
    }
}

/// Message `k` of healthy client `i`: text or binary, 0 B to 200 KiB.
fn message(i: usize, k: usize) -> (bool, Bytes) {
    let size = [0usize, 1, 125, 126, 4096, 65_536, 200_000][(i + k) % 7];
    let text = (i + k).is_multiple_of(2);
    let data: Vec<u8> = if text {
        let mut s: String = "wsproto ✓ faults ".chars().cycle().take(size).collect();
        s.truncate(size.min(s.len()));
        while !s.is_char_boundary(s.len()) {
            s.pop();
        }
        s.into_bytes()
    } else {
        (0..size).map(|j| (j * 31 + i * 7 + k) as u8).collect()
    };
    (text, Bytes::from(data))
}

async fn tungstenite_client(i: usize, addr: SocketAddr) -> Result<usize, String> {
    let stream = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
    let (mut ws, _) =
        tokio_tungstenite::client_async(format!("ws://{addr}/"), stream).await.map_err(|e| e.to_string())?;
    for k in 0..MESSAGES {
        let (text, data) = message(i, k);
        let sent = if text {
            Message::text(String::from_utf8(data.to_vec()).unwrap())
        } else {
            Message::binary(data.clone())
        };
        ws.send(sent).await.map_err(|e| format!("send {k}: {e}"))?;
        let echo = loop {
            match ws.next().await {
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                Some(Ok(m)) => break m,
                other => return Err(format!("echo {k}: {other:?}")),
            }
        };
        let same = match echo {
            Message::Text(t) => text && t.as_bytes() == &data[..],
            Message::Binary(b) => !text && b == data,
            _ => false,
        };
        if !same {
            return Err(format!("echo {k} differs"));
        }
        tokio::time::sleep(Duration::from_millis(((i + k) % 5) as u64 * 20)).await;
    }
    ws.close(None).await.map_err(|e| format!("close: {e}"))?;
    while let Some(m) = ws.next().await {
        m.map_err(|e| format!("after close: {e}"))?;
    }
    Ok(MESSAGES)
}

async fn wsproto_client(i: usize, addr: SocketAddr) -> Result<usize, String> {
    let stream = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
    let (mut ws, accept) =
        upgrade::client(stream, Request::new(addr.to_string(), "/"), UpgradeConfig::default())
            .await
            .map_err(|e| e.to_string())?;
    if accept.deflate().is_none() {
        return Err("permessage-deflate not negotiated".into());
    }
    for k in 0..MESSAGES {
        let (text, data) = message(i, k);
        let sent: Event = if text {
            TextMessage::new(String::from_utf8(data.to_vec()).unwrap()).into()
        } else {
            BytesMessage::new(data.clone()).into()
        };
        ws.send(sent).await.map_err(|e| format!("send {k}: {e}"))?;
        let same = match ws.next().await {
            Some(Ok(Event::TextMessage(m))) => text && m.data.as_bytes() == &data[..],
            Some(Ok(Event::BytesMessage(m))) => !text && m.data == data,
            other => return Err(format!("echo {k}: {other:?}")),
        };
        if !same {
            return Err(format!("echo {k} differs"));
        }
        tokio::time::sleep(Duration::from_millis(((i + k) % 5) as u64 * 20)).await;
    }
    ws.close_with(1000u16, "").await.map_err(|e| format!("close: {e}"))?;
    Ok(MESSAGES)
}

/// A masked client frame: `first` is the FIN/opcode byte.
fn frame(first: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = vec![first];
    match payload.len() {
        n if n < 126 => out.push(0x80 | n as u8),
        n if n <= 0xffff => {
            out.push(0x80 | 126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            out.push(0x80 | 127);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    let key = [0x37, 0xfa, 0x21, 0x3d];
    out.extend_from_slice(&key);
    out.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
    out
}

/// A raw TCP connection through the opening handshake.
async fn handshaken(addr: SocketAddr) -> TcpStream {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(
            b"GET / HTTP/1.1\r\nHost: test\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
              Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
        )
        .await
        .unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        assert_eq!(stream.read(&mut byte).await.unwrap(), 1, "the server answered the upgrade");
        head.push(byte[0]);
    }
    assert!(head.starts_with(b"HTTP/1.1 101"), "{}", String::from_utf8_lossy(&head));
    stream
}

/// Resets the connection: SO_LINGER 0, then close (the peer gets an RST, not a FIN).
fn reset(stream: TcpStream) {
    // Deprecated because a non-zero linger blocks the thread on drop; zero does not (and
    // `set_zero_linger` is newer than the tokio this member asks for).
    #[allow(deprecated)]
    stream.set_linger(Some(Duration::ZERO)).unwrap();
    drop(stream);
}

/// Runs the faults of every kind; returns the sockets the faulty peers keep holding.
async fn faults(addr: SocketAddr) -> Vec<TcpStream> {
    let big = frame(0x82, &vec![0x5a; 64 << 10]);
    let mut held = Vec::new();
    for n in 0..EACH_FAULT {
        // Reset in the middle of a frame.
        let mut s = handshaken(addr).await;
        s.write_all(&big[..1000 + 97 * n]).await.unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
        reset(s);
        // Reset between the fragments of a message (FIN clear on the first).
        let mut s = handshaken(addr).await;
        s.write_all(&frame(0x02, &vec![1u8; 1000])).await.unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
        reset(s);
        // Half-close (FIN on our write side) in the middle of a frame; the socket stays open.
        let mut s = handshaken(addr).await;
        s.write_all(&big[..2000]).await.unwrap();
        s.shutdown().await.unwrap();
        held.push(s);
        // A handshake that stops halfway.
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(b"GET / HTTP/1.1\r\nHost: test\r\nUpgrade: websock").await.unwrap();
        held.push(s);
    }
    // Readers that never read: large messages until the server stops taking them (its echo
    // waits on us, and so does its reading), then they hold the socket.
    let message = frame(0x82, &vec![0x33; 256 << 10]);
    let stalled = futures_util::future::join_all((0..EACH_FAULT).map(|_| {
        let message = message.clone();
        async move {
            let mut s = handshaken(addr).await;
            loop {
                match tokio::time::timeout(Duration::from_millis(500), s.write_all(&message)).await {
                    Ok(Ok(())) => continue,
                    // Blocked: the server stopped reading. Or refused: it gave up on us.
                    Err(_) | Ok(Err(_)) => break s,
                }
            }
        }
    }))
    .await;
    held.extend(stalled);
    held
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faulty_peers_beside_healthy_clients_are_released_and_the_healthy_echoes_are_exact() {
    let started = Instant::now();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let shutdown = Shutdown::new();
    let tasks = Arc::new(AtomicUsize::new(0));
    let ended = Arc::new(Mutex::new(Vec::new()));
    tokio::spawn(serve(listener, shutdown.clone(), tasks.clone(), ended.clone()));

    let healthy: Vec<_> = (0..HEALTHY)
        .map(|i| {
            tokio::spawn(async move {
                if i % 2 == 0 {
                    tungstenite_client(i, addr).await
                } else {
                    wsproto_client(i, addr).await
                }
            })
        })
        .collect();
    let faulty = tokio::spawn(faults(addr));
    let results = tokio::time::timeout(Duration::from_secs(120), futures_util::future::join_all(healthy))
        .await
        .expect("the healthy clients finished in time");
    let mut echoed = 0;
    for (i, r) in results.into_iter().enumerate() {
        echoed += r.unwrap().unwrap_or_else(|e| panic!("healthy client {i}: {e}"));
    }
    assert_eq!(echoed, HEALTHY * MESSAGES);
    let held =
        tokio::time::timeout(Duration::from_secs(60), faulty).await.expect("faults done in time").unwrap();
    let healthy_done = Instant::now();

    // Every connection ends on the server while the faulty peers still hold their sockets.
    loop {
        let (live_tasks, live_sessions) = (tasks.load(Ordering::SeqCst), shutdown.live());
        if live_tasks == 0 && live_sessions == 0 {
            break;
        }
        assert!(
            healthy_done.elapsed() < RELEASE_BOUND,
            "{live_tasks} connection tasks and {live_sessions} sessions still live {RELEASE_BOUND:?} after the healthy clients finished"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let released_in = healthy_done.elapsed();
    drop(held);
    let ended = ended.lock().unwrap();
    assert_eq!(ended.len(), HEALTHY + 5 * EACH_FAULT, "one outcome per connection");
    let mut outcomes = std::collections::BTreeMap::<&str, usize>::new();
    for e in ended.iter() {
        *outcomes.entry(e.as_str()).or_default() += 1;
    }
    // The reasons the faults were cut off for: the stalled readers by the send timeout, the
    // half-done handshakes by the handshake timeout (the resets and half-closes end with an
    // I/O error or a 1006 close, depending on how the kernel reports them).
    assert_eq!(outcomes.get("session ended: the peer stopped reading (send timeout)"), Some(&EACH_FAULT));
    assert_eq!(outcomes.get("opening handshake timed out"), Some(&EACH_FAULT));
    println!(
        "{HEALTHY} healthy clients, {echoed} exact echoes; {} faulty connections released {released_in:.2?} \
         after the healthy clients finished; total {:.2?}; server outcomes: {outcomes:?}",
        5 * EACH_FAULT,
        started.elapsed()
    );
}
