//! The server's request parser: arbitrary bytes in fuzzer-chosen pieces.
//!
//! Invariant: no panic; a `Request` event, a `RemoteProtocolError` with a rejection hint, or a
//! need for more bytes; bounded buffering (the head limit).
#![no_main]

use libfuzzer_sys::fuzz_target;
use wsproto::{AcceptConnection, ConnectionType, Event, ProtocolError, WsConnection};
use wsproto_fuzz::{config, pieces};

fuzz_target!(|data: &[u8]| {
    let (split, _) = pieces(data);
    let mut ws = WsConnection::with_config(ConnectionType::Server, config());
    for piece in split {
        match ws.receive_data(piece) {
            Ok(()) => {}
            Err(ProtocolError::Remote(e)) => {
                let hint = e.event_hint();
                assert!(hint.status_code >= 400);
                ws.send_bytes(hint).expect("the hint can be sent");
                return;
            }
            Err(ProtocolError::Local(_)) => return,
        }
        while let Some(event) = ws.next_event() {
            if let Event::Request(request) = event {
                // Accepting with the offered subprotocol must work.
                let mut accept = AcceptConnection::new();
                accept.subprotocol = request.subprotocols.first().cloned();
                ws.send_bytes(accept).expect("accepting a valid request works");
                return;
            }
        }
    }
    let _ = ws.receive_eof();
});
