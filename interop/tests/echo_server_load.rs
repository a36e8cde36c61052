//! The main job under load, against a third-party client: `examples/echo_server.rs` (the
//! multi-thread runtime) as a child process, 500 Python `websockets` clients with
//! permessage-deflate and context takeover both ways, mixed sizes (0 B to 300 KiB, text and
//! binary, one message in four fragmented), every echo checked byte for byte, and idle pauses
//! between messages (`load_clients.py`): with hundreds of connections and 4 states of each kind
//! in the server's `DeflatePool`, a connection's compressor and inflater are taken by others
//! while it is idle, so its next message runs on a rebuilt state primed from its history
//! (the pool releases by message, not by time: no clock to wait for).
//!
//! And, ignored (a measurement, printed): the server's memory before, at the peak of and after
//! a burst of large messages with faulty peers beside it, its heap as glibc sees it, and RSS
//! after `malloc_trim(0)` (through gdb).
//!
//! Needs `python3` with the `websockets` package (`.ci/run` installs it). Unix only.
#![cfg(unix)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::sync::mpsc::Receiver;
use std::thread;
use std::time::{Duration, Instant};

use wsproto_interop::child::{
    build_example, log_message, python_script, require_python_websockets, start_echo_server, wait_for, Guard,
};

const CLIENTS: usize = 500;
const MESSAGES: usize = 6;
/// For the whole Python run (its own deadline is 150 s).
const RUN_BOUND: Duration = Duration::from_secs(170);

fn number(result: &str, key: &str) -> usize {
    let pattern = format!(" {key}=");
    let start = result.find(&pattern).unwrap_or_else(|| panic!("{key} missing in {result}")) + pattern.len();
    result[start..].split(' ').next().unwrap().parse().unwrap()
}

/// The echo server on a free port, its log, and its URL.
fn start_server() -> (Guard, Receiver<String>, String) {
    start_echo_server(&build_example("wsproto", "echo_server", ""))
}

/// Runs `load_clients.py` and returns its `RESULT` line.
fn python_clients(url: &str, clients: usize, messages: usize, large: bool) -> String {
    let mut args = vec![url.to_string(), clients.to_string(), messages.to_string()];
    if large {
        args.push("large".to_string());
    }
    let (_child, out) = python_script("load_clients.py", &args);
    wait_for(&out, "RESULT", Instant::now() + RUN_BOUND, &mut Vec::new())
}

/// Counts the server's per-connection lines (`<peer>: closed` or `<peer>: <error>`) until
/// `total` connections have ended or `deadline` passes.
fn wait_ended(log: &Receiver<String>, mut ended: usize, total: usize, deadline: Instant) -> usize {
    while ended < total {
        match log.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok(line) if log_message(&line).starts_with("127.0.0.1:") => ended += 1,
            Ok(_) => {}
            Err(_) => break,
        }
    }
    ended
}

#[test]
fn echo_server_echoes_500_compressed_python_clients_with_idle_pauses_byte_for_byte() {
    require_python_websockets();
    let started = Instant::now();
    let (_server, log, url) = start_server();
    let result = python_clients(&url, CLIENTS, MESSAGES, false);
    println!("{result}");
    assert_eq!(number(&result, "compressed"), CLIENTS, "context takeover negotiated everywhere: {result}");
    assert_eq!(number(&result, "echoed"), CLIENTS * MESSAGES, "{result}");
    assert_eq!(number(&result, "mismatches"), 0, "every echo byte for byte: {result}");
    assert_eq!(number(&result, "code1000"), CLIENTS, "{result}");
    assert_eq!(number(&result, "errors"), 0, "{result}");
    assert_eq!(number(&result, "stuck"), 0, "{result}");
    assert!(number(&result, "fragmented") > 0, "{result}");
    let ended = wait_ended(&log, 0, CLIENTS, Instant::now() + Duration::from_secs(10));
    assert_eq!(ended, CLIENTS, "the server logged the end of every connection");
    println!("{CLIENTS} clients x {MESSAGES} messages in {:.2?}", started.elapsed());
}

// ===== memory (ignored: a measurement) =====

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches(" kB").parse().ok())
        .unwrap()
}

/// A masked client frame: `first` is the FIN/opcode byte.
fn frame(first: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = vec![first, 0x80 | 127];
    out.extend_from_slice(&(payload.len() as u64).to_be_bytes());
    out.extend_from_slice(&[0, 0, 0, 0]); // a zero mask leaves the payload as it is
    out.extend_from_slice(payload);
    out
}

fn handshaken(addr: SocketAddr) -> TcpStream {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .write_all(
            b"GET / HTTP/1.1\r\nHost: test\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
              Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
        )
        .unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        stream.read_exact(&mut byte).unwrap();
        head.push(byte[0]);
    }
    stream
}

/// Faulty peers, each kind `n` times: readers that never read (4 MiB messages until the
/// server stops taking them), resets in the middle of a 16 MiB frame after 1 MiB of it, and
/// handshakes that stop halfway. Returns the sockets still held.
fn faulty_peers(addr: SocketAddr, n: usize) -> Vec<TcpStream> {
    let message = frame(0x82, &vec![0x42; 4 << 20]);
    let huge = frame(0x82, &vec![0x17; 16 << 20]);
    let mut held = Vec::new();
    let stalled: Vec<_> = (0..n)
        .map(|_| {
            let message = message.clone();
            thread::spawn(move || {
                let mut s = handshaken(addr);
                s.set_write_timeout(Some(Duration::from_secs(1))).unwrap();
                while s.write_all(&message).is_ok() {}
                s
            })
        })
        .collect();
    for _ in 0..n {
        let mut s = handshaken(addr);
        s.write_all(&huge[..1 << 20]).unwrap();
        thread::sleep(Duration::from_millis(20));
        reset(s);
        let mut s = TcpStream::connect(addr).unwrap();
        s.write_all(b"GET / HTTP/1.1\r\nHost: test\r\nUpgr").unwrap();
        held.push(s);
    }
    held.extend(stalled.into_iter().map(|t| t.join().unwrap()));
    held
}

/// Closes with SO_LINGER 0: the peer gets a reset, not a FIN.
fn reset(stream: TcpStream) {
    // std has no SO_LINGER setter: tokio's (zero linger does not block).
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        stream.set_nonblocking(true).unwrap();
        let stream = tokio::net::TcpStream::from_std(stream).unwrap();
        #[allow(deprecated)]
        stream.set_linger(Some(Duration::ZERO)).unwrap();
    });
}

/// glibc's `malloc_stats()` in the server (through gdb): its "in use bytes" total (what the
/// program holds) and "system bytes" total (what malloc holds from the system).
fn malloc_stats(pid: u32, log: &Receiver<String>, trim: bool) -> Option<(u64, u64)> {
    let mut args = vec!["-p".to_string(), pid.to_string(), "-batch".into()];
    if trim {
        args.extend(["-ex".into(), "call (int)malloc_trim(0)".into()]);
    }
    args.extend(["-ex".into(), "call (void)malloc_stats()".into()]);
    let status = Command::new("gdb").args(&args).stdout(Stdio::null()).stderr(Stdio::null()).status().ok()?;
    if !status.success() {
        return None;
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut total = false;
    let (mut system, mut in_use) = (None, None);
    while in_use.is_none() {
        let line = log.recv_timeout(deadline.saturating_duration_since(Instant::now())).ok()?;
        total |= line.starts_with("Total (incl. mmap)");
        let value = |l: &str| l.rsplit('=').next().and_then(|v| v.trim().parse::<u64>().ok());
        if total && line.starts_with("system bytes") {
            system = value(&line);
        } else if total && line.starts_with("in use bytes") {
            in_use = value(&line);
        }
    }
    Some((in_use?, system?))
}

#[test]
#[ignore = "a measurement (about a minute): cargo test -p wsproto-interop --test echo_server_load -- --ignored --nocapture"]
fn echo_server_memory_before_at_the_peak_and_after_a_burst_with_faulty_peers() {
    require_python_websockets();
    const BURST_CLIENTS: usize = 100;
    const FAULTS_EACH: usize = 20;
    let (server, log, url) = start_server();
    let pid = server.0.id();
    let addr: SocketAddr = url.trim_start_matches("ws://").trim_end_matches('/').parse().unwrap();
    thread::sleep(Duration::from_millis(500));
    let before = rss_kib(pid);
    let heap_before = malloc_stats(pid, &log, false);

    let sampling = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let sampler = {
        let sampling = sampling.clone();
        thread::spawn(move || {
            let mut peak = 0;
            while sampling.load(std::sync::atomic::Ordering::Relaxed) {
                peak = peak.max(rss_kib(pid));
                thread::sleep(Duration::from_millis(20));
            }
            peak
        })
    };
    let faults = thread::spawn(move || faulty_peers(addr, FAULTS_EACH));
    let result = python_clients(&url, BURST_CLIENTS, 3, true);
    let held = faults.join().unwrap();
    println!("{result}");
    // Every connection ends: the stalled readers by the send timeout (30 s), the half-done
    // handshakes by the handshake timeout (10 s).
    let total = BURST_CLIENTS + 3 * FAULTS_EACH;
    let ended = wait_ended(&log, 0, total, Instant::now() + Duration::from_secs(60));
    sampling.store(false, std::sync::atomic::Ordering::Relaxed);
    let peak = sampler.join().unwrap();
    drop(held);
    thread::sleep(Duration::from_secs(1));
    let after = rss_kib(pid);
    let heap_after = malloc_stats(pid, &log, false);
    let trimmed = malloc_stats(pid, &log, true);
    let after_trim = rss_kib(pid);
    let mib = |kib: u64| kib as f64 / 1024.0;
    let heap = |h: Option<(u64, u64)>| match h {
        Some((in_use, system)) => {
            format!(
                "in use {:.1} MiB, malloc holds {:.1} MiB",
                in_use as f64 / 1048576.0,
                system as f64 / 1048576.0
            )
        }
        None => "n/a (gdb could not attach)".into(),
    };
    println!("connections ended: {ended} of {total}");
    println!("RSS before {:.1} MiB, peak {:.1} MiB, after {:.1} MiB", mib(before), mib(peak), mib(after));
    println!("RSS after malloc_trim(0) {:.1} MiB", mib(after_trim));
    println!("heap before: {}", heap(heap_before));
    println!("heap after: {}", heap(heap_after));
    println!("heap after malloc_trim(0): {}", heap(trimmed));
    let goal = before as f64 * 1.2 + 4096.0;
    println!(
        "goal after <= 1.2 x before + 4 MiB = {:.1} MiB: {}",
        mib(goal as u64),
        if (after as f64) <= goal { "met" } else { "NOT met" }
    );
    assert_eq!(ended, total, "every connection ended");
}
