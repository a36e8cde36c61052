//! Echo servers (one per library, run as `wsbench server <lib>` in their own process) and the
//! neutral load generator that drives them over loopback TCP.

use std::cell::Cell;
use std::io::{self, BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::{Buf, Bytes, BytesMut};
use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;
use wsproto::extensions::{DeflatePool, PerMessageDeflate};
use wsproto::upgrade::{self, UpgradeConfig};
use wsproto::Event;

use crate::common::*;

/// A stream a server or a load connection runs on: TCP, or TLS over TCP.
pub trait Io: AsyncRead + AsyncWrite + Unpin + Send + 'static {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send + 'static> Io for T {}

// ---------------------------------------------------------------------------------------------
// Servers
// ---------------------------------------------------------------------------------------------

/// What `wsbench server NAME` runs: one of the libraries of [`Lib`], a peer benchmarked only
/// over sockets (yawc, wtx, sockudo-ws), the hand-rolled limit, or one of wsproto's
/// higher-level entry points.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
pub enum Server {
    Lib(Lib),
    /// yawc: permessage-deflate when offered (the compressed echo), plain otherwise.
    Yawc,
    /// wtx (`WebSocketAcceptor`, `read_frame`/`write_frame`).
    Wtx,
    /// sockudo-ws (`WebSocketServer::<Http1>`, `WebSocketStream` `next`/`send`).
    Sockudo,
    /// No WebSocket library: the fixed upgrade, then every complete frame of a read unmasked
    /// into one output buffer written at once. No limits, no checks: the ceiling of this echo.
    Handrolled,
    /// wsproto through `session::Session` (whole messages, replies, keepalive, timeouts).
    Session,
    /// The crate's main job as shipped: the `echo_server` example binary (session, graceful
    /// shutdown, multi-thread runtime, permessage-deflate offered), built beside `wsbench`
    /// (`cargo build --release --example echo_server`). No heap statistics: its allocator
    /// is the system's.
    MainJob,
}

/// The servers of the echo section, in table order: the limit, our entries, the peers.
pub const ECHO_SERVERS: [Server; 10] = [
    Server::Handrolled,
    Server::MainJob,
    Server::Lib(Lib::Ours),
    Server::Lib(Lib::OursWhole),
    Server::Lib(Lib::Tungstenite),
    Server::Lib(Lib::TokioWs),
    Server::Lib(Lib::Fws),
    Server::Yawc,
    Server::Wtx,
    Server::Sockudo,
];

impl Server {
    /// Every server `wsbench server NAME` and `--libs` accept.
    pub const ALL: [Server; 11] = [
        Server::Handrolled,
        Server::MainJob,
        Server::Session,
        Server::Lib(Lib::Ours),
        Server::Lib(Lib::OursWhole),
        Server::Lib(Lib::Tungstenite),
        Server::Lib(Lib::TokioWs),
        Server::Lib(Lib::Fws),
        Server::Yawc,
        Server::Wtx,
        Server::Sockudo,
    ];

    pub fn parse(s: &str) -> Option<Server> {
        Server::ALL.into_iter().find(|x| x.name() == s)
    }

    pub fn name(self) -> &'static str {
        match self {
            Server::Lib(l) => l.name(),
            Server::Yawc => "yawc",
            Server::Wtx => "wtx",
            Server::Sockudo => "sockudo-ws",
            Server::Handrolled => "handrolled",
            Server::Session => "wsproto-session",
            Server::MainJob => "echo_server",
        }
    }

    /// A peer library (counts in "best peer").
    pub fn is_peer(self) -> bool {
        match self {
            Server::Lib(l) => l.is_peer(),
            Server::Yawc | Server::Wtx | Server::Sockudo => true,
            Server::Handrolled | Server::Session | Server::MainJob => false,
        }
    }

    /// One of ours (gets ratio columns).
    pub fn is_ours(self) -> bool {
        !self.is_peer() && self != Server::Handrolled
    }

    /// Whether `wsbench server NAME --tls` serves it (the main job is its own binary without
    /// TLS; wtx speaks TLS only through its own `tokio-rustls` feature, not enabled here).
    pub fn supports_tls(self) -> bool {
        !matches!(self, Server::MainJob | Server::Wtx)
    }

    /// Whether it can run here (the main job needs its binary built beside this one).
    pub fn available(self) -> bool {
        self != Server::MainJob || main_job_binary().exists()
    }
}

/// Where the main job's binary is expected: `examples/echo_server` beside this executable.
pub fn main_job_binary() -> std::path::PathBuf {
    let exe = std::env::current_exe().expect("current exe");
    exe.parent().expect("target dir").join("examples").join("echo_server")
}

/// `wsbench server <lib> [--deflate] [--tls]`: prints the port, serves until stdin closes.
/// With `--tls`, every connection is TLS (tokio-rustls) with the benchmark's certificate.
pub fn server_main(server: Server, deflate: bool, tls: bool) {
    let acceptor = tls.then(crate::tls::acceptor);
    pin_to(0);
    raise_nofile();
    // The parent asks for heap statistics with a line `heap`, and closes our stdin to stop us.
    std::thread::spawn(|| {
        let mut line = String::new();
        let mut stdin = io::stdin().lock();
        loop {
            line.clear();
            match stdin.read_line(&mut line) {
                Ok(0) | Err(_) => std::process::exit(0),
                Ok(_) if line.trim() == "heap" => {
                    let (bytes, blocks) = heap_live();
                    println!("{bytes} {blocks} {}", FUTURE_SIZE.load(Ordering::Relaxed));
                }
                Ok(_) => {}
            }
        }
    });
    let rt = current_thread_runtime();
    rt.block_on(async move {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        println!("{}", listener.local_addr().expect("addr").port());
        let mut warned = false;
        loop {
            let stream = match listener.accept().await {
                Ok((s, _)) => s,
                Err(e) => {
                    if !warned {
                        eprintln!("server {}: accept: {e}", server.name());
                        warned = true;
                    }
                    tokio::time::sleep(Duration::from_millis(5)).await;
                    continue;
                }
            };
            let _ = stream.set_nodelay(true);
            if let Some(acceptor) = &acceptor {
                let acceptor = acceptor.clone();
                spawn(async move {
                    if let Ok(stream) = acceptor.accept(stream).await {
                        serve_any(server, stream, deflate).await;
                    }
                });
                continue;
            }
            match server {
                Server::Lib(Lib::Ours) => spawn(serve_ours(stream, false, deflate)),
                Server::Lib(Lib::OursWhole) => spawn(serve_ours(stream, true, deflate)),
                Server::Lib(Lib::Tungstenite) => spawn(serve_tungstenite(stream)),
                Server::Lib(Lib::TokioWs) => spawn(serve_tokio_ws(stream)),
                Server::Lib(Lib::Fws) => spawn(serve_fws(stream)),
                Server::Yawc => spawn(crate::deflate_echo::serve_yawc(stream)),
                Server::Wtx => spawn(serve_wtx(stream)),
                Server::Sockudo => spawn(serve_sockudo(stream)),
                Server::Handrolled => spawn(serve_handrolled(stream)),
                Server::Session => spawn(serve_session(stream)),
                Server::MainJob => unreachable!("the main job runs as its own binary"),
            }
        }
    });
}

/// Any server on any stream (one future type for all: used over TLS, where the connection
/// future's size is not measured).
async fn serve_any<S: Io>(server: Server, stream: S, deflate: bool) {
    let _ = match server {
        Server::Lib(Lib::Ours) => serve_ours(stream, false, deflate).await.map_err(|_| ()),
        Server::Lib(Lib::OursWhole) => serve_ours(stream, true, deflate).await.map_err(|_| ()),
        Server::Lib(Lib::Tungstenite) => serve_tungstenite(stream).await.map_err(|_| ()),
        Server::Lib(Lib::TokioWs) => serve_tokio_ws(stream).await.map_err(|_| ()),
        Server::Lib(Lib::Fws) => serve_fws(stream).await.map_err(|_| ()),
        Server::Session => serve_session(stream).await.map_err(|_| ()),
        Server::Yawc => crate::deflate_echo::serve_yawc(stream).await.map_err(|_| ()),
        Server::Sockudo => serve_sockudo(stream).await.map_err(|_| ()),
        Server::Handrolled => serve_handrolled(stream).await.map_err(|_| ()),
        Server::Wtx => unimplemented!("wtx is benchmarked without TLS (see Server::supports_tls)"),
        Server::MainJob => unreachable!("the main job runs as its own binary"),
    };
}

/// Size of the last connection future spawned (reported with the heap statistics).
static FUTURE_SIZE: AtomicUsize = AtomicUsize::new(0);

fn spawn<F>(future: F)
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    FUTURE_SIZE.store(std::mem::size_of_val(&future), Ordering::Relaxed);
    drop(tokio::spawn(future));
}

/// `WSBENCH_DEFLATE="history|live,<compress window bits>,<memory level>"` configures the
/// server's permessage-deflate (the memory section's variants); unset: the defaults.
pub fn deflate_from_env(ext: PerMessageDeflate) -> PerMessageDeflate {
    let Ok(spec) = std::env::var("WSBENCH_DEFLATE") else { return ext };
    apply_deflate_spec(ext, &spec)
}

/// See [`deflate_from_env`].
pub fn apply_deflate_spec(ext: PerMessageDeflate, spec: &str) -> PerMessageDeflate {
    let mut it = spec.split(',');
    let idle = match it.next() {
        Some("live") => wsproto::extensions::IdleState::Live,
        _ => wsproto::extensions::IdleState::History,
    };
    let bits: u8 = it.next().and_then(|b| b.parse().ok()).unwrap_or(15);
    let mem: u8 = it.next().and_then(|b| b.parse().ok()).unwrap_or(8);
    ext.idle_state(idle).compress_window_bits(bits).memory_level(mem)
}

async fn serve_ours<S: Io>(stream: S, whole: bool, deflate: bool) -> Result<(), wsproto::Error> {
    let delivery = if whole { wsproto::Delivery::Messages } else { wsproto::Delivery::DEFAULT_CHUNKS };
    let mut config = UpgradeConfig::default().delivery(delivery);
    if deflate {
        // Compression states shared by the server's connections (messages reuse them instead
        // of building one per message): the default pool. `WSBENCH_POOL=N` measures with a
        // pool of N (0: none, a state built per message).
        static POOL: std::sync::LazyLock<DeflatePool> = std::sync::LazyLock::new(|| {
            match std::env::var("WSBENCH_POOL").ok().and_then(|n| n.parse().ok()) {
                Some(capacity) => DeflatePool::with_capacity(capacity),
                None => DeflatePool::new(),
            }
        });
        config = config.extension(|| deflate_from_env(PerMessageDeflate::new()).pool(POOL.clone()));
    }
    // `_` (not a named binding): the request is dropped now, not kept for the connection.
    // The bare codec: this echo answers pings and closes by hand.
    let mut ws = upgrade::accept(stream, config).await?.0.into_inner();
    while let Some(event) = ws.next().await {
        match event? {
            Event::TextMessage(m) => ws.send(m.into()).await?,
            Event::BytesMessage(m) => ws.send(m.into()).await?,
            Event::Ping(p) => ws.send(p.response().into()).await?,
            Event::CloseConnection(close) => {
                if let Some(reply) = close.reply() {
                    ws.send(reply.into()).await?;
                }
                break;
            }
            _ => {}
        }
    }
    Ok(())
}

/// The same echo as `serve_ours` with whole messages, through a session.
async fn serve_session<S: Io>(stream: S) -> Result<(), wsproto::Error> {
    let (mut ws, _) = upgrade::accept(stream, UpgradeConfig::default()).await?;
    while let Some(event) = ws.next().await {
        match event? {
            Event::TextMessage(m) => ws.send(m.into()).await?,
            Event::BytesMessage(m) => ws.send(m.into()).await?,
            _ => {}
        }
    }
    Ok(())
}

async fn serve_tungstenite<S: Io>(stream: S) -> Result<(), tokio_tungstenite::tungstenite::Error> {
    use tokio_tungstenite::tungstenite::Message;
    let mut ws = tokio_tungstenite::accept_async(stream).await?;
    while let Some(msg) = ws.next().await {
        let msg = msg?;
        match msg {
            Message::Text(_) | Message::Binary(_) => ws.send(msg).await?,
            Message::Close(_) => break,
            _ => {}
        }
    }
    Ok(())
}

async fn serve_tokio_ws<S: Io>(stream: S) -> Result<(), tokio_websockets::Error> {
    let (_, mut ws) = tokio_websockets::ServerBuilder::new().accept(stream).await?;
    while let Some(msg) = ws.next().await {
        let msg = msg?;
        if msg.is_text() || msg.is_binary() {
            ws.send(msg).await?;
        } else if msg.is_close() {
            break;
        }
    }
    Ok(())
}

/// fastwebsockets has no handshake of its own without hyper: a minimal HTTP/1.1 upgrade (the
/// head is read into a heap buffer freed before the WebSocket starts), then `after_handshake`.
async fn serve_fws<S: Io>(mut stream: S) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    use fastwebsockets::{FragmentCollector, OpCode, Role, WebSocket};
    {
        let head = read_request_head(&mut stream).await?;
        let key = header_value(&head, "sec-websocket-key").ok_or("no key")?;
        let response = format!(
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {}\r\n\r\n",
            accept_key(&key)
        );
        stream.write_all(response.as_bytes()).await?;
    }
    let mut ws = FragmentCollector::new(WebSocket::after_handshake(stream, Role::Server));
    loop {
        let frame = ws.read_frame().await?;
        match frame.opcode {
            OpCode::Text | OpCode::Binary => ws.write_frame(frame).await?,
            OpCode::Close => break,
            _ => {}
        }
    }
    Ok(())
}

/// wtx with its own handshake (`WebSocketAcceptor::default()`: no compression, its default
/// 64 MiB payload limit) and the split parts its documentation gives for writing back a frame
/// just read; `Adaptive`: a single frame's payload stays in wtx's network buffer.
async fn serve_wtx(stream: TcpStream) -> Result<(), wtx::Error> {
    use wtx::collection::Vector;
    use wtx::web_socket::{OpCode, WebSocketAcceptor, WebSocketPayloadOrigin};
    let mut ws = WebSocketAcceptor::default().accept(stream).await?;
    let mut buffer = Vector::new();
    let (mut common, mut reader, mut writer) = ws.split_mut();
    loop {
        let mut frame = reader.read_frame(&mut buffer, &mut common, WebSocketPayloadOrigin::Adaptive).await?;
        match frame.op_code() {
            OpCode::Text | OpCode::Binary => writer.write_frame(&mut common, &mut frame).await?,
            OpCode::Close => break,
            _ => {}
        }
    }
    Ok(())
}

/// sockudo-ws with its own HTTP/1.1 handshake (`WebSocketServer::<Http1>`, `accept_raw`: the
/// stream type kept) and default `Config` (frame 16 MiB, message 64 MiB, write corking, idle
/// ping and timeout timers), echoing through its `Stream`/`Sink`.
async fn serve_sockudo<S: Io>(stream: S) -> Result<(), sockudo_ws::Error> {
    use sockudo_ws::server::WebSocketServer;
    use sockudo_ws::{Config, Http1, Message};
    let (mut ws, _) = WebSocketServer::<Http1>::new(Config::default()).accept_raw(stream).await?;
    while let Some(msg) = ws.next().await {
        match msg? {
            msg @ (Message::Text(_) | Message::Binary(_)) => ws.send(msg).await?,
            Message::Close(_) => break,
            _ => {}
        }
    }
    Ok(())
}

/// The limit: no WebSocket library and no limits. The fixed upgrade (the helpers the
/// fastwebsockets server uses), then per read (into room that grows while reads fill it):
/// every complete frame in the read buffer is
/// unmasked into one output buffer (its header rewritten without the mask; a ping answered as
/// a pong), the output written once; a partial frame stays for the next read. A close frame is
/// echoed and ends the connection.
async fn serve_handrolled<S: Io>(mut stream: S) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    {
        let head = read_request_head(&mut stream).await?;
        let key = header_value(&head, "sec-websocket-key").ok_or("no key")?;
        let response = format!(
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {}\r\n\r\n",
            accept_key(&key)
        );
        stream.write_all(response.as_bytes()).await?;
    }
    let mut input = BytesMut::new();
    let mut output: Vec<u8> = Vec::new();
    // Room offered to each read: 4 KiB, doubled (up to 256 KiB) whenever a read fills it.
    let mut chunk = 4096;
    loop {
        if input.capacity() - input.len() < chunk {
            input.reserve(chunk);
        }
        let room = input.capacity() - input.len();
        let n = stream.read_buf(&mut input).await?;
        if n == 0 {
            return Ok(());
        }
        if n == room {
            chunk = (chunk * 2).min(256 << 10);
        }
        let (used, closed) = unmask_frames(&input, &mut output);
        input.advance(used);
        if !output.is_empty() {
            stream.write_all(&output).await?;
            output.clear();
        }
        if closed {
            return Ok(());
        }
    }
}

/// Appends every complete frame at the start of `input` to `output`, unmasked; returns the
/// bytes used and whether a close frame was among them.
pub fn unmask_frames(input: &[u8], output: &mut Vec<u8>) -> (usize, bool) {
    let mut pos = 0;
    loop {
        let rest = &input[pos..];
        if rest.len() < 2 {
            return (pos, false);
        }
        let masked = rest[1] & 0x80 != 0;
        let (ext, len) = match rest[1] & 0x7f {
            126 if rest.len() >= 4 => (2, u64::from(u16::from_be_bytes([rest[2], rest[3]]))),
            127 if rest.len() >= 10 => (8, u64::from_be_bytes(rest[2..10].try_into().expect("8 bytes"))),
            126 | 127 => return (pos, false),
            n => (0, u64::from(n)),
        };
        let key_len = if masked { 4 } else { 0 };
        let head = 2 + ext + key_len;
        let Some(total) = usize::try_from(len).ok().and_then(|l| l.checked_add(head)) else {
            return (pos, false);
        };
        if rest.len() < total {
            return (pos, false);
        }
        let opcode = rest[0] & 0x0f;
        // A ping is answered by a pong with the same payload.
        output.push(if opcode == 0x9 { (rest[0] & 0xf0) | 0xa } else { rest[0] });
        output.push(rest[1] & 0x7f);
        output.extend_from_slice(&rest[2..2 + ext]);
        let start = output.len();
        output.extend_from_slice(&rest[head..total]);
        if masked {
            let k = &rest[2 + ext..head];
            unmask(&mut output[start..], [k[0], k[1], k[2], k[3]]);
        }
        pos += total;
        if opcode == 0x8 {
            return (pos, true);
        }
    }
}

/// XORs `data` with the repeated `key`, eight bytes at a time.
fn unmask(data: &mut [u8], key: [u8; 4]) {
    let wide = u64::from_ne_bytes([key[0], key[1], key[2], key[3], key[0], key[1], key[2], key[3]]);
    let mut chunks = data.chunks_exact_mut(8);
    for chunk in &mut chunks {
        let v = u64::from_ne_bytes(chunk.try_into().expect("8 bytes")) ^ wide;
        chunk.copy_from_slice(&v.to_ne_bytes());
    }
    for (i, b) in chunks.into_remainder().iter_mut().enumerate() {
        *b ^= key[i & 3];
    }
}

/// Reads an HTTP request head (up to the blank line) into a heap buffer (a minimal handshake
/// for libraries that have none without hyper; the load generator sends nothing after it).
pub async fn read_request_head<S: AsyncRead + Unpin>(
    stream: &mut S,
) -> Result<String, Box<dyn std::error::Error + Send + Sync>> {
    let mut head = Vec::with_capacity(1024);
    loop {
        if stream.read_buf(&mut head).await? == 0 {
            return Err("eof in handshake".into());
        }
        if head.windows(4).any(|w| w == b"\r\n\r\n") {
            return Ok(String::from_utf8_lossy(&head).into_owned());
        }
        if head.len() > 16 << 10 {
            return Err("head too large".into());
        }
    }
}

/// The value of header `name` (case-insensitive) in an HTTP head.
pub fn header_value(head: &str, name: &str) -> Option<String> {
    head.lines().find_map(|l| {
        let (n, value) = l.split_once(':')?;
        n.trim().eq_ignore_ascii_case(name).then(|| value.trim().to_string())
    })
}

pub fn accept_key(key: &str) -> String {
    use base64::Engine;
    use sha1::{Digest, Sha1};
    let mut h = Sha1::new();
    h.update(key.as_bytes());
    h.update(b"258EAFA5-E914-47DA-95CA-C5AB0DC11B85");
    base64::engine::general_purpose::STANDARD.encode(h.finalize())
}

/// A server process; stopped (stdin closed, then killed) on drop.
pub struct ServerProc {
    pub child: Child,
    pub port: u16,
    /// Where `heap` answers come from (`None` for the main job, which has no counters).
    stdout: Option<BufReader<std::process::ChildStdout>>,
}

impl ServerProc {
    pub fn start(lib: Lib, deflate: bool) -> ServerProc {
        Self::start_server(Server::Lib(lib), deflate)
    }

    pub fn start_server(server: Server, deflate: bool) -> ServerProc {
        Self::start_with(server, deflate, false, None)
    }

    /// A server, over TLS if `tls`, whose permessage-deflate is configured by `spec` (see
    /// [`deflate_from_env`]).
    pub fn start_with(server: Server, deflate: bool, tls: bool, spec: Option<&str>) -> ServerProc {
        if server == Server::MainJob {
            return Self::start_main_job();
        }
        let exe = std::env::current_exe().expect("current exe");
        let mut cmd = Command::new(exe);
        if let Some(spec) = spec {
            cmd.env("WSBENCH_DEFLATE", spec);
        }
        cmd.arg("server").arg(server.name());
        if deflate {
            cmd.arg("--deflate");
        }
        if tls {
            cmd.arg("--tls");
        }
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn server");
        let mut line = String::new();
        let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
        stdout.read_line(&mut line).expect("server port");
        let port = line.trim().parse().expect("port number");
        ServerProc { child, port, stdout: Some(stdout) }
    }

    /// `echo_server 127.0.0.1:0`, the binary next to this one under `examples/`; its port is
    /// read from the address it prints at start, its other logs are discarded.
    fn start_main_job() -> ServerProc {
        let bin = main_job_binary();
        assert!(
            bin.exists(),
            "{} is missing: build it with `cargo build --release --example echo_server`",
            bin.display()
        );
        let mut command = Command::new(&bin);
        command.arg("127.0.0.1:0").stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::piped());
        // On core 0 like every other server (the load generator has core 1); its multi-thread
        // runtime sizes itself to the cores it may use, so it runs one worker. Unpinned, its
        // threads land on the load generator's core at random and the cells turn bimodal.
        // SAFETY: `pin_to_cpu` only makes a system call, which is async-signal-safe.
        unsafe { command.pre_exec(|| pin_to_cpu(0)) };
        let mut child = command.spawn().expect("spawn echo_server");
        let mut stderr = BufReader::new(child.stderr.take().expect("stderr"));
        let mut line = String::new();
        stderr.read_line(&mut line).expect("echo_server start line");
        let port = line
            .split("ws://")
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|addr| addr.rsplit(':').next())
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("echo_server printed no address: {line:?}"));
        // Keep reading its per-connection log lines so the pipe never fills.
        std::thread::spawn(move || io::copy(&mut stderr, &mut io::sink()));
        ServerProc { child, port, stdout: None }
    }

    /// The server's live heap bytes and blocks, and the size of its last connection future
    /// (`None` for the main job).
    pub fn heap(&mut self) -> Option<(i64, i64, i64)> {
        use std::io::Write;
        let stdout = self.stdout.as_mut()?;
        let stdin = self.child.stdin.as_mut().expect("stdin");
        stdin.write_all(b"heap\n").and_then(|_| stdin.flush()).expect("ask heap");
        let mut line = String::new();
        stdout.read_line(&mut line).expect("heap line");
        let mut it = line.split_whitespace().map(|x| x.parse::<i64>().expect("number"));
        Some((it.next().unwrap_or(0), it.next().unwrap_or(0), it.next().unwrap_or(0)))
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for ServerProc {
    fn drop(&mut self) {
        drop(self.child.stdin.take());
        if self.stdout.is_none() {
            // The main job stops on SIGTERM (closing its open connections with 1001).
            // SAFETY: kill(2) with a pid this process spawned and has not yet reaped.
            unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM) };
        }
        for _ in 0..50 {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ---------------------------------------------------------------------------------------------
// Load generator
// ---------------------------------------------------------------------------------------------

/// Opens a connection and performs the opening handshake with a fixed request.
pub async fn connect(port: u16, extensions: Option<&str>) -> io::Result<TcpStream> {
    connect_head(port, extensions).await.map(|(s, _)| s)
}

/// [`connect`], also returning the server's 101 response head.
pub async fn connect_head(port: u16, extensions: Option<&str>) -> io::Result<(TcpStream, String)> {
    let s = TcpStream::connect(("127.0.0.1", port)).await?;
    s.set_nodelay(true)?;
    upgrade_on(s, port, extensions).await
}

/// The opening handshake with a fixed request on a connected stream.
pub async fn upgrade_on<S: Io>(mut s: S, port: u16, extensions: Option<&str>) -> io::Result<(S, String)> {
    let ext = extensions.map(|e| format!("Sec-WebSocket-Extensions: {e}\r\n")).unwrap_or_default();
    let request = format!(
        "GET / HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n{ext}\r\n"
    );
    s.write_all(request.as_bytes()).await?;
    let mut head = Vec::with_capacity(512);
    loop {
        let mut byte = [0u8; 256];
        let n = s.read(&mut byte).await?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        head.extend_from_slice(&byte[..n]);
        if head.ends_with(b"\r\n\r\n") {
            break;
        }
        if head.windows(4).any(|w| w == b"\r\n\r\n") {
            return Err(io::Error::other("bytes after the 101 response"));
        }
    }
    if !head.starts_with(b"HTTP/1.1 101") {
        return Err(io::Error::other(format!("upgrade refused: {}", String::from_utf8_lossy(&head))));
    }
    let text = String::from_utf8_lossy(&head).into_owned();
    if let Some(e) = extensions {
        if e.contains("permessage-deflate") && !text.to_ascii_lowercase().contains("permessage-deflate") {
            return Err(io::Error::other("deflate not negotiated"));
        }
    }
    Ok((s, text))
}

/// Counts complete echoed messages in server (unmasked) frames, skipping payloads.
#[derive(Default)]
pub struct EchoParser {
    remaining: u64,
    in_frame: bool,
    counts: bool,
    /// RSV1 of the first frame of the current message (set: compressed).
    rsv1: bool,
    /// Messages completed whose first frame had RSV1 set.
    pub compressed: u64,
}

impl EchoParser {
    /// Consumes what it can from `buf`; returns the messages completed.
    pub fn feed(&mut self, buf: &mut BytesMut) -> usize {
        let mut done = 0;
        loop {
            if self.in_frame {
                let n = (buf.len() as u64).min(self.remaining);
                buf.advance(n as usize);
                self.remaining -= n;
                if self.remaining > 0 {
                    return done;
                }
                self.in_frame = false;
                done += self.counts as usize;
                self.compressed += (self.counts && self.rsv1) as u64;
            }
            if buf.len() < 2 {
                return done;
            }
            let (b0, b1) = (buf[0], buf[1]);
            assert!(b1 & 0x80 == 0, "server frames are unmasked");
            let (hlen, len) = match b1 & 0x7f {
                126 if buf.len() >= 4 => (4, u64::from(u16::from_be_bytes([buf[2], buf[3]]))),
                127 if buf.len() >= 10 => (10, u64::from_be_bytes(buf[2..10].try_into().expect("8 bytes"))),
                126 | 127 => return done,
                n => (2, u64::from(n)),
            };
            buf.advance(hlen);
            let opcode = b0 & 0x0f;
            self.in_frame = true;
            self.remaining = len;
            self.counts = b0 & 0x80 != 0 && opcode < 8;
            if opcode == OP_TEXT || opcode == OP_BINARY {
                self.rsv1 = b0 & 0x40 != 0;
            }
        }
    }
}

struct Shared {
    completed: Cell<u64>,
    /// Echoes with RSV1 set (compressed).
    compressed: Cell<u64>,
    stop: Cell<bool>,
}

/// One connection: keeps `window` messages in flight, reading echoes and writing a new
/// message per echo, until `stop`.
async fn drive<S: Io>(stream: S, batch: Bytes, frame_len: usize, window: usize, shared: Rc<Shared>) {
    let (mut r, mut w) = tokio::io::split(stream);
    let credits = Cell::new(window);
    let wake = Notify::new();
    let writer = async {
        loop {
            let k = credits.replace(0);
            if k == 0 {
                wake.notified().await;
                continue;
            }
            let mut k = k;
            while k > 0 {
                let m = k.min(window);
                if w.write_all(&batch[..m * frame_len]).await.is_err() {
                    return;
                }
                k -= m;
            }
        }
    };
    let reader = async {
        let mut buf = BytesMut::with_capacity(256 << 10);
        let mut parser = EchoParser::default();
        loop {
            buf.reserve(128 << 10);
            match r.read_buf(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
            let before = parser.compressed;
            let done = parser.feed(&mut buf);
            shared.compressed.set(shared.compressed.get() + parser.compressed - before);
            if done > 0 {
                shared.completed.set(shared.completed.get() + done as u64);
                credits.set(credits.get() + done);
                wake.notify_one();
            }
            if shared.stop.get() {
                return;
            }
        }
    };
    tokio::select! {
        _ = writer => {}
        _ = reader => {}
    }
}

/// Messages per second echoed by the server on `port`.
pub fn echo_cell(
    rt: &tokio::runtime::Runtime,
    port: u16,
    conns: usize,
    window: usize,
    size: usize,
    measure: Duration,
) -> f64 {
    let mut frame = Vec::new();
    push_frame(&mut frame, OP_BINARY, true, false, &binary_payload(size), true);
    frame_cell(rt, port, conns, window, frame, None, measure).rate
}

/// What one cell measured.
pub struct CellResult {
    /// Messages echoed per second.
    pub rate: f64,
    /// Echoes counted over the whole cell, and how many of them had RSV1 set.
    pub echoed: u64,
    pub compressed: u64,
    /// The server's 101 response head (of the first connection).
    pub head: String,
    /// The server's largest VmRSS (KiB) sampled while measuring, if asked for its pid.
    pub peak_rss_kib: u64,
}

/// Messages per second echoed by the server on `port`, sending the pre-built masked `frame`
/// (one whole message) after a handshake offering `extensions`.
pub fn frame_cell(
    rt: &tokio::runtime::Runtime,
    port: u16,
    conns: usize,
    window: usize,
    frame: Vec<u8>,
    extensions: Option<&str>,
    measure: Duration,
) -> CellResult {
    let connect = |port| async move { connect_head(port, extensions).await };
    frame_cell_on(rt, port, conns, window, frame, measure, None, connect)
}

/// [`frame_cell`] without extensions that also samples the VmRSS of the server process `pid`
/// every 50 ms while measuring ([`CellResult::peak_rss_kib`]).
pub fn frame_cell_rss(
    rt: &tokio::runtime::Runtime,
    port: u16,
    pid: u32,
    conns: usize,
    window: usize,
    frame: Vec<u8>,
    measure: Duration,
) -> CellResult {
    let connect = |port| async move { connect_head(port, None).await };
    frame_cell_on(rt, port, conns, window, frame, measure, Some(pid), connect)
}

/// [`frame_cell`] over connections opened by `connect` (plain TCP, or TLS), sampling the
/// RSS of `rss_of` while measuring.
#[allow(clippy::too_many_arguments)]
fn frame_cell_on<S, C, F>(
    rt: &tokio::runtime::Runtime,
    port: u16,
    conns: usize,
    window: usize,
    frame: Vec<u8>,
    measure: Duration,
    rss_of: Option<u32>,
    connect: C,
) -> CellResult
where
    S: Io,
    C: Fn(u16) -> F,
    F: std::future::Future<Output = io::Result<(S, String)>>,
{
    let frame_len = frame.len();
    let batch = Bytes::from(frame.repeat(window));
    let local = tokio::task::LocalSet::new();
    local.block_on(rt, async move {
        let mut streams = Vec::with_capacity(conns);
        let mut head = String::new();
        for _ in 0..conns {
            let (s, h) = connect(port).await.expect("connect");
            streams.push(s);
            head = h;
        }
        let shared =
            Rc::new(Shared { completed: Cell::new(0), compressed: Cell::new(0), stop: Cell::new(false) });
        let tasks: Vec<_> = streams
            .into_iter()
            .map(|s| tokio::task::spawn_local(drive(s, batch.clone(), frame_len, window, shared.clone())))
            .collect();
        // Warm up until every connection could have had its window echoed once.
        let warm_start = Instant::now();
        let warm_min = (conns * window).min(4096) as u64;
        while warm_start.elapsed() < Duration::from_millis(100)
            || (shared.completed.get() < warm_min && warm_start.elapsed() < Duration::from_secs(5))
        {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let c0 = shared.completed.get();
        let t0 = Instant::now();
        let mut peak_rss_kib = 0;
        match rss_of {
            Some(pid) => {
                while t0.elapsed() < measure {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    peak_rss_kib = peak_rss_kib.max(vm_rss_kib(pid));
                }
            }
            None => tokio::time::sleep(measure).await,
        }
        // Large messages: keep measuring until enough messages were seen (bounded).
        let min_msgs = (2 * conns).clamp(20, 1000) as u64;
        while shared.completed.get() - c0 < min_msgs && t0.elapsed() < measure * 8 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let rate = (shared.completed.get() - c0) as f64 / t0.elapsed().as_secs_f64();
        shared.stop.set(true);
        for t in tasks {
            t.abort();
        }
        // Let aborted tasks drop their sockets.
        tokio::task::yield_now().await;
        CellResult {
            rate,
            echoed: shared.completed.get(),
            compressed: shared.compressed.get(),
            head,
            peak_rss_kib,
        }
    })
}

/// The session's cost over the bare codec: echo through `Framed<TcpStream, WsCodec>` with whole
/// messages (`wsproto-whole`) against the same echo through a `Session`, alternating, with the
/// hand-rolled limit beside.
pub fn run_session(settings: Settings) -> String {
    pin_to(1);
    raise_nofile();
    let servers = [
        ServerProc::start(Lib::OursWhole, false),
        ServerProc::start_server(Server::Session, false),
        ServerProc::start_server(Server::Handrolled, false),
    ];
    let rt = current_thread_runtime();
    let rounds = settings.echo_rounds;
    let mut table = Table::new([
        "echo: size, window, conns",
        "wsproto-whole msg/s",
        "wsproto-session msg/s",
        "handrolled msg/s",
        "session / bare",
        "wsproto-whole / limit",
        "wsproto-session / limit",
    ]);
    for size in [16usize, 1 << 10] {
        for window in [1usize, 16] {
            for conns in [1usize, 16] {
                let mut samples = [Vec::new(), Vec::new(), Vec::new()];
                for round in 0..rounds {
                    for k in 0..servers.len() {
                        let i = (k + round) % servers.len();
                        samples[i].push(echo_cell(
                            &rt,
                            servers[i].port,
                            conns,
                            window,
                            size,
                            settings.echo_measure,
                        ));
                    }
                }
                let [bare, session, limit] = samples.each_mut().map(|s| median(s));
                let row = vec![
                    format!("{} w{window} c{conns}", fmt_size(size)),
                    fmt_rate(bare),
                    fmt_rate(session),
                    fmt_rate(limit),
                    ratio(session, bare),
                    ratio(bare, limit),
                    ratio(session, limit),
                ];
                println!("  {}", row.join(" | "));
                table.row(row);
            }
        }
    }
    drop(servers);
    let mut s = String::from(
        "## Session cost (echo over loopback TCP, whole messages: bare `Framed` against `Session`, and the hand-rolled limit; median of rounds)\n\n",
    );
    s.push_str(&table.render());
    s
}

/// The servers of `wanted` that can run (the main job is left out, with a note, when its
/// binary is not built).
fn runnable(wanted: &[Server]) -> Vec<Server> {
    wanted
        .iter()
        .copied()
        .filter(|s| {
            let ok = s.available();
            if !ok {
                eprintln!(
                    "{} left out: build it with `cargo build --release --example echo_server`",
                    main_job_binary().display()
                );
            }
            ok
        })
        .collect()
}

pub fn run_echo(settings: Settings, servers: &[Server]) -> String {
    pin_to(1);
    raise_nofile();
    let servers = runnable(servers);
    let procs: Vec<ServerProc> = servers.iter().map(|&s| ServerProc::start_server(s, false)).collect();
    let rt = current_thread_runtime();
    let sizes = [16usize, 1 << 10, 16 << 10, 1 << 20];
    let table = echo_table(settings, &servers, &sizes, &[1, 16, 256], "echo", |i, conns, window, size| {
        echo_cell(&rt, procs[i].port, conns, window, size, settings.echo_measure)
    });
    drop(procs);
    format!(
        "## Echo over loopback TCP (messages per second; median of rounds)\n\n`handrolled` is the limit (no WebSocket library, no limits: unmask every complete frame of a read into one buffer, one write); `echo_server` is the main job as shipped (its own binary: `Session` with write coalescing; its multi-thread runtime pinned to core 0 like every server, so one worker). Ratios: to the best peer of the cell (named), and to the limit. The limit is a ceiling with several small messages in flight (it answers a whole read with one write); with one 16 KiB message in flight and at 1 MiB, where copying and the socket dominate, it waits for each frame's last byte and copies the frame once more, and libraries match or pass it.\n\n{table}"
    )
}

/// The table of an echo section: for each size, window and connection count, the median over
/// rounds of `cell(server index, conns, window, size)` for every server (alternating, the
/// order rotating each round), and the ratios of ours to the best peer and to the limit.
fn echo_table(
    settings: Settings,
    servers: &[Server],
    sizes: &[usize],
    conn_counts: &[usize],
    what: &str,
    mut cell: impl FnMut(usize, usize, usize, usize) -> f64,
) -> String {
    let rounds = settings.echo_rounds;
    let mut header = vec![format!("{what}: size, window, conns")];
    header.extend(servers.iter().map(|l| format!("{} msg/s", l.name())));
    let ours: Vec<usize> = (0..servers.len()).filter(|&i| servers[i].is_ours()).collect();
    let has_peer = servers.iter().any(|l| l.is_peer());
    let limit = servers.iter().position(|&s| s == Server::Handrolled);
    if has_peer {
        header.extend(ours.iter().map(|&i| format!("{} / best peer", servers[i].name())));
    }
    if limit.is_some() {
        header.extend(ours.iter().map(|&i| format!("{} / limit", servers[i].name())));
        header.extend(has_peer.then(|| "best peer / limit".to_string()));
    }
    let mut table = Table::new(header);
    for &size in sizes {
        for window in [1usize, 16] {
            for &conns in conn_counts {
                let mut samples: Vec<Vec<f64>> = vec![Vec::new(); servers.len()];
                for round in 0..rounds {
                    for k in 0..servers.len() {
                        let i = (k + round) % servers.len();
                        samples[i].push(cell(i, conns, window, size));
                    }
                }
                let rates: Vec<f64> = samples.iter_mut().map(|s| median(s)).collect();
                let mut row = vec![format!("{} w{window} c{conns}", fmt_size(size))];
                row.extend(rates.iter().map(|r| fmt_rate(*r)));
                let best = (0..servers.len())
                    .filter(|&i| servers[i].is_peer())
                    .max_by(|&a, &b| rates[a].partial_cmp(&rates[b]).expect("no NaN"));
                if let Some(best) = best {
                    for &i in &ours {
                        row.push(format!("{} ({})", ratio(rates[i], rates[best]), servers[best].name()));
                    }
                }
                if let Some(limit) = limit {
                    for &i in &ours {
                        row.push(ratio(rates[i], rates[limit]));
                    }
                    if let Some(best) = best {
                        row.push(ratio(rates[best], rates[limit]));
                    }
                }
                println!("  {}", row.join(" | "));
                table.row(row);
            }
        }
    }
    table.render()
}

/// Echo over TLS (tokio-rustls on both sides of loopback, TLS 1.3, the ring provider): the
/// same servers and load as [`run_echo`], each connection wrapped in TLS.
pub fn run_tls_echo(settings: Settings, servers: &[Server]) -> String {
    pin_to(1);
    raise_nofile();
    let servers: Vec<Server> = servers.iter().copied().filter(|s| s.supports_tls()).collect();
    // First: the certificate is made here, before the servers read it.
    let connector = crate::tls::connector();
    let procs: Vec<ServerProc> =
        servers.iter().map(|&s| ServerProc::start_with(s, false, true, None)).collect();
    let rt = current_thread_runtime();
    let sizes = [16usize, 1 << 10, 16 << 10];
    let table = echo_table(settings, &servers, &sizes, &[1, 16], "TLS echo", |i, conns, window, size| {
        let mut frame = Vec::new();
        push_frame(&mut frame, OP_BINARY, true, false, &binary_payload(size), true);
        let connect = |port: u16| {
            let connector = connector.clone();
            async move {
                let tcp = TcpStream::connect(("127.0.0.1", port)).await?;
                tcp.set_nodelay(true)?;
                let tls = connector.connect(crate::tls::server_name(), tcp).await?;
                upgrade_on(tls, port, None).await
            }
        };
        frame_cell_on(&rt, procs[i].port, conns, window, frame, settings.echo_measure, None, connect).rate
    });
    drop(procs);
    format!(
        "## Echo over TLS (tokio-rustls 0.26 with ring on both sides of loopback; messages per second; median of rounds)\n\n`handrolled` (the limit) runs the same unmasking loop on the TLS stream; `echo_server` (no TLS) and wtx (TLS only through its own `tokio-rustls` feature) are not in this table.\n\n{table}"
    )
}
