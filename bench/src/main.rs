//! `wsbench`: wsproto side by side with tokio-tungstenite, tokio-websockets and
//! fastwebsockets (decode, encode, loopback echo, permessage-deflate, broadcast fan-out, memory),
//! plus yawc, wtx and sockudo-ws over sockets (echo, memory), against a hand-rolled echo with
//! no library (the limit).
//!
//! ```text
//! cargo build --release -p wsproto-bench
//! cargo build --release --example echo_server   # the main job, a column of the echo section
//! target/release/wsbench [--quick] [--libs a,b,..] [decode] [encode] [echo] [session] [tls-echo] [deflate] [deflate-echo] [fanout] [memory] [report]
//! ```
//!
//! With no section named, all run. Each section's table is saved under `target/wsbench/`, and
//! `bench/RESULTS.md` is rebuilt from the machine description, every saved section (each table
//! followed by its chart, drawn into `bench/charts/`), and the hand-written before/after
//! comparisons of `bench/HISTORY.md`.

mod charts;
mod common;
mod deflate;
mod deflate_echo;
mod echo;
mod fanout;
mod inmem;
mod memory;
mod tls;

use std::path::PathBuf;
use std::time::Instant;

use common::{CountingAlloc, Lib, Settings};

#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc;

const SECTIONS: [&str; 9] =
    ["decode", "encode", "echo", "session", "tls-echo", "deflate", "deflate-echo", "fanout", "memory"];

fn usage() -> ! {
    eprintln!(
        "usage: wsbench [--quick] [--libs SERVER,..] [{}|report]..\n       wsbench server SERVER [--deflate] [--tls]\n       wsbench load PORT SIZE WINDOW CONNS SECONDS [--deflate [--takeover]]\n       wsbench loop decode|encode|encode-client|encode-session|echo-session|echo-framed|deflate-enc|deflate-dec LIB CASE SECONDS\nservers (--libs filters the echo and TLS echo sections): {}\nlibraries (loop): {}",
        SECTIONS.join("|"),
        echo::Server::ALL.map(echo::Server::name).join(", "),
        Lib::ALL.map(Lib::name).join(", ")
    );
    std::process::exit(2)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("server") {
        let server = args.get(1).and_then(|s| echo::Server::parse(s)).unwrap_or_else(|| usage());
        echo::server_main(server, args.iter().any(|a| a == "--deflate"), args.iter().any(|a| a == "--tls"));
        return;
    }
    if args.first().map(String::as_str) == Some("loop") {
        // `wsbench loop decode|encode|encode-client|encode-session|echo-session|echo-framed|deflate-enc|deflate-dec LIB CASE SECONDS`:
        // repeats one cell, for `perf record`.
        let what = args.get(1).map(String::as_str).unwrap_or_else(|| usage());
        let lib = args.get(2).and_then(|s| Lib::parse(s)).unwrap_or_else(|| usage());
        let case = args.get(3).cloned().unwrap_or_else(|| usage());
        let secs: f64 = args.get(4).and_then(|s| s.parse().ok()).unwrap_or(5.0);
        inmem::loop_cell(what, lib, &case, secs);
        return;
    }
    if args.first().map(String::as_str) == Some("load") {
        // `wsbench load PORT SIZE WINDOW CONNS SECONDS [--deflate [--takeover]]`: drives a running
        // `wsbench server` (with `--deflate`: compressed JSON text frames, see `deflate_echo`).
        let num = |i: usize| -> usize { args.get(i).and_then(|s| s.parse().ok()).unwrap_or_else(|| usage()) };
        common::pin_to(1);
        common::raise_nofile();
        let rt = common::current_thread_runtime();
        let measure = std::time::Duration::from_secs_f64(num(5) as f64);
        let rate = if args.iter().any(|a| a == "--deflate") {
            let frame = deflate_echo::compressed_frame(common::json_payload(num(2)).as_bytes());
            // `--takeover`: the server keeps its compression context (the second table).
            let offer = Some(if args.iter().any(|a| a == "--takeover") {
                deflate_echo::OFFER_SERVER_TAKEOVER
            } else {
                deflate_echo::OFFER
            });
            let r = echo::frame_cell(&rt, num(1) as u16, num(4), num(3), frame, offer, measure);
            println!(
                "{} of {} echoes compressed; 101 response:\n{}",
                r.compressed,
                r.echoed,
                r.head.trim_end()
            );
            r.rate
        } else {
            echo::echo_cell(&rt, num(1) as u16, num(4), num(3), num(2), measure)
        };
        println!("{rate:.0} msg/s");
        return;
    }
    let mut quick = false;
    let mut rounds: Option<usize> = None;
    // `--libs`: which servers the echo sections run (all by default).
    let mut servers: Vec<echo::Server> = echo::ECHO_SERVERS.to_vec();
    let mut sections: Vec<&str> = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--quick" => quick = true,
            // Rounds of the echo-like sections (echo, session, tls-echo, deflate-echo).
            "--rounds" => rounds = Some(it.next().and_then(|n| n.parse().ok()).unwrap_or_else(|| usage())),
            // Rebuild RESULTS.md from the saved sections only.
            "report" => sections.push("report"),
            // Only the memory section's in-process deflate table, printed (nothing saved).
            "deflate-config" => {
                println!("{}", memory::config_table(Settings::new(quick)));
                return;
            }
            "--libs" => {
                let list = it.next().unwrap_or_else(|| usage());
                let wanted: Vec<echo::Server> =
                    list.split(',').map(|s| echo::Server::parse(s).unwrap_or_else(|| usage())).collect();
                servers = echo::ECHO_SERVERS.into_iter().filter(|s| wanted.contains(s)).collect();
            }
            s => match SECTIONS.iter().find(|&&x| x == s) {
                Some(x) => sections.push(x),
                None => usage(),
            },
        }
    }
    if sections.is_empty() {
        sections = SECTIONS.to_vec();
    }
    sections.retain(|&s| s != "report");
    let mut settings = Settings::new(quick);
    if let Some(rounds) = rounds {
        settings.echo_rounds = rounds;
    }
    let out_dir = workspace().join("target/wsbench");
    std::fs::create_dir_all(&out_dir).expect("create target/wsbench");
    // Before any section pins this thread to one core (which `nproc` would then report).
    let machine = machine();
    println!("{machine}");
    for section in sections {
        println!("== {section}{}", if quick { " (quick)" } else { "" });
        let start = Instant::now();
        let mut text = match section {
            "decode" => inmem::run_decode(settings),
            "encode" => inmem::run_encode(settings),
            "echo" => echo::run_echo(settings, &servers),
            "session" => echo::run_session(settings),
            "tls-echo" => echo::run_tls_echo(settings, &servers),
            "deflate" => deflate::run_deflate(settings),
            "deflate-echo" => deflate_echo::run_deflate_echo(settings),
            "fanout" => fanout::run_fanout(settings),
            "memory" => memory::run_memory(settings),
            _ => unreachable!(),
        };
        text.push_str(&format!(
            "\n_{}run: {:.0} s, {} round(s) per cell._\n",
            if quick { "quick " } else { "" },
            start.elapsed().as_secs_f64(),
            if ["echo", "session", "tls-echo", "deflate-echo"].contains(&section) {
                settings.echo_rounds
            } else if ["fanout", "memory"].contains(&section) {
                if quick {
                    1
                } else {
                    3
                }
            } else {
                settings.rounds
            }
        ));
        println!("\n{text}");
        std::fs::write(out_dir.join(format!("{section}.md")), &text).expect("write section");
    }
    let mut report = String::from("# wsproto benchmark results\n\n");
    report.push_str(&machine);
    report.push_str(METHOD);
    // Charts beside the tables, drawn again from the saved sections.
    let charts_dir = workspace().join("bench/charts");
    std::fs::create_dir_all(&charts_dir).expect("create bench/charts");
    charts::clear(&charts_dir);
    for section in SECTIONS {
        if let Ok(text) = std::fs::read_to_string(out_dir.join(format!("{section}.md"))) {
            report.push('\n');
            report.push_str(&charts::with_charts(section, &text, &charts_dir));
        }
    }
    // Hand-written before/after comparisons (not regenerated) go last.
    if let Ok(history) = std::fs::read_to_string(workspace().join("bench/HISTORY.md")) {
        report.push('\n');
        report.push_str(&history);
    }
    let path = workspace().join("bench/RESULTS.md");
    std::fs::write(&path, report).expect("write RESULTS.md");
    println!("wrote {}", path.display());
}

pub(crate) fn workspace() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    dir.canonicalize().unwrap_or(dir)
}

fn machine() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name").and_then(|r| r.split_once(':')).map(|(_, m)| m.trim()))
        .unwrap_or("unknown")
        .to_string();
    let nproc = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0);
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let lock = std::fs::read_to_string(workspace().join("Cargo.lock")).unwrap_or_default();
    let version = |name: &str| -> String {
        let pat = format!("name = \"{name}\"\nversion = \"");
        lock.find(&pat)
            .map(|i| lock[i + pat.len()..].split('"').next().unwrap_or("?").to_string())
            .unwrap_or_else(|| "?".into())
    };
    format!(
        "Machine: {nproc} cores (`nproc`), {model}, Linux {}. Peers: tokio-tungstenite {}, tokio-websockets {}, fastwebsockets {}, yawc {}, wtx {}, sockudo-ws {}; tokio {}, flate2 {} (zlib-rs {}).\n",
        kernel.trim(),
        version("tokio-tungstenite"),
        version("tokio-websockets"),
        version("fastwebsockets"),
        version("yawc"),
        version("wtx"),
        version("sockudo-ws"),
        version("tokio"),
        version("flate2"),
        version("zlib-rs"),
    )
}

const METHOD: &str = r#"
## Method

`cargo build --release --example echo_server && cargo build --release -p wsproto-bench && target/release/wsbench`
(add `--quick` for a short run, name sections to run only those: `decode encode echo session tls-echo deflate deflate-echo fanout memory`;
`--libs a,b,..` keeps only those servers in the echo and TLS echo tables; `report` only
rebuilds this file and its charts from the saved sections in `target/wsbench/`). Every library runs
on a current-thread tokio runtime with its default limits (frame 16 MiB / message 64 MiB where
configurable) through its normal API: wsproto `Framed<T, WsCodec>` with `StreamExt::next` /
`SinkExt::send`; tokio-tungstenite `WebSocketStream` (`next`/`send`); tokio-websockets
`WebSocketStream` (`next`/`send`); fastwebsockets `FragmentCollector` (`read_frame`/`write_frame`);
over sockets only (echo, TLS echo, memory): yawc `WebSocket` (`next`/`send`; its limits raised to
frame 16 MiB / message 64 MiB, its own default of 1 MiB refusing the 1 MiB cells), wtx 0.46
`WebSocketAcceptor` (`read_frame`/`write_frame` of its split parts; not over TLS), sockudo-ws
`WebSocketServer::<Http1>::accept_raw` (`next`/`send`, default `Config`).
Libraries alternate within each round (rotating the order); each cell is the median of the rounds.
Each table with messages per second, MB/s or bytes per connection is followed by a chart of it
(`bench/charts/<section>.svg`, then `<section>-2.svg`, …; log scales), drawn by `wsbench report`
from the saved tables.

- **wsproto** is the default configuration (data delivered in chunks as it arrives: one event per
  frame here since frames arrive whole, one per fragment for fragmented messages);
  **wsproto-whole** is `Delivery::Messages` (whole messages, the upgrade helper's default), the
  delivery the peers have.
- **Decode**: a block of about 1 MiB of pre-built masked client frames, served repeatedly
  (so it stays cache-resident, like socket data just written by the peer) by an in-memory
  `AsyncRead` handing out at most 64 KiB per read; the server-role stream reads every message.
  That copy out of the reader is every library's largest cost at 64 KiB and above.
  Text cases contain 2-, 3- and 4-byte UTF-8 characters (validation counts).
- **Encode**: `send` of each binary message into an `AsyncWrite` that copies every write into
  a 64 KiB scratch buffer (as a socket write copies into the kernel) and discards it; server
  role (unmasked) and client role (masked). Libraries that write large payloads with vectored
  writes skip their own copy into a write buffer, and that shows.
- **Echo**: one server process per library (`wsbench server <lib>`, pinned to core 0), each
  connection handled by the library's own future spawned on a current-thread runtime. The load
  generator (this binary, pinned to core 1) is neutral: a fixed HTTP upgrade request, then
  pre-built masked binary frames, keeping `w` messages in flight per connection (one new
  message per echo), `c` connections; echoes are counted by parsing frame headers only.
  Warm-up, then messages per second over the measured interval (longer for slow cells).
- **TLS echo**: the echo above with every connection in TLS 1.3 (tokio-rustls 0.26, ring
  provider, a self-signed ECDSA P-256 certificate made by rcgen, trusted by the load
  generator): each library's server wraps the accepted TCP stream in `TlsAcceptor::accept`
  and runs its usual handshake and echo on the TLS stream.
- **Session**: the same echo (whole messages) through a bare `Framed<TcpStream, WsCodec>`
  (`wsproto-whole`) and through `session::Session` (`wsproto-session`: automatic replies,
  keepalive timer, timeouts), alternating; the ratio is the session's cost.
- **Deflate**: see the section (our compressed encode/decode against flate2 alone).
- **Compressed echo**: wsproto (`wsbench server wsproto --deflate`) against yawc
  (`wsbench server yawc`, the only peer here with permessage-deflate), same echo method; the
  load generator offers `client_no_context_takeover` and `server_no_context_takeover` and
  sends one pre-built compressed (RSV1) masked text frame repeatedly; see the section.
- **The limit** (`handrolled`): no WebSocket library and no limits, same runtime: the fixed
  upgrade answer, then per read every complete frame unmasked into one output buffer (header
  rewritten unmasked), written at once (coalesced writes), a partial frame kept for the next
  read. No library can beat it by much on this echo; `/ limit` columns say how far each is.
- **echo_server** is the main job as shipped (the crate's `echo_server` example: `Session`
  with write coalescing, deflate offered and not negotiated), started on core 0 like every
  server: its multi-thread runtime sizes itself to that one core (one worker). Unpinned, its
  threads share the load generator's core at random and the cells turn bimodal.
- **Ratios** are against the fastest peer of each cell (peers: tokio-tungstenite,
  tokio-websockets, fastwebsockets, yawc, wtx, sockudo-ws; never `handrolled` or ours), and
  against the limit. On this 2-core machine two identical
  servers differ by up to ±15% run to run, and the maximum of six peers is biased upwards by
  that noise: echo ratios between about 0.9 and 1.1 are within noise.
- **Fan-out**: one server task (its own thread, pinned to core 0) holds 1,000 connections and
  sends each new message to all of them in turn with the library's `send`; neutral readers on
  core 1 count the messages delivered; the server thread's CPU time per delivered message comes
  from `CLOCK_THREAD_CPUTIME_ID`. wsproto sends a `PreparedMessage` (framed, and compressed, once
  per broadcast) or a `TextMessage` per connection; see the section.
- **Memory**: a fresh server process per measurement; connections are opened through each
  library's own server handshake (wsproto: `upgrade::accept`/`upgrade::server`), each echoes
  one 16 B text message and stays idle; VmRSS of the server from `/proc/<pid>/status` at two
  connection counts, slope = bytes per connection. fastwebsockets has no handshake without
  hyper: its server reads the request head into a heap buffer freed before `after_handshake`.
"#;
