//! Load: 1,000 concurrent connections to an echo server on 127.0.0.1, mixed message sizes
//! (16 B to 1 MiB), some fragmented, some compressed; every echo verified byte for byte.
#![cfg(all(feature = "tokio", feature = "deflate"))]

#[path = "../examples/common/echo.rs"]
mod echo;

use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::codec::Framed;
use wsproto::codec::WsCodec;
use wsproto::upgrade::{self, UpgradeConfig};
use wsproto::Delivery;
use wsproto::{BytesMessage, CloseConnection, Config, Event, Request, TextMessage};

const CONNECTIONS: usize = 1000;

fn rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches(" kB").parse().ok())
}

/// What connection `i` sends: sizes from 16 B to 1 MiB, fragmented every third message.
fn plan(i: usize) -> Vec<(bool, Bytes, usize)> {
    let mut sizes = vec![16, 1024, 16 << 10];
    if i.is_multiple_of(10) {
        sizes.push(256 << 10);
    }
    if i.is_multiple_of(100) {
        sizes.push(1 << 20);
    }
    sizes
        .into_iter()
        .enumerate()
        .map(|(k, size)| {
            let text = (i + k).is_multiple_of(2);
            let data: Vec<u8> = if text {
                "wsproto load ✓ ".bytes().cycle().take(size).collect::<Vec<u8>>()
            } else {
                (0..size).map(|j| (j * 31 + i) as u8).collect()
            };
            let mut data = data;
            if text {
                // Cut on a character boundary.
                while std::str::from_utf8(&data).is_err() {
                    data.pop();
                }
            }
            let fragments = if k % 3 == 2 { 4 } else { 1 };
            (text, Bytes::from(data), fragments)
        })
        .collect()
}

async fn run_client(i: usize, addr: std::net::SocketAddr) {
    let io = TcpStream::connect(addr).await.unwrap();
    let request = Request::new(addr.to_string(), "/load");
    let compressed = i % 10 == 3;
    let config = UpgradeConfig::default().compression(compressed);
    let (ws, accept) = upgrade::client(io, request, config).await.unwrap();
    let mut ws = ws.into_inner();
    assert_eq!(accept.deflate().is_some(), compressed);
    assert_eq!(ws.codec().connection().extensions().len(), usize::from(compressed));
    for (text, data, fragments) in plan(i) {
        send_fragmented(&mut ws, text, &data, fragments).await;
        let echoed = match ws.next().await.unwrap().unwrap() {
            Event::TextMessage(m) => {
                assert!(text);
                m.data.into_bytes()
            }
            Event::BytesMessage(m) => {
                assert!(!text);
                m.data
            }
            other => panic!("connection {i}: unexpected {other:?}"),
        };
        assert_eq!(echoed, data, "connection {i}: echo differs");
    }
    ws.send(CloseConnection::new(1000u16).into()).await.unwrap();
    assert!(matches!(ws.next().await.unwrap().unwrap(), Event::CloseConnection(c) if c.code == 1000));
}

async fn send_fragmented(ws: &mut Framed<TcpStream, WsCodec>, text: bool, data: &Bytes, fragments: usize) {
    let step = data.len().div_ceil(fragments).max(1);
    let mut offset = 0;
    while offset < data.len() || offset == 0 {
        let mut end = (offset + step).min(data.len());
        if text {
            // Outgoing text chunks hold whole characters.
            while std::str::from_utf8(&data[offset..end]).is_err() {
                end += 1;
            }
        }
        let chunk = data.slice(offset..end);
        let last = end == data.len();
        let event: Event = if text {
            let data = wsproto::Utf8Bytes::try_from(chunk).unwrap();
            TextMessage { data, frame_finished: true, message_finished: last }.into()
        } else {
            BytesMessage { data: chunk, frame_finished: true, message_finished: last }.into()
        };
        ws.feed(event).await.unwrap();
        offset = end;
        if last {
            break;
        }
    }
    ws.flush().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_connections_echo_mixed_messages() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    // One config for all connections: they share its deflate pool.
    let config = UpgradeConfig::default().config(Config::default().delivery(Delivery::Frames));
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            let config = config.clone();
            tokio::spawn(async move {
                if let Ok((ws, _)) = upgrade::accept(stream, config).await {
                    echo::echo(&mut ws.into_inner()).await.unwrap();
                }
            });
        }
    });
    let before = rss_kib();
    let clients: Vec<_> = (0..CONNECTIONS).map(|i| tokio::spawn(run_client(i, addr))).collect();
    let all = futures_util::future::join_all(clients);
    let results = tokio::time::timeout(Duration::from_secs(240), all).await.expect("load finished in time");
    for (i, r) in results.into_iter().enumerate() {
        r.unwrap_or_else(|e| panic!("connection {i}: {e}"));
    }
    if let (Some(before), Some(after)) = (before, rss_kib()) {
        // Client and server of every connection live in this process.
        let grown = after.saturating_sub(before);
        eprintln!("RSS grew by {grown} KiB over {CONNECTIONS} connections");
        assert!(grown < 600 << 10, "memory grew by {grown} KiB");
    }
}

/// Pipelining against the README's session echo loop (`send` per message, so its replies are
/// coalesced): 500 connections, each with rounds of 32 messages in flight, compressed (the
/// default offer), every echo checked in order and byte for byte.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelined_clients_against_the_session_echo_loop_get_every_echo_in_order() {
    const CLIENTS: usize = 500;
    const IN_FLIGHT: usize = 32;
    const ROUNDS: usize = 4;
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let config = UpgradeConfig::default();
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            let config = config.clone();
            tokio::spawn(async move {
                let Ok((mut ws, _)) = upgrade::accept(stream, config).await else { return };
                while let Some(Ok(event)) = ws.next().await {
                    match event {
                        Event::TextMessage(m) => ws.send(m.into()).await.unwrap(),
                        Event::BytesMessage(m) => ws.send(m.into()).await.unwrap(),
                        _ => {}
                    }
                }
            });
        }
    });
    let client = |i: usize| async move {
        let (ws, accept) = upgrade::connect(&format!("ws://{addr}/")).await.unwrap();
        assert!(accept.deflate().is_some(), "compressed by default");
        let mut ws = ws.into_inner();
        for round in 0..ROUNDS {
            let batch: Vec<Bytes> = (0..IN_FLIGHT)
                .map(|k| {
                    let size = [5usize, 16, 200, 1 << 10, 16 << 10][(i + k + round) % 5];
                    Bytes::from((0..size).map(|j| (j * 7 + k + i) as u8).collect::<Vec<u8>>())
                })
                .collect();
            for data in &batch {
                ws.feed(BytesMessage::new(data.clone()).into()).await.unwrap();
            }
            ws.flush().await.unwrap();
            for (k, data) in batch.iter().enumerate() {
                match ws.next().await.unwrap().unwrap() {
                    Event::BytesMessage(m) => {
                        assert_eq!(&m.data, data, "client {i} round {round} message {k}")
                    }
                    other => panic!("client {i}: unexpected {other:?}"),
                }
            }
        }
        ws.send(CloseConnection::new(1000u16).into()).await.unwrap();
    };
    let clients: Vec<_> = (0..CLIENTS).map(|i| tokio::spawn(client(i))).collect();
    let results = tokio::time::timeout(Duration::from_secs(120), futures_util::future::join_all(clients))
        .await
        .expect("pipelined load finished in time");
    for (i, r) in results.into_iter().enumerate() {
        r.unwrap_or_else(|e| panic!("client {i}: {e}"));
    }
}
