//! Compressed echo: wsproto with permessage-deflate against yawc (the one peer here that
//! negotiates it), over loopback TCP, driven by the neutral load generator of [`crate::echo`]
//! sending one pre-built compressed, masked text frame over and over.
//!
//! Every offer asks for `client_no_context_takeover` (so the same compressed frame is valid on
//! every send). The main table also asks for `server_no_context_takeover` (so every echo
//! costs the server the same: a fresh compression of the same message, whichever library); a
//! second table leaves it out (the servers keep their compression context, and since the
//! message repeats, each echo compresses to little more than a back-reference).

use std::io::{Read, Write};

use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress};
use futures_util::{SinkExt, StreamExt};
use tokio::io::AsyncWriteExt;

use crate::common::*;
use crate::echo::{accept_key, frame_cell, header_value, read_request_head, Server, ServerProc};

/// The extension offer of the load generator's connections (main table, and `wsbench load
/// --deflate`).
pub const OFFER: &str = "permessage-deflate; client_no_context_takeover; server_no_context_takeover";

/// The offer of the second table: the servers keep their compression context.
pub const OFFER_SERVER_TAKEOVER: &str = "permessage-deflate; client_no_context_takeover";

const TAIL: [u8; 4] = [0, 0, 0xff, 0xff];

/// Raw deflate of `data` (default level), sync-flushed, with the `00 00 ff ff` tail removed:
/// the payload of a compressed message sent without context takeover.
pub fn deflate_message(data: &[u8]) -> Vec<u8> {
    let mut c = Compress::new(Compression::default(), false);
    let mut out = Vec::with_capacity(data.len() + 64);
    loop {
        let consumed = c.total_in() as usize;
        c.compress_vec(&data[consumed..], &mut out, FlushCompress::Sync).expect("deflate");
        if c.total_in() as usize == data.len() && out.len() < out.capacity() {
            break;
        }
        out.reserve(out.capacity().max(64));
    }
    assert!(out.ends_with(&TAIL), "sync flush ends with an empty stored block");
    out.truncate(out.len() - TAIL.len());
    out
}

fn inflate_message(d: &mut Decompress, payload: &[u8], expect_len: usize) -> Vec<u8> {
    let mut input = payload.to_vec();
    input.extend_from_slice(&TAIL);
    let mut out = Vec::with_capacity(expect_len + 64);
    // Totals count from the inflater's creation, which may precede this message.
    let start = d.total_in();
    while ((d.total_in() - start) as usize) < input.len() {
        let consumed = (d.total_in() - start) as usize;
        let before = d.total_out();
        d.decompress_vec(&input[consumed..], &mut out, FlushDecompress::Sync).expect("inflate echo");
        if d.total_out() == before && out.len() < out.capacity() {
            break;
        }
        out.reserve(out.capacity().max(64));
    }
    out
}

/// One masked, compressed (RSV1) text frame carrying `text`.
pub fn compressed_frame(text: &[u8]) -> Vec<u8> {
    let mut frame = Vec::new();
    push_frame(&mut frame, OP_TEXT, true, true, &deflate_message(text), true);
    frame
}

/// yawc's server. yawc's own server handshake needs a hyper server (`hyper::Request` and
/// `hyper::upgrade::on`); this one answers the request head directly (as for fastwebsockets),
/// agreeing to the parameters offered as yawc's negotiation would (no window bits without its
/// `zlib` feature), then hands the socket to yawc with the agreed extension (none when none is
/// offered: the plain echo and memory sections). Default level (`with_balanced_compression`,
/// level 6, as wsproto), UTF-8 checked (as wsproto does).
pub async fn serve_yawc<S: crate::echo::Io>(
    mut stream: S,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    use yawc::{OpCode, Options, Role, WebSocket};
    let agreed = {
        let head = read_request_head(&mut stream).await?;
        let key = header_value(&head, "sec-websocket-key").ok_or("no key")?;
        let agreed = header_value(&head, "sec-websocket-extensions").and_then(|offer| agree(&offer));
        let ext = agreed.as_ref().map(|a| format!("Sec-WebSocket-Extensions: {a}\r\n")).unwrap_or_default();
        let response = format!(
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {}\r\n{ext}\r\n",
            accept_key(&key)
        );
        stream.write_all(response.as_bytes()).await?;
        agreed
    };
    // yawc's default limits (frames under 1 MiB, messages under 2 MiB) refuse the echo's 1 MiB
    // and the memory section's 16 MiB messages: the bench's usual limits instead (its bounds
    // are exclusive: frames of 16 MiB, messages of 64 MiB pass).
    let options = Options::default()
        .with_balanced_compression()
        .with_utf8()
        .with_limits((16 << 20) + 1, (64 << 20) + 1);
    let mut ws = WebSocket::from_stream_with_extensions(stream, Role::Server, agreed.as_deref(), options)?;
    while let Some(frame) = ws.next().await {
        match frame.opcode() {
            OpCode::Text | OpCode::Binary => ws.send(frame).await?,
            OpCode::Close => break,
            _ => {}
        }
    }
    Ok(())
}

/// The first permessage-deflate offer without window-bit parameters, answered with the
/// context-takeover parameters it asked for.
pub fn agree(offers: &str) -> Option<String> {
    offers.split(',').find_map(|offer| {
        let mut params = offer.split(';').map(str::trim);
        if params.next()? != "permessage-deflate" {
            return None;
        }
        let mut answer = String::from("permessage-deflate");
        for p in params {
            match p {
                "client_no_context_takeover" | "server_no_context_takeover" => {
                    answer.push_str("; ");
                    answer.push_str(p);
                }
                "client_max_window_bits" => {}
                _ => return None,
            }
        }
        Some(answer)
    })
}

/// Two compressed echoes through a plain blocking socket: returns the 101 response's extension
/// header, after checking that each echo had RSV1 set and inflates back to `text` (with a
/// fresh inflater each time when the server agreed to `server_no_context_takeover`).
fn check_server(port: u16, offer: &str, text: &[u8]) -> String {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
    let request = format!(
        "GET / HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Extensions: {offer}\r\n\r\n"
    );
    s.write_all(request.as_bytes()).expect("request");
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        s.read_exact(&mut byte).expect("response");
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head).into_owned();
    let ext = header_value(&head, "sec-websocket-extensions").expect("server agreed to no extension");
    assert!(ext.contains("permessage-deflate"), "deflate not negotiated: {ext}");
    let fresh = ext.contains("server_no_context_takeover");
    let mut d = Decompress::new(false);
    for _ in 0..2 {
        if fresh {
            d = Decompress::new(false);
        }
        s.write_all(&compressed_frame(text)).expect("send");
        let mut h = [0u8; 2];
        s.read_exact(&mut h).expect("echo header");
        assert_eq!(h[0] & 0x0f, OP_TEXT, "echo is a text frame");
        assert!(h[0] & 0x80 != 0, "echo is one frame");
        assert!(h[0] & 0x40 != 0, "echo has RSV1 set (compressed)");
        let len = match h[1] & 0x7f {
            126 => {
                let mut b = [0u8; 2];
                s.read_exact(&mut b).expect("len");
                u16::from_be_bytes(b) as usize
            }
            127 => {
                let mut b = [0u8; 8];
                s.read_exact(&mut b).expect("len");
                u64::from_be_bytes(b) as usize
            }
            n => n as usize,
        };
        let mut payload = vec![0u8; len];
        s.read_exact(&mut payload).expect("echo payload");
        assert_eq!(inflate_message(&mut d, &payload, text.len()), text, "echo inflates to the message");
    }
    ext
}

const SERVERS: [(Server, bool); 2] = [(Server::Lib(Lib::Ours), true), (Server::Yawc, false)];

pub fn run_deflate_echo(settings: Settings) -> String {
    pin_to(1);
    raise_nofile();
    let procs: Vec<ServerProc> = SERVERS.iter().map(|&(s, d)| ServerProc::start_server(s, d)).collect();
    let rt = current_thread_runtime();
    let (main, agreed) = table(settings, &rt, &procs, OFFER, &[1 << 10, 16 << 10, 64 << 10]);
    let (second, agreed2) = table(settings, &rt, &procs, OFFER_SERVER_TAKEOVER, &[1 << 10, 16 << 10]);
    drop(procs);
    let mut s = String::from(
        "## Compressed echo over loopback TCP (permessage-deflate; messages per second; median of rounds)\n\n",
    );
    s.push_str(&format!(
        "Offer `{OFFER}`; agreed: {agreed}. Each message is one compressible JSON-like text frame \
         (`json_payload`), compressed once by the load generator (flate2 raw deflate, default \
         level, sync flush, tail stripped) and sent masked with RSV1 on every send; every echo \
         counted had RSV1 set, and before each table two echoes per server were inflated and \
         compared with the message. Servers compress at the default level (6). yawc: \
         `from_stream_with_extensions` after a minimal handshake (its own needs a hyper server), \
         `with_balanced_compression().with_utf8()`; wsproto: `upgrade::server` with \
         `PerMessageDeflate::new()`. Size is the uncompressed message (in brackets: its \
         compressed payload). Both libraries use flate2 on the zlib-rs backend here.\n\n"
    ));
    s.push_str(&main);
    s.push_str(&format!(
        "\nWith the servers keeping their compression context (offer `{OFFER_SERVER_TAKEOVER}`; \
         agreed: {agreed2}). The message repeats, so each echo compresses to little more than a \
         reference to the previous one, as long as the previous one lies within the compress \
         window: yawc compresses with 15 bits (32 KiB), wsproto by default with 14 (16 KiB, for \
         the memory of idle connections), so at 16 KiB wsproto finds no reference and \
         compresses each message from scratch. With `compress_window_bits(15)` (16 KiB, \
         `WSBENCH_DEFLATE=history,15,8`, `wsbench load` by hand, two runs of 3 s) wsproto does \
         10.0-11.5k msg/s with 1 connection and 31-35k with 16, yawc's rate.\n\n"
    ));
    s.push_str(&second);
    s
}

/// One table: every size, window 1 and 16, 1 and 16 connections; returns the table and the
/// extension each server agreed to.
fn table(
    settings: Settings,
    rt: &tokio::runtime::Runtime,
    procs: &[ServerProc],
    offer: &str,
    sizes: &[usize],
) -> (String, String) {
    let servers = SERVERS;
    let rounds = settings.echo_rounds;
    let mut agreed = Vec::new();
    for (p, (s, _)) in procs.iter().zip(servers) {
        let ext = check_server(p.port, offer, json_payload(1 << 10).as_bytes());
        println!("  {}: Sec-WebSocket-Extensions: {ext}", s.name());
        agreed.push(format!("{} `{ext}`", s.name()));
    }
    let mut table = Table::new([
        "compressed echo: size (compressed), window, conns",
        "wsproto msg/s",
        "yawc msg/s",
        "wsproto / yawc",
    ]);
    for &size in sizes {
        let text = json_payload(size);
        let frame = compressed_frame(text.as_bytes());
        let wire = deflate_message(text.as_bytes()).len();
        for window in [1usize, 16] {
            for conns in [1usize, 16] {
                let mut samples: Vec<Vec<f64>> = vec![Vec::new(); procs.len()];
                for round in 0..rounds {
                    for k in 0..procs.len() {
                        let i = (k + round) % procs.len();
                        let r = frame_cell(
                            rt,
                            procs[i].port,
                            conns,
                            window,
                            frame.clone(),
                            Some(offer),
                            settings.echo_measure,
                        );
                        assert!(r.echoed > 0, "{}: no echoes", servers[i].0.name());
                        assert_eq!(r.compressed, r.echoed, "{}: an echo without RSV1", servers[i].0.name());
                        samples[i].push(r.rate);
                    }
                }
                let rates: Vec<f64> = samples.iter_mut().map(|s| median(s)).collect();
                let row = vec![
                    format!("{} ({} B) w{window} c{conns}", fmt_size(size), wire),
                    fmt_rate(rates[0]),
                    fmt_rate(rates[1]),
                    ratio(rates[0], rates[1]),
                ];
                println!("  {}", row.join(" | "));
                table.row(row);
            }
        }
    }
    (table.render(), agreed.join(", "))
}
