//! `wsbench`: wsproto side by side with tokio-tungstenite, tokio-websockets and
//! fastwebsockets (decode, encode, loopback echo, permessage-deflate, memory).
//!
//! ```text
//! cargo build --release -p wsproto-bench
//! target/release/wsbench [--quick] [--libs a,b,..] [decode] [encode] [echo] [deflate] [memory]
//! ```
//!
//! With no section named, all run. Each section's table is saved under `target/wsbench/`, and
//! `bench/RESULTS.md` is rebuilt from the machine description and every saved section.

mod common;
mod deflate;
mod echo;
mod inmem;
mod memory;

use std::path::PathBuf;
use std::time::Instant;

use common::{CountingAlloc, Lib, Settings};

#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc;

const SECTIONS: [&str; 5] = ["decode", "encode", "echo", "deflate", "memory"];

fn usage() -> ! {
    eprintln!(
        "usage: wsbench [--quick] [--libs LIB,..] [{}]..\n       wsbench server LIB [--deflate]\n       wsbench load PORT SIZE WINDOW CONNS SECONDS\n       wsbench loop decode|encode|encode-client|deflate-enc|deflate-dec LIB CASE SECONDS\nlibraries: {}",
        SECTIONS.join("|"),
        Lib::ALL.map(Lib::name).join(", ")
    );
    std::process::exit(2)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("server") {
        let lib = args.get(1).and_then(|s| Lib::parse(s)).unwrap_or_else(|| usage());
        echo::server_main(lib, args.iter().any(|a| a == "--deflate"));
        return;
    }
    if args.first().map(String::as_str) == Some("loop") {
        // `wsbench loop decode|encode|encode-client|deflate-enc|deflate-dec LIB CASE SECONDS`:
        // repeats one cell, for `perf record`.
        let what = args.get(1).map(String::as_str).unwrap_or_else(|| usage());
        let lib = args.get(2).and_then(|s| Lib::parse(s)).unwrap_or_else(|| usage());
        let case = args.get(3).cloned().unwrap_or_else(|| usage());
        let secs: f64 = args.get(4).and_then(|s| s.parse().ok()).unwrap_or(5.0);
        inmem::loop_cell(what, lib, &case, secs);
        return;
    }
    if args.first().map(String::as_str) == Some("load") {
        // `wsbench load PORT SIZE WINDOW CONNS SECONDS`: drives a running `wsbench server`.
        let num = |i: usize| -> usize { args.get(i).and_then(|s| s.parse().ok()).unwrap_or_else(|| usage()) };
        common::pin_to(1);
        common::raise_nofile();
        let rt = common::current_thread_runtime();
        let measure = std::time::Duration::from_secs_f64(num(5) as f64);
        let rate = echo::echo_cell(&rt, num(1) as u16, num(4), num(3), num(2), measure);
        println!("{rate:.0} msg/s");
        return;
    }
    let mut quick = false;
    let mut libs: Vec<Lib> = Lib::ALL.to_vec();
    let mut sections: Vec<&str> = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--quick" => quick = true,
            // Rebuild RESULTS.md from the saved sections only.
            "report" => sections.push("report"),
            "--libs" => {
                let list = it.next().unwrap_or_else(|| usage());
                libs = list.split(',').map(|s| Lib::parse(s).unwrap_or_else(|| usage())).collect();
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
    let settings = Settings::new(quick);
    let out_dir = workspace().join("target/wsbench");
    std::fs::create_dir_all(&out_dir).expect("create target/wsbench");
    println!("{}", machine());
    for section in sections {
        println!("== {section}{}", if quick { " (quick)" } else { "" });
        let start = Instant::now();
        let mut text = match section {
            "decode" => inmem::run_decode(settings),
            "encode" => inmem::run_encode(settings),
            "echo" => echo::run_echo(settings, &libs),
            "deflate" => deflate::run_deflate(settings),
            "memory" => memory::run_memory(settings),
            _ => unreachable!(),
        };
        text.push_str(&format!(
            "\n_{}run: {:.0} s, {} round(s) per cell._\n",
            if quick { "quick " } else { "" },
            start.elapsed().as_secs_f64(),
            if section == "echo" || section == "memory" {
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
    report.push_str(&machine());
    report.push_str(METHOD);
    for section in SECTIONS {
        if let Ok(text) = std::fs::read_to_string(out_dir.join(format!("{section}.md"))) {
            report.push('\n');
            report.push_str(&text);
        }
    }
    let path = workspace().join("bench/RESULTS.md");
    std::fs::write(&path, report).expect("write RESULTS.md");
    println!("wrote {}", path.display());
}

fn workspace() -> PathBuf {
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
        "Machine: {nproc} cores (`nproc`), {model}, Linux {}. Peers: tokio-tungstenite {}, tokio-websockets {}, fastwebsockets {}; tokio {}, flate2 {} (zlib-rs {}).\n",
        kernel.trim(),
        version("tokio-tungstenite"),
        version("tokio-websockets"),
        version("fastwebsockets"),
        version("tokio"),
        version("flate2"),
        version("zlib-rs"),
    )
}

const METHOD: &str = r#"
## Method

`cargo build --release -p wsproto-bench && target/release/wsbench` (add `--quick` for a short
run, name sections to run only those: `decode encode echo deflate memory`; `report` only
rebuilds this file from the saved sections in `target/wsbench/`). Every library runs
on a current-thread tokio runtime with its default limits (frame 16 MiB / message 64 MiB where
configurable) through its normal API: wsproto `Framed<T, WsCodec>` with `StreamExt::next` /
`SinkExt::send`; tokio-tungstenite `WebSocketStream` (`next`/`send`); tokio-websockets
`WebSocketStream` (`next`/`send`); fastwebsockets `FragmentCollector` (`read_frame`/`write_frame`).
Libraries alternate within each round (rotating the order); each cell is the median of the rounds.

- **wsproto** is the default configuration (data delivered in chunks as it arrives: one event per
  frame here since frames arrive whole, one per fragment for fragmented messages);
  **wsproto-whole** is `WsCodec::whole_messages(true)` (whole frames, whole messages), the
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
- **Deflate**: see the section. No peer here negotiates permessage-deflate, so there is no
  compressed echo comparison yet (yawc would be one).
- **Ratios** are against the fastest peer of each cell. On this 2-core machine two identical
  servers differ by up to ±15% run to run, and the maximum of three peers is biased upwards by
  that noise: echo ratios between about 0.9 and 1.1 are within noise.
- **Memory**: a fresh server process per measurement; connections are opened through each
  library's own server handshake (wsproto: `upgrade::accept`/`upgrade::server`), each echoes
  one 16 B text message and stays idle; VmRSS of the server from `/proc/<pid>/status` at two
  connection counts, slope = bytes per connection. fastwebsockets has no handshake without
  hyper: its server reads the request head into a heap buffer freed before `after_handshake`.
"#;
