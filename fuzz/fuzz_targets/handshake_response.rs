//! The client's response parser: a request is sent, then arbitrary bytes arrive in pieces.
//!
//! Invariant: no panic; `AcceptConnection`, `RejectConnection` + `RejectData`, or a
//! `RemoteProtocolError`; after acceptance, the trailing bytes are parsed as frames.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wsproto::{ConnectionType, KeySource, Request, WsConnection};
use wsproto::extensions::PerMessageDeflate;
use wsproto_fuzz::{config, pieces};

fuzz_target!(|data: &[u8]| {
    let (split, _) = pieces(data);
    // The nonce is pinned so the fuzzer can find the accept token
    // (key AAAAAAAAAAAAAAAAAAAAAA== -> ICX+Yqv66kxgM0FcWaLWlFLwTAI=).
    let mut ws =
        WsConnection::with_config(ConnectionType::Client, config().key_source(KeySource::fixed([0; 4])))
            .with_extension(PerMessageDeflate::new());
    let request = Request::new("h", "/").with_subprotocols(["a", "b"]);
    ws.send_bytes(request).expect("request");
    for piece in split {
        if ws.receive_data(piece).is_err() {
            return;
        }
        for _ in ws.events() {}
    }
    let _ = ws.receive_eof();
    for _ in ws.events() {}
});
