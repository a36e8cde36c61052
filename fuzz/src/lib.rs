//! Helpers shared by the fuzz targets.

use wsproto::{Config, Connection, ConnectionType, Event};

/// Limits every target runs under: small enough that libFuzzer's `-malloc_limit_mb` catches
/// any allocation a peer could force beyond them.
pub fn config() -> Config {
    Config::default().max_frame_size(256 << 10).max_message_size(1 << 20).max_handshake_size(8 << 10)
}

/// Splits `data` into pieces: the first byte seeds the cut points, so the fuzzer chooses them.
pub fn pieces(data: &[u8]) -> (Vec<&[u8]>, &[u8]) {
    let Some((&seed, rest)) = data.split_first() else { return (Vec::new(), data) };
    let mut out = Vec::new();
    let mut pos = 0;
    let mut state = u32::from(seed) | 1;
    while pos < rest.len() {
        state = state.wrapping_mul(1_103_515_245).wrapping_add(12_345);
        let step = 1 + (state >> 16) as usize % (1 + 2 * usize::from(seed % 64));
        let end = (pos + step).min(rest.len());
        out.push(&rest[pos..end]);
        pos = end;
    }
    (out, rest)
}

// The tests' message-level view of events, so both judge events the same way.
#[path = "../../tests/support/norm.rs"]
mod norm;
pub use norm::{normalize, Norm};

/// The events that do not depend on how bytes were chunked: finished messages and control
/// events. (A message cut short by a violation or EOF may have delivered a prefix, or not,
/// depending on when its bytes arrived.)
pub fn settled(norms: Vec<Norm>) -> Vec<Norm> {
    norms.into_iter().filter(|n| !matches!(n, Norm::Text(_, false) | Norm::Binary(_, false))).collect()
}

/// Feeds pieces to `conn`, collecting events; checks the per-message size limit.
pub fn feed(conn: &mut Connection, pieces: &[&[u8]]) -> Vec<Event> {
    let mut events = Vec::new();
    for piece in pieces {
        if conn.receive_data(piece).is_err() {
            break;
        }
        events.extend(conn.events());
    }
    conn.receive_eof();
    events.extend(conn.events());
    assert_within_limit(&normalize(&events), conn.config().limits.max_message_size);
    events
}

/// Checks that no message (its chunks joined) is longer than `limit`.
pub fn assert_within_limit(norms: &[Norm], limit: usize) {
    for n in norms {
        match n {
            Norm::Text(s, _) => assert!(s.len() <= limit, "text message over the limit"),
            Norm::Binary(b, _) => assert!(b.len() <= limit, "binary message over the limit"),
            _ => {}
        }
    }
}

/// A connection of `role` under the fuzz limits.
pub fn connection(role: ConnectionType) -> Connection {
    Connection::new(role, config())
}
