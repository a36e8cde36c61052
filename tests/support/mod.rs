//! Shared test helpers: frame builders, three-way decoding, and a client/server pair.
#![allow(dead_code, unreachable_pub)]

use bytes::{Bytes, BytesMut};
use wsproto::frame::apply_mask_scalar;
use wsproto::Delivery;
use wsproto::{Config, Connection, ConnectionType, Event, KeySource};

pub mod noise;
mod norm;
pub use norm::{normalize, Norm};

pub const KEY: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

/// A frame as a client sends it: masked with [`KEY`]. `b0` is FIN/RSV/opcode.
pub fn masked(b0: u8, payload: &[u8]) -> Vec<u8> {
    frame(b0, payload, Some(KEY))
}

/// A frame as a server sends it: unmasked.
pub fn unmasked(b0: u8, payload: &[u8]) -> Vec<u8> {
    frame(b0, payload, None)
}

pub fn frame(b0: u8, payload: &[u8], mask: Option<[u8; 4]>) -> Vec<u8> {
    let mut out = vec![b0];
    let mask_bit = if mask.is_some() { 0x80 } else { 0 };
    match payload.len() {
        n @ 0..=125 => out.push(mask_bit | n as u8),
        n @ 126..=0xffff => {
            out.push(mask_bit | 126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            out.push(mask_bit | 127);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    let mut body = payload.to_vec();
    if let Some(key) = mask {
        out.extend_from_slice(&key);
        apply_mask_scalar(&mut body, key, 0);
    }
    out.extend_from_slice(&body);
    out
}

pub fn drain(conn: &mut Connection) -> Vec<Event> {
    conn.events().collect()
}

/// Feeds `input` in the given pieces and collects every event.
pub fn feed_pieces(role: ConnectionType, config: Config, pieces: &[&[u8]]) -> (Vec<Event>, Connection) {
    let mut conn = Connection::new(role, config);
    let mut events = Vec::new();
    for piece in pieces {
        conn.receive_data(piece).unwrap();
        events.extend(drain(&mut conn));
    }
    (events, conn)
}

/// Decodes `input` whole, one byte at a time, and with trailing bytes (which must stay
/// buffered), in both delivery modes, and checks every way gives `expected` (message-level).
/// Returns the events of the whole feed.
pub fn check_decode(role: ConnectionType, input: &[u8], expected: &[Norm]) -> Vec<Event> {
    let (whole, _) = feed_pieces(role, Config::default(), &[input]);
    assert_eq!(normalize(whole_clone(&whole)), expected, "fed whole");

    let bytes: Vec<&[u8]> = input.chunks(1).collect();
    let (bytewise, _) = feed_pieces(role, Config::default(), &bytes);
    assert_eq!(normalize(bytewise), expected, "fed byte by byte (partial frames)");

    let (bytewise, _) = feed_pieces(role, Config::default().delivery(Delivery::Frames), &bytes);
    let (whole_frames, _) = feed_pieces(role, Config::default().delivery(Delivery::Frames), &[input]);
    assert_eq!(bytewise, whole_frames, "fed byte by byte (whole frames): identical events");

    // Trailing bytes: the start of another frame header stays in the buffer, untouched,
    // unless parsing already stopped (a close or a violation ends parsing).
    let trailing = [0x82u8];
    let mut with_trailing = input.to_vec();
    with_trailing.extend_from_slice(&trailing);
    let (events, mut conn) = feed_pieces(role, Config::default(), &[&with_trailing]);
    let ended = matches!(expected.last(), Some(Norm::Close(..)));
    assert_eq!(normalize(events), expected, "with trailing bytes");
    if !ended {
        assert_eq!(&conn.take_buffered()[..], &trailing[..], "trailing bytes untouched");
    }
    whole
}

fn whole_clone(events: &[Event]) -> Vec<Event> {
    events.iter().map(clone_event).collect()
}

pub fn clone_event(e: &Event) -> Event {
    match e {
        Event::TextMessage(m) => Event::TextMessage(m.clone()),
        Event::BytesMessage(m) => Event::BytesMessage(m.clone()),
        Event::Ping(p) => Event::Ping(p.clone()),
        Event::Pong(p) => Event::Pong(p.clone()),
        Event::CloseConnection(c) => Event::CloseConnection(c.clone()),
        Event::RejectConnection(r) => Event::RejectConnection(r.clone()),
        Event::RejectData(r) => Event::RejectData(r.clone()),
        other => panic!("cannot clone {other:?}"),
    }
}

/// A client and a server `Connection` joined in memory.
pub struct Pair {
    pub client: Connection,
    pub server: Connection,
}

impl Pair {
    pub fn new() -> Self {
        Self::with_config(Config::default())
    }

    pub fn with_config(config: Config) -> Self {
        Pair {
            client: Connection::new(ConnectionType::Client, config.clone().key_source(KeySource::fixed(KEY))),
            server: Connection::new(ConnectionType::Server, config),
        }
    }

    /// `from_client`: which side sends. Returns the wire bytes and the receiver's events.
    pub fn send(&mut self, from_client: bool, event: impl Into<Event>) -> (Bytes, Vec<Event>) {
        let (tx, rx) = if from_client {
            (&mut self.client, &mut self.server)
        } else {
            (&mut self.server, &mut self.client)
        };
        let mut buf = BytesMut::new();
        tx.send(event, &mut buf).unwrap();
        rx.receive_data(&buf).unwrap();
        (buf.freeze(), drain(rx))
    }
}
