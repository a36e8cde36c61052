//! permessage-deflate: our compressed encode/decode (sans-IO `Connection`, context takeover,
//! default level) against flate2 alone (same zlib-rs backend, raw deflate, same level and
//! window) compressing and decompressing the same messages.

use std::hint::black_box;

use bytes::BytesMut;
use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress};
use wsproto::extensions::PerMessageDeflate;
use wsproto::{
    AcceptConnection, BytesMessage, Connection, ConnectionType, Event, Request, TextMessage, Utf8Bytes,
    WsConnection,
};

use crate::common::*;

const TAIL: [u8; 4] = [0, 0, 0xff, 0xff];

/// A client and a server connection with permessage-deflate negotiated (defaults).
fn pair() -> (Connection, Connection) {
    pair_with(PerMessageDeflate::new())
}

/// A client (defaults) and a server (`server_ext`) with permessage-deflate negotiated, sans-IO.
pub fn pair_with(server_ext: PerMessageDeflate) -> (Connection, Connection) {
    let mut client = WsConnection::new(ConnectionType::Client).with_extension(PerMessageDeflate::new());
    let mut server = WsConnection::new(ConnectionType::Server).with_extension(server_ext);
    let request = client.send_bytes(Request::new("localhost", "/")).expect("request");
    server.receive_data(&request).expect("request in");
    assert!(matches!(server.next_event(), Some(Event::Request(_))));
    let response = server.send_bytes(AcceptConnection::new()).expect("accept");
    client.receive_data(&response).expect("response in");
    assert!(matches!(client.next_event(), Some(Event::AcceptConnection(_))));
    let client = client.into_connection().expect("client open");
    let server = server.into_connection().expect("server open");
    assert_eq!(server.extensions().len(), 1, "deflate negotiated");
    (client, server)
}

fn ours_encode(texts: &[Utf8Bytes]) -> u64 {
    ours_send(texts.iter().map(|text| TextMessage::new(text.clone())), texts[0].len())
}

/// Our server sends `messages` (each `size` bytes at most): the bytes it produced.
fn ours_send<E: Into<Event>>(messages: impl Iterator<Item = E>, size: usize) -> u64 {
    let (_client, mut server) = pair();
    let mut dst = BytesMut::with_capacity(size + 64);
    let mut total = 0u64;
    for message in messages {
        server.send(message, &mut dst).expect("send");
        total += dst.len() as u64;
        dst.clear();
    }
    total
}

fn raw_compress<T: AsRef<[u8]>>(messages: &[T], keep: bool) -> (u64, Vec<Vec<u8>>) {
    let mut c = Compress::new(Compression::default(), false);
    let mut total = 0u64;
    let mut kept = Vec::new();
    for message in messages {
        let data = message.as_ref();
        let mut out = Vec::with_capacity(data.len() / 4 + 64);
        let mut input: &[u8] = data;
        loop {
            if out.len() == out.capacity() {
                out.reserve(out.capacity());
            }
            let before = c.total_in();
            c.compress_vec(input, &mut out, FlushCompress::Sync).expect("compress");
            input = &input[(c.total_in() - before) as usize..];
            if input.is_empty() && out.len() < out.capacity() {
                break;
            }
        }
        out.truncate(out.len() - TAIL.len());
        total += out.len() as u64;
        if keep {
            kept.push(out);
        }
    }
    (total, kept)
}

/// `n` compressed, masked client frames of `text`, and a fresh server to decode them.
fn ours_decode_input(texts: &[Utf8Bytes]) -> (Connection, BytesMut) {
    let (mut client, server) = pair();
    let mut input = BytesMut::new();
    for text in texts {
        client.send(TextMessage::new(text.clone()), &mut input).expect("client send");
    }
    (server, input)
}

fn ours_decode(server: &mut Connection, input: &mut BytesMut, n: usize) -> u64 {
    let mut done = 0;
    let mut total = 0u64;
    while done < n {
        match server.decode(input) {
            Some(Event::TextMessage(m)) => {
                total += m.data.len() as u64;
                done += m.message_finished as usize;
            }
            other => panic!("deflate decode: unexpected {other:?}"),
        }
    }
    total
}

fn raw_decompress(compressed: &[Vec<u8>], size: usize) -> u64 {
    let mut d = Decompress::new(false);
    let mut total = 0u64;
    for z in compressed {
        let mut out = Vec::with_capacity(size + 64);
        d.decompress_vec(z, &mut out, FlushDecompress::None).expect("inflate");
        d.decompress_vec(&TAIL, &mut out, FlushDecompress::Sync).expect("inflate tail");
        assert_eq!(out.len(), size);
        total += black_box(out).len() as u64;
    }
    total
}

pub fn run_deflate(settings: Settings) -> String {
    let mut table = Table::new([
        "JSON text",
        "ratio",
        "wsproto encode",
        "flate2 compress",
        "encode overhead",
        "wsproto decode",
        "flate2 decompress",
        "decode overhead",
        "enc+dec overhead",
    ]);
    for size in [1usize << 10, 64 << 10] {
        let n = if settings.quick { (8 << 20) / size } else { (32 << 20) / size };
        // Distinct messages (same structure, different records), as a real stream would be.
        let texts: Vec<Utf8Bytes> =
            (0..n).map(|i| Utf8Bytes::from(json_payload_seeded(size, i as u32))).collect();
        let (_, compressed) = raw_compress(&texts, true);
        let zsize: usize = compressed.iter().map(Vec::len).sum();
        // Warm-up and sanity.
        assert_eq!(raw_decompress(&compressed, size), (size * n) as u64);
        let (mut s, input) = ours_decode_input(&texts);
        assert_eq!(ours_decode(&mut s, &mut input.clone(), n), (size * n) as u64);
        black_box(ours_encode(&texts));
        let mut t: [Vec<f64>; 4] = Default::default();
        for round in 0..settings.rounds {
            for k in 0..4 {
                let i = (k + round) % 4;
                let secs = match i {
                    0 => time(|| black_box(ours_encode(&texts))).0,
                    1 => time(|| black_box(raw_compress(&texts, false))).0,
                    2 => {
                        let (_, mut server) = pair();
                        let mut input = input.clone();
                        time(|| black_box(ours_decode(&mut server, &mut input, n))).0
                    }
                    _ => time(|| black_box(raw_decompress(&compressed, size))).0,
                };
                t[i].push(secs);
            }
        }
        let m: Vec<f64> = t.iter_mut().map(|v| median(v)).collect();
        let bytes = (size * n) as f64;
        let mbps = |secs: f64| format!("{:.0} MB/s", bytes / secs / 1e6);
        let over = |ours: f64, raw: f64| format!("{:+.1}%", (ours / raw - 1.0) * 100.0);
        let row = vec![
            fmt_size(size),
            format!("{:.1}:1", bytes / zsize as f64),
            mbps(m[0]),
            mbps(m[1]),
            over(m[0], m[1]),
            mbps(m[2]),
            mbps(m[3]),
            over(m[2], m[3]),
            over(m[0] + m[2], m[1] + m[3]),
        ];
        println!("  {}", row.join(" | "));
        table.row(row);
    }
    let mut s = String::from(
        "## permessage-deflate (context takeover, default level, 15-bit window; MB/s of uncompressed payload; distinct JSON messages)\n\n",
    );
    s.push_str(&table.render());
    s.push_str("\nwsproto: sans-IO `Connection::send` (server role) and `Connection::decode` of masked client frames. flate2: one `Compress`/`Decompress` (raw deflate) per run, sync flush and `00 00 ff ff` tail handled as on the wire, output buffer preallocated to the known size for decompression.\n");
    s.push_str(&run_incompressible(settings));
    s
}

fn ours_encode_bytes(messages: &[bytes::Bytes]) -> u64 {
    ours_send(messages.iter().map(|message| BytesMessage::new(message.clone())), messages[0].len())
}

/// Makes message `i` of a case, `len` bytes.
type MakePayload = fn(usize, usize) -> Vec<u8>;

/// Binary messages a compressing sender cannot shrink (random bytes), alone and followed by
/// JSON: what compressing them costs, against flate2 deflating every byte (what a library
/// that compresses every message at the default level pays).
fn run_incompressible(settings: Settings) -> String {
    let mut table = Table::new([
        "binary message",
        "wsproto size",
        "flate2 size",
        "wsproto encode",
        "flate2 compress",
        "ratio",
    ]);
    let cases: [(&str, usize, MakePayload); 3] = [
        ("random 64 KiB", 64 << 10, |len, i| binary_payload_seeded(len, i as u64 + 1)),
        ("random 1 MiB", 1 << 20, |len, i| binary_payload_seeded(len, i as u64 + 1)),
        ("random 256 KiB + JSON 768 KiB", 1 << 20, |len, i| {
            let mut data = binary_payload_seeded(256 << 10, i as u64 + 1);
            data.extend_from_slice(json_payload_seeded(len - (256 << 10), i as u32).as_bytes());
            data
        }),
    ];
    for (name, size, make) in cases {
        let n = if settings.quick { (8 << 20) / size } else { (32 << 20) / size };
        let messages: Vec<bytes::Bytes> = (0..n).map(|i| make(size, i).into()).collect();
        let ours_size = ours_encode_bytes(&messages);
        let (raw_size, _) = raw_compress(&messages, false);
        let mut t: [Vec<f64>; 2] = Default::default();
        for round in 0..settings.rounds {
            for k in 0..2 {
                let i = (k + round) % 2;
                let secs = if i == 0 {
                    time(|| black_box(ours_encode_bytes(&messages))).0
                } else {
                    time(|| black_box(raw_compress(&messages, false))).0
                };
                t[i].push(secs);
            }
        }
        let m: Vec<f64> = t.iter_mut().map(|v| median(v)).collect();
        let bytes = (size * n) as f64;
        let mbps = |secs: f64| format!("{:.0} MB/s", bytes / secs / 1e6);
        let row = vec![
            name.to_owned(),
            format!("{:.3}", ours_size as f64 / bytes),
            format!("{:.3}", raw_size as f64 / bytes),
            mbps(m[0]),
            mbps(m[1]),
            format!("{:.2}x", m[1] / m[0]),
        ];
        println!("  {}", row.join(" | "));
        table.row(row);
    }
    let mut s = String::from(
        "\n### Incompressible payloads (binary, context takeover, default level; MB/s of payload; sizes are wire bytes per payload byte)\n\n",
    );
    s.push_str(&table.render());
    s.push_str("\nwsproto deflates a 32 KiB probe and sends a run that follows a probe saving under 1/16 as stored blocks (a copy), probing again after each run; flate2 deflates every byte. ratio: wsproto's encode speed over flate2's.\n");
    s
}

/// Repeats ours (`ours`) or raw flate2 compression (`enc`) or decompression for `secs`.
pub fn loop_deflate(enc: bool, ours: bool, size: usize, secs: f64) {
    let n = (32 << 20) / size;
    let texts: Vec<Utf8Bytes> =
        (0..n).map(|i| Utf8Bytes::from(json_payload_seeded(size, i as u32))).collect();
    let (_, compressed) = raw_compress(&texts, true);
    let (_, input) = ours_decode_input(&texts);
    let start = std::time::Instant::now();
    while start.elapsed().as_secs_f64() < secs {
        match (enc, ours) {
            (true, true) => drop(black_box(ours_encode(&texts))),
            (true, false) => drop(black_box(raw_compress(&texts, false))),
            (false, true) => {
                // Any fresh server inflates the stream of any fresh client (same parameters).
                let (_, mut server) = pair();
                let mut input = input.clone();
                black_box(ours_decode(&mut server, &mut input, n));
            }
            (false, false) => drop(black_box(raw_decompress(&compressed, size))),
        }
    }
}
