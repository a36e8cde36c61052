//! permessage-deflate (RFC 7692): the §7.2.3 vectors, the negotiation matrix, round trips in
//! every mode, bounded inflate against compression bombs, and framing violations.
#![cfg(feature = "deflate")]

mod support;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use bytes::{Bytes, BytesMut};
use flate2::{Compress, Compression, FlushCompress};
use support::{masked, normalize, unmasked, Norm, KEY};
use wsproto::extensions::{DeflateParams, DeflatePool, Extension};
use wsproto::extensions::{IdleState, PerMessageDeflate};
use wsproto::frame::{Opcode, Rsv};
use wsproto::Delivery;
use wsproto::{
    BytesMessage, CloseCode, Config, Connection, ConnectionType, Event, KeySource, Ping, TextMessage,
};

use ConnectionType::{Client, Server};

// ---------------------------------------------------------------------------------------------
// A per-thread counting allocator: tests run on several threads, each measures only itself.

struct Counting;

thread_local! {
    static CURRENT: Cell<isize> = const { Cell::new(0) };
    static PEAK: Cell<isize> = const { Cell::new(0) };
}

fn track(delta: isize) {
    let _ = CURRENT.try_with(|current| {
        let now = current.get() + delta;
        current.set(now);
        let _ = PEAK.try_with(|peak| peak.set(peak.get().max(now)));
    });
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        track(layout.size() as isize);
        System.alloc(layout)
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        track(layout.size() as isize);
        System.alloc_zeroed(layout)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        track(-(layout.size() as isize));
        System.dealloc(ptr, layout)
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        track(new_size as isize - layout.size() as isize);
        System.realloc(ptr, layout, new_size)
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Runs `f`; returns its result, the peak bytes allocated above the starting point, and the
/// bytes still allocated at the end (relative to the start).
fn measure<R>(f: impl FnOnce() -> R) -> (R, usize, isize) {
    let start = CURRENT.with(Cell::get);
    PEAK.with(|p| p.set(start));
    let result = f();
    let peak = PEAK.with(Cell::get) - start;
    let retained = CURRENT.with(Cell::get) - start;
    (result, peak as usize, retained)
}

// ---------------------------------------------------------------------------------------------
// Helpers.

fn hex(s: &str) -> Vec<u8> {
    let s: String = s.split_whitespace().collect();
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
}

/// Runs offer → accept → finalize. Panics if the negotiation fails.
fn negotiate(
    mut client: PerMessageDeflate,
    mut server: PerMessageDeflate,
) -> (PerMessageDeflate, PerMessageDeflate) {
    let offer = client.offer().expect("client offers");
    let response = server.accept(&item(&offer)).expect("server accepts");
    client.finalize(&item(&response)).expect("client finalizes");
    assert_eq!(client.params().unwrap(), server.params().unwrap().with_role(Client), "both sides agree");
    (client, server)
}

fn item(params: &str) -> String {
    if params.is_empty() {
        "permessage-deflate".to_owned()
    } else {
        format!("permessage-deflate; {params}")
    }
}

/// A server whose released states go nowhere (a pool of capacity 0: the measurements of
/// memory held count the connection alone, nothing kept in a pool).
fn negotiated_server() -> PerMessageDeflate {
    negotiate(PerMessageDeflate::new(), unpooled()).1
}

fn unpooled() -> PerMessageDeflate {
    PerMessageDeflate::new().pool(DeflatePool::with_capacity(0))
}

fn negotiated_client() -> PerMessageDeflate {
    negotiate(PerMessageDeflate::new(), PerMessageDeflate::new()).0
}

fn conn(role: ConnectionType, config: Config, ext: PerMessageDeflate) -> Connection {
    let config = config.key_source(KeySource::fixed(KEY));
    Connection::with_extensions(role, config, vec![Box::new(ext)], &[])
}

struct Pair {
    client: Connection,
    server: Connection,
}

impl Pair {
    fn new(client: PerMessageDeflate, server: PerMessageDeflate, config: Config) -> Pair {
        let (client, server) = negotiate(client, server);
        Pair { client: conn(Client, config.clone(), client), server: conn(Server, config, server) }
    }

    fn default() -> Pair {
        Pair::new(PerMessageDeflate::new(), PerMessageDeflate::new(), Config::default())
    }

    fn sides(&mut self, from_client: bool) -> (&mut Connection, &mut Connection) {
        if from_client {
            (&mut self.client, &mut self.server)
        } else {
            (&mut self.server, &mut self.client)
        }
    }

    /// Sends events and returns the wire bytes.
    fn send_all(&mut self, from_client: bool, events: Vec<Event>) -> Vec<u8> {
        let (tx, _) = self.sides(from_client);
        let mut buf = BytesMut::new();
        for event in events {
            tx.send(event, &mut buf).unwrap();
        }
        buf.to_vec()
    }

    /// Feeds `wire` to the receiving side in chunks of `chunk` bytes; returns all events.
    fn deliver(&mut self, from_client: bool, wire: &[u8], chunk: usize) -> Vec<Event> {
        let (_, rx) = self.sides(from_client);
        let mut events = Vec::new();
        for piece in wire.chunks(chunk.max(1)) {
            rx.receive_data(piece).unwrap();
            events.extend(rx.events());
        }
        if wire.is_empty() {
            events.extend(rx.events());
        }
        events
    }
}

/// Feeds raw bytes to a fresh connection with a default-negotiated extension.
fn receive(role: ConnectionType, config: Config, wire: &[u8]) -> Vec<Event> {
    let ext = if role == Client { negotiated_client() } else { negotiated_server() };
    let mut c = conn(role, config, ext);
    c.receive_data(wire).unwrap();
    c.events().collect()
}

fn close_code(events: &[Event]) -> Option<u16> {
    events.iter().find_map(|e| match e {
        Event::CloseConnection(c) => Some(c.code.0),
        _ => None,
    })
}

/// Raw DEFLATE of `data` with a sync flush and the `00 00 ff ff` tail removed.
fn deflate_raw(data: &[u8]) -> Vec<u8> {
    let mut c = Compress::new(Compression::best(), false);
    let mut out = Vec::with_capacity(data.len() / 100 + 1024);
    let mut input = data;
    loop {
        if out.len() == out.capacity() {
            out.reserve(out.capacity());
        }
        let before = c.total_in();
        c.compress_vec(input, &mut out, FlushCompress::Sync).unwrap();
        input = &input[(c.total_in() - before) as usize..];
        if input.is_empty() && out.len() < out.capacity() {
            break;
        }
    }
    assert!(out.ends_with(&[0, 0, 0xff, 0xff]));
    out.truncate(out.len() - 4);
    out
}

/// Compressible text with multi-byte characters (so code points straddle chunk boundaries).
fn text_of(len: usize, seed: u32) -> String {
    let words = ["héllo ", "wörld ", "日本語 ", "deflate ", "🦀 ", "message ", "a", "zz "];
    let mut s = String::with_capacity(len + 8);
    let mut x = seed.wrapping_mul(2654435761).wrapping_add(1);
    while s.len() < len {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        let w = words[(x % words.len() as u32) as usize];
        if s.len() + w.len() > len {
            s.push_str(&"x".repeat(len - s.len()));
        } else {
            s.push_str(w);
        }
    }
    s
}

/// Half compressible, half noise.
fn bytes_of(len: usize, seed: u32) -> Vec<u8> {
    let mut x = seed.wrapping_mul(2246822519).wrapping_add(7);
    (0..len)
        .map(|i| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            if (i / 512) % 2 == 0 {
                (i % 7) as u8
            } else {
                x as u8
            }
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// RFC 7692 §7.2.3 vectors.

#[test]
fn rfc_hello_sent_by_server_exact_bytes() {
    let mut server = conn(Server, Config::default(), negotiated_server());
    let first = server.send_bytes(TextMessage::new("Hello")).unwrap();
    assert_eq!(&first[..], &hex("c1 07 f2 48 cd c9 c9 07 00")[..], "§7.2.3.1");
    // RFC 7692 §7.2.3.2: with context takeover the second "Hello" is a back-reference.
    let second = server.send_bytes(TextMessage::new("Hello")).unwrap();
    assert_eq!(&second[..], &hex("c1 05 f2 00 11 00 00")[..], "§7.2.3.2");

    let mut client = conn(Client, Config::default(), negotiated_client());
    client.receive_data(&first).unwrap();
    client.receive_data(&second).unwrap();
    assert_eq!(
        normalize(client.events()),
        vec![Norm::Text("Hello".into(), true), Norm::Text("Hello".into(), true)]
    );
}

#[test]
fn rfc_hello_sent_by_client_masked() {
    let mut client = conn(Client, Config::default(), negotiated_client());
    let first = client.send_bytes(TextMessage::new("Hello")).unwrap();
    let second = client.send_bytes(TextMessage::new("Hello")).unwrap();
    assert_eq!(&first[..], &masked(0xc1, &hex("f2 48 cd c9 c9 07 00"))[..]);
    assert_eq!(&second[..], &masked(0xc1, &hex("f2 00 11 00 00"))[..]);

    let mut server = conn(Server, Config::default(), negotiated_server());
    server.receive_data(&first).unwrap();
    server.receive_data(&second).unwrap();
    assert_eq!(
        normalize(server.events()),
        vec![Norm::Text("Hello".into(), true), Norm::Text("Hello".into(), true)]
    );
}

#[test]
fn rfc_no_context_takeover_repeats_the_first_form() {
    let (client, server) = negotiate(
        PerMessageDeflate::new().client_no_context_takeover(true),
        PerMessageDeflate::new().server_no_context_takeover(true),
    );
    let mut server = conn(Server, Config::default(), server);
    let mut client = conn(Client, Config::default(), client);
    for _ in 0..3 {
        let wire = server.send_bytes(TextMessage::new("Hello")).unwrap();
        assert_eq!(&wire[..], &hex("c1 07 f2 48 cd c9 c9 07 00")[..]);
        let wire = client.send_bytes(TextMessage::new("Hello")).unwrap();
        assert_eq!(&wire[..], &masked(0xc1, &hex("f2 48 cd c9 c9 07 00"))[..]);
    }
}

/// Frames as `(first header byte, unmasked payload)`.
type Frames = Vec<(u8, Vec<u8>)>;

/// Every RFC 7692 §7.2.3 receive vector, in both directions, fed whole, byte by byte and with
/// whole frames only.
#[test]
fn rfc_receive_vectors_both_directions() {
    let hello = vec![Norm::Text("Hello".into(), true)];
    // (description, frames as (b0, payload))
    let vectors: Vec<(&str, Frames)> = vec![
        ("§7.2.3.1 compressed", vec![(0xc1, hex("f2 48 cd c9 c9 07 00"))]),
        ("§7.2.3.3 uncompressed block", vec![(0xc1, hex("00 05 00 fa ff 48 65 6c 6c 6f 00"))]),
        ("§7.2.3.1 split across two frames", vec![(0x41, hex("f2 48 cd")), (0x80, hex("c9 c9 07 00"))]),
        ("§7.2.3.4 BFINAL set", vec![(0xc1, hex("f3 48 cd c9 c9 07 00 00"))]),
        ("§7.2.3.5 two blocks", vec![(0xc1, hex("f2 48 05 00 00 00 ff ff ca c9 c9 07 00"))]),
    ];
    for (name, frames) in vectors {
        for role in [Client, Server] {
            let mut wire = Vec::new();
            for (b0, payload) in &frames {
                wire.extend(if role == Server { masked(*b0, payload) } else { unmasked(*b0, payload) });
            }
            // The same message twice: the second must decode too (context kept or restarted).
            let twice = [wire.clone(), wire.clone()].concat();
            for config in [
                Config::default(),
                Config::default().delivery(Delivery::Chunks { min_size: 1 }),
                Config::default().delivery(Delivery::Frames),
            ] {
                for chunk in [twice.len(), 1, 3] {
                    let ext = if role == Client { negotiated_client() } else { negotiated_server() };
                    let mut c = conn(role, config.clone(), ext);
                    let mut events = Vec::new();
                    for piece in twice.chunks(chunk) {
                        c.receive_data(piece).unwrap();
                        events.extend(c.events());
                    }
                    assert_eq!(
                        normalize(events),
                        [hello.clone(), hello.clone()].concat(),
                        "{name} {role:?} {chunk}"
                    );
                }
            }
        }
    }
}

#[test]
fn empty_message_is_a_single_zero_byte() {
    let mut server = conn(Server, Config::default(), negotiated_server());
    let wire = server.send_bytes(BytesMessage::new(Bytes::new())).unwrap();
    assert_eq!(&wire[..], &hex("c2 01 00")[..]);
    let events = receive(Client, Config::default(), &wire);
    assert_eq!(normalize(events), vec![Norm::Binary(vec![], true)]);
    // An empty compressed frame (no payload at all) is an empty message too.
    let events = receive(Client, Config::default(), &unmasked(0xc1, &[]));
    assert_eq!(normalize(events), vec![Norm::Text(String::new(), true)]);
}

// ---------------------------------------------------------------------------------------------
// Negotiation.

#[test]
fn client_offers() {
    let cases: Vec<(PerMessageDeflate, &str)> = vec![
        (PerMessageDeflate::new(), "client_max_window_bits"),
        (PerMessageDeflate::new().client_max_window_bits(12), "client_max_window_bits=12"),
        (PerMessageDeflate::new().client_max_window_bits(8), "client_max_window_bits=9"),
        (PerMessageDeflate::new().server_max_window_bits(8), "client_max_window_bits; server_max_window_bits=8"),
        (PerMessageDeflate::new().client_no_context_takeover(true), "client_max_window_bits; client_no_context_takeover"),
        (PerMessageDeflate::new().server_no_context_takeover(true), "client_max_window_bits; server_no_context_takeover"),
        (
            PerMessageDeflate::new()
                .client_no_context_takeover(true)
                .server_no_context_takeover(true)
                .client_max_window_bits(10)
                .server_max_window_bits(11),
            "client_max_window_bits=10; server_max_window_bits=11; client_no_context_takeover; server_no_context_takeover",
        ),
    ];
    for (mut ext, expected) in cases {
        assert_eq!(ext.offer().as_deref(), Some(expected));
        assert!(!ext.enabled(), "offering does not enable");
        assert_eq!(ext.name(), "permessage-deflate");
    }
}

fn params(client_nct: bool, server_nct: bool, client_bits: u8, server_bits: u8) -> DeflateParams {
    DeflateParams {
        role: Server,
        client_no_context_takeover: client_nct,
        server_no_context_takeover: server_nct,
        client_max_window_bits: client_bits,
        server_max_window_bits: server_bits,
    }
}

#[test]
fn server_accepts_and_echoes() {
    let d = PerMessageDeflate::new;
    // (server configuration, offer params, response params, agreement)
    let cases: Vec<(PerMessageDeflate, &str, &str, DeflateParams)> = vec![
        (d(), "", "", params(false, false, 15, 15)),
        (d(), "client_max_window_bits", "", params(false, false, 15, 15)),
        (d(), "client_max_window_bits=10", "client_max_window_bits=10", params(false, false, 10, 15)),
        (d(), "server_max_window_bits=10", "server_max_window_bits=10", params(false, false, 15, 10)),
        (d(), "client_no_context_takeover", "client_no_context_takeover", params(true, false, 15, 15)),
        (d(), "server_no_context_takeover", "server_no_context_takeover", params(false, true, 15, 15)),
        (
            d(),
            "server_no_context_takeover; client_no_context_takeover; server_max_window_bits=9; client_max_window_bits=9",
            "client_no_context_takeover; server_no_context_takeover; client_max_window_bits=9; server_max_window_bits=9",
            params(true, true, 9, 9),
        ),
        // Quoted values are values.
        (d(), "server_max_window_bits=\"12\"", "server_max_window_bits=12", params(false, false, 15, 12)),
        // Server configuration: flags always announced.
        (d().server_no_context_takeover(true), "", "server_no_context_takeover", params(false, true, 15, 15)),
        (d().client_no_context_takeover(true), "", "client_no_context_takeover", params(true, false, 15, 15)),
        // Our own window is always announced; the smaller of ours and the client's wins.
        (d().server_max_window_bits(10), "", "server_max_window_bits=10", params(false, false, 15, 10)),
        (d().server_max_window_bits(10), "server_max_window_bits=12", "server_max_window_bits=10", params(false, false, 15, 10)),
        (d().server_max_window_bits(12), "server_max_window_bits=10", "server_max_window_bits=10", params(false, false, 15, 10)),
        // 8 configured for our own window: we compress with 9 and say so.
        (d().server_max_window_bits(8), "", "server_max_window_bits=9", params(false, false, 15, 9)),
        // The client's window: announced only if the client offered the parameter, and otherwise not
        // used (python wsproto inflated with the unannounced smaller window: later messages failed, 1007).
        (d().client_max_window_bits(10), "", "", params(false, false, 15, 15)),
        (d().client_max_window_bits(10), "client_max_window_bits", "client_max_window_bits=10", params(false, false, 10, 15)),
        (d().client_max_window_bits(10), "client_max_window_bits=12", "client_max_window_bits=10", params(false, false, 10, 15)),
        (d().client_max_window_bits(12), "client_max_window_bits=9", "client_max_window_bits=9", params(false, false, 9, 15)),
        // We only inflate the client's data: 8 is fine (we inflate with 9).
        (d(), "client_max_window_bits=8", "client_max_window_bits=8", params(false, false, 8, 15)),
        (d().client_max_window_bits(8), "client_max_window_bits", "client_max_window_bits=9", params(false, false, 9, 15)),
    ];
    for (mut server, offer, response, agreed) in cases {
        assert_eq!(server.accept(&item(offer)).as_deref(), Some(response), "offer {offer:?}");
        assert!(server.enabled());
        assert_eq!(server.params(), Some(agreed), "offer {offer:?}");
    }
}

#[test]
fn server_declines_invalid_offers_untouched() {
    let offers = [
        "permessage-deflate; unknown",
        "permessage-deflate; unknown=1",
        "permessage-deflate; client_no_context_takeover; client_no_context_takeover",
        "permessage-deflate; server_max_window_bits=10; server_max_window_bits=10",
        "permessage-deflate; client_max_window_bits; client_max_window_bits=9",
        "permessage-deflate; client_no_context_takeover=1",
        "permessage-deflate; server_no_context_takeover=true",
        "permessage-deflate; server_max_window_bits",
        "permessage-deflate; server_max_window_bits=8",
        "permessage-deflate; server_max_window_bits=16",
        "permessage-deflate; server_max_window_bits=7",
        "permessage-deflate; server_max_window_bits=0",
        "permessage-deflate; server_max_window_bits=09",
        "permessage-deflate; server_max_window_bits=abc",
        "permessage-deflate; client_max_window_bits=16",
        "permessage-deflate; client_max_window_bits=-1",
        "permessage-deflate; client_max_window_bits=1e1",
        "permessage-deflate; client_max_window_bits=\"\"",
        "permessage-deflate; client_max_window_bits=99999999999999999999",
        "permessage-deflate; server_max_window_bits=\"10",
        "permessage-deflate; =",
        "permessage-deflate;",
        "permessage-deflate; a b",
        "x-webkit-deflate-frame",
        "",
        "permessage-deflate, permessage-deflate",
    ];
    for offer in offers {
        for mut server in [PerMessageDeflate::new(), PerMessageDeflate::new().server_max_window_bits(8)] {
            assert_eq!(server.accept(offer), None, "{offer:?}");
            assert!(!server.enabled(), "{offer:?}");
            assert_eq!(server.params(), None);
        }
    }
}

#[test]
fn server_names_and_params_are_case_insensitive() {
    let mut server = PerMessageDeflate::new();
    let response = server.accept("PerMessage-Deflate; Server_Max_Window_Bits=10; CLIENT_NO_CONTEXT_TAKEOVER");
    assert_eq!(response.as_deref(), Some("client_no_context_takeover; server_max_window_bits=10"));
}

#[test]
fn several_offers_first_acceptable_wins() {
    let offers = [
        "permessage-deflate; server_max_window_bits=8",
        "permessage-deflate; bogus",
        "permessage-deflate; client_max_window_bits; server_max_window_bits=10",
        "permessage-deflate; server_no_context_takeover",
        "permessage-deflate",
    ];
    let mut server = PerMessageDeflate::new();
    let mut chosen = None;
    for (i, offer) in offers.iter().enumerate() {
        if let Some(response) = server.accept(offer) {
            chosen = Some((i, response));
            break;
        }
        assert!(!server.enabled(), "a declined offer leaves the extension untouched");
    }
    assert_eq!(chosen, Some((2, "server_max_window_bits=10".to_owned())));
    assert_eq!(server.params(), Some(params(false, false, 15, 10)));
}

#[test]
fn window_bits_8_to_15_in_every_position() {
    for bits in 8..=15u8 {
        // The client asks the server for a window: 8 is declined, since the server would have
        // to compress with it.
        let mut server = PerMessageDeflate::new();
        let offer = format!("permessage-deflate; server_max_window_bits={bits}");
        if bits == 8 {
            assert_eq!(server.accept(&offer), None);
        } else {
            assert_eq!(server.accept(&offer), Some(format!("server_max_window_bits={bits}")));
        }
        // The client announces its own window: any value is fine.
        let mut server = PerMessageDeflate::new();
        let offer = format!("permessage-deflate; client_max_window_bits={bits}");
        assert_eq!(server.accept(&offer), Some(format!("client_max_window_bits={bits}")));

        // Client side: a response limiting the server's window.
        let mut client = PerMessageDeflate::new();
        client.finalize(&format!("permessage-deflate; server_max_window_bits={bits}")).unwrap();
        assert_eq!(client.params().unwrap().server_max_window_bits, bits);
        assert_eq!(client.params().unwrap().inflate_window_bits(), bits.max(9));
        // A response limiting ours: 8 cannot be honoured.
        let mut client = PerMessageDeflate::new();
        let result = client.finalize(&format!("permessage-deflate; client_max_window_bits={bits}"));
        assert_eq!(result.is_ok(), bits > 8, "client_max_window_bits={bits}");
        assert_eq!(client.enabled(), bits > 8);
    }
}

#[test]
fn client_finalize_matrix() {
    let d = PerMessageDeflate::new;
    let client_params = |cnct, snct, cb, sb| DeflateParams { role: Client, ..params(cnct, snct, cb, sb) };
    let ok: Vec<(PerMessageDeflate, &str, DeflateParams)> = vec![
        (d(), "permessage-deflate", client_params(false, false, 15, 15)),
        (d(), "PERMESSAGE-DEFLATE", client_params(false, false, 15, 15)),
        (d(), "permessage-deflate; server_no_context_takeover", client_params(false, true, 15, 15)),
        (d(), "permessage-deflate; client_no_context_takeover", client_params(true, false, 15, 15)),
        (d().client_no_context_takeover(true), "permessage-deflate", client_params(true, false, 15, 15)),
        (d(), "permessage-deflate; server_max_window_bits=12", client_params(false, false, 15, 12)),
        (d(), "permessage-deflate; client_max_window_bits=12", client_params(false, false, 12, 15)),
        (d().client_max_window_bits(10), "permessage-deflate", client_params(false, false, 10, 15)),
        (
            d().client_max_window_bits(10),
            "permessage-deflate; client_max_window_bits=12",
            client_params(false, false, 10, 15),
        ),
        (
            d().client_max_window_bits(12),
            "permessage-deflate; client_max_window_bits=10",
            client_params(false, false, 10, 15),
        ),
        (d().client_max_window_bits(8), "permessage-deflate", client_params(false, false, 9, 15)),
        (
            d().server_max_window_bits(12),
            "permessage-deflate; server_max_window_bits=12",
            client_params(false, false, 15, 12),
        ),
        (
            d().server_max_window_bits(12),
            "permessage-deflate; server_max_window_bits=9",
            client_params(false, false, 15, 9),
        ),
        (
            d().server_max_window_bits(8),
            "permessage-deflate; server_max_window_bits=8",
            client_params(false, false, 15, 8),
        ),
        (
            d().server_no_context_takeover(true),
            "permessage-deflate; server_no_context_takeover",
            client_params(false, true, 15, 15),
        ),
        (d(), "permessage-deflate; server_max_window_bits=\"9\"", client_params(false, false, 15, 9)),
    ];
    for (mut client, response, agreed) in ok {
        assert_eq!(client.finalize(response), Ok(()), "{response:?}");
        assert_eq!(client.params(), Some(agreed), "{response:?}");
    }
    let err: Vec<(PerMessageDeflate, &str)> = vec![
        (d(), "permessage-deflate; unknown"),
        (d(), "permessage-deflate; server_no_context_takeover; server_no_context_takeover"),
        (d(), "permessage-deflate; client_max_window_bits=10; client_max_window_bits=10"),
        (d(), "permessage-deflate; client_max_window_bits"),
        (d(), "permessage-deflate; server_max_window_bits"),
        (d(), "permessage-deflate; server_max_window_bits=16"),
        (d(), "permessage-deflate; server_max_window_bits=x"),
        (d(), "permessage-deflate; client_max_window_bits=8"),
        (d(), "permessage-deflate; client_no_context_takeover=1"),
        (d(), "permessage-deflate; server_max_window_bits=\"1"),
        (d(), "x-other"),
        (d(), ""),
        (d().server_max_window_bits(10), "permessage-deflate"),
        (d().server_max_window_bits(10), "permessage-deflate; server_max_window_bits=11"),
        (d().server_no_context_takeover(true), "permessage-deflate"),
    ];
    for (mut client, response) in err {
        assert!(client.finalize(response).is_err(), "{response:?}");
        assert!(!client.enabled(), "{response:?}");
    }
}

#[test]
fn negotiated_pairs_round_trip_every_window() {
    for bits in 8..=15u8 {
        let configs = [
            (PerMessageDeflate::new().client_max_window_bits(bits), PerMessageDeflate::new()),
            (PerMessageDeflate::new().server_max_window_bits(bits), PerMessageDeflate::new()),
            (PerMessageDeflate::new(), PerMessageDeflate::new().client_max_window_bits(bits)),
            (PerMessageDeflate::new(), PerMessageDeflate::new().server_max_window_bits(bits)),
        ];
        for (i, (client, server)) in configs.into_iter().enumerate() {
            if bits == 8 && i == 1 {
                // Asking the server to compress with 8 bits: declined.
                let mut client = client;
                let offer = client.offer().unwrap();
                assert_eq!(PerMessageDeflate::new().accept(&item(&offer)), None);
                continue;
            }
            let mut pair = Pair::new(client, server, Config::default());
            for (i, size) in [40_000usize, 3_000, 70_000].into_iter().enumerate() {
                for from_client in [true, false] {
                    let data = bytes_of(size, i as u32 + bits as u32);
                    let wire = pair.send_all(from_client, vec![BytesMessage::new(data.clone()).into()]);
                    let events = pair.deliver(from_client, &wire, wire.len());
                    assert_eq!(normalize(events), vec![Norm::Binary(data, true)], "bits {bits} size {size}");
                }
            }
        }
    }
}

/// Python wsproto inflated with a configured `client_max_window_bits` it had not announced. Here a server
/// configured with a small client window, facing a client that did not offer `client_max_window_bits`,
/// must not inflate with the small window.
#[test]
fn unannounced_client_window_is_not_used() {
    let mut server = PerMessageDeflate::new().client_max_window_bits(9);
    assert_eq!(server.accept("permessage-deflate").as_deref(), Some(""));
    assert_eq!(server.params().unwrap().inflate_window_bits(), 15);
    // A client compressing with a full 32 KiB window: back-references beyond 512 bytes.
    let mut client = PerMessageDeflate::new();
    client.finalize("permessage-deflate").unwrap();
    let mut client = conn(Client, Config::default(), client);
    let mut server = conn(Server, Config::default(), server);
    let data = bytes_of(100_000, 3);
    for _ in 0..3 {
        let wire = client.send_bytes(BytesMessage::new(data.clone())).unwrap();
        server.receive_data(&wire).unwrap();
        assert_eq!(normalize(server.events()), vec![Norm::Binary(data.clone(), true)]);
    }
}

// ---------------------------------------------------------------------------------------------
// Round trips.

fn fragments(len: usize, pieces: usize) -> Vec<std::ops::Range<usize>> {
    // Uneven split points.
    let mut cuts: Vec<usize> = (1..pieces).map(|i| (len * i * i) / (pieces * pieces)).collect();
    cuts.insert(0, 0);
    cuts.push(len);
    cuts.windows(2).map(|w| w[0]..w[1]).collect()
}

/// Text fragments must be whole characters: move cut points forward to char boundaries.
fn text_fragments(s: &str, pieces: usize) -> Vec<String> {
    let mut out = Vec::new();
    let mut start = 0;
    for range in fragments(s.len(), pieces) {
        let mut end = range.end;
        while !s.is_char_boundary(end) {
            end += 1;
        }
        if end < start {
            end = start;
        }
        out.push(s[start..end].to_owned());
        start = end;
    }
    out
}

fn message_events(text: bool, size: usize, seed: u32, pieces: usize) -> (Vec<Event>, Norm) {
    if text {
        let s = text_of(size, seed);
        let events = if pieces == 1 {
            vec![TextMessage::new(s.clone()).into()]
        } else {
            let parts = text_fragments(&s, pieces);
            let last = parts.len() - 1;
            parts
                .into_iter()
                .enumerate()
                .map(
                    |(i, p)| {
                        if i == last {
                            TextMessage::new(p).into()
                        } else {
                            TextMessage::fragment(p).into()
                        }
                    },
                )
                .collect()
        };
        (events, Norm::Text(s, true))
    } else {
        let b = bytes_of(size, seed);
        (binary_events(&b, pieces), Norm::Binary(b, true))
    }
}

/// One binary message of `data` in `pieces` frames (one frame when `pieces` is 1).
fn binary_events(data: &[u8], pieces: usize) -> Vec<Event> {
    if pieces == 1 {
        return vec![BytesMessage::new(data.to_vec()).into()];
    }
    let ranges = fragments(data.len(), pieces);
    let last = ranges.len() - 1;
    ranges
        .into_iter()
        .enumerate()
        .map(|(i, r)| {
            let chunk = data[r].to_vec();
            if i == last {
                BytesMessage::new(chunk).into()
            } else {
                BytesMessage::fragment(chunk).into()
            }
        })
        .collect()
}

#[test]
fn round_trips_all_sizes_modes_and_roles() {
    let sizes = [0usize, 1, 5, 125, 126, 1000, 65_535, 65_536, 100_000, 1 << 20];
    for no_context in [false, true] {
        for partial in [true, false] {
            let client = PerMessageDeflate::new().client_no_context_takeover(no_context);
            let server = PerMessageDeflate::new().server_no_context_takeover(no_context);
            let mut pair = Pair::new(
                client,
                server,
                Config::default().delivery(if partial {
                    Delivery::Chunks { min_size: 1 }
                } else {
                    Delivery::Frames
                }),
            );
            for (i, &size) in sizes.iter().enumerate() {
                if size == 1 << 20 && (partial || no_context) {
                    continue; // one 1 MiB configuration per direction is enough for debug builds
                }
                for text in [true, false] {
                    for pieces in [1usize, 3] {
                        for from_client in [true, false] {
                            let (events, expected) = message_events(text, size, i as u32, pieces);
                            let wire = pair.send_all(from_client, events);
                            if size >= 1000 {
                                assert!(wire.len() < size, "compressed: {} of {size}", wire.len());
                            }
                            let got = pair.deliver(from_client, &wire, wire.len());
                            assert_eq!(
                                normalize(got),
                                vec![expected],
                                "size {size} text {text} pieces {pieces} client {from_client} nct {no_context} partial {partial}"
                            );
                        }
                    }
                }
            }
        }
    }
}

#[test]
fn round_trips_fed_in_odd_chunks() {
    for partial in [true, false] {
        let mut pair = Pair::new(
            PerMessageDeflate::new(),
            PerMessageDeflate::new(),
            Config::default().delivery(if partial {
                Delivery::Chunks { min_size: 1 }
            } else {
                Delivery::Frames
            }),
        );
        for (i, size) in [0usize, 7, 300, 5_000, 40_000].into_iter().enumerate() {
            for chunk in [1usize, 2, 7, 1000, 4097] {
                if size >= 40_000 && chunk < 7 {
                    continue;
                }
                for text in [true, false] {
                    for from_client in [true, false] {
                        let (events, expected) = message_events(text, size, (i * 31 + chunk) as u32, 3);
                        let wire = pair.send_all(from_client, events);
                        let got = pair.deliver(from_client, &wire, chunk);
                        assert_eq!(normalize(got), vec![expected], "size {size} chunk {chunk} text {text}");
                    }
                }
            }
        }
    }
}

#[test]
fn many_messages_with_context_takeover_shrink() {
    let mut pair = Pair::default();
    let msg = text_of(2000, 9);
    let first = pair.send_all(false, vec![TextMessage::new(msg.clone()).into()]);
    let second = pair.send_all(false, vec![TextMessage::new(msg.clone()).into()]);
    assert!(
        second.len() < first.len() / 4,
        "second message refers to the first: {} vs {}",
        second.len(),
        first.len()
    );
    let got = pair.deliver(false, &[first, second].concat(), 5);
    assert_eq!(normalize(got), vec![Norm::Text(msg.clone(), true), Norm::Text(msg, true)]);
}

// ---------------------------------------------------------------------------------------------
// Threshold, uncompressed messages, lazy state.

#[test]
fn threshold_sends_small_messages_uncompressed() {
    let server = PerMessageDeflate::new().compression_threshold(100);
    let mut pair = Pair::new(PerMessageDeflate::new().compression_threshold(100), server, Config::default());
    let small = "tiny".repeat(10);
    let large = "large".repeat(100);
    for from_client in [false, true] {
        let wire = pair.send_all(from_client, vec![TextMessage::new(small.clone()).into()]);
        assert_eq!(wire[0], 0x81, "RSV1 clear");
        let payload_start = if from_client { 6 } else { 2 };
        assert_eq!(wire.len(), payload_start + small.len(), "sent as is");
        let got = pair.deliver(from_client, &wire, 3);
        assert_eq!(normalize(got), vec![Norm::Text(small.clone(), true)]);

        let wire = pair.send_all(from_client, vec![TextMessage::new(large.clone()).into()]);
        assert_eq!(wire[0], 0xc1, "RSV1 set");
        let got = pair.deliver(from_client, &wire, 3);
        assert_eq!(normalize(got), vec![Norm::Text(large.clone(), true)]);

        // Fragmented messages are always compressed, RSV1 on the first frame only.
        let wire = pair
            .send_all(from_client, vec![TextMessage::fragment("ab").into(), TextMessage::new("cd").into()]);
        assert_eq!(wire[0], 0x41);
        let got = pair.deliver(from_client, &wire, 1);
        assert_eq!(normalize(got), vec![Norm::Text("abcd".into(), true)]);
    }
}

#[test]
fn uncompressed_messages_pass_through() {
    for role in [Client, Server] {
        let frame = |b0: u8, p: &[u8]| if role == Server { masked(b0, p) } else { unmasked(b0, p) };
        let wire = [
            frame(0x81, b"plain"),
            frame(0xc1, &hex("f2 48 cd c9 c9 07 00")),
            frame(0x02, b"ab"),
            frame(0x80, b"c"),
        ]
        .concat();
        let events = receive(role, Config::default(), &wire);
        assert_eq!(
            normalize(events),
            vec![
                Norm::Text("plain".into(), true),
                Norm::Text("Hello".into(), true),
                Norm::Binary(b"abc".to_vec(), true)
            ]
        );
    }
}

#[test]
fn state_is_lazy_and_released_under_no_context_takeover() {
    // Released states go to a pool (without one, a connection keeps its own).
    let pool = DeflatePool::new();
    let (mut client, mut server) = negotiate(
        PerMessageDeflate::new().client_no_context_takeover(true).pool(pool.clone()),
        PerMessageDeflate::new().pool(pool),
    );
    assert_eq!(client.state_allocated(), (false, false), "nothing before the first message");
    assert_eq!(server.state_allocated(), (false, false));

    // Client compresses without context takeover: the compressor is gone after each message.
    let (rsv, payload) =
        client.frame_outbound(Opcode::Text, Rsv::NONE, Bytes::from_static(b"Hello"), false).unwrap();
    assert!(rsv.rsv1());
    assert_eq!(client.state_allocated(), (true, false), "kept until the message ends");
    let (rsv, tail) =
        client.frame_outbound(Opcode::Continuation, Rsv::NONE, Bytes::from_static(b"!"), true).unwrap();
    assert!(!rsv.rsv1(), "RSV1 only on the first frame");
    assert_eq!(client.state_allocated(), (false, false));

    // The server resets its inflater after each message (the client's flag), but compresses
    // with context takeover: its compressor stays.
    server.frame_inbound_header(Server, Opcode::Text, Rsv::RSV1, payload.len() as u64).unwrap();
    let mut out = server.frame_inbound_payload_data(payload, 1 << 20).unwrap().to_vec();
    server.frame_inbound_header(Server, Opcode::Continuation, Rsv::NONE, tail.len() as u64).unwrap();
    out.extend_from_slice(&server.frame_inbound_payload_data(tail, 1 << 20).unwrap());
    out.extend_from_slice(&server.frame_inbound_complete(true, 1 << 20).unwrap().unwrap_or_default());
    assert_eq!(out, b"Hello!");
    assert_eq!(server.state_allocated(), (false, false), "client_no_context_takeover: inflater dropped");
    server.frame_outbound(Opcode::Binary, Rsv::NONE, Bytes::from_static(b"x"), true).unwrap();
    assert_eq!(
        server.state_allocated(),
        (false, false),
        "context takeover, IdleState::History: compressor released, its history kept"
    );
    let (_, mut live) =
        negotiate(PerMessageDeflate::new(), PerMessageDeflate::new().idle_state(IdleState::Live));
    live.frame_outbound(Opcode::Binary, Rsv::NONE, Bytes::from_static(b"x"), true).unwrap();
    assert_eq!(live.state_allocated(), (true, false), "context takeover, IdleState::Live: compressor kept");

    // An uncompressed message allocates nothing.
    let mut client = negotiated_client();
    client.frame_inbound_header(Client, Opcode::Text, Rsv::NONE, 2).unwrap();
    assert_eq!(client.state_allocated(), (false, false));
}

#[test]
fn disabled_extension_is_dropped_by_the_connection() {
    let conn =
        Connection::with_extensions(Server, Config::default(), vec![Box::new(PerMessageDeflate::new())], &[]);
    assert!(conn.extensions().is_empty());
    // So RSV1 is a protocol error there.
    let mut conn = conn;
    conn.receive_data(&masked(0xc1, &hex("f2 48 cd c9 c9 07 00"))).unwrap();
    assert_eq!(close_code(&conn.events().collect::<Vec<_>>()), Some(1002));
}

/// The table in the documentation, re-measured (zlib-rs): the compressor's size by window and
/// memory level, the inflater's, and what an idle connection keeps with `IdleState::History`.
#[test]
fn memory_table_holds() {
    let documented = [
        // (window bits, memLevel, bytes)
        (9u8, 1u8, 137_216usize),
        (9, 8, 251_008),
        (12, 4, 157_824),
        (12, 8, 265_344),
        (13, 4, 174_208),
        (13, 8, 281_728),
        (15, 1, 266_240),
        (15, 4, 272_512),
        (15, 8, 380_032),
        (15, 9, 494_720),
    ];
    for (bits, mem_level, documented) in documented {
        let (_, server) = negotiate(
            PerMessageDeflate::new(),
            PerMessageDeflate::new()
                .compress_window_bits(bits)
                .memory_level(mem_level)
                .idle_state(IdleState::Live),
        );
        let mut server = server;
        let (_, _, retained) = measure(|| {
            server.frame_outbound(Opcode::Binary, Rsv::NONE, Bytes::from_static(b"x"), true).unwrap();
        });
        let retained = retained as usize;
        println!("compressor {bits} bits, memLevel {mem_level}: {retained} B");
        assert!(
            retained.abs_diff(documented) < documented / 50,
            "compressor {bits}/{mem_level}: {retained} vs {documented}"
        );
    }
    for bits in [9u8, 12, 15] {
        let (client, _) = negotiate(
            PerMessageDeflate::new().idle_state(IdleState::Live),
            PerMessageDeflate::new().server_max_window_bits(bits),
        );
        let mut client = client;
        let wire = deflate_raw(b"hello");
        let (_, _, retained) = measure(|| {
            client.frame_inbound_header(Client, Opcode::Binary, Rsv::RSV1, wire.len() as u64).unwrap();
            let _ = client.frame_inbound_payload_data(Bytes::from(wire.clone()), 1 << 20).unwrap();
        });
        let retained = retained as usize;
        println!("inflater {bits} bits: {retained} B");
        assert!(retained.abs_diff(47_552) < 47_552 / 10, "decompressor {bits}: {retained}");
    }
    // History (the default): after a 16 B message each way, the server keeps 16 B per
    // direction; after more than a window each way, the windows (16 KiB sent at the default
    // 14 bits, 32 KiB received from a 15-bit client).
    let (mut client, server) = negotiate(PerMessageDeflate::new(), unpooled());
    let mut server = server;
    let echo = |client: &mut PerMessageDeflate, server: &mut PerMessageDeflate, data: &[u8]| {
        let (rsv, payload) =
            client.frame_outbound(Opcode::Binary, Rsv::NONE, Bytes::copy_from_slice(data), true).unwrap();
        let (_, _, retained) = measure(|| {
            server.frame_inbound_header(Server, Opcode::Binary, rsv, payload.len() as u64).unwrap();
            // A clone: the payload is freed after the measurement, not in it.
            let _ = server.frame_inbound_payload_data(payload.clone(), 1 << 20).unwrap();
            let _ = server.frame_inbound_complete(true, 1 << 20).unwrap();
            let _ =
                server.frame_outbound(Opcode::Binary, Rsv::NONE, Bytes::copy_from_slice(data), true).unwrap();
        });
        retained as usize
    };
    let retained = echo(&mut client, &mut server, &[b'x'; 16]);
    println!("history after a 16 B echo: {retained} B");
    assert!(retained <= 64, "{retained}");
    let big: Vec<u8> = (0..40_000u32).flat_map(|i| (i * 7919 % 65_521).to_le_bytes()).collect();
    let retained = echo(&mut client, &mut server, &big);
    println!("history after a 160 KB echo: {retained} B");
    assert!(retained.abs_diff((16 << 10) + (32 << 10)) < 1024, "{retained}");
    assert_eq!(server.state_allocated(), (false, false));
}

// ---------------------------------------------------------------------------------------------
// Bounded inflate.

fn bomb(len: usize) -> Vec<u8> {
    let compressed = deflate_raw(&vec![0u8; len]);
    assert!(compressed.len() < len / 500, "a bomb: {} bytes for {len}", compressed.len());
    compressed
}

#[test]
fn bomb_against_64k_limit_is_1009_with_bounded_memory() {
    let payload = bomb(1 << 20);
    let limit = 64 << 10;
    for role in [Server, Client] {
        for partial in [true, false] {
            let wire = if role == Server { masked(0xc2, &payload) } else { unmasked(0xc2, &payload) };
            let config = Config::default().max_message_size(limit).delivery(if partial {
                Delivery::Chunks { min_size: 1 }
            } else {
                Delivery::Frames
            });
            let ext = if role == Client { negotiated_client() } else { negotiated_server() };
            let mut c = conn(role, config.clone(), ext);
            c.receive_data(&wire).unwrap();
            let (events, peak, _) = measure(|| c.events().collect::<Vec<_>>());
            assert_eq!(close_code(&events), Some(1009), "{role:?} partial {partial}");
            // The inflater (~47 KiB) plus at most the budget of output, far from 1 MiB.
            assert!(peak < limit + 100_000, "{role:?} partial {partial}: peak {peak}");

            // Streamed in small reads: the budget shrinks as chunks are delivered.
            let ext = if role == Client { negotiated_client() } else { negotiated_server() };
            let mut c = conn(role, config, ext);
            let (events, peak, _) = measure(|| {
                let mut events = Vec::new();
                for piece in wire.chunks(64) {
                    c.receive_data(piece).unwrap();
                    events.extend(c.events().map(|e| match e {
                        // Keep only sizes: the test holds no message data.
                        Event::BytesMessage(m) => Err(m.data.len()),
                        other => Ok(other),
                    }));
                }
                events
            });
            let delivered: usize = events.iter().filter_map(|e| e.as_ref().err()).sum();
            let code = events.iter().find_map(|e| match e {
                Ok(Event::CloseConnection(c)) => Some(c.code.0),
                _ => None,
            });
            assert_eq!(code, Some(1009), "{role:?} partial {partial} streamed");
            assert!(delivered <= limit);
            assert!(peak < limit + 100_000 + wire.len(), "{role:?} partial {partial} streamed: peak {peak}");
        }
    }
}

#[test]
fn bomb_direct_on_the_extension() {
    let payload = Bytes::from(bomb(4 << 20));
    let budget = 64 << 10;
    let mut server = negotiated_server();
    server.frame_inbound_header(Server, Opcode::Binary, Rsv::RSV1, payload.len() as u64).unwrap();
    let (result, peak, retained) = measure(|| server.frame_inbound_payload_data(payload.clone(), budget));
    assert_eq!(result.map_err(|e| e.code()), Err(CloseCode::MESSAGE_TOO_BIG));
    assert!(peak <= 2 * budget + 50_000, "peak {peak}");
    assert!(retained <= 0, "state released after the failure: {retained}");

    // Fed in small chunks the same way, the budget shrinking as the connection does.
    let mut server = negotiated_server();
    server.frame_inbound_header(Server, Opcode::Binary, Rsv::RSV1, payload.len() as u64).unwrap();
    let mut left = budget;
    let mut failed = false;
    for chunk in payload.chunks(100) {
        match server.frame_inbound_payload_data(Bytes::copy_from_slice(chunk), left) {
            Ok(out) => left -= out.len(),
            Err(code) => {
                assert_eq!(code.code(), CloseCode::MESSAGE_TOO_BIG);
                failed = true;
                break;
            }
        }
    }
    assert!(failed);
}

#[test]
fn exactly_the_limit_passes_one_more_byte_fails() {
    let limit = 10_000;
    for (len, ok) in [(limit, true), (limit + 1, false)] {
        let data = vec![b'a'; len];
        let payload = deflate_raw(&data);
        for split in [false, true] {
            let wire = if split {
                let (a, b) = payload.split_at(payload.len() / 2);
                [masked(0x42, a), masked(0x80, b)].concat()
            } else {
                masked(0xc2, &payload)
            };
            let events = receive(Server, Config::default().max_message_size(limit), &wire);
            if ok {
                assert_eq!(normalize(events), vec![Norm::Binary(data.clone(), true)]);
            } else {
                assert_eq!(close_code(&events), Some(1009), "len {len} split {split}");
            }
        }
    }
}

/// Limits mean the same with and without compression: a message within the frame and message
/// limits is accepted whether or not the peer compressed it, although DEFLATE makes
/// incompressible data a few bytes larger on the wire.
#[test]
fn incompressible_message_at_the_limits_is_accepted_compressed() {
    // SplitMix64 output bytes: nothing for DEFLATE to find.
    let random = |len: usize| -> Vec<u8> {
        (0..len as u64)
            .flat_map(|i| {
                let mut z = i.wrapping_add(1).wrapping_mul(0x9e37_79b9_7f4a_7c15);
                z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
                z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
                (z ^ (z >> 31)).to_le_bytes()
            })
            .take(len)
            .collect()
    };
    let limit = 64 << 10;
    let data = random(limit);
    let compressed = deflate_raw(&data);
    assert!(compressed.len() > limit, "incompressible: {} > {limit} on the wire", compressed.len());
    let config = Config::default().max_frame_size(limit).max_message_size(limit);
    for delivery in [Delivery::DEFAULT_CHUNKS, Delivery::Frames, Delivery::Messages] {
        let events = receive(Server, config.clone().delivery(delivery), &masked(0xc2, &compressed));
        assert_eq!(normalize(events), vec![Norm::Binary(data.clone(), true)], "{delivery:?}");
        // The same message uncompressed is accepted too.
        let events = receive(Server, config.clone().delivery(delivery), &masked(0x82, &data));
        assert_eq!(normalize(events), vec![Norm::Binary(data.clone(), true)], "{delivery:?}");
    }
    // A compressed frame beyond what DEFLATE can add is still refused before its payload.
    let mut header = vec![0xc2, 0xff];
    header.extend_from_slice(&(2 * limit as u64).to_be_bytes());
    header.extend_from_slice(&KEY);
    let events = receive(Server, config.clone(), &header);
    assert_eq!(close_code(&events), Some(1009));
    // And one byte over the limit uncompressed is refused with or without compression.
    let over = random(limit + 1);
    assert_eq!(close_code(&receive(Server, config.clone(), &masked(0x82, &over))), Some(1009));
    assert_eq!(close_code(&receive(Server, config, &masked(0xc2, &deflate_raw(&over)))), Some(1009));
}

#[test]
fn bomb_spread_over_many_frames_counts_the_whole_message() {
    // Each frame inflates to 16 KiB; five of them exceed 64 KiB.
    let zeros = vec![0u8; 16 << 10];
    let mut compressor = Compress::new(Compression::default(), false);
    let mut wire = Vec::new();
    for i in 0..8 {
        let mut out = Vec::with_capacity(1024);
        compressor.compress_vec(&zeros, &mut out, FlushCompress::Sync).unwrap();
        let b0 = if i == 0 { 0x42 } else { 0x00 };
        wire.extend(masked(b0, &out));
    }
    let events = receive(Server, Config::default().max_message_size(64 << 10), &wire);
    let delivered: usize = events
        .iter()
        .map(|e| match e {
            Event::BytesMessage(m) => m.data.len(),
            _ => 0,
        })
        .sum();
    assert_eq!(close_code(&events), Some(1009));
    assert!(delivered <= 64 << 10);
}

// ---------------------------------------------------------------------------------------------
// Control frames inside compressed messages, violations.

#[test]
fn ping_between_fragments_of_a_compressed_message() {
    // The RFC split vector with a ping in the middle, both directions.
    for role in [Client, Server] {
        let frame = |b0: u8, p: &[u8]| if role == Server { masked(b0, p) } else { unmasked(b0, p) };
        let wire = [
            frame(0x41, &hex("f2 48 cd")),
            frame(0x89, b"hi"),
            frame(0x8a, b""),
            frame(0x80, &hex("c9 c9 07 00")),
        ]
        .concat();
        for chunk in [wire.len(), 1] {
            let ext = if role == Client { negotiated_client() } else { negotiated_server() };
            let mut c = conn(role, Config::default(), ext);
            let mut events = Vec::new();
            for piece in wire.chunks(chunk) {
                c.receive_data(piece).unwrap();
                events.extend(c.events());
            }
            let norm = normalize(events);
            assert!(norm.contains(&Norm::Ping(b"hi".to_vec())), "{role:?}");
            let text: String = norm
                .iter()
                .filter_map(|n| match n {
                    Norm::Text(s, _) => Some(s.as_str()),
                    _ => None,
                })
                .collect();
            assert_eq!(text, "Hello", "{role:?} chunk {chunk}");
        }
    }

    // And through our own sender, with a long message.
    let mut pair = Pair::default();
    for from_client in [true, false] {
        let s = text_of(50_000, 4);
        let parts = text_fragments(&s, 4);
        let mut wire = Vec::new();
        for (i, p) in parts.iter().enumerate() {
            let ev: Event = if i == parts.len() - 1 {
                TextMessage::new(p.clone()).into()
            } else {
                TextMessage::fragment(p.clone()).into()
            };
            wire.extend(pair.send_all(from_client, vec![ev, Ping::new(&b"x"[..]).into()]));
        }
        let got = normalize(pair.deliver(from_client, &wire, 333));
        let text: String = got
            .iter()
            .filter_map(|n| match n {
                Norm::Text(s, _) => Some(s.as_str()),
                _ => None,
            })
            .collect();
        assert_eq!(text, s);
        assert_eq!(got.iter().filter(|n| matches!(n, Norm::Ping(_))).count(), 4);
    }
}

#[test]
fn rsv1_on_continuation_or_control_is_1002() {
    for role in [Client, Server] {
        let frame = |b0: u8, p: &[u8]| if role == Server { masked(b0, p) } else { unmasked(b0, p) };
        let cases = [
            [frame(0x41, &hex("f2 48 cd")), frame(0xc0, &hex("c9 c9 07 00"))].concat(),
            [frame(0x01, b"Hel"), frame(0xc0, b"lo")].concat(),
            frame(0xc9, b""),
            frame(0xca, b""),
            frame(0xc8, &hex("03 e8")),
            [frame(0x41, &hex("f2 48 cd")), frame(0xc9, b"")].concat(),
            frame(0xa1, b"x"), // RSV2: not ours
            frame(0x91, b"x"), // RSV3
            frame(0xe1, &hex("f2 48 cd c9 c9 07 00")),
        ];
        for wire in cases {
            let events = receive(role, Config::default(), &wire);
            assert_eq!(close_code(&events), Some(1002), "{role:?} {wire:02x?}");
        }
    }
}

#[test]
fn corrupt_data_is_1007() {
    for role in [Client, Server] {
        let frame = |b0: u8, p: &[u8]| if role == Server { masked(b0, p) } else { unmasked(b0, p) };
        let cases = [
            // Reserved block type.
            frame(0xc2, &[0xff, 0xff, 0xff]),
            // Stored block whose NLEN is not the complement of LEN.
            frame(0xc1, &hex("00 05 00 00 00 48 65 6c 6c 6f")),
            // The same, split across two frames.
            [frame(0x42, &hex("00 05")), frame(0x80, &hex("00 00 00 48 65 6c 6c 6f"))].concat(),
            // Inflates to invalid UTF-8.
            frame(0xc1, &deflate_raw(&[0x48, 0xff, 0x49])),
            // Inflates to text ending inside a code point.
            frame(0xc1, &deflate_raw(&[0x48, 0xc3])),
        ];
        for (i, wire) in cases.iter().enumerate() {
            let events = receive(role, Config::default(), wire);
            assert_eq!(close_code(&events), Some(1007), "{role:?} case {i} {events:?}");
        }
    }
}

#[test]
fn never_panics_on_random_compressed_payloads() {
    let mut x: u32 = 12345;
    for len in 0..300usize {
        let payload: Vec<u8> = (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                x as u8
            })
            .collect();
        for b0 in [0xc1u8, 0xc2, 0x42] {
            for partial in [true, false] {
                let events = receive(
                    Server,
                    Config::default()
                        .delivery(if partial { Delivery::Chunks { min_size: 1 } } else { Delivery::Frames })
                        .max_message_size(4096),
                    &masked(b0, &payload),
                );
                if let Some(code) = close_code(&events) {
                    assert!([1007, 1009].contains(&code), "code {code}");
                }
            }
        }
    }
}

/// Each message's data must end with the removed `00 00 ff ff`, even when the compressor has
/// nothing new to flush (an empty message after another, an empty last fragment).
#[test]
fn empty_messages_and_fragments_after_a_flush() {
    let mut ext = negotiated_client();
    let mut sent = Vec::new();
    let frames = [
        (Opcode::Text, "x", true),
        (Opcode::Binary, "", true),
        (Opcode::Binary, "", true),
        (Opcode::Text, "ab", false),
        (Opcode::Continuation, "", false),
        (Opcode::Continuation, "", true),
        (Opcode::Text, "", false),
        (Opcode::Continuation, "c", true),
    ];
    for (opcode, data, fin) in frames {
        let (rsv, payload) =
            ext.frame_outbound(opcode, Rsv::NONE, Bytes::from_static(data.as_bytes()), fin).unwrap();
        assert_eq!(rsv.rsv1(), opcode != Opcode::Continuation);
        if fin && data.is_empty() {
            assert_eq!(&payload[..], &[0x00], "{opcode:?}");
        }
        sent.push((opcode, payload, fin));
    }
    let mut wire = Vec::new();
    for (opcode, payload, fin) in sent {
        let b0 = (fin as u8) << 7 | if opcode == Opcode::Continuation { 0 } else { 0x40 } | opcode as u8;
        wire.extend(masked(b0, &payload));
    }
    let events = receive(Server, Config::default(), &wire);
    assert_eq!(
        normalize(events),
        vec![
            Norm::Text("x".into(), true),
            Norm::Binary(vec![], true),
            Norm::Binary(vec![], true),
            Norm::Text("ab".into(), true),
            Norm::Text("c".into(), true),
        ]
    );
}

mod prop {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]

        /// Any messages, any fragmentation, any read sizes, either direction: what arrives is
        /// what was sent.
        #[test]
        fn round_trip_any_chunking(
            messages in proptest::collection::vec((any::<bool>(), 0usize..5000, 1usize..4, any::<u32>()), 1..5),
            chunk in 1usize..700,
            from_client in any::<bool>(),
            no_context in any::<bool>(),
            partial in any::<bool>(),
        ) {
            let client = PerMessageDeflate::new().client_no_context_takeover(no_context);
            let server = PerMessageDeflate::new().server_no_context_takeover(no_context).compression_threshold(64);
            let mut pair = Pair::new(client, server, Config::default().delivery(if partial { Delivery::Chunks { min_size: 1 } } else { Delivery::Frames }));
            let mut wire = Vec::new();
            let mut expected = Vec::new();
            for (text, size, pieces, seed) in messages {
                let (events, norm) = message_events(text, size, seed, pieces);
                wire.extend(pair.send_all(from_client, events));
                expected.push(norm);
            }
            prop_assert_eq!(normalize(pair.deliver(from_client, &wire, chunk)), expected);
        }

        /// Messages mixing random and compressible stretches of any length (the compressor
        /// stores what its probes cannot shrink), any window, fragmented or not, with or
        /// without context takeover, in both directions: what arrives is what was sent.
        #[test]
        fn stored_and_deflated_stretches_round_trip(
            messages in proptest::collection::vec(
                (proptest::collection::vec((any::<bool>(), 0usize..120_000), 1..5), 1usize..4, any::<u32>()),
                1..4,
            ),
            bits in 9u8..=15,
            from_client in any::<bool>(),
            no_context in any::<bool>(),
        ) {
            let client = PerMessageDeflate::new().client_no_context_takeover(no_context).client_max_window_bits(bits);
            let server = PerMessageDeflate::new().server_no_context_takeover(no_context).compress_window_bits(bits);
            let mut pair = Pair::new(client, server, Config::default().delivery(Delivery::Frames));
            let mut wire = Vec::new();
            let mut expected = Vec::new();
            for (stretches, pieces, seed) in messages {
                let mut data = Vec::new();
                for (i, (random, len)) in stretches.into_iter().enumerate() {
                    let seed = seed.wrapping_add(i as u32);
                    if random {
                        data.extend(support::noise::noise(len, u64::from(seed)));
                    } else {
                        data.extend_from_slice(text_of(len, seed).as_bytes());
                    }
                }
                wire.extend(pair.send_all(from_client, binary_events(&data, pieces)));
                expected.push(Norm::Binary(data, true));
            }
            let got = normalize(pair.deliver(from_client, &wire, 64 << 10));
            prop_assert!(got == expected, "{} messages arrived", got.len());
        }
    }
}

/// A busy connection takes its states back untouched from its pool at each message, or keeps
/// them itself without a pool: no state is allocated or primed per message, and the context
/// carries over.
#[test]
fn a_busy_connection_builds_its_states_once() {
    for pool in [None, Some(DeflatePool::new())] {
        let with = |ext: PerMessageDeflate| match &pool {
            Some(pool) => ext.pool(pool.clone()),
            None => ext,
        };
        let (mut client, mut server) =
            negotiate(with(PerMessageDeflate::new()), with(PerMessageDeflate::new()));
        let message =
            |n: u32| Bytes::from(format!("{{\"seq\":{n},\"text\":\"the same words again and again\"}}"));
        let echo = |client: &mut PerMessageDeflate, server: &mut PerMessageDeflate, n: u32| {
            let (rsv, payload) = client.frame_outbound(Opcode::Text, Rsv::NONE, message(n), true).unwrap();
            let ((), peak, _) = measure(|| {
                server.frame_inbound_header(Server, Opcode::Text, rsv, payload.len() as u64).unwrap();
                let mut data = server.frame_inbound_payload_data(payload.clone(), 1 << 20).unwrap();
                if let Some(rest) = server.frame_inbound_complete(true, 1 << 20).unwrap() {
                    data = [data, rest].concat().into();
                }
                assert_eq!(data, message(n));
                let (_, out) = server.frame_outbound(Opcode::Text, Rsv::NONE, message(n), true).unwrap();
                assert!(!out.is_empty());
            });
            peak
        };
        let first = echo(&mut client, &mut server, 0);
        assert!(first > 100_000, "the first message builds the states: {first} B");
        for n in 1..20 {
            let peak = echo(&mut client, &mut server, n);
            assert!(peak < 32_000, "message {n} allocated {peak} B: a state was built again ({pool:?})");
        }
    }
}

/// Connections sharing one small pool, with context takeover both ways, run their messages on
/// different threads from round to round (several at once): each state a connection gives
/// back may be taken by another one on another thread, and a state it gave earlier holds an
/// older context, so it must never be taken back as its own. Every message must arrive
/// byte-exact.
#[test]
fn connections_moved_between_threads_sharing_one_pool_keep_every_message_exact() {
    let pool = DeflatePool::with_capacity(2);
    let mut pairs: Vec<(PerMessageDeflate, PerMessageDeflate)> = (0..6)
        .map(|_| {
            negotiate(
                PerMessageDeflate::new().pool(pool.clone()),
                PerMessageDeflate::new().pool(pool.clone()),
            )
        })
        .collect();
    let exchange = |(mut client, mut server): (PerMessageDeflate, PerMessageDeflate),
                    id: usize,
                    round: usize| {
        for n in 0..8 {
            let text = format!(
                "{{\"conn\":{id},\"round\":{round},\"seq\":{n},\"text\":\"the same words again, {}\"}}",
                "x".repeat((id * 31 + round * 7 + n * 13) % 200)
            );
            let (rsv, payload) =
                client.frame_outbound(Opcode::Text, Rsv::NONE, Bytes::from(text.clone()), true).unwrap();
            server.frame_inbound_header(Server, Opcode::Text, rsv, payload.len() as u64).unwrap();
            let mut data = server.frame_inbound_payload_data(payload, 1 << 20).unwrap();
            if let Some(rest) = server.frame_inbound_complete(true, 1 << 20).unwrap() {
                data = [data, rest].concat().into();
            }
            assert_eq!(data, text.as_bytes(), "conn {id} round {round} message {n} inflated by the server");
            let (rsv, out) = server.frame_outbound(Opcode::Text, Rsv::NONE, data, true).unwrap();
            client.frame_inbound_header(Client, Opcode::Text, rsv, out.len() as u64).unwrap();
            let mut echo = client.frame_inbound_payload_data(out, 1 << 20).unwrap();
            if let Some(rest) = client.frame_inbound_complete(true, 1 << 20).unwrap() {
                echo = [echo, rest].concat().into();
            }
            assert_eq!(echo, text.as_bytes(), "conn {id} round {round} message {n} compressed by the server");
        }
        (client, server)
    };
    for round in 0..40 {
        // Two threads per round, each running a different (rotating) half of the connections.
        let (mut even, mut odd) = (Vec::new(), Vec::new());
        for (id, pair) in pairs.drain(..).enumerate() {
            if (id + round) % 2 == 0 {
                even.push((id, pair))
            } else {
                odd.push((id, pair))
            }
        }
        let mut back: Vec<(usize, (PerMessageDeflate, PerMessageDeflate))> = std::thread::scope(|scope| {
            let handles: Vec<_> = [even, odd]
                .into_iter()
                .map(|group| {
                    scope.spawn(move || {
                        group
                            .into_iter()
                            .map(|(id, pair)| (id, exchange(pair, id, round)))
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            handles.into_iter().flat_map(|h| h.join().unwrap()).collect()
        });
        back.sort_by_key(|(id, _)| *id);
        pairs = back.into_iter().map(|(_, pair)| pair).collect();
    }
    let (compressors, inflaters) = pool.len();
    assert!(compressors <= 2 && inflaters <= 2);
}

#[test]
fn traffic_shows_the_compression_ratio_both_ways() {
    // 50 repetitive JSON messages: the wire carries far fewer bytes than the payload, and the
    // counters of the two sides agree.
    let mut pair = Pair::default();
    let message = r#"{"user":"alice","room":"general","text":"hello hello hello"}"#.repeat(4);
    let events: Vec<Event> = (0..50).map(|_| TextMessage::new(message.clone()).into()).collect();
    let wire = pair.send_all(true, events);
    let received = pair.deliver(true, &wire, 97);
    assert_eq!(received.len(), 50);
    let (sent, got) = (pair.client.traffic(), pair.server.traffic());
    assert_eq!((sent.messages_sent, got.messages_received), (50, 50));
    assert_eq!(sent.payload_sent, 50 * message.len() as u64);
    assert_eq!(got.payload_received, sent.payload_sent, "decompressed payload");
    assert_eq!((sent.bytes_sent, got.bytes_received), (wire.len() as u64, wire.len() as u64));
    let ratio = sent.sent_wire_per_payload().unwrap();
    assert!(ratio < 0.2, "compressed to {ratio}");
    assert_eq!(got.received_wire_per_payload(), Some(ratio));
}
