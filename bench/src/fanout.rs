//! Fan-out: one server task broadcasts each message to 1,000 connections over loopback TCP.
//!
//! The server runs on its own thread (pinned to core 0, current-thread runtime) and holds every
//! connection's sink; per broadcast it builds the message once (wsproto prepared: a
//! `PreparedMessage`; the others: the library's cheaply cloned message) and sends it to each
//! connection in turn (`send`: encode and write). The clients run on this thread (core 1): a
//! neutral reader per connection counting whole messages by frame headers. At most
//! [`IN_FLIGHT`] broadcasts are ahead of the slowest delivery on average, so socket buffers
//! stay bounded. Measured: messages delivered per second, and the server thread's CPU time
//! (user + system, `CLOCK_THREAD_CPUTIME_ID`) per delivered message.

use std::cell::Cell;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use futures_util::SinkExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;
use tokio_util::codec::Framed;
use wsproto::codec::WsCodec;
use wsproto::extensions::{DeflatePool, PerMessageDeflate};
use wsproto::upgrade::{self, UpgradeConfig};
use wsproto::{PreparedMessage, TextMessage, Utf8Bytes};

use crate::common::*;
use crate::deflate_echo::OFFER;
use crate::echo::{accept_key, connect_head, header_value, read_request_head, EchoParser};

/// Connections per cell.
const CONNS: usize = 1000;
/// Broadcasts the server may be ahead of the deliveries.
const IN_FLIGHT: u64 = 4;
/// Distinct payloads cycled through (each broadcast is a new message).
const PAYLOADS: usize = 8;

/// The servers compared.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
enum Variant {
    /// wsproto, one `PreparedMessage` per broadcast.
    Prepared,
    /// wsproto, a `TextMessage` per connection (framed, compressed, per send).
    PerConnection,
    Tungstenite,
    TokioWs,
    Fws,
    Yawc,
}

impl Variant {
    fn name(self) -> &'static str {
        match self {
            Variant::Prepared => "wsproto prepared",
            Variant::PerConnection => "wsproto per-connection",
            Variant::Tungstenite => "tokio-tungstenite",
            Variant::TokioWs => "tokio-websockets",
            Variant::Fws => "fastwebsockets",
            Variant::Yawc => "yawc",
        }
    }

    fn is_peer(self) -> bool {
        !matches!(self, Variant::Prepared | Variant::PerConnection)
    }
}

/// What the server thread and the clients share.
struct Ctl {
    /// Whole messages the clients received.
    delivered: AtomicU64,
    /// Delivered count the server waits for (`u64::MAX`: not waiting).
    target: AtomicU64,
    wake: Notify,
    stop: AtomicBool,
    /// The server thread's CPU clock.
    clock: AtomicU64,
}

/// What one cell measured.
struct Sample {
    rate: f64,
    /// Server CPU time per delivered message, in µs.
    cpu_us: f64,
}

fn thread_cpu_ns(clock: libc::clockid_t) -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: a valid clock id and a pointer to a local timespec.
    unsafe { libc::clock_gettime(clock, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

fn own_cpu_clock() -> libc::clockid_t {
    let mut clock: libc::clockid_t = 0;
    // SAFETY: this thread's handle and a pointer to a local.
    unsafe { libc::pthread_getcpuclockid(libc::pthread_self(), &mut clock) };
    clock
}

/// A server connection that can send a broadcast message.
trait Conn: Sized {
    /// The message built once per broadcast.
    type Msg;
    fn message(payload: &Bytes) -> Self::Msg;
    async fn send(&mut self, msg: &Self::Msg) -> bool;
}

struct OursPrepared(Framed<TcpStream, WsCodec>);
struct OursPerConnection(Framed<TcpStream, WsCodec>);
struct Tungstenite(tokio_tungstenite::WebSocketStream<TcpStream>);
struct TokioWs(tokio_websockets::WebSocketStream<TcpStream>);
struct Fws(fastwebsockets::WebSocket<TcpStream>);
struct Yawc(yawc::WebSocket<TcpStream>);

impl Conn for OursPrepared {
    type Msg = PreparedMessage;
    fn message(payload: &Bytes) -> PreparedMessage {
        PreparedMessage::text(Utf8Bytes::try_from(payload.clone()).expect("UTF-8"))
    }
    async fn send(&mut self, msg: &PreparedMessage) -> bool {
        self.0.send(msg.into()).await.is_ok()
    }
}

impl Conn for OursPerConnection {
    type Msg = Utf8Bytes;
    fn message(payload: &Bytes) -> Utf8Bytes {
        Utf8Bytes::try_from(payload.clone()).expect("UTF-8")
    }
    async fn send(&mut self, msg: &Utf8Bytes) -> bool {
        self.0.send(TextMessage::new(msg.clone()).into()).await.is_ok()
    }
}

impl Conn for Tungstenite {
    type Msg = tokio_tungstenite::tungstenite::Message;
    fn message(payload: &Bytes) -> Self::Msg {
        let text = tokio_tungstenite::tungstenite::Utf8Bytes::try_from(payload.clone()).expect("UTF-8");
        tokio_tungstenite::tungstenite::Message::Text(text)
    }
    async fn send(&mut self, msg: &Self::Msg) -> bool {
        self.0.send(msg.clone()).await.is_ok()
    }
}

impl Conn for TokioWs {
    type Msg = tokio_websockets::Message;
    fn message(payload: &Bytes) -> Self::Msg {
        tokio_websockets::Message::text(payload.clone())
    }
    async fn send(&mut self, msg: &Self::Msg) -> bool {
        self.0.send(msg.clone()).await.is_ok()
    }
}

impl Conn for Fws {
    type Msg = Bytes;
    fn message(payload: &Bytes) -> Bytes {
        payload.clone()
    }
    async fn send(&mut self, msg: &Bytes) -> bool {
        use fastwebsockets::{Frame, Payload};
        self.0.write_frame(Frame::text(Payload::Borrowed(msg))).await.is_ok()
    }
}

impl Conn for Yawc {
    type Msg = Bytes;
    fn message(payload: &Bytes) -> Bytes {
        payload.clone()
    }
    async fn send(&mut self, msg: &Bytes) -> bool {
        self.0.send(yawc::Frame::text(msg.clone())).await.is_ok()
    }
}

/// wsproto's server handshake (with permessage-deflate: a shared pool, and the client's
/// `server_no_context_takeover` accepted).
async fn accept_ours(stream: TcpStream, deflate: bool, pool: &DeflatePool) -> Framed<TcpStream, WsCodec> {
    let mut config = UpgradeConfig::default();
    if deflate {
        let pool = pool.clone();
        config = config.extension(move || PerMessageDeflate::new().pool(pool.clone()));
    }
    upgrade::accept(stream, config).await.expect("wsproto handshake").0.into_inner()
}

/// The minimal handshake of the peers that have none without hyper; the agreed extension.
async fn accept_raw(stream: &mut TcpStream) -> Option<String> {
    let head = read_request_head(stream).await.expect("request head");
    let key = header_value(&head, "sec-websocket-key").expect("key");
    let agreed = header_value(&head, "sec-websocket-extensions").and_then(|o| crate::deflate_echo::agree(&o));
    let ext = agreed.as_ref().map(|a| format!("Sec-WebSocket-Extensions: {a}\r\n")).unwrap_or_default();
    let response = format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {}\r\n{ext}\r\n",
        accept_key(&key)
    );
    stream.write_all(response.as_bytes()).await.expect("101");
    agreed
}

/// The server thread: accepts [`CONNS`] connections, then broadcasts until stopped.
fn server_thread(
    variant: Variant,
    deflate: bool,
    listener: std::net::TcpListener,
    payloads: Vec<Bytes>,
    ctl: Arc<Ctl>,
) {
    pin_to(0);
    ctl.clock.store(own_cpu_clock() as u64, Ordering::Release);
    let rt = current_thread_runtime();
    rt.block_on(async move {
        let listener = TcpListener::from_std(listener).expect("listener");
        let pool = DeflatePool::new();
        let pool = &pool;
        macro_rules! run {
            ($accept:expr) => {{
                let mut conns = Vec::with_capacity(CONNS);
                for _ in 0..CONNS {
                    let (stream, _) = listener.accept().await.expect("accept");
                    stream.set_nodelay(true).expect("nodelay");
                    #[allow(clippy::redundant_closure_call)]
                    conns.push(($accept)(stream).await);
                }
                broadcast(conns, &payloads, &ctl).await
            }};
        }
        match variant {
            Variant::Prepared => {
                run!(|s: TcpStream| async move { OursPrepared(accept_ours(s, deflate, pool).await) })
            }
            Variant::PerConnection => {
                run!(|s: TcpStream| async move { OursPerConnection(accept_ours(s, deflate, pool).await) })
            }
            Variant::Tungstenite => run!(|s: TcpStream| async move {
                Tungstenite(tokio_tungstenite::accept_async(s).await.expect("handshake"))
            }),
            Variant::TokioWs => run!(|s: TcpStream| async move {
                TokioWs(tokio_websockets::ServerBuilder::new().accept(s).await.expect("handshake").1)
            }),
            Variant::Fws => run!(|mut s: TcpStream| async move {
                accept_raw(&mut s).await;
                Fws(fastwebsockets::WebSocket::after_handshake(s, fastwebsockets::Role::Server))
            }),
            Variant::Yawc => run!(|mut s: TcpStream| async move {
                let agreed = accept_raw(&mut s).await;
                let options = yawc::Options::default().with_balanced_compression().with_utf8();
                Yawc(
                    yawc::WebSocket::from_stream_with_extensions(
                        s,
                        yawc::Role::Server,
                        agreed.as_deref(),
                        options,
                    )
                    .expect("yawc"),
                )
            }),
        }
    });
}

/// Broadcasts the payloads in turn to every connection until stopped.
async fn broadcast<C: Conn>(mut conns: Vec<C>, payloads: &[Bytes], ctl: &Ctl) {
    let mut round: u64 = 0;
    while !ctl.stop.load(Ordering::Acquire) {
        // Flow control: at most IN_FLIGHT broadcasts ahead of the deliveries.
        if round >= IN_FLIGHT {
            let target = (round - IN_FLIGHT) * CONNS as u64;
            ctl.target.store(target, Ordering::Release);
            while ctl.delivered.load(Ordering::Acquire) < target && !ctl.stop.load(Ordering::Acquire) {
                ctl.wake.notified().await;
            }
            ctl.target.store(u64::MAX, Ordering::Release);
        }
        let msg = C::message(&payloads[round as usize % payloads.len()]);
        for conn in &mut conns {
            if !conn.send(&msg).await {
                return;
            }
        }
        round += 1;
    }
}

/// One client connection: counts whole messages.
async fn read_messages(mut stream: TcpStream, ctl: Arc<Ctl>, compressed: Rc<Cell<u64>>) {
    let mut buf = BytesMut::with_capacity(64 << 10);
    let mut parser = EchoParser::default();
    loop {
        buf.reserve(32 << 10);
        match stream.read_buf(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        let before = parser.compressed;
        let done = parser.feed(&mut buf) as u64;
        compressed.set(compressed.get() + parser.compressed - before);
        if done > 0 {
            let now = ctl.delivered.fetch_add(done, Ordering::AcqRel) + done;
            if now >= ctl.target.load(Ordering::Acquire) {
                ctl.wake.notify_one();
            }
        }
    }
}

fn run_cell(
    rt: &tokio::runtime::Runtime,
    variant: Variant,
    deflate: bool,
    size: usize,
    measure: Duration,
) -> Sample {
    let payloads: Vec<Bytes> =
        (0..PAYLOADS).map(|i| Bytes::from(json_payload_seeded(size, i as u32 + 1).into_bytes())).collect();
    let ctl = Arc::new(Ctl {
        delivered: AtomicU64::new(0),
        target: AtomicU64::new(u64::MAX),
        wake: Notify::new(),
        stop: AtomicBool::new(false),
        clock: AtomicU64::new(u64::MAX),
    });
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.set_nonblocking(true).expect("nonblocking");
    let port = listener.local_addr().expect("addr").port();
    let server = {
        let ctl = ctl.clone();
        std::thread::spawn(move || server_thread(variant, deflate, listener, payloads, ctl))
    };
    let local = tokio::task::LocalSet::new();
    let sample = local.block_on(rt, async {
        let offer = deflate.then_some(OFFER);
        let compressed = Rc::new(Cell::new(0));
        let mut tasks = Vec::with_capacity(CONNS);
        for _ in 0..CONNS {
            let (stream, head) = connect_head(port, offer).await.expect("connect");
            if deflate {
                assert!(head.contains("server_no_context_takeover"), "{head}");
            }
            tasks.push(tokio::task::spawn_local(read_messages(stream, ctl.clone(), compressed.clone())));
        }
        // Warm up: a few broadcasts (and the pool, the allocator) settle.
        let warm = Instant::now();
        while ctl.delivered.load(Ordering::Acquire) < 4 * CONNS as u64
            || warm.elapsed() < Duration::from_millis(200)
        {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let clock = ctl.clock.load(Ordering::Acquire) as libc::clockid_t;
        let (d0, c0, t0) = (ctl.delivered.load(Ordering::Acquire), thread_cpu_ns(clock), Instant::now());
        tokio::time::sleep(measure).await;
        let (d1, c1, elapsed) = (ctl.delivered.load(Ordering::Acquire), thread_cpu_ns(clock), t0.elapsed());
        // Stop the server, still reading so that it is never stuck on a full socket.
        ctl.stop.store(true, Ordering::Release);
        ctl.wake.notify_one();
        while !server.is_finished() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        for t in tasks {
            t.abort();
        }
        tokio::task::yield_now().await;
        if deflate {
            assert!(compressed.get() > 0, "{}: messages compressed", variant.name());
        }
        let delivered = (d1 - d0) as f64;
        Sample { rate: delivered / elapsed.as_secs_f64(), cpu_us: (c1 - c0) as f64 / 1e3 / delivered }
    });
    server.join().expect("server thread");
    sample
}

pub fn run_fanout(settings: Settings) -> String {
    pin_to(1);
    raise_nofile();
    let rt = current_thread_runtime();
    let rounds = if settings.quick { 1 } else { 3 };
    let measure = if settings.quick { Duration::from_millis(500) } else { Duration::from_secs(1) };
    let mut out = String::from(
        "## Fan-out: one server task broadcasts to 1,000 connections (loopback TCP; median of rounds)\n\n",
    );
    for deflate in [false, true] {
        let variants: &[Variant] = if deflate {
            &[Variant::Prepared, Variant::PerConnection, Variant::Yawc]
        } else {
            &[Variant::Prepared, Variant::PerConnection, Variant::Tungstenite, Variant::TokioWs, Variant::Fws]
        };
        let mut header = vec![format!("{}: JSON size", if deflate { "compressed" } else { "plain" })];
        for v in variants {
            header.push(format!("{} msg/s (µs CPU/msg)", v.name()));
        }
        header.push("prepared / per-connection CPU".into());
        header.push("prepared / best peer: msg/s, CPU/msg".into());
        let mut table = Table::new(header);
        for size in [1usize << 10, 16 << 10] {
            let mut samples: Vec<Vec<Sample>> = variants.iter().map(|_| Vec::new()).collect();
            for round in 0..rounds {
                for k in 0..variants.len() {
                    let i = (k + round) % variants.len();
                    samples[i].push(run_cell(&rt, variants[i], deflate, size, measure));
                }
            }
            let medians: Vec<(f64, f64)> = samples
                .iter()
                .map(|s| {
                    let mut rates: Vec<f64> = s.iter().map(|x| x.rate).collect();
                    let mut cpus: Vec<f64> = s.iter().map(|x| x.cpu_us).collect();
                    (median(&mut rates), median(&mut cpus))
                })
                .collect();
            let mut row = vec![fmt_size(size)];
            row.extend(medians.iter().map(|(rate, cpu)| format!("{} ({cpu:.2})", fmt_rate(*rate))));
            row.push(format!("{:.2}×", medians[0].1 / medians[1].1));
            let best = (0..variants.len())
                .filter(|&i| variants[i].is_peer())
                .max_by(|&a, &b| medians[a].0.total_cmp(&medians[b].0))
                .expect("a peer");
            let leanest = (0..variants.len())
                .filter(|&i| variants[i].is_peer())
                .min_by(|&a, &b| medians[a].1.total_cmp(&medians[b].1))
                .expect("a peer");
            row.push(format!(
                "{} ({}), {:.2}× ({})",
                ratio(medians[0].0, medians[best].0),
                variants[best].name(),
                medians[0].1 / medians[leanest].1,
                variants[leanest].name()
            ));
            println!("  {}", row.join(" | "));
            table.row(row);
        }
        out.push_str(&table.render());
        out.push('\n');
    }
    out.push_str(&format!(
        "Each broadcast is a new JSON text message ({PAYLOADS} payloads in turn) sent by one server \
         task (its own thread, pinned to core 0, current-thread runtime) to each of {CONNS} connections \
         in turn with the library's `send` (encode, write); at most {IN_FLIGHT} broadcasts ahead of \
         the deliveries. wsproto prepared: `PreparedMessage::text` per broadcast, \
         `Framed::send(msg.into())`; per-connection: `TextMessage` per send; tokio-tungstenite and \
         tokio-websockets: one `Message` cloned per send (their broadcast path, `Bytes` inside); \
         fastwebsockets: `write_frame` of a borrowed payload; yawc: `Frame::text` of the shared \
         `Bytes` per send. Compressed: the clients offer `{OFFER}`, so every server compresses each \
         message from a fresh context (wsproto with a `DeflatePool`; yawc level 6 like wsproto). \
         msg/s: whole messages received by the clients (neutral readers on core 1, frame headers \
         only). CPU: the server thread's user + system time (`CLOCK_THREAD_CPUTIME_ID`, which \
         includes the kernel's loopback delivery in `write`) per delivered message.\n"
    ));
    out
}
