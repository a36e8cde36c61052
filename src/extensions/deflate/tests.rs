//! Unit tests of permessage-deflate internals.

use super::negotiate::parse_bits;
use super::*;

#[allow(unreachable_pub, reason = "shared with tests/, where it is public")]
#[path = "../../../tests/support/noise.rs"]
mod noise;
use noise::noise;

#[test]
fn window_bits_grammar() {
    assert_eq!(parse_bits("8"), Some(8));
    assert_eq!(parse_bits("15"), Some(15));
    for bad in ["", "7", "16", "08", "+9", "9 ", "1O", "255", "-9", "99999999999"] {
        assert_eq!(parse_bits(bad), None, "{bad:?}");
    }
}

#[test]
fn pool_is_explicit_and_shared() {
    let send = |ext: &mut PerMessageDeflate| {
        ext.frame_outbound(Opcode::Text, Rsv::NONE, Bytes::from_static(b"Hello"), true).unwrap();
    };
    // Without a pool, the connection keeps its own state (reset after each message).
    let mut alone = PerMessageDeflate::new().server_no_context_takeover(true);
    alone.accept("permessage-deflate").unwrap();
    send(&mut alone);
    assert_eq!(alone.state_allocated(), (true, false));
    send(&mut alone);
    assert_eq!(alone.state_allocated(), (true, false));

    // With one, it goes to the pool and the next message of any holder reuses it.
    let pool = DeflatePool::with_capacity(1);
    let mut a = PerMessageDeflate::new().server_no_context_takeover(true).pool(pool.clone());
    let mut b = PerMessageDeflate::new().server_no_context_takeover(true).pool(pool.clone());
    a.accept("permessage-deflate").unwrap();
    b.accept("permessage-deflate").unwrap();
    send(&mut a);
    assert_eq!(pool.len(), (1, 0));
    send(&mut b);
    send(&mut a);
    assert_eq!(pool.len(), (1, 0), "capacity 1: one state kept, reused by both");
    assert_eq!(a.state_allocated(), (false, false));
}

#[test]
fn lazily_allocated() {
    let mut server = PerMessageDeflate::new().idle_state(IdleState::Live);
    server.accept("permessage-deflate").unwrap();
    assert_eq!(server.state_allocated(), (false, false));
    server.frame_outbound(Opcode::Text, Rsv::NONE, Bytes::from_static(b"Hello"), true).unwrap();
    assert_eq!(server.state_allocated(), (true, false));
}

/// A negotiated client/server pair with the given configurations.
fn pair(client: PerMessageDeflate, server: PerMessageDeflate) -> (PerMessageDeflate, PerMessageDeflate) {
    let (mut client, mut server) = (client, server);
    let offer = client.offer().unwrap();
    let response = server.accept(&format!("permessage-deflate; {offer}")).unwrap();
    let response = if response.is_empty() { NAME.to_owned() } else { format!("{NAME}; {response}") };
    client.finalize(&response).unwrap();
    (client, server)
}

/// Sends one message from `tx` to `rx` in `fragments` frames; returns the compressed size
/// and what `rx` delivered.
fn transfer(
    tx: &mut PerMessageDeflate,
    rx: &mut PerMessageDeflate,
    data: &[u8],
    fragments: usize,
) -> (usize, Vec<u8>) {
    let step = data.len().div_ceil(fragments.max(1)).max(1);
    let chunks: Vec<&[u8]> = if data.is_empty() { vec![data] } else { data.chunks(step).collect() };
    transfer_frames(tx, rx, &chunks)
}

/// Sends one message from `tx` to `rx`, a frame per chunk; returns the compressed size and
/// what `rx` delivered.
fn transfer_frames(
    tx: &mut PerMessageDeflate,
    rx: &mut PerMessageDeflate,
    chunks: &[&[u8]],
) -> (usize, Vec<u8>) {
    let role = rx.params().unwrap().role;
    let (mut wire, mut out) = (0, Vec::new());
    for (i, chunk) in chunks.iter().enumerate() {
        let opcode = if i == 0 { Opcode::Binary } else { Opcode::Continuation };
        let fin = i + 1 == chunks.len();
        let (rsv, payload) =
            tx.frame_outbound(opcode, Rsv::NONE, Bytes::copy_from_slice(chunk), fin).unwrap();
        wire += payload.len();
        rx.frame_inbound_header(role, opcode, rsv, payload.len() as u64).unwrap();
        out.extend_from_slice(&rx.frame_inbound_payload_data(payload, usize::MAX / 2).unwrap());
        if let Some(tail) = rx.frame_inbound_complete(fin, usize::MAX / 2).unwrap() {
            out.extend_from_slice(&tail);
        }
    }
    (wire, out)
}

/// A message's compressed data inflated as a peer's zlib does: with the `00 00 ff ff` the
/// receiver appends, by `raw` (which keeps the stream's context), into room for `len` bytes.
fn inflate_plain(
    raw: &mut Decompress,
    payload: &[u8],
    len: usize,
) -> Result<Vec<u8>, flate2::DecompressError> {
    let mut input = payload.to_vec();
    input.extend_from_slice(&TAIL);
    let mut out = Vec::with_capacity(len + 64);
    raw.decompress_vec(&input, &mut out, FlushDecompress::Sync)?;
    Ok(out)
}

/// Deterministic chat-like text: repeats from near and far back.
fn chat(seed: u32, len: usize) -> Vec<u8> {
    let words = ["hello", "room", "general", "alice", "bob", "message", "typing", "ok", "lunch?", "deploy"];
    let mut x = seed.wrapping_mul(2_654_435_761) | 1;
    let mut s = Vec::new();
    while s.len() < len {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        s.extend_from_slice(
            format!(
                "{{\"user\":\"{}\",\"n\":{},\"text\":\"{} {}\"}}",
                words[x as usize % 10],
                x % 977,
                words[(x >> 8) as usize % 10],
                x % 31
            )
            .as_bytes(),
        );
    }
    s.truncate(len);
    s
}

#[test]
fn every_memory_level_and_window_round_trips() {
    for mem_level in 1..=9 {
        for bits in [8, 9, 12, 15] {
            for idle in [IdleState::History, IdleState::Live] {
                let (mut client, mut server) = pair(
                    PerMessageDeflate::new().idle_state(idle),
                    PerMessageDeflate::new()
                        .memory_level(mem_level)
                        .compress_window_bits(bits)
                        .idle_state(idle),
                );
                for (i, len) in [0, 1, 100, 5000, 70_000, 300].into_iter().enumerate() {
                    let data = chat(i as u32 + u32::from(mem_level), len);
                    let (_, got) = transfer(&mut server, &mut client, &data, 1 + i % 3);
                    assert!(
                        got == data,
                        "server -> client, memLevel {mem_level}, {bits} bits, {idle:?}, {len} B"
                    );
                    let (_, got) = transfer(&mut client, &mut server, &data, 2);
                    assert!(got == data, "client -> server, {idle:?}, {len} B");
                }
            }
        }
    }
}

#[test]
fn compressing_with_a_smaller_window_is_inflated_by_a_15_bit_peer() {
    // Negotiated: 15 bits both ways. The server silently compresses with 9.
    let (mut client, mut server) =
        pair(PerMessageDeflate::new(), PerMessageDeflate::new().compress_window_bits(9));
    assert_eq!(client.params().unwrap().server_max_window_bits, 15);
    let mut raw = Decompress::new_with_window_bits(false, 15);
    for i in 0..20 {
        let data = chat(i, 3000);
        let (rsv, payload) =
            server.frame_outbound(Opcode::Text, Rsv::NONE, Bytes::from(data.clone()), true).unwrap();
        assert!(rsv.rsv1());
        // A plain 15-bit inflater (as any peer has) decodes it.
        assert_eq!(inflate_plain(&mut raw, &payload, data.len()).unwrap(), data);
        // And so does the client, which negotiated 15.
        client.frame_inbound_header(ConnectionType::Client, Opcode::Text, rsv, 0).unwrap();
        let mut got = client.frame_inbound_payload_data(payload, usize::MAX / 2).unwrap().to_vec();
        got.extend_from_slice(
            &client.frame_inbound_complete(true, usize::MAX / 2).unwrap().unwrap_or_default(),
        );
        assert_eq!(got, data);
    }
    // The default on a server: 14 bits, whatever was negotiated; a client uses the
    // negotiated window.
    assert_eq!(server.compress_bits(server.params().unwrap()), 9);
    let (client, server) = pair(PerMessageDeflate::new(), PerMessageDeflate::new());
    assert_eq!(server.compress_bits(server.params().unwrap()), 14);
    assert_eq!(client.compress_bits(client.params().unwrap()), 15);
    let (client, server) =
        pair(PerMessageDeflate::new().server_max_window_bits(10), PerMessageDeflate::new());
    assert_eq!(server.compress_bits(server.params().unwrap()), 10, "a smaller negotiated window wins");
    assert_eq!(client.params().unwrap().inflate_window_bits(), 10);
}

#[test]
fn history_keeps_the_context_and_releases_the_states() {
    let pool = DeflatePool::new();
    let (mut client, mut server) =
        pair(PerMessageDeflate::new().pool(pool.clone()), PerMessageDeflate::new().pool(pool));
    let data = chat(7, 2000);
    let (first, got) = transfer(&mut server, &mut client, &data, 1);
    assert_eq!(got, data);
    assert_eq!(server.state_allocated(), (false, false), "compressor released after the message");
    assert_eq!(client.state_allocated(), (false, false), "inflater released after the message");
    assert_eq!((server.tx_history.as_slice(), client.rx_history.as_slice()), (&data[..], &data[..]));
    // The same message again: the context was taken over, so it refers to the first.
    let (second, got) = transfer(&mut server, &mut client, &data, 1);
    assert_eq!(got, data);
    assert!(second * 10 < first, "second message {second} B, first {first} B");
    // Fragmented messages too, and the client's direction.
    for i in 0..10 {
        let data = chat(100 + i, 10_000);
        assert_eq!(transfer(&mut client, &mut server, &data, 3).1, data);
        assert_eq!(transfer(&mut server, &mut client, &data, 2).1, data);
    }
    // What is kept is bounded by the windows: 14 bits for the server's compressor, 15 for
    // the client's inflater, 15 both ways for the client's compressor and server's inflater.
    assert_eq!(server.tx_history.as_slice().len(), 1 << 14);
    assert!(server.tx_history.0.capacity() <= 1 << 14);
    assert_eq!(client.rx_history.as_slice().len(), 1 << 15);
    assert_eq!(server.rx_history.as_slice().len(), 1 << 15);
}

#[test]
fn no_context_takeover_keeps_no_history() {
    let pool = DeflatePool::new();
    let (mut client, mut server) = pair(
        PerMessageDeflate::new()
            .client_no_context_takeover(true)
            .server_no_context_takeover(true)
            .pool(pool.clone()),
        PerMessageDeflate::new().pool(pool),
    );
    let data = chat(3, 5000);
    assert_eq!(transfer(&mut server, &mut client, &data, 1).1, data);
    assert_eq!(transfer(&mut client, &mut server, &data, 2).1, data);
    for side in [&client, &server] {
        assert_eq!(side.state_allocated(), (false, false));
        assert!(side.tx_history.is_empty() && side.rx_history.is_empty());
    }
}

#[test]
fn a_server_that_only_receives_never_allocates_a_compressor() {
    for idle in [IdleState::History, IdleState::Live] {
        let (mut client, mut server) = pair(
            PerMessageDeflate::new(),
            PerMessageDeflate::new().idle_state(idle).pool(DeflatePool::new()),
        );
        for i in 0..3 {
            let data = chat(i, 1000);
            assert_eq!(transfer(&mut client, &mut server, &data, 1).1, data);
        }
        assert_eq!(server.state_allocated(), (false, idle == IdleState::Live), "{idle:?}");
        assert!(server.tx_history.is_empty());
    }
}

#[test]
fn history_pooled_states_are_primed_per_connection() {
    // Two connections share one pool: a state released by one and taken by the other
    // must carry no context across (it is reset, then primed with the taker's history).
    let pool = DeflatePool::with_capacity(1);
    let mk = || PerMessageDeflate::new().pool(pool.clone());
    let (mut c1, mut s1) = pair(PerMessageDeflate::new(), mk());
    let (mut c2, mut s2) = pair(PerMessageDeflate::new(), mk());
    for i in 0..20 {
        let a = chat(i, 700);
        let b = chat(1000 + i, 900);
        assert_eq!(transfer(&mut s1, &mut c1, &a, 1).1, a);
        assert_eq!(transfer(&mut s2, &mut c2, &b, 1).1, b);
        assert_eq!(transfer(&mut c1, &mut s1, &b, 1).1, b);
        assert_eq!(transfer(&mut c2, &mut s2, &a, 2).1, a);
    }
    assert_eq!(pool.len(), (1, 1));
}

#[test]
fn a_pooled_state_comes_back_to_its_owner_with_its_context() {
    // One connection with a pool: it takes back its own compressor and inflater untouched,
    // so it compresses exactly as if it had kept them (IdleState::Live).
    let pool = DeflatePool::new();
    let (mut c1, mut pooled) = pair(PerMessageDeflate::new(), PerMessageDeflate::new().pool(pool.clone()));
    let (mut c2, mut live) =
        pair(PerMessageDeflate::new(), PerMessageDeflate::new().idle_state(IdleState::Live));
    for i in 0..30 {
        let data = chat(i, 300 + 97 * i as usize);
        let a = pooled.frame_outbound(Opcode::Text, Rsv::NONE, Bytes::from(data.clone()), true).unwrap();
        let b = live.frame_outbound(Opcode::Text, Rsv::NONE, Bytes::from(data.clone()), true).unwrap();
        assert_eq!(a, b, "message {i}");
        assert_eq!(transfer(&mut c1, &mut pooled, &data, 2).1, data);
        assert_eq!(transfer(&mut c2, &mut live, &data, 2).1, data);
    }
    assert_eq!(pooled.state_allocated(), (false, false));
    assert_eq!(pool.len(), (1, 1));
}

#[test]
fn pooled_states_interleaved_across_connections_keep_each_context() {
    // More connections than the pool holds, in an irregular order: states are taken back
    // by their owner, taken by others (reset and primed), or evicted.
    for capacity in [0, 1, 2, 3, 8] {
        let pool = DeflatePool::with_capacity(capacity);
        let mut conns: Vec<_> = (0..5)
            .map(|i| {
                let server = PerMessageDeflate::new().pool(pool.clone());
                let server = if i == 4 { server.server_no_context_takeover(true) } else { server };
                pair(PerMessageDeflate::new().pool(pool.clone()), server)
            })
            .collect();
        let mut x = 12345u32;
        for step in 0..200u32 {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
            let (client, server) = &mut conns[(x >> 16) as usize % 5];
            let data = chat(step, 50 + (x >> 8) as usize % 3000);
            if x & 1 == 0 {
                assert_eq!(transfer(server, client, &data, 1 + step as usize % 2).1, data, "cap {capacity}");
            } else {
                assert_eq!(transfer(client, server, &data, 1).1, data, "cap {capacity}");
            }
        }
        assert!(pool.len().0 <= capacity && pool.len().1 <= capacity);
    }
}

#[test]
fn history_keeps_the_last_window() {
    let mut h = History::default();
    h.push(b"abc", 8);
    h.push(b"defgh", 8);
    assert_eq!(h.as_slice(), b"abcdefgh");
    h.push(b"ij", 8);
    assert_eq!(h.as_slice(), b"cdefghij");
    h.push(b"0123456789", 8);
    assert_eq!(h.as_slice(), b"23456789");
    assert!(h.0.capacity() <= 8);
    h.clear();
    assert!(h.is_empty() && h.0.capacity() == 0);
}

#[test]
fn connections_taking_turns_each_take_back_their_own_state_up_to_the_capacity() {
    use super::pool::{give, take};
    let list = Mutex::new(Vec::new());
    let capacity = 4;
    // Four connections take turns, one message each (as on a current-thread server): the pool
    // grows to hold a state for each instead of handing one connection's context to the next,
    // and from the second round on every connection takes back its own.
    let mut made = 0;
    for round in 0..5 {
        for conn in 0..4u64 {
            match take(&list, capacity, Some(conn), |_| true) {
                Some((state, ours)) => {
                    assert!(ours && state == conn, "round {round}: connection {conn} got state {state}");
                }
                None => {
                    assert_eq!(round, 0, "a new state only while the pool grows");
                    made += 1;
                }
            }
            give(&list, capacity, conn, Some(conn));
        }
    }
    assert_eq!(made, 4);
    // A state holding no context is taken before another connection's.
    give(&list, capacity + 1, 100, None);
    assert_eq!(take(&list, capacity, Some(7), |_| true), Some((100, false)));
    // A fifth connection finds the pool full of others' contexts: it takes the oldest (to be
    // reset and primed with its own history).
    assert_eq!(take(&list, capacity, Some(7), |_| true), Some((0, false)));
    // With room again, the next newcomer makes a new state rather than take another's.
    assert_eq!(take(&list, capacity, Some(8), |_| true), None);
}

#[test]
fn incompressible_stretches_go_out_stored_and_every_message_round_trips() {
    // Random data goes out as stored blocks (about its own size, at the cost of a copy); text
    // around it is still compressed, with matches into the stored data; the context carries on
    // across messages, for every window, whole or fragmented.
    for bits in [9, 12, 15] {
        for idle in [IdleState::History, IdleState::Live] {
            let (mut client, mut server) = pair(
                PerMessageDeflate::new().idle_state(idle),
                PerMessageDeflate::new().compress_window_bits(bits).idle_state(idle),
            );
            for (i, (data, most)) in stretches(bits).iter().enumerate() {
                let (wire, got) = transfer(&mut server, &mut client, data, 1 + i % 3);
                assert!(got == *data, "{bits} bits, {idle:?}, message {i}");
                assert!(wire <= *most, "{bits} bits, message {i}: {wire} B on the wire for {} B", data.len());
            }
        }
    }
}

#[test]
fn stored_stretches_are_read_by_a_plain_inflater_across_messages() {
    // What a peer's zlib sees: one raw DEFLATE stream across messages (context takeover),
    // each message's data followed by the `00 00 ff ff` the receiver appends.
    let (_, mut server) = pair(PerMessageDeflate::new(), PerMessageDeflate::new().compress_window_bits(15));
    let mut raw = Decompress::new_with_window_bits(false, 15);
    for (i, (data, _)) in stretches(15).iter().enumerate() {
        let (rsv, payload) =
            server.frame_outbound(Opcode::Binary, Rsv::NONE, Bytes::from(data.clone()), true).unwrap();
        assert!(rsv.rsv1());
        let out =
            inflate_plain(&mut raw, &payload, data.len()).unwrap_or_else(|e| panic!("message {i}: {e}"));
        let first = out.iter().zip(data.iter()).position(|(a, b)| a != b);
        assert!(
            out == *data,
            "message {i}: {} of {} B, first difference at {first:?}",
            out.len(),
            data.len()
        );
    }
}

#[test]
fn incompressible_data_is_copied_not_deflated_past_the_first_probe() {
    // 1 MiB of random bytes: after the first probe, runs go out verbatim in stored blocks
    // (the compressor's match search is skipped for them), and the message ends with one.
    let key = CompressorKey { level: 6, bits: 15, mem_level: 8 };
    let mut compressor = Compressor::new(key);
    let data = noise(1 << 20, 1);
    let mut out = Vec::new();
    assert_eq!(compressor.compress(&data, &mut out).unwrap(), super::engine::Ending::Stored);
    let verbatim = &data[40_000..90_000];
    assert!(out.windows(verbatim.len()).any(|w| w == verbatim), "a run is stored as it is");
    // Text is deflated whole, as before.
    let text = chat(1, 1 << 20);
    out.clear();
    assert_eq!(compressor.compress(&text, &mut out).unwrap(), super::engine::Ending::SyncFlush);
    assert!(out.len() < text.len() / 3, "{} B", out.len());
}

/// Messages that mix incompressible and compressible stretches, each with the most it may
/// take on the wire: random data its size and a few bytes per block, text a third of its size
/// at most, and where text follows random data, the text of one stored run may go uncompressed.
fn stretches(bits: u8) -> Vec<(Vec<u8>, usize)> {
    let seed = u64::from(bits);
    // A period the window reaches.
    let period = (1usize << bits) / 4;
    let random = |len: usize| len + len / 100 + 64;
    let text_size = |len: usize| len / 3;
    let text = chat(u32::from(bits), 300_000);
    let mut mixed = noise(40_000, seed + 1);
    mixed.extend_from_slice(&text[..200_000]);
    mixed.extend_from_slice(&noise(500_000, seed + 2));
    mixed.extend_from_slice(&text[100_000..]);
    // A random block repeated: the first probe finds the repeats.
    let block = noise(period, seed + 3);
    let repeated: Vec<u8> = block.iter().copied().cycle().take(200_000).collect();
    // Text that repeats the stored data just before it (matches into a stored stretch).
    let mut echo = noise(100_000, seed + 4);
    echo.extend_from_slice(&echo[100_000 - period..].repeat(160_000 / period));
    // A stretch that repeats the end of the probe before a stored run: the compressor must
    // not refer to it at the distance where the receiver has the stored run.
    let probe = noise(32 << 10, seed + 7);
    let mut recall = probe.clone();
    recall.extend_from_slice(&noise(64 << 10, seed + 8));
    recall.extend_from_slice(&probe[probe.len() - period..]);
    recall.extend_from_slice(&text[..100_000]);
    let recall_most = random(96 << 10) + period + text_size(100_000);
    let mixed_most = random(540_000) + (64 << 10) + text_size(400_000);
    vec![
        (noise(1 << 20, seed), random(1 << 20)),
        (text.clone(), text_size(text.len())),
        (mixed, mixed_most),
        (repeated, text_size(200_000)),
        (noise(33_000, seed + 5), random(33_000)),
        (echo, random(100_000) + text_size(160_000)),
        (recall, recall_most),
        (noise(1 << 20, seed + 6), random(1 << 20)),
        (text, text_size(300_000)),
    ]
}

#[test]
fn a_fragment_ending_in_stored_blocks_then_an_empty_final_fragment_round_trips() {
    // The first fragment ends with a stored run (no sync flush of the compressor's own); the
    // empty final fragment must still end the message where the receiver expects it.
    let (mut client, mut server) = pair(PerMessageDeflate::new(), PerMessageDeflate::new());
    for round in 0..2 {
        let data = noise(1 << 20, round);
        let (_, got) = transfer_frames(&mut server, &mut client, &[&data, &[]]);
        assert!(got == data, "round {round}");
        // Text after it, in the same context.
        let text = chat(round as u32, 50_000);
        let (_, got) = transfer(&mut server, &mut client, &text, 1);
        assert_eq!(got, text);
    }
}
