//! Per-connection memory ceilings, one per configuration (the table in SECURITY.md).
//!
//! A counting global allocator (this file is its own test binary, so it counts only this
//! test) measures what a server connection holds on the heap in its worst steady state: N
//! echo-loop sessions (the README's loop, `upgrade::accept` defaults otherwise) over
//! `tokio::io::duplex`, each after a large compressible message each way (256 KiB, which
//! fills every compression window and grows the codec's buffers), then idle, waiting in
//! `next()` (see `worst`). The servers' tasks are then dropped; the heap freed by that, divided by N, is
//! one server connection: its task, the session, codec buffers, the connection, the
//! extension's histories or live states. Not counted: the pipe (on TCP, kernel socket
//! buffers) and the client ends, which stay alive across both readings, and the config's
//! shared `DeflatePool` (a fixed cost per server, reported separately).
#![cfg(all(feature = "tokio", feature = "deflate"))]

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use wsproto::extensions::{IdleState, PerMessageDeflate};
use wsproto::upgrade::{self, UpgradeConfig};
use wsproto::{BytesMessage, Event, Request};

/// Counts the bytes live on the heap.
struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);

// SAFETY (all four): each call forwards to the system allocator with the caller's arguments
// unchanged, so `Counting` upholds `GlobalAlloc`'s contract exactly as `System` does; the
// counter is only bookkeeping.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        }
        p
    }

    unsafe fn dealloc(&self, p: *mut u8, layout: Layout) {
        unsafe { System.dealloc(p, layout) };
        LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
    }

    unsafe fn realloc(&self, p: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let q = unsafe { System.realloc(p, layout, new_size) };
        if !q.is_null() {
            LIVE.fetch_add(new_size as isize - layout.size() as isize, Ordering::Relaxed);
        }
        q
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

fn live() -> isize {
    LIVE.load(Ordering::Relaxed)
}

/// The tests of this file run one at a time: the counter is global.
static SERIAL: Mutex<()> = Mutex::new(());

/// Server connections per configuration.
const N: usize = 40;
/// The large message sent each way.
const LARGE: usize = 256 << 10;
/// The last message each way: incompressible, its frame just under the 64 KiB above which the
/// codec replaces a drained read buffer, so the read buffer keeps the most it ever keeps.
const LAST: usize = 63 << 10;

/// One row of the table: a server configuration and its ceiling per connection.
struct Case {
    name: &'static str,
    server: UpgradeConfig,
    /// Whether permessage-deflate is negotiated, and with context takeover.
    deflate: Option<bool>,
    ceiling_kib: usize,
}

fn cases() -> Vec<Case> {
    vec![
        Case {
            name: "plain (no compression)",
            server: UpgradeConfig::default().compression(false),
            deflate: None,
            ceiling_kib: 144,
        },
        Case {
            name: "deflate, no context takeover",
            server: UpgradeConfig::default().deflate(|| {
                PerMessageDeflate::new().server_no_context_takeover(true).client_no_context_takeover(true)
            }),
            deflate: Some(false),
            ceiling_kib: 144,
        },
        Case {
            name: "deflate, context takeover (default: IdleState::History, pool)",
            server: UpgradeConfig::default(),
            deflate: Some(true),
            ceiling_kib: 200,
        },
        Case {
            name: "deflate, context takeover, IdleState::Live",
            server: UpgradeConfig::default().deflate(|| PerMessageDeflate::new().idle_state(IdleState::Live)),
            deflate: Some(true),
            ceiling_kib: 528,
        },
    ]
}

/// A large, compressible, not trivially repetitive message (words from a small vocabulary).
fn large_message(seed: u64) -> Bytes {
    const WORDS: [&str; 16] = [
        "socket ", "frame ", "deflate ", "window ", "echo ", "ping ", "close ", "mask ", "payload ",
        "server ", "client ", "message ", "history ", "buffer ", "pool ", "tokio ",
    ];
    let mut state = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    let mut out = Vec::with_capacity(LARGE + 16);
    while out.len() < LARGE {
        state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        out.extend_from_slice(WORDS[(state >> 60) as usize].as_bytes());
        if (state >> 40) & 0xff == 0 {
            out.extend_from_slice(&state.to_le_bytes());
        }
    }
    out.truncate(LARGE);
    Bytes::from(out)
}

/// Lets every task run until it waits (the servers back in `next()`).
async fn settle() {
    for _ in 0..5 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Incompressible bytes.
fn random_message(seed: u64, len: usize) -> Bytes {
    let mut state = seed | 1;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect::<Vec<u8>>()
        .into()
}

/// The worst steady state: a compressible message that fills every compression window, an
/// incompressible one whose reads fill the read buffer (the codec's read-ahead grows to its
/// 128 KiB maximum), and last an incompressible one just under 64 KiB (kept in place).
fn worst(seed: u64) -> Vec<Bytes> {
    vec![large_message(seed), random_message(seed, LARGE), random_message(seed + 1, LAST)]
}

/// Heap held per server connection (bytes) after `n` connections each echoed `messages`,
/// and by the server config's pool.
async fn measure(case: Case, n: usize, messages: fn(u64) -> Vec<Bytes>) -> (isize, isize) {
    measure_after(case, n, messages, Duration::ZERO).await
}

/// [`measure`], once the connections have been quiet for `quiet` more.
async fn measure_after(
    case: Case,
    n: usize,
    messages: fn(u64) -> Vec<Bytes>,
    quiet: Duration,
) -> (isize, isize) {
    let mut clients = Vec::with_capacity(n);
    let mut servers = Vec::with_capacity(n);
    let server_config = case.server;
    for _ in 0..n {
        let (a, b) = tokio::io::duplex(64 << 10);
        let config = server_config.clone();
        servers.push(tokio::spawn(async move {
            let (mut ws, _) = upgrade::accept(a, config).await.unwrap();
            while let Some(event) = ws.next().await {
                match event.unwrap() {
                    Event::TextMessage(m) => ws.send(m.into()).await.unwrap(),
                    Event::BytesMessage(m) => ws.send(m.into()).await.unwrap(),
                    _ => {}
                }
            }
        }));
        let (ws, accept) =
            upgrade::client(b, Request::new("localhost", "/"), UpgradeConfig::default()).await.unwrap();
        let negotiated =
            accept.deflate().map(|p| !p.client_no_context_takeover && !p.server_no_context_takeover);
        assert_eq!(negotiated, case.deflate, "{}: negotiated {:?}", case.name, accept.deflate());
        clients.push(ws);
    }
    for (i, ws) in clients.iter_mut().enumerate() {
        for data in messages(i as u64) {
            ws.send(BytesMessage::new(data.clone()).into()).await.unwrap();
            match ws.next().await.unwrap().unwrap() {
                Event::BytesMessage(m) => assert!(m.data == data, "{}: echo {i} differs", case.name),
                other => panic!("{}: unexpected {other:?}", case.name),
            }
        }
    }
    settle().await;
    tokio::time::sleep(quiet).await;
    settle().await;
    let with_servers = live();
    for server in &servers {
        server.abort();
    }
    for server in servers {
        assert!(server.await.unwrap_err().is_cancelled());
    }
    settle().await;
    let without_servers = live();
    drop(server_config);
    let without_pool = live();
    drop(clients);
    ((with_servers - without_servers) / n as isize, without_servers - without_pool)
}

/// After the keepalive interval: the read-ahead a burst reserved is given back.
#[test]
fn a_connection_gone_quiet_gives_back_its_read_ahead_within_the_keepalive_interval() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let runtime =
        tokio::runtime::Builder::new_current_thread().enable_all().start_paused(true).build().unwrap();
    runtime.block_on(async {
        let case = Case {
            name: "plain, after the burst and 21 s quiet",
            server: UpgradeConfig::default().compression(false),
            deflate: None,
            ceiling_kib: 8,
        };
        let (per_connection, _) = measure_after(case, 8, worst, Duration::from_secs(21)).await;
        eprintln!("quiet connection: {per_connection} B");
        assert!(
            per_connection <= 8 << 10,
            "a quiet connection kept {per_connection} B after the keepalive interval"
        );
    });
}

/// Runs `test` alone (the counter is global) on a current-thread runtime.
fn serial<F: std::future::Future<Output = ()>>(test: F) {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(test);
}

#[test]
fn per_connection_heap_stays_under_the_stated_ceilings() {
    serial(ceilings());
}

async fn ceilings() {
    let mut failed = Vec::new();
    eprintln!("{:<64} {:>12} {:>10} {:>12}", "configuration", "per conn", "ceiling", "pool");
    for case in cases() {
        let (name, ceiling_kib) = (case.name, case.ceiling_kib);
        let (per_connection, pool) = measure(case, N, worst).await;
        eprintln!(
            "{:<64} {:>8.1} KiB {:>6} KiB {:>8.1} KiB",
            name,
            per_connection as f64 / 1024.0,
            ceiling_kib,
            pool as f64 / 1024.0
        );
        if per_connection > (ceiling_kib << 10) as isize {
            failed.push(format!("{name}: {per_connection} B > {ceiling_kib} KiB"));
        }
    }
    assert!(failed.is_empty(), "over the ceiling: {failed:?}");
}

/// Regression: a session used to keep the write buffer of its last large frame (up to the
/// message limit) until it next sent; an idle echo connection after a 4 MiB echo kept 4 MiB.
#[test]
fn an_idle_session_does_not_keep_the_write_buffer_of_a_large_echo() {
    serial(idle_after_a_large_echo());
}

async fn idle_after_a_large_echo() {
    let case = Case {
        name: "plain, one 4 MiB echo",
        server: UpgradeConfig::default().compression(false),
        deflate: None,
        ceiling_kib: 144,
    };
    let (per_connection, _) = measure(case, 4, |seed| vec![random_message(seed, 4 << 20)]).await;
    assert!(per_connection <= 144 << 10, "an idle connection kept {per_connection} B after a 4 MiB echo");
}
