//! Memory: RSS per idle connection (slope between two connection counts) and whether
//! buffers shrink back after a 16 MiB message. Servers run in their own process.

use std::time::Duration;

use bytes::BytesMut;
use flate2::{Compress, Compression, FlushCompress};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::common::*;
use crate::echo::{connect, EchoParser, Server, ServerProc};

/// How a memory measurement connects: which server and which extension offer.
#[derive(Clone, Copy)]
pub struct Variant {
    pub server: Server,
    pub label: &'static str,
    /// The `Sec-WebSocket-Extensions` offer, if any (only our server accepts it).
    pub offer: Option<&'static str>,
    /// Our server's permessage-deflate configuration (`WSBENCH_DEFLATE`), if not the default.
    pub spec: Option<&'static str>,
    /// Each connection echoes 64 KiB of chat JSON (4 messages) instead of one 16 B message,
    /// so the compression windows are full.
    pub warm: bool,
}

const fn v(lib: Lib, label: &'static str, offer: Option<&'static str>) -> Variant {
    Variant { server: Server::Lib(lib), label, offer, spec: None, warm: false }
}

/// A server without extensions, labelled by its name.
const fn plain(server: Server, label: &'static str) -> Variant {
    Variant { server, label, offer: None, spec: None, warm: false }
}

impl Variant {
    fn is_peer(&self) -> bool {
        self.server.is_peer()
    }
}

const DEFLATE: Option<&str> = Some("permessage-deflate");

pub const VARIANTS: [Variant; 17] = [
    Variant {
        server: Server::MainJob,
        ..v(
            Lib::Ours,
            "echo_server (the main job as shipped: session, multi-thread, deflate offered, not negotiated)",
            None,
        )
    },
    Variant {
        server: Server::Session,
        ..v(Lib::Ours, "wsproto session (current-thread, deflate offered, not negotiated)", None)
    },
    v(Lib::Ours, "wsproto", None),
    v(Lib::OursWhole, "wsproto-whole", None),
    v(Lib::Ours, "wsproto + deflate", DEFLATE),
    Variant { warm: true, ..v(Lib::Ours, "wsproto + deflate, after 64 KiB each way", DEFLATE) },
    Variant {
        spec: Some("live,15,8"),
        ..v(Lib::Ours, "wsproto + deflate, IdleState::Live 15 bits memLevel 8 (the old default)", DEFLATE)
    },
    Variant {
        spec: Some("live,12,5"),
        ..v(Lib::Ours, "wsproto + deflate, IdleState::Live 12 bits memLevel 5", DEFLATE)
    },
    v(
        Lib::Ours,
        "wsproto + deflate, no context takeover",
        Some("permessage-deflate; client_no_context_takeover; server_no_context_takeover"),
    ),
    Variant {
        warm: true,
        ..v(
            Lib::Ours,
            "wsproto + deflate, no context takeover, after 64 KiB each way",
            Some("permessage-deflate; client_no_context_takeover; server_no_context_takeover"),
        )
    },
    v(Lib::Tungstenite, "tokio-tungstenite", None),
    v(Lib::TokioWs, "tokio-websockets", None),
    v(Lib::Fws, "fastwebsockets", None),
    plain(Server::Yawc, "yawc"),
    plain(Server::Wtx, "wtx"),
    plain(Server::Sockudo, "sockudo-ws"),
    plain(
        Server::Handrolled,
        "handrolled (the echo limit: no library; keeps a read buffer of at least 4 KiB)",
    ),
];

/// The warm-up of [`Variant::warm`]: 4 client frames of 16 KiB of chat JSON each, compressed
/// with context takeover (or without, as the offer says).
fn warm_frames(no_context_takeover: bool) -> Vec<u8> {
    let corpus = chat_corpus(2000);
    let mut text = String::new();
    let mut out = Vec::new();
    let mut c = Compress::new(Compression::default(), false);
    let mut messages = corpus.iter();
    for _ in 0..4 {
        text.clear();
        text.push('[');
        for m in messages.by_ref() {
            if text.len() + m.len() + 1 >= 16 << 10 {
                break;
            }
            text.push_str(m);
            text.push(',');
        }
        text.pop();
        text.push(']');
        if no_context_takeover {
            c.reset();
        }
        let mut z = Vec::with_capacity(16 << 10);
        c.compress_vec(text.as_bytes(), &mut z, FlushCompress::Sync).expect("deflate");
        assert!(z.ends_with(&[0, 0, 0xff, 0xff]));
        z.truncate(z.len() - 4);
        push_frame(&mut out, OP_TEXT, true, true, &z, true);
    }
    out
}

/// The one message each connection echoes: 16 B of JSON, compressed when deflate is offered.
fn first_frame(deflate: bool) -> Vec<u8> {
    let payload = json_payload(16);
    let mut out = Vec::new();
    if deflate {
        let mut c = Compress::new(Compression::default(), false);
        let mut z = Vec::with_capacity(256);
        c.compress_vec(payload.as_bytes(), &mut z, FlushCompress::Sync).expect("deflate");
        assert!(z.ends_with(&[0, 0, 0xff, 0xff]));
        z.truncate(z.len() - 4);
        push_frame(&mut out, OP_TEXT, true, true, &z, true);
    } else {
        push_frame(&mut out, OP_TEXT, true, false, payload.as_bytes(), true);
    }
    out
}

async fn echo_once(s: &mut TcpStream, frame: &[u8]) -> std::io::Result<()> {
    echo_n(s, frame, 1).await
}

/// Writes `frames` (holding `n` messages) and reads until `n` echoes are back.
async fn echo_n(s: &mut TcpStream, frames: &[u8], n: usize) -> std::io::Result<()> {
    s.write_all(frames).await?;
    let mut buf = BytesMut::with_capacity(256);
    let mut parser = EchoParser::default();
    let mut got = 0;
    loop {
        buf.reserve(4096);
        if s.read_buf(&mut buf).await? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        got += parser.feed(&mut buf);
        if got >= n {
            return Ok(());
        }
    }
}

async fn open_idle(port: u16, v: Variant, n: usize, conns: &mut Vec<TcpStream>) {
    let (frames, count) = if v.warm {
        (warm_frames(v.offer.is_some_and(|o| o.contains("no_context_takeover"))), 4)
    } else {
        (first_frame(v.offer.is_some()), 1)
    };
    for _ in 0..n {
        let mut s = connect(port, v.offer).await.expect("connect");
        echo_n(&mut s, &frames, count).await.expect("echo");
        conns.push(s);
    }
}

async fn echo_big(s: &mut TcpStream, frame: &[u8]) -> std::io::Result<()> {
    let (mut r, mut w) = s.split();
    let read = async {
        let mut buf = BytesMut::with_capacity(256 << 10);
        let mut parser = EchoParser::default();
        loop {
            buf.reserve(128 << 10);
            if r.read_buf(&mut buf).await? == 0 {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
            if parser.feed(&mut buf) > 0 {
                return Ok(());
            }
        }
    };
    let (written, read) = tokio::join!(w.write_all(frame), read);
    written.and(read)
}

async fn settle() {
    tokio::time::sleep(Duration::from_millis(300)).await;
}

/// A server's memory at one point: VmRSS (KiB), live heap bytes and blocks.
#[derive(Clone, Copy, Debug, Default)]
pub struct Mem {
    pub rss_kib: u64,
    pub heap: i64,
    pub blocks: i64,
    pub future: i64,
    /// Whether the heap figures were counted (not for the main job's own binary).
    pub counted: bool,
}

fn mem(server: &mut ServerProc) -> Mem {
    let rss_kib = vm_rss_kib(server.pid());
    match server.heap() {
        Some((heap, blocks, future)) => Mem { rss_kib, heap, blocks, future, counted: true },
        None => Mem { rss_kib, ..Mem::default() },
    }
}

/// Server memory at `n1` and `n2` idle connections, after one echo on each.
pub fn idle_mem(rt: &tokio::runtime::Runtime, v: Variant, n1: usize, n2: usize) -> (Mem, Mem) {
    let mut server = ServerProc::start_with(v.server, v.offer.is_some(), false, v.spec);
    let port = server.port;
    let result = rt.block_on(async {
        let mut conns = Vec::with_capacity(n2);
        open_idle(port, v, n1, &mut conns).await;
        settle().await;
        let m1 = mem(&mut server);
        open_idle(port, v, n2 - n1, &mut conns).await;
        settle().await;
        let m2 = mem(&mut server);
        (m1, m2)
    });
    drop(server);
    result
}

/// The servers of the active-memory table: the main job, the bare codec, the peers, the
/// hand-rolled echo limit.
const ACTIVE: [Server; 9] = [
    Server::MainJob,
    Server::Lib(Lib::OursWhole),
    Server::Lib(Lib::TokioWs),
    Server::Lib(Lib::Fws),
    Server::Lib(Lib::Tungstenite),
    Server::Yawc,
    Server::Wtx,
    Server::Sockudo,
    Server::Handrolled,
];

/// RSS per connection while 4,096 connections echo 5-byte text messages (1 and 16 in flight,
/// the profile public leaderboards use): the server's peak VmRSS sampled during the load, less
/// its RSS before any connection, divided by the connections. `idle` gives the idle slope of
/// the table above for a server, shown beside.
fn active_table(
    rt: &tokio::runtime::Runtime,
    settings: Settings,
    nofile: u64,
    idle: impl Fn(Server) -> Option<f64>,
) -> String {
    let conns = 4096.min(nofile.saturating_sub(200) as usize);
    let measure = if settings.quick { Duration::from_secs(1) } else { Duration::from_secs(3) };
    let mut frame = Vec::new();
    push_frame(&mut frame, OP_TEXT, true, false, b"hello", true);
    let mut table = Table::new([
        "server".to_string(),
        "idle RSS per connection (above)".to_string(),
        format!("RSS per connection, {conns} echoing, 1 in flight"),
        "msg/s".to_string(),
        format!("RSS per connection, {conns} echoing, 16 in flight"),
        "msg/s".to_string(),
    ]);
    for server in ACTIVE {
        let mut row = vec![
            server.name().to_string(),
            idle(server).map_or_else(String::new, |b| format!("{b:.0} B ({:.2} KiB)", b / 1024.0)),
        ];
        for window in [1, 16] {
            let proc = ServerProc::start_with(server, false, false, None);
            std::thread::sleep(Duration::from_millis(300));
            let base = vm_rss_kib(proc.pid());
            let cell =
                crate::echo::frame_cell_rss(rt, proc.port, proc.pid(), conns, window, frame.clone(), measure);
            let per_conn = (cell.peak_rss_kib.saturating_sub(base)) as f64 * 1024.0 / conns as f64;
            println!(
                "  active {} w{window}: RSS {base} KiB -> peak {} KiB = {per_conn:.0} B/conn, {:.0} msg/s",
                server.name(),
                cell.peak_rss_kib,
                cell.rate
            );
            row.push(format!("{per_conn:.0} B ({:.2} KiB)", per_conn / 1024.0));
            row.push(fmt_rate(cell.rate));
            drop(proc);
        }
        table.row(row);
    }
    format!(
        "\n### Memory under load ({conns} connections echoing 5 B text messages)\n\nEach server in a fresh process: its VmRSS before any connection, then its peak VmRSS (sampled every 50 ms) while {conns} connections keep 1 or 16 messages in flight for {:.0} s; the difference divided by the connections. `echo_server` is the main job's own binary (session, multi-thread runtime, permessage-deflate offered but not negotiated); `handrolled` is the echo limit, not a memory floor (no library, but a read buffer of at least 4 KiB and an output buffer kept at their largest).\n\n{}",
        measure.as_secs_f64(),
        table.render()
    )
}

/// Server memory with `n` idle connections: at rest, after each echoed one 16 MiB binary
/// message, and after each then echoed one more small message.
pub fn shrink_mem(rt: &tokio::runtime::Runtime, v: Variant, n: usize) -> [Mem; 3] {
    let mut server = ServerProc::start_with(v.server, v.offer.is_some(), false, None);
    let port = server.port;
    let mut big = Vec::new();
    push_frame(&mut big, OP_BINARY, true, false, &binary_payload(16 << 20), true);
    let small = first_frame(v.offer.is_some());
    let result = rt.block_on(async {
        let mut conns = Vec::with_capacity(n);
        open_idle(port, v, n, &mut conns).await;
        settle().await;
        let base = mem(&mut server);
        for s in conns.iter_mut() {
            echo_big(s, &big).await.expect("big echo");
        }
        settle().await;
        let after_big = mem(&mut server);
        for s in conns.iter_mut() {
            echo_once(s, &small).await.expect("small echo");
        }
        settle().await;
        [base, after_big, mem(&mut server)]
    });
    drop(server);
    result
}

/// In-process: live heap held by a wsproto `Framed` at each step of echoing a 16 MiB message
/// and then a small one (what stays allocated, independent of the allocator's caching).
pub fn probe_ours(whole: bool) -> Vec<(String, i64)> {
    use futures_util::{SinkExt, StreamExt};
    use tokio_util::codec::Framed;
    use wsproto::codec::WsCodec;
    use wsproto::{Config, Connection, ConnectionType};
    let mut input = Vec::new();
    push_frame(&mut input, OP_BINARY, true, false, &binary_payload(16 << 20), true);
    push_frame(&mut input, OP_BINARY, true, false, b"0123456789abcdef", true);
    let input = bytes::Bytes::from(input);
    let rt = current_thread_runtime();
    rt.block_on(async move {
        let base = heap_live().0;
        let mut steps: Vec<(String, i64)> = Vec::new();
        macro_rules! step {
            ($ws:ident, $name:expr) => {
                steps.push((
                    format!(
                        "{} [read len/cap {}/{}, write len/cap {}/{}]",
                        $name,
                        $ws.read_buffer().len(),
                        $ws.read_buffer().capacity(),
                        $ws.write_buffer().len(),
                        $ws.write_buffer().capacity()
                    ),
                    heap_live().0 - base,
                ))
            };
        }
        let delivery = if whole { wsproto::Delivery::Messages } else { wsproto::Delivery::DEFAULT_CHUNKS };
        let codec =
            WsCodec::new(Connection::new(ConnectionType::Server, Config::default().delivery(delivery)));
        let mut ws = Framed::new(MemStream::new(input), codec);
        step!(ws, "new Framed");
        // The big message (whole: one event; chunks: many).
        loop {
            let Some(Ok(wsproto::Event::BytesMessage(m))) = ws.next().await else { panic!("event") };
            let done = m.message_finished;
            ws.send(m.into()).await.expect("send");
            if done {
                break;
            }
        }
        step!(ws, "after 16 MiB echoed");
        let Some(Ok(ev)) = ws.next().await else { panic!("event") };
        step!(ws, "after small message read");
        ws.send(ev).await.expect("send");
        step!(ws, "after small message echoed");
        steps
    })
}

/// A client (defaults) and a server (`spec`, see [`crate::echo::apply_deflate_spec`]; `None`:
/// defaults) with permessage-deflate negotiated, sans-IO.
fn deflate_pair(
    spec: Option<&str>,
    pool: Option<&wsproto::extensions::DeflatePool>,
) -> (wsproto::Connection, wsproto::Connection) {
    use wsproto::extensions::PerMessageDeflate;
    let server_ext = match spec {
        Some(spec) => crate::echo::apply_deflate_spec(PerMessageDeflate::new(), spec),
        None => PerMessageDeflate::new(),
    };
    // `None`: no pool at all (a pool of capacity 0; given none, a connection keeps live states).
    let server_ext = match pool {
        Some(pool) => server_ext.pool(pool.clone()),
        None => server_ext.pool(wsproto::extensions::DeflatePool::with_capacity(0)),
    };
    crate::deflate::pair_with(server_ext)
}

/// The payload length of the unmasked frame at the start of `frame`.
fn payload_len(frame: &[u8]) -> usize {
    match frame[1] & 0x7f {
        126 => u16::from_be_bytes([frame[2], frame[3]]) as usize,
        127 => u64::from_be_bytes(frame[2..10].try_into().expect("8 bytes")) as usize,
        n => n as usize,
    }
}

/// One server configuration measured in-process on the chat corpus.
pub struct ConfigResult {
    /// Heap the server's connection gained over one 16 B echo (what an idle connection keeps).
    pub idle_cold: i64,
    /// Heap the server's connection holds after echoing the whole corpus (windows full).
    pub idle_warm: i64,
    /// Compressed payload bytes ÷ raw bytes of the server's echoes of the corpus.
    pub ratio: f64,
}

/// The server (configured by `spec`) echoes a 16 B JSON message, then every message of
/// `corpus`, each received compressed from a default client.
pub fn measure_config(
    spec: Option<&str>,
    pool: Option<&wsproto::extensions::DeflatePool>,
    corpus: &[wsproto::Utf8Bytes],
) -> ConfigResult {
    use wsproto::{Event, TextMessage, Utf8Bytes};
    let (mut client, mut server) = deflate_pair(spec, pool);
    let mut input = BytesMut::new();
    client.send(TextMessage::new(Utf8Bytes::from(json_payload(16))), &mut input).expect("send");
    let mut first = input.split();
    for text in corpus {
        client.send(TextMessage::new(text.clone()), &mut input).expect("client send");
    }
    let mut dst = BytesMut::with_capacity(1 << 20);
    let echo = |server: &mut wsproto::Connection, input: &mut BytesMut, dst: &mut BytesMut| -> (u64, u64) {
        let (mut raw, mut z) = (0u64, 0u64);
        while let Some(event) = server.decode(input) {
            let Event::TextMessage(m) = event else { panic!("unexpected {event:?}") };
            assert!(m.message_finished);
            raw += m.data.len() as u64;
            server.send(TextMessage::new(m.data), dst).expect("echo");
            z += payload_len(dst) as u64;
            dst.clear();
        }
        (raw, z)
    };
    let h0 = heap_live().0;
    echo(&mut server, &mut first, &mut dst);
    let h1 = heap_live().0;
    let (raw, z) = echo(&mut server, &mut input, &mut dst);
    let h2 = heap_live().0;
    ConfigResult { idle_cold: h1 - h0, idle_warm: h2 - h0, ratio: z as f64 / raw as f64 }
}

/// Server time per corpus message (µs, median of `rounds`) when message `k` of the corpus goes
/// to connection `k % conns` (a broadcast pattern: with more connections than the pool holds,
/// `History` states are taken by other connections between a connection's messages).
pub fn time_interleaved(
    spec: Option<&str>,
    pool: Option<&wsproto::extensions::DeflatePool>,
    corpus: &[wsproto::Utf8Bytes],
    conns: usize,
    rounds: usize,
) -> f64 {
    use wsproto::{Event, TextMessage};
    let mut times = Vec::new();
    for _ in 0..rounds.max(1) {
        let mut pairs: Vec<_> = (0..conns).map(|_| deflate_pair(spec, pool)).collect();
        let mut frames: Vec<BytesMut> = corpus
            .iter()
            .enumerate()
            .map(|(k, text)| {
                let mut b = BytesMut::new();
                pairs[k % conns].0.send(TextMessage::new(text.clone()), &mut b).expect("client send");
                b
            })
            .collect();
        let mut dst = BytesMut::with_capacity(1 << 20);
        let (secs, ()) = time(|| {
            for (k, frame) in frames.iter_mut().enumerate() {
                let server = &mut pairs[k % conns].1;
                while let Some(event) = server.decode(frame) {
                    let Event::TextMessage(m) = event else { panic!("unexpected {event:?}") };
                    server.send(TextMessage::new(m.data), &mut dst).expect("echo");
                    dst.clear();
                }
            }
        });
        times.push(secs / corpus.len() as f64 * 1e6);
    }
    median(&mut times)
}

/// Server configurations of the memory table: (label, spec).
const CONFIGS: [(&str, Option<&str>); 14] = [
    ("Live, 15 bits, memLevel 8 (the old default)", Some("live,15,8")),
    ("Live, 15 bits, memLevel 4", Some("live,15,4")),
    ("Live, 14 bits, memLevel 8", Some("live,14,8")),
    ("Live, 12 bits, memLevel 5", Some("live,12,5")),
    ("Live, 9 bits, memLevel 1", Some("live,9,1")),
    ("History, 15 bits, memLevel 8", Some("history,15,8")),
    ("**History, 14 bits, memLevel 8 (default)**", None),
    ("History, 14 bits, memLevel 4", Some("history,14,4")),
    ("History, 14 bits, memLevel 1", Some("history,14,1")),
    ("History, 13 bits, memLevel 8", Some("history,13,8")),
    ("History, 12 bits, memLevel 8", Some("history,12,8")),
    ("History, 11 bits, memLevel 8", Some("history,11,8")),
    ("History, 10 bits, memLevel 8", Some("history,10,8")),
    ("History, 9 bits, memLevel 8", Some("history,9,8")),
];

/// The in-process table of server memory, ratio and time per configuration.
pub fn config_table(settings: Settings) -> String {
    let corpus: Vec<wsproto::Utf8Bytes> =
        chat_corpus(5000).into_iter().map(wsproto::Utf8Bytes::from).collect();
    let raw: usize = corpus.iter().map(|m| m.len()).sum();
    let rounds = if settings.quick { 1 } else { 7 };
    let mut table = Table::new([
        "server configuration (`IdleState`, compress window, memory level)",
        "heap kept after one 16 B echo",
        "heap kept after the corpus (windows full)",
        "ratio on the chat corpus",
        "÷ old default",
        "server µs per message, 1 connection, no pool (capacity 0)",
        "÷ old default",
        "1 connection, a pool (the upgrade helpers' default: the config's)",
        "÷ old default",
        "64 connections in turn, no pool (capacity 0)",
        "÷ old default",
        "64 connections in turn, a pool (the upgrade helpers' default: the config's)",
        "÷ old default",
    ]);
    let results: Vec<ConfigResult> =
        CONFIGS.iter().map(|(_, spec)| measure_config(*spec, None, &corpus)).collect();
    // Rounds outermost, every configuration and setting once per round, medians: the machine's
    // noise comes in bursts, which this spreads over all cells.
    let mut samples: Vec<[Vec<f64>; 4]> = (0..CONFIGS.len()).map(|_| Default::default()).collect();
    for _ in 0..rounds {
        for ((_, spec), cell) in CONFIGS.iter().zip(samples.iter_mut()) {
            let pool = wsproto::extensions::DeflatePool::new();
            cell[0].push(time_interleaved(*spec, None, &corpus, 1, 1));
            cell[1].push(time_interleaved(*spec, Some(&pool), &corpus, 1, 1));
            cell[2].push(time_interleaved(*spec, None, &corpus, 64, 1));
            cell[3].push(time_interleaved(*spec, Some(&pool), &corpus, 64, 1));
        }
    }
    let times: Vec<[f64; 4]> = samples.iter_mut().map(|c| c.each_mut().map(|v| median(v))).collect();
    let old = &results[0];
    let old_t = times[0];
    for (((label, _), r), t) in CONFIGS.iter().zip(&results).zip(&times) {
        println!(
            "  config {label}: cold {} B, warm {} B, ratio {:.4}, µs/msg {t:.2?}",
            r.idle_cold, r.idle_warm, r.ratio
        );
        table.row(vec![
            label.to_string(),
            format!("{:.1} KiB", r.idle_cold as f64 / 1024.0),
            format!("{:.1} KiB", r.idle_warm as f64 / 1024.0),
            format!("{:.4}", r.ratio),
            format!("{:.3}×", r.ratio / old.ratio),
            format!("{:.2}", t[0]),
            format!("{:.2}×", t[0] / old_t[0]),
            format!("{:.2}", t[1]),
            format!("{:.2}×", t[1] / old_t[0]),
            format!("{:.2}", t[2]),
            format!("{:.2}×", t[2] / old_t[2]),
            format!("{:.2}", t[3]),
            format!("{:.2}×", t[3] / old_t[2]),
        ]);
    }
    let mut s = format!(
        "\n### permessage-deflate memory by configuration (in-process, server side, context takeover)\n\nA sans-IO server `Connection` with `PerMessageDeflate` configured as listed and a default client. The server echoes one 16 B JSON text message, then a deterministic chat corpus (`chat_corpus`: {} JSON events, {:.0} KiB, {:.0} B on average: messages of 3–32 words with user, room, avatar URL and timestamp, plus typing, presence and reaction events), each received compressed from the client. Heap = bytes the server's connection still holds (its inflater/compressor state or histories); ratio = the server's compressed payload bytes ÷ raw bytes over the corpus; time = server time to receive and echo the corpus, per message, median of {rounds} round(s): over one connection, and over 64 connections taking the messages in turn (message k to connection k mod 64, as a broadcast would; each connection's messages are then 64 apart, so a pool of 4 has lent its states to others in between), each without any pool (a pool of capacity 0: `History` then allocates and primes a state per message) and with a `DeflatePool::new()` (4 states of each kind, as the pool of an `UpgradeConfig` its connections use by default; `History` takes back its own state untouched when nobody took it, else primes a reset one). The ÷ columns compare with the old default in the same setting without a pool. `Live` never uses the pool under context takeover, so its two columns of a setting differ by noise alone: on this shared 2-core VM, read time differences below about 1.5× as noise. The old default is what every release before this change did.\n\n",
        corpus.len(),
        raw as f64 / 1024.0,
        raw as f64 / corpus.len() as f64,
    );
    s.push_str(&table.render());
    s
}

/// Python `websockets`' RSS per idle connection, by `bench/scripts/python_websockets_memory.py`
/// (skipped when `python3` cannot import `websockets`).
fn python_websockets() -> String {
    let script = crate::workspace().join("bench/scripts/python_websockets_memory.py");
    let out = std::process::Command::new("python3")
        .arg(&script)
        .args(["500", "2500"])
        .stderr(std::process::Stdio::null())
        .output();
    let out = match out {
        Ok(out) if out.status.success() => String::from_utf8_lossy(&out.stdout).into_owned(),
        _ => {
            eprintln!("python3 with websockets not available: no Python figures");
            return String::new();
        }
    };
    println!("{out}");
    let mut lines = out.lines();
    let version = lines.next().unwrap_or_default();
    let rows: Vec<&str> = lines.filter(|l| l.starts_with('|')).collect();
    format!(
        "\n### Python `websockets` for comparison ({version})\n\nBy `bench/scripts/python_websockets_memory.py`: its asyncio server with default settings (permessage-deflate: server window 12 bits, memLevel 5; a client offering `client_max_window_bits` gets 12 too), the same measurement (RSS slope, one echoed 16 B message, or 64 KiB of chat JSON in 4 messages each way), fewer connections.\n\n| server | RSS per idle connection | RSS |\n|---|---|---|\n{}\n",
        rows.join("\n")
    )
}

pub fn run_memory(settings: Settings) -> String {
    pin_to(1);
    let limit = raise_nofile();
    let (n1, n2) = if settings.quick { (500, 2000) } else { (1000, 5000) };
    let (n1, n2) = if limit < (n2 as u64 + 100) {
        eprintln!("RLIMIT_NOFILE is {limit}: measuring with fewer connections");
        (n1.min(limit as usize / 5), (limit as usize).saturating_sub(100))
    } else {
        (n1, n2)
    };
    let rounds = if settings.quick { 1 } else { 3 };
    let rt = current_thread_runtime();
    let mut slopes: Vec<Vec<f64>> = vec![Vec::new(); VARIANTS.len()];
    let mut heap_slopes: Vec<Vec<f64>> = vec![Vec::new(); VARIANTS.len()];
    let mut block_slopes: Vec<Vec<f64>> = vec![Vec::new(); VARIANTS.len()];
    let mut rss2: Vec<Vec<f64>> = vec![Vec::new(); VARIANTS.len()];
    let mut future = vec![0i64; VARIANTS.len()];
    let mut counted = vec![true; VARIANTS.len()];
    let dn = (n2 - n1) as f64;
    for round in 0..rounds {
        for k in 0..VARIANTS.len() {
            let i = (k + round) % VARIANTS.len();
            let (m1, m2) = idle_mem(&rt, VARIANTS[i], n1, n2);
            let slope = (m2.rss_kib as f64 - m1.rss_kib as f64) * 1024.0 / dn;
            let heap = (m2.heap - m1.heap) as f64 / dn;
            let blocks = (m2.blocks - m1.blocks) as f64 / dn;
            println!(
                "  {}: RSS {} KiB @ {n1}, {} KiB @ {n2} -> {slope:.0} B/conn; heap {heap:.0} B/conn in {blocks:.1} blocks",
                VARIANTS[i].label, m1.rss_kib, m2.rss_kib
            );
            slopes[i].push(slope);
            heap_slopes[i].push(heap);
            block_slopes[i].push(blocks);
            rss2[i].push(m2.rss_kib as f64);
            future[i] = m2.future;
            counted[i] = m2.counted;
        }
    }
    let med: Vec<f64> = slopes.iter_mut().map(|s| median(s)).collect();
    let heap_med: Vec<f64> = heap_slopes.iter_mut().map(|s| median(s)).collect();
    let blocks_med: Vec<f64> = block_slopes.iter_mut().map(|s| median(s)).collect();
    let smallest_peer = (0..VARIANTS.len())
        .filter(|&i| VARIANTS[i].is_peer())
        .min_by(|&a, &b| med[a].partial_cmp(&med[b]).expect("no NaN"))
        .expect("a peer");
    let mut table = Table::new([
        "server".to_string(),
        "RSS per idle connection (median slope)".to_string(),
        "÷ smallest peer (RSS)".to_string(),
        "live heap per connection (blocks)".to_string(),
        "connection future".to_string(),
        format!("server RSS at {n2} conns"),
    ]);
    for (i, v) in VARIANTS.iter().enumerate() {
        table.row(vec![
            v.label.to_string(),
            format!("{:.0} B ({:.2} KiB)", med[i], med[i] / 1024.0),
            if v.is_peer() { "".into() } else { ratio(med[i], med[smallest_peer]) },
            if counted[i] {
                format!("{:.0} B ({:.1})", heap_med[i], blocks_med[i])
            } else {
                "not counted".into()
            },
            if counted[i] { format!("{} B", future[i]) } else { "".into() },
            format!("{:.1} MiB", median(&mut rss2[i]) / 1024.0),
        ]);
    }
    let mut s = format!(
        "## Memory per idle connection\n\nRSS slope between {n1} and {n2} connections, each after one echoed 16 B text message (compressed when deflate is negotiated); {rounds} round(s), median. Smallest peer: {}. Live heap = bytes allocated and not freed, counted by the server's global allocator (RSS counts only touched pages, so an 8 KiB buffer that was never filled costs less RSS than heap).\n\n",
        VARIANTS[smallest_peer].label
    );
    s.push_str(&table.render());
    s.push_str(&active_table(&rt, settings, limit, |server| {
        VARIANTS.iter().position(|v| v.server == server && v.offer.is_none()).map(|i| med[i])
    }));

    // Shrink-back after a 16 MiB message.
    let n = 8;
    let mut table = Table::new([
        "server",
        "idle: RSS / heap",
        "after 16 MiB echo: RSS / heap",
        "after one more small echo: RSS / heap",
        "heap kept per conn after big / after small",
    ]);
    for v in VARIANTS.iter().filter(|v| v.offer.is_none()) {
        let [base, big, small] = shrink_mem(&rt, *v, n);
        let mib = |x: f64| format!("{:.1} MiB", x / 1024.0 / 1024.0);
        // Heap figures exist only where the server counted them.
        let heap = |m: Mem, bytes: f64| if m.counted { mib(bytes) } else { "not counted".into() };
        let both = |m: Mem| format!("{} / {}", mib(m.rss_kib as f64 * 1024.0), heap(m, m.heap as f64));
        let kept = |m: Mem| heap(m, (m.heap - base.heap) as f64 / n as f64);
        println!("  shrink {}: {base:?} -> {big:?} -> {small:?}", v.label);
        table.row(vec![
            v.label.to_string(),
            both(base),
            both(big),
            both(small),
            format!("{} / {}", kept(big), kept(small)),
        ]);
    }
    s.push_str(&format!(
        "\n### Buffers after a 16 MiB message ({n} connections, each echoes one 16 MiB binary message in turn, then one 16 B message)\n\nRSS also reflects the allocator (glibc keeps freed large blocks once its mmap threshold has risen); heap is what the server still holds.\n\n"
    ));
    s.push_str(&table.render());
    s.push_str(&format!(
        "\nType sizes: `wsproto::Event` {} B, `Option<Result<Event, codec::Error>>` {} B, `WsCodec` {} B, `Connection` {} B, `Framed<TcpStream, WsCodec>` {} B.\n",
        std::mem::size_of::<wsproto::Event>(),
        std::mem::size_of::<Option<Result<wsproto::Event, wsproto::codec::Error>>>(),
        std::mem::size_of::<wsproto::codec::WsCodec>(),
        std::mem::size_of::<wsproto::Connection>(),
        std::mem::size_of::<tokio_util::codec::Framed<tokio::net::TcpStream, wsproto::codec::WsCodec>>(),
    ));
    s.push_str(&config_table(settings));
    s.push_str(&python_websockets());
    for whole in [false, true] {
        let steps = probe_ours(whole);
        println!("  probe whole={whole}: {steps:?}");
        s.push_str(&format!(
            "\nIn-process probe, {} (live heap held by one `Framed` over an in-memory stream): {}.\n",
            if whole { "wsproto-whole" } else { "wsproto" },
            steps
                .iter()
                .map(|(k, v)| format!("{k}: {:.1} KiB", *v as f64 / 1024.0))
                .collect::<Vec<_>>()
                .join("; ")
        ));
    }
    s
}
