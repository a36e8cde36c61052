//! The client role against a third-party server with permessage-deflate: `upgrade::connect`
//! to a Python `websockets` echo server (zlib on its side, `python_echo_server.py`), context
//! takeover both ways. Messages our compressor cannot shrink (random bytes: sent as stored
//! blocks after a failed probe), compressible text, the two mixed in one message, and a
//! fragmented random message, each echoed and checked byte for byte; the wire sizes show
//! which were compressed.
//!
//! Needs `python3` with the `websockets` package (`.ci/run` installs it).

use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use wsproto::upgrade;
use wsproto::{BytesMessage, Event, TextMessage};
use wsproto_interop::child::{python_script, require_python_websockets, wait_for};

#[path = "../../tests/support/noise.rs"]
mod noise;
use noise::noise;

/// Chat-like JSON text: compresses well.
fn text(len: usize, seed: u64) -> String {
    let words = ["hello", "room", "general", "alice", "bob", "typing", "deploy", "lunch"];
    let mut s = String::with_capacity(len + 64);
    let mut n = seed;
    while s.len() < len {
        n = n.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        let word = words[(n >> 33) as usize % words.len()];
        s.push_str(&format!("{{\"user\":\"{word}\",\"n\":{},\"text\":\"{word} {}\"}}\n", n % 977, n % 31));
    }
    s.truncate(len);
    s
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn our_client_compresses_random_and_text_messages_to_python_websockets() {
    require_python_websockets();
    let (_server, lines) = python_script("python_echo_server.py", &[]);
    let deadline = Instant::now() + Duration::from_secs(30);
    let listening = wait_for(&lines, "LISTENING ", deadline, &mut Vec::new());
    let port = listening.trim_start_matches("LISTENING ").trim();
    tokio::time::timeout(Duration::from_secs(120), async {
        let (mut ws, accept) = upgrade::connect(&format!("ws://127.0.0.1:{port}/")).await.unwrap();
        let agreed = accept.deflate().expect("permessage-deflate agreed");
        assert!(!agreed.client_no_context_takeover, "context takeover from us: {agreed:?}");
        let mut mixed = noise(256 << 10, 3);
        mixed.extend_from_slice(text(768 << 10, 4).as_bytes());
        let binaries: [(&str, Vec<u8>, f64); 4] = [
            ("random 1 MiB", noise(1 << 20, 1), 1.01),
            ("random 8 MiB", noise(8 << 20, 2), 1.01),
            ("random 256 KiB + text 768 KiB", mixed, 0.5),
            ("random 40 KiB", noise(40 << 10, 5), 1.01),
        ];
        for (name, data, most) in binaries {
            let before = ws.stats().traffic.bytes_sent;
            ws.send(BytesMessage::new(data.clone()).into()).await.unwrap();
            let wire = ws.stats().traffic.bytes_sent - before;
            let ratio = wire as f64 / data.len() as f64;
            assert!(ratio <= most, "{name}: {wire} B on the wire for {} B", data.len());
            let Some(Ok(Event::BytesMessage(echo))) = ws.next().await else { panic!("{name}: an echo") };
            assert!(echo.data == data, "{name}: the echo differs ({} B)", echo.data.len());
        }
        let chat = text(1 << 20, 6);
        ws.send(TextMessage::new(chat.clone()).into()).await.unwrap();
        let Some(Ok(Event::TextMessage(echo))) = ws.next().await else { panic!("text: an echo") };
        assert!(echo.data == chat.as_str(), "text: the echo differs");
        // One message in three frames, each a random megabyte.
        let parts = [noise(1 << 20, 7), noise(1 << 20, 8), noise(1 << 20, 9)];
        ws.send(BytesMessage::fragment(parts[0].clone()).into()).await.unwrap();
        ws.send(BytesMessage::fragment(parts[1].clone()).into()).await.unwrap();
        ws.send(BytesMessage::new(parts[2].clone()).into()).await.unwrap();
        let Some(Ok(Event::BytesMessage(echo))) = ws.next().await else { panic!("fragmented: an echo") };
        assert!(echo.data == parts.concat(), "fragmented: the echo differs ({} B)", echo.data.len());
        ws.close().await.unwrap();
    })
    .await
    .expect("test timed out");
}
