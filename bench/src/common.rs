//! Shared pieces: in-memory transports, frame building, payloads, statistics, process helpers.

use std::alloc::{GlobalAlloc, Layout, System};
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicIsize, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Most bytes one `poll_read` of [`MemStream`] hands out (like one large socket read).
pub const READ_CHUNK: usize = 64 << 10;

/// The masking key of every pre-built client frame.
pub const MASK: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

/// The libraries under test. `Ours` delivers chunks (`Delivery::DEFAULT_CHUNKS`, the core's
/// default); `OursWhole` delivers whole messages (`Delivery::Messages`, the upgrade helper's
/// default), the same delivery as the peers.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
pub enum Lib {
    Ours,
    OursWhole,
    Tungstenite,
    TokioWs,
    Fws,
}

impl Lib {
    pub const ALL: [Lib; 5] = [Lib::Ours, Lib::OursWhole, Lib::Tungstenite, Lib::TokioWs, Lib::Fws];
    pub const PEERS: [Lib; 3] = [Lib::Tungstenite, Lib::TokioWs, Lib::Fws];

    /// Our delivery for this variant (peers: unused).
    pub fn delivery(self) -> wsproto::Delivery {
        match self {
            Lib::OursWhole => wsproto::Delivery::Messages,
            _ => wsproto::Delivery::DEFAULT_CHUNKS,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Lib::Ours => "wsproto",
            Lib::OursWhole => "wsproto-whole",
            Lib::Tungstenite => "tokio-tungstenite",
            Lib::TokioWs => "tokio-websockets",
            Lib::Fws => "fastwebsockets",
        }
    }

    pub fn parse(s: &str) -> Option<Lib> {
        Lib::ALL.into_iter().find(|l| l.name() == s)
    }

    pub fn is_peer(self) -> bool {
        Lib::PEERS.contains(&self)
    }
}

/// An in-memory `AsyncRead + AsyncWrite`: reads come from a prepared buffer, at most
/// [`READ_CHUNK`] bytes per call; writes are copied into a small scratch buffer (as a socket
/// write copies into the kernel: libraries that write payloads in place with vectored writes
/// are not credited with a copy no real transport skips), counted and discarded.
pub struct MemStream {
    input: Bytes,
    pos: usize,
    /// Further times `input` is served after this pass.
    repeats: usize,
    pub written: u64,
    scratch: Vec<u8>,
    /// Return `Pending` (and wake at once) before serving each further pass, as a socket
    /// read does once the bytes in it are taken: the reader parks between batches.
    pub park_between_passes: bool,
    parked: bool,
}

const SCRATCH: usize = 64 << 10;

impl MemStream {
    pub fn new(input: Bytes) -> Self {
        Self::repeating(input, 1)
    }

    /// Serves `input` `times` times in a row (a small input stays cache-resident, as the
    /// bytes of a socket just written by the peer would be).
    pub fn repeating(input: Bytes, times: usize) -> Self {
        MemStream {
            input,
            pos: 0,
            repeats: times.saturating_sub(1),
            written: 0,
            scratch: Vec::new(),
            park_between_passes: false,
            parked: false,
        }
    }

    fn absorb(&mut self, mut buf: &[u8]) {
        if self.scratch.is_empty() {
            self.scratch = vec![0; SCRATCH];
        }
        while !buf.is_empty() {
            let n = buf.len().min(SCRATCH);
            self.scratch[..n].copy_from_slice(&buf[..n]);
            std::hint::black_box(&mut self.scratch);
            buf = &buf[n..];
        }
    }

    pub fn sink() -> Self {
        Self::new(Bytes::new())
    }
}

impl AsyncRead for MemStream {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.pos == this.input.len() && this.repeats > 0 {
            if this.park_between_passes && !std::mem::take(&mut this.parked) {
                this.parked = true;
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
            this.repeats -= 1;
            this.pos = 0;
        }
        let n = buf.remaining().min(READ_CHUNK).min(this.input.len() - this.pos);
        buf.put_slice(&this.input[this.pos..this.pos + n]);
        this.pos += n;
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for MemStream {
    fn poll_write(self: Pin<&mut Self>, _cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        this.absorb(buf);
        this.written += buf.len() as u64;
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let n: usize = bufs.iter().map(|b| b.len()).sum();
        for b in bufs {
            this.absorb(b);
        }
        this.written += n as u64;
        Poll::Ready(Ok(n))
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

pub const OP_CONT: u8 = 0x0;
pub const OP_TEXT: u8 = 0x1;
pub const OP_BINARY: u8 = 0x2;

/// Appends one frame to `out`; masked with [`MASK`] when `masked`.
pub fn push_frame(out: &mut Vec<u8>, opcode: u8, fin: bool, rsv1: bool, payload: &[u8], masked: bool) {
    let mut b0 = opcode;
    if fin {
        b0 |= 0x80;
    }
    if rsv1 {
        b0 |= 0x40;
    }
    out.push(b0);
    let m = if masked { 0x80 } else { 0 };
    let len = payload.len();
    if len < 126 {
        out.push(m | len as u8);
    } else if len <= 0xffff {
        out.push(m | 126);
        out.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        out.push(m | 127);
        out.extend_from_slice(&(len as u64).to_be_bytes());
    }
    if masked {
        out.extend_from_slice(&MASK);
        out.extend(payload.iter().enumerate().map(|(i, b)| b ^ MASK[i & 3]));
    } else {
        out.extend_from_slice(payload);
    }
}

/// A whole message as masked client frames, split in `fragments` frames.
pub fn push_message(out: &mut Vec<u8>, opcode: u8, payload: &[u8], fragments: usize) {
    if fragments <= 1 {
        push_frame(out, opcode, true, false, payload, true);
        return;
    }
    let step = payload.len().div_ceil(fragments);
    let mut chunks = payload.chunks(step).peekable();
    let mut first = true;
    while let Some(chunk) = chunks.next() {
        let op = if first { opcode } else { OP_CONT };
        push_frame(out, op, chunks.peek().is_none(), false, chunk, true);
        first = false;
    }
}

/// Deterministic pseudo-random bytes.
pub fn binary_payload(len: usize) -> Vec<u8> {
    binary_payload_seeded(len, 0)
}

/// Deterministic pseudo-random bytes, a different run per seed.
pub fn binary_payload_seeded(len: usize, seed: u64) -> Vec<u8> {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15 ^ seed.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// Valid UTF-8 of exactly `len` bytes, mostly ASCII with 2-, 3- and 4-byte characters.
pub fn text_payload(len: usize) -> String {
    const PIECES: [&str; 6] = [
        "{\"name\":\"Zoë\",",
        "\"city\":\"Kraków\",",
        "\"note\":\"naïve café\",",
        "\"sym\":\"→✓€\",",
        "\"emoji\":\"🙂\",",
        "\"n\":12345}\n",
    ];
    let mut s = String::with_capacity(len + 32);
    let mut i = 0;
    while s.len() < len {
        let piece = PIECES[i % PIECES.len()];
        if s.len() + piece.len() > len {
            break;
        }
        s.push_str(piece);
        i += 1;
    }
    while s.len() < len {
        s.push(' ');
    }
    s
}

/// Compressible JSON-like text of exactly `len` bytes (ASCII).
pub fn json_payload(len: usize) -> String {
    json_payload_seeded(len, 12345)
}

/// Like [`json_payload`], with different records for each `seed`.
pub fn json_payload_seeded(len: usize, seed: u32) -> String {
    const NAMES: [&str; 8] = ["alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi"];
    let mut s = String::from("[");
    let mut x: u32 = seed.wrapping_mul(2_654_435_761).wrapping_add(12345);
    let mut id = seed.wrapping_mul(977) % 100_000;
    while s.len() < len {
        x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
        let name = NAMES[(x >> 16) as usize % NAMES.len()];
        s.push_str(&format!(
            "{{\"id\":{id},\"user\":\"{name}\",\"email\":\"{name}{}@example.com\",\"active\":{},\"score\":{}.{},\"tags\":[\"t{}\",\"beta\"]}},",
            x % 1000,
            (x >> 3) & 1 == 1,
            (x >> 8) % 100,
            (x >> 4) % 100,
            (x >> 12) % 16
        ));
        id += 1;
    }
    s.truncate(len);
    s
}

/// A deterministic chat corpus: `n` JSON events as a chat server broadcasts them (mostly
/// messages of a few to a few dozen words, some typing, presence and reaction events).
pub fn chat_corpus(n: usize) -> Vec<String> {
    const USERS: [&str; 12] = [
        "alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi", "ivan", "judy", "mallory",
        "oscar",
    ];
    const ROOMS: [&str; 4] = ["general", "random", "dev-backend", "support"];
    const WORDS: [&str; 64] = [
        "the", "a", "to", "and", "is", "it", "of", "in", "for", "on", "that", "this", "with", "you", "we",
        "i", "can", "just", "not", "be", "are", "have", "do", "so", "but", "if", "deploy", "build", "test",
        "merge", "branch", "review", "lunch", "meeting", "today", "tomorrow", "thanks", "ok", "sure", "yes",
        "no", "maybe", "server", "client", "latency", "bug", "fix", "release", "docs", "coffee", "later",
        "please", "looks", "good", "ship", "it!", "broken", "again", "works", "now", "😀", "👍", "ci",
        "prod",
    ];
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let mut ts: u64 = 1_764_489_600_000;
    (0..n)
        .map(|i| {
            let r = next();
            ts += r % 5000;
            let user_i = (r >> 8) as usize % USERS.len();
            let user = USERS[user_i];
            let room = ROOMS[(r >> 16) as usize % ROOMS.len()];
            match (r >> 24) % 10 {
                0 => format!("{{\"type\":\"typing\",\"room\":\"{room}\",\"user\":{{\"id\":{},\"name\":\"{user}\"}},\"ts\":{ts}}}", 1000 + user_i),
                1 => format!("{{\"type\":\"presence\",\"user\":{{\"id\":{},\"name\":\"{user}\"}},\"status\":\"{}\",\"ts\":{ts}}}", 1000 + user_i, ["online", "away", "offline"][(r >> 32) as usize % 3]),
                2 => format!("{{\"type\":\"reaction\",\"room\":\"{room}\",\"message_id\":\"m{:06}\",\"user\":{{\"id\":{},\"name\":\"{user}\"}},\"emoji\":\"{}\",\"ts\":{ts}}}", i.saturating_sub((r >> 40) as usize % 20), 1000 + user_i, ["👍", "🎉", "😂", "❤️"][(r >> 44) as usize % 4]),
                _ => {
                    let words = 3 + (next() % 30) as usize;
                    let text: Vec<&str> = (0..words).map(|_| WORDS[(next() % WORDS.len() as u64) as usize]).collect();
                    format!(
                        "{{\"type\":\"message\",\"id\":\"m{i:06}\",\"room\":\"{room}\",\"user\":{{\"id\":{},\"name\":\"{user}\",\"avatar\":\"https://cdn.example.com/avatars/{user}.png\"}},\"text\":\"{}\",\"ts\":{ts},\"edited\":false,\"reply_to\":null}}",
                        1000 + user_i,
                        text.join(" ")
                    )
                }
            }
        })
        .collect()
}

pub fn median(values: &mut [f64]) -> f64 {
    values.sort_by(|a, b| a.partial_cmp(b).expect("no NaN"));
    let n = values.len();
    if n == 0 {
        return f64::NAN;
    }
    if n % 2 == 1 {
        values[n / 2]
    } else {
        (values[n / 2 - 1] + values[n / 2]) / 2.0
    }
}

/// Times `f`, returning seconds.
pub fn time<R>(f: impl FnOnce() -> R) -> (f64, R) {
    let start = Instant::now();
    let r = f();
    (start.elapsed().as_secs_f64(), r)
}

/// Pins the calling thread to CPU `index` (modulo the machine's online CPUs), whatever
/// affinity it inherited; false if there is one CPU or the call fails.
///
/// Counted over the machine, not over the inherited mask: a server the load generator starts
/// inherits its core 1 only, and picking "the first allowed core" (as `core_affinity`'s list
/// does) kept every such server on the load generator's core.
pub fn pin_to(index: usize) -> bool {
    // SAFETY: sysconf with a valid name.
    let cpus = unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) };
    if cpus < 2 {
        return false;
    }
    pin_to_cpu(index % cpus as usize).is_ok()
}

/// Restricts the calling thread (or, before `exec`, the process) to CPU `cpu`. Only makes
/// system calls, so it may run in `Command::pre_exec`.
pub fn pin_to_cpu(cpu: usize) -> io::Result<()> {
    // SAFETY: a zeroed `cpu_set_t` is a valid empty set; CPU_SET and sched_setaffinity get
    // pointers to that local.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        if libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Raises the soft open-files limit to the hard limit; returns the new soft limit.
pub fn raise_nofile() -> u64 {
    // SAFETY: getrlimit/setrlimit with a valid pointer to a local struct.
    unsafe {
        let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return 0;
        }
        lim.rlim_cur = lim.rlim_max;
        libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim);
        lim.rlim_cur
    }
}

/// VmRSS of `pid`, in KiB.
pub fn vm_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

pub fn current_thread_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().expect("tokio runtime")
}

pub fn fmt_rate(msgs_per_s: f64) -> String {
    if msgs_per_s >= 1e6 {
        format!("{:.2} M", msgs_per_s / 1e6)
    } else if msgs_per_s >= 1e3 {
        format!("{:.1} k", msgs_per_s / 1e3)
    } else {
        format!("{msgs_per_s:.0}")
    }
}

pub fn fmt_size(bytes: usize) -> String {
    if bytes >= 1 << 20 && bytes.is_multiple_of(1 << 20) {
        format!("{} MiB", bytes >> 20)
    } else if bytes >= 1 << 10 && bytes.is_multiple_of(1 << 10) {
        format!("{} KiB", bytes >> 10)
    } else {
        format!("{bytes} B")
    }
}

/// Bench settings shared by the sections.
#[derive(Clone, Copy, Debug)]
pub struct Settings {
    pub quick: bool,
    /// Rounds (runs per library per cell, alternating libraries).
    pub rounds: usize,
    /// Measured time per echo cell and library.
    pub echo_measure: Duration,
    /// Rounds of the echo-like sections (`--rounds N`; 1 quick, 3 otherwise).
    pub echo_rounds: usize,
}

impl Settings {
    pub fn new(quick: bool) -> Self {
        if quick {
            Settings { quick, rounds: 3, echo_measure: Duration::from_millis(250), echo_rounds: 1 }
        } else {
            Settings { quick, rounds: 7, echo_measure: Duration::from_millis(500), echo_rounds: 3 }
        }
    }
}

/// A markdown table builder.
pub struct Table {
    header: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new<S: Into<String>>(header: impl IntoIterator<Item = S>) -> Self {
        Table { header: header.into_iter().map(Into::into).collect(), rows: Vec::new() }
    }

    pub fn row(&mut self, row: Vec<String>) {
        self.rows.push(row);
    }

    pub fn render(&self) -> String {
        let mut s = String::new();
        s.push_str(&format!("| {} |\n", self.header.join(" | ")));
        s.push_str(&format!("|{}\n", self.header.iter().map(|_| "---|").collect::<String>()));
        for r in &self.rows {
            s.push_str(&format!("| {} |\n", r.join(" | ")));
        }
        s
    }
}

/// `ours / best` as "1.23×", with the name of the best peer.
pub fn ratio(ours: f64, peer: f64) -> String {
    if peer > 0.0 && ours.is_finite() && peer.is_finite() {
        format!("{:.2}×", ours / peer)
    } else {
        "–".into()
    }
}

/// The system allocator, counting live heap bytes and blocks (for the memory section: the
/// servers report them on request, which separates what a library keeps from what the
/// allocator keeps).
pub struct CountingAlloc;

static LIVE_BYTES: AtomicIsize = AtomicIsize::new(0);
static LIVE_BLOCKS: AtomicIsize = AtomicIsize::new(0);

// SAFETY: forwards to `System`, only counting.
unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = System.alloc(layout);
        if !p.is_null() {
            LIVE_BYTES.fetch_add(layout.size() as isize, Ordering::Relaxed);
            LIVE_BLOCKS.fetch_add(1, Ordering::Relaxed);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout);
        LIVE_BYTES.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        LIVE_BLOCKS.fetch_sub(1, Ordering::Relaxed);
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let p = System.alloc_zeroed(layout);
        if !p.is_null() {
            LIVE_BYTES.fetch_add(layout.size() as isize, Ordering::Relaxed);
            LIVE_BLOCKS.fetch_add(1, Ordering::Relaxed);
        }
        p
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let p = System.realloc(ptr, layout, new_size);
        if !p.is_null() {
            LIVE_BYTES.fetch_add(new_size as isize - layout.size() as isize, Ordering::Relaxed);
        }
        p
    }
}

/// Live heap bytes and blocks of this process.
pub fn heap_live() -> (i64, i64) {
    (LIVE_BYTES.load(Ordering::Relaxed) as i64, LIVE_BLOCKS.load(Ordering::Relaxed) as i64)
}
