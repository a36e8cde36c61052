//! The tokio codec over fuzzer-chosen reads, in chunk mode and in whole-message mode.
//!
//! Invariant: no panic, no error; the same finished messages and control events as the core
//! fed everything at once; in whole-message mode every data event is a whole message; no
//! message beyond the configured limit; nothing after the first CloseConnection.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use tokio_util::codec::Decoder;
use wsproto::codec::WsCodec;
use wsproto::{Connection, ConnectionType, Delivery, Event};
use wsproto_fuzz::{assert_within_limit, config, feed, normalize, pieces, settled, Norm};

/// Feeds each piece as one "read" into the codec's buffer and drains the events, then EOF.
fn drive(codec: &mut WsCodec, pieces: &[&[u8]]) -> Vec<Event> {
    let mut src = BytesMut::new();
    let mut events = Vec::new();
    for piece in pieces {
        src.extend_from_slice(piece);
        while let Some(event) = codec.decode(&mut src).expect("decode never fails") {
            events.push(event);
        }
    }
    while let Some(event) = codec.decode_eof(&mut src).expect("decode_eof never fails") {
        events.push(event);
    }
    events
}

/// Finished messages in order, and control events in order.
fn by_kind(norms: Vec<Norm>) -> (Vec<Norm>, Vec<Norm>) {
    norms.into_iter().partition(|n| matches!(n, Norm::Text(..) | Norm::Binary(..)))
}

fuzz_target!(|data: &[u8]| {
    let (split, whole) = pieces(data);
    for role in [ConnectionType::Server, ConnectionType::Client] {
        let expected_events = feed(&mut Connection::new(role, config()), &[whole]);
        for whole_messages in [false, true] {
            let delivery = if whole_messages { Delivery::Messages } else { Delivery::DEFAULT_CHUNKS };
            let conn = Connection::new(role, config().delivery(delivery));
            let mut codec = WsCodec::new(conn);
            let events = drive(&mut codec, &split);
            if let Some(close) = events.iter().position(|e| matches!(e, Event::CloseConnection(_))) {
                assert_eq!(close + 1, events.len(), "nothing after the close event");
            }
            if whole_messages {
                for event in &events {
                    match event {
                        Event::TextMessage(m) => assert!(m.frame_finished && m.message_finished),
                        Event::BytesMessage(m) => assert!(m.frame_finished && m.message_finished),
                        _ => {}
                    }
                }
            }
            let norms = normalize(&events);
            assert_within_limit(&norms, config().limits.max_message_size);
            // Whole messages are reported when they finish, so control frames that arrived
            // between fragments come first: compare messages and control events separately.
            assert_eq!(
                by_kind(settled(norms)),
                by_kind(settled(normalize(&expected_events))),
                "codec (whole_messages {whole_messages}) changed the events"
            );
        }
    }
});
