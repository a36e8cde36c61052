//! Frame and connection decoding in both roles, fed whole and in fuzzer-chosen pieces, in
//! both delivery modes.
//!
//! Invariant: no panic; only events; the same message-level events whatever the split; no
//! message beyond the configured limit; nothing after the first CloseConnection.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wsproto::Delivery;
use wsproto::{Connection, ConnectionType, Event};
use wsproto_fuzz::{config, feed, normalize, pieces, settled};

fuzz_target!(|data: &[u8]| {
    let (split, whole) = pieces(data);
    for role in [ConnectionType::Server, ConnectionType::Client] {
        let reference = feed(&mut Connection::new(role, config()), &[whole]);
        let closes = reference.iter().filter(|e| matches!(e, Event::CloseConnection(_))).count();
        assert!(closes <= 1, "at most one close event");
        if closes == 1 {
            assert!(matches!(reference.last(), Some(Event::CloseConnection(_))), "nothing after close");
        }
        let expected = settled(normalize(&reference));
        for partial in [true, false] {
            let mut conn = Connection::new(role, config().delivery(if partial { Delivery::Chunks { min_size: 1 } } else { Delivery::Frames }));
            let events = feed(&mut conn, &split);
            assert_eq!(settled(normalize(&events)), expected, "split changed the events");
        }
    }
});
