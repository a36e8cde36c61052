//! Decode (server role, masked input) and encode (server and client role) through each
//! library's normal receive/send API over the in-memory [`MemStream`].

use std::hint::black_box;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use tokio_util::codec::Framed;
use wsproto::codec::WsCodec;
use wsproto::{BytesMessage, Config, Connection, ConnectionType, Event};

use crate::common::*;

pub struct DecodeCase {
    pub name: String,
    /// A block of whole messages (about 1 MiB, at least one message), served `repeats` times.
    pub input: Bytes,
    pub repeats: usize,
    pub messages: usize,
    pub payload_bytes: u64,
}

/// Bytes of input served from one cache-resident block.
const BLOCK: usize = 1 << 20;

fn decode_case(
    name: &str,
    opcode: u8,
    payload: &[u8],
    fragments: usize,
    target: usize,
    cap: usize,
) -> DecodeCase {
    let mut one = Vec::new();
    push_message(&mut one, opcode, payload, fragments);
    let per_block = (BLOCK / one.len()).max(1);
    let repeats = ((target / payload.len().max(1)).clamp(16, cap) / per_block).max(1);
    let messages = per_block * repeats;
    DecodeCase {
        name: name.to_string(),
        input: Bytes::from(one.repeat(per_block)),
        repeats,
        messages,
        payload_bytes: (payload.len() * messages) as u64,
    }
}

pub fn decode_cases(quick: bool) -> Vec<DecodeCase> {
    let target = if quick { 16 << 20 } else { 64 << 20 };
    let cap = if quick { 200_000 } else { 1_000_000 };
    let mut cases = Vec::new();
    for size in [16usize, 1 << 10, 64 << 10, 1 << 20] {
        let p = binary_payload(size);
        cases.push(decode_case(&format!("binary {}", fmt_size(size)), OP_BINARY, &p, 1, target, cap));
    }
    for size in [16usize, 64 << 10] {
        let p = text_payload(size);
        cases.push(decode_case(&format!("text {}", fmt_size(size)), OP_TEXT, p.as_bytes(), 1, target, cap));
    }
    let p = binary_payload(64 << 10);
    cases.push(decode_case("binary 64 KiB in 16 fragments", OP_BINARY, &p, 16, target, cap));
    let p = text_payload(64 << 10);
    cases.push(decode_case("text 64 KiB in 16 fragments", OP_TEXT, p.as_bytes(), 16, target, cap));
    cases
}

/// Reads `expect` whole messages; returns the payload bytes seen.
pub async fn decode_run(lib: Lib, input: Bytes, repeats: usize, expect: usize) -> u64 {
    let stream = MemStream::repeating(input, repeats);
    let mut seen = 0u64;
    let mut done = 0usize;
    match lib {
        Lib::Ours | Lib::OursWhole => {
            let config = Config::default().delivery(lib.delivery());
            let mut ws = Framed::new(stream, WsCodec::new(Connection::new(ConnectionType::Server, config)));
            while done < expect {
                match ws.next().await {
                    Some(Ok(Event::BytesMessage(m))) => {
                        seen += m.data.len() as u64;
                        done += m.message_finished as usize;
                    }
                    Some(Ok(Event::TextMessage(m))) => {
                        seen += m.data.len() as u64;
                        done += m.message_finished as usize;
                    }
                    other => panic!("wsproto decode: unexpected {other:?}"),
                }
            }
        }
        Lib::Tungstenite => {
            use tokio_tungstenite::tungstenite::protocol::Role;
            use tokio_tungstenite::tungstenite::Message;
            let mut ws =
                tokio_tungstenite::WebSocketStream::from_raw_socket(stream, Role::Server, None).await;
            while done < expect {
                match ws.next().await {
                    Some(Ok(Message::Binary(b))) => seen += b.len() as u64,
                    Some(Ok(Message::Text(t))) => seen += t.len() as u64,
                    other => panic!("tungstenite decode: unexpected {other:?}"),
                }
                done += 1;
            }
        }
        Lib::TokioWs => {
            let mut ws = tokio_websockets::ServerBuilder::new().serve(stream);
            while done < expect {
                match ws.next().await {
                    Some(Ok(m)) if m.is_binary() || m.is_text() => seen += m.as_payload().len() as u64,
                    other => panic!("tokio-websockets decode: unexpected {other:?}"),
                }
                done += 1;
            }
        }
        Lib::Fws => {
            use fastwebsockets::{FragmentCollector, OpCode, Role, WebSocket};
            let mut ws = FragmentCollector::new(WebSocket::after_handshake(stream, Role::Server));
            while done < expect {
                let frame = ws.read_frame().await.expect("fastwebsockets decode");
                assert!(matches!(frame.opcode, OpCode::Binary | OpCode::Text));
                seen += frame.payload.len() as u64;
                done += 1;
            }
        }
    }
    seen
}

/// Sends `n` binary messages of `payload` through a `Session` (the transport every upgrade
/// helper returns, and the main job's); returns the bytes written.
pub async fn encode_session_run(client: bool, payload: Bytes, n: usize) -> u64 {
    let role = if client { ConnectionType::Client } else { ConnectionType::Server };
    let framed = Framed::new(MemStream::sink(), WsCodec::new(Connection::new(role, Config::default())));
    let mut ws = wsproto::session::Session::new(framed, wsproto::SessionConfig::default());
    for _ in 0..n {
        ws.send(Event::BytesMessage(BytesMessage::new(payload.clone()))).await.expect("send");
    }
    ws.get_ref().written
}

/// The main job's echo loop in memory, without the kernel: each read of the stream serves one
/// batch of `window` masked binary frames of `size` bytes (as a socket read does with that
/// many messages in flight), `batches` times, then EOF; writes are copied out and discarded.
/// Through a `Session` registered with a `Shutdown` (as `echo_server`), or the bare `Framed`.
/// Returns the messages echoed.
pub async fn echo_run(session: bool, size: usize, window: usize, batches: usize) -> u64 {
    let mut batch = Vec::new();
    for _ in 0..window {
        push_frame(&mut batch, OP_BINARY, true, false, &binary_payload(size), true);
    }
    let mut stream = MemStream::repeating(Bytes::from(batch), batches);
    stream.park_between_passes = true;
    let framed =
        Framed::new(stream, WsCodec::new(Connection::new(ConnectionType::Server, Config::default())));
    if session {
        let shutdown = wsproto::session::Shutdown::new();
        echo_binary(
            wsproto::session::Session::new(framed, wsproto::SessionConfig::default())
                .with_shutdown(&shutdown),
        )
        .await
    } else {
        echo_binary(framed).await
    }
}

/// Echoes every binary message of `ws` until its stream ends or fails; returns how many.
async fn echo_binary<S, E>(mut ws: S) -> u64
where
    S: futures_util::Stream<Item = Result<Event, E>> + futures_util::Sink<Event> + Unpin,
    <S as futures_util::Sink<Event>>::Error: std::fmt::Debug,
{
    let mut echoed = 0;
    while let Some(Ok(event)) = ws.next().await {
        if let Event::BytesMessage(m) = event {
            ws.send(m.into()).await.expect("send");
            echoed += 1;
        }
    }
    echoed
}

/// Sends `n` binary messages of `payload`; returns the bytes written.
pub async fn encode_run(lib: Lib, client: bool, payload: Bytes, n: usize) -> u64 {
    let stream = MemStream::sink();
    match lib {
        Lib::Ours | Lib::OursWhole => {
            let role = if client { ConnectionType::Client } else { ConnectionType::Server };
            let mut ws = Framed::new(stream, WsCodec::new(Connection::new(role, Config::default())));
            for _ in 0..n {
                ws.send(Event::BytesMessage(BytesMessage::new(payload.clone()))).await.expect("send");
            }
            ws.get_ref().written
        }
        Lib::Tungstenite => {
            use tokio_tungstenite::tungstenite::protocol::Role;
            use tokio_tungstenite::tungstenite::Message;
            let role = if client { Role::Client } else { Role::Server };
            let mut ws = tokio_tungstenite::WebSocketStream::from_raw_socket(stream, role, None).await;
            for _ in 0..n {
                ws.send(Message::Binary(payload.clone())).await.expect("send");
            }
            ws.get_ref().written
        }
        Lib::TokioWs => {
            use tokio_websockets::Message;
            let mut ws = if client {
                tokio_websockets::ClientBuilder::new().take_over(stream)
            } else {
                tokio_websockets::ServerBuilder::new().serve(stream)
            };
            for _ in 0..n {
                ws.send(Message::binary(payload.clone())).await.expect("send");
            }
            ws.get_ref().written
        }
        Lib::Fws => {
            use fastwebsockets::{Frame, Payload, Role, WebSocket};
            let role = if client { Role::Client } else { Role::Server };
            let mut ws = WebSocket::after_handshake(stream, role);
            for _ in 0..n {
                ws.write_frame(Frame::binary(Payload::Borrowed(&payload))).await.expect("send");
            }
            ws.into_inner().written
        }
    }
}

fn cell_text(msgs_per_s: f64, bytes_per_s: f64) -> String {
    format!("{}/s · {:.2} GB/s", fmt_rate(msgs_per_s), bytes_per_s / 1e9)
}

pub fn run_decode(settings: Settings) -> String {
    let rt = current_thread_runtime();
    let libs = Lib::ALL;
    let mut table = Table::new([
        "decode (server)",
        "wsproto",
        "wsproto-whole",
        "tokio-tungstenite",
        "tokio-websockets",
        "fastwebsockets",
        "wsproto / best peer",
        "wsproto-whole / best peer",
    ]);
    for case in decode_cases(settings.quick) {
        let mut samples: Vec<Vec<f64>> = vec![Vec::new(); libs.len()];
        // Warm-up: one run each (also checks that every library decodes the input).
        for lib in libs {
            let seen = rt.block_on(decode_run(lib, case.input.clone(), case.repeats, case.messages));
            assert_eq!(seen, case.payload_bytes, "{} decoded a different payload", lib.name());
        }
        for round in 0..settings.rounds {
            for k in 0..libs.len() {
                let i = (k + round) % libs.len();
                let (secs, seen) = time(|| {
                    rt.block_on(decode_run(libs[i], case.input.clone(), case.repeats, case.messages))
                });
                black_box(seen);
                samples[i].push(secs);
            }
        }
        let rates: Vec<f64> = samples.iter_mut().map(|s| case.messages as f64 / median(s)).collect();
        let per_msg = case.payload_bytes as f64 / case.messages as f64;
        let best_peer = best_peer(&libs, &rates);
        let mut row = vec![case.name.clone()];
        row.extend(rates.iter().map(|r| cell_text(*r, r * per_msg)));
        row.push(format!("{} ({})", ratio(rates[0], rates[best_peer]), libs[best_peer].name()));
        row.push(ratio(rates[1], rates[best_peer]));
        println!("  {}", row.join(" | "));
        table.row(row);
    }
    let mut s =
        String::from("## Decode (server role; masked frames served from a cache-resident ~1 MiB block, at most 64 KiB per read; whole messages counted)\n\n");
    s.push_str(&table.render());
    s
}

pub fn run_encode(settings: Settings) -> String {
    let rt = current_thread_runtime();
    let libs = [Lib::Ours, Lib::Tungstenite, Lib::TokioWs, Lib::Fws];
    let mut table = Table::new([
        "encode",
        "wsproto",
        "tokio-tungstenite",
        "tokio-websockets",
        "fastwebsockets",
        "wsproto-session",
        "wsproto / best peer",
        "wsproto-session / best peer",
    ]);
    let target = if settings.quick { 16 << 20 } else { 64 << 20 };
    let cap = if settings.quick { 200_000 } else { 1_000_000 };
    for client in [false, true] {
        for size in [16usize, 1 << 10, 64 << 10, 1 << 20] {
            let payload = Bytes::from(binary_payload(size));
            let n = (target / size).clamp(16, cap);
            // The libraries, then the session (index `libs.len()`).
            let run = |i: usize| {
                if i < libs.len() {
                    rt.block_on(encode_run(libs[i], client, payload.clone(), n))
                } else {
                    rt.block_on(encode_session_run(client, payload.clone(), n))
                }
            };
            let columns = libs.len() + 1;
            for i in 0..columns {
                run(i);
            }
            // Each sample repeats the run for at least `min_sample` (one run of large messages
            // takes well under a millisecond: a single run per sample was mostly noise).
            let min_sample = if settings.quick { 0.05 } else { 0.2 };
            let mut samples: Vec<Vec<f64>> = vec![Vec::new(); columns];
            for round in 0..settings.rounds {
                for k in 0..columns {
                    let i = (k + round) % columns;
                    let (secs, runs) = time(|| {
                        let start = std::time::Instant::now();
                        let mut runs = 0u64;
                        while runs == 0 || start.elapsed().as_secs_f64() < min_sample {
                            black_box(run(i));
                            runs += 1;
                        }
                        runs
                    });
                    samples[i].push(runs as f64 * n as f64 / secs);
                }
            }
            let rates: Vec<f64> = samples.iter_mut().map(|s| median(s)).collect();
            let best = best_peer(&libs, &rates[..libs.len()]);
            let role = if client { "client (masked)" } else { "server" };
            let mut row = vec![format!("{role} binary {}", fmt_size(size))];
            row.extend(rates.iter().map(|r| cell_text(*r, r * size as f64)));
            row.push(format!("{} ({})", ratio(rates[0], rates[best]), libs[best].name()));
            row.push(ratio(rates[libs.len()], rates[best]));
            println!("  {}", row.join(" | "));
            table.row(row);
        }
    }
    let mut s = String::from("## Encode (`send` per message into a writer that copies each write into a 64 KiB scratch buffer and discards it; `wsproto` is the bare `Framed`, `wsproto-session` the `Session` every upgrade helper returns)\n\n");
    s.push_str(&table.render());
    s
}

/// Index of the fastest peer in `rates` (higher is better).
pub fn best_peer(libs: &[Lib], rates: &[f64]) -> usize {
    (0..libs.len())
        .filter(|&i| libs[i].is_peer())
        .max_by(|&a, &b| rates[a].partial_cmp(&rates[b]).expect("no NaN"))
        .expect("a peer")
}

/// Repeats one cell for `secs` seconds (for profiling). `case` is a decode case name (e.g.
/// "binary 1 KiB") or, for encode, a size in bytes; for deflate, a size in bytes.
pub fn loop_cell(what: &str, lib: Lib, case: &str, secs: f64) {
    let rt = current_thread_runtime();
    let start = std::time::Instant::now();
    let mut runs = 0u64;
    let until = |runs: &mut u64| {
        *runs += 1;
        start.elapsed().as_secs_f64() < secs
    };
    match what {
        "decode" => {
            let c = decode_cases(false).into_iter().find(|c| c.name == case).unwrap_or_else(|| {
                let names: Vec<String> = decode_cases(true).into_iter().map(|c| c.name).collect();
                panic!("unknown case {case:?}; cases: {names:?}")
            });
            while until(&mut runs) {
                black_box(rt.block_on(decode_run(lib, c.input.clone(), c.repeats, c.messages)));
            }
        }
        "encode" | "encode-client" | "encode-session" => {
            let size: usize = case.parse().expect("size in bytes");
            let payload = Bytes::from(binary_payload(size));
            let n = ((64 << 20) / size).clamp(16, 1_000_000);
            while until(&mut runs) {
                let written = if what == "encode-session" {
                    rt.block_on(encode_session_run(false, payload.clone(), n))
                } else {
                    rt.block_on(encode_run(lib, what == "encode-client", payload.clone(), n))
                };
                black_box(written);
            }
        }
        "echo-session" | "echo-framed" => {
            // CASE is SIZE/WINDOW, e.g. 16/16.
            let (size, window) = case.split_once('/').expect("SIZE/WINDOW");
            let (size, window): (usize, usize) =
                (size.parse().expect("size"), window.parse().expect("window"));
            let batches = ((16 << 20) / (window * (size + 6))).max(1);
            let mut messages = 0;
            while until(&mut runs) {
                // In a spawned task, as every connection is (its waker is the task's).
                let run = echo_run(what == "echo-session", size, window, batches);
                messages += rt.block_on(async { tokio::spawn(run).await.expect("echo task") });
            }
            eprintln!("{:.0} msg/s", messages as f64 / start.elapsed().as_secs_f64());
        }
        "deflate-enc" | "deflate-dec" => {
            let size: usize = case.parse().expect("size in bytes");
            crate::deflate::loop_deflate(
                what == "deflate-enc",
                lib == Lib::Ours || lib == Lib::OursWhole,
                size,
                secs,
            );
        }
        _ => usage_loop(),
    }
    eprintln!("{runs} runs in {:.1} s", start.elapsed().as_secs_f64());
}

fn usage_loop() -> ! {
    eprintln!("wsbench loop decode|encode|encode-client|encode-session|echo-session|echo-framed|deflate-enc|deflate-dec LIB CASE SECONDS");
    std::process::exit(2)
}
