//! permessage-deflate inflate path: negotiated from a fuzzer-chosen offer, then arbitrary
//! compressed payloads in frames.
//!
//! Invariant: no panic; output within the message limit (1009 beyond it); corrupt data
//! gives 1007; a decline of the offer is fine.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wsproto::extensions::Extension;
use wsproto::{Connection, ConnectionType};
use wsproto::extensions::PerMessageDeflate;
use wsproto_fuzz::{config, feed, pieces};

const OFFERS: [&str; 6] = [
    "permessage-deflate",
    "permessage-deflate; client_max_window_bits",
    "permessage-deflate; client_max_window_bits=9; client_no_context_takeover",
    "permessage-deflate; server_max_window_bits=10",
    "permessage-deflate; client_max_window_bits=8",
    "permessage-deflate; server_no_context_takeover; client_no_context_takeover",
];

fuzz_target!(|data: &[u8]| {
    let Some((&choice, rest)) = data.split_first() else { return };
    let mut ext = PerMessageDeflate::new();
    if ext.accept(OFFERS[usize::from(choice) % OFFERS.len()]).is_none() {
        return;
    }
    // Frames: [flags byte][len byte][payload...] repeated; masked with a zero key.
    let mut wire = Vec::new();
    let mut input = rest;
    while let [flags, len, tail @ ..] = input {
        let len = usize::from(*len).min(tail.len());
        let b0 = flags & 0xcf; // FIN, RSV1, opcode (RSV2/3 cleared)
        wire.push(b0);
        let len = if b0 & 0x08 != 0 { len.min(125) } else { len };
        wire.push(0x80 | len as u8);
        wire.extend_from_slice(&[0, 0, 0, 0]);
        wire.extend_from_slice(&tail[..len]);
        input = &tail[len..];
    }
    let mut conn = Connection::with_extensions(ConnectionType::Server, config(), vec![Box::new(ext)], &[]);
    let (split, _) = pieces(&wire);
    feed(&mut conn, &split);
});
