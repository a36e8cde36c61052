//! Client <-> server round trip of fuzzer-chosen event sequences, with and without
//! permessage-deflate: what one side sends, the other receives.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use wsproto::extensions::Extension;
use wsproto::{BytesMessage, Config, Connection, ConnectionType, Event, KeySource, Ping, Pong, TextMessage};
use wsproto::extensions::PerMessageDeflate;
use wsproto_fuzz::normalize;

fn pair(deflate: bool) -> (Connection, Connection) {
    let config = Config::default();
    let (mut c_ext, mut s_ext): (Vec<Box<dyn Extension>>, Vec<Box<dyn Extension>>) = (Vec::new(), Vec::new());
    if deflate {
        let mut client = PerMessageDeflate::new();
        let mut server = PerMessageDeflate::new();
        let offer = client.offer().expect("offer");
        let response = server.accept(&format!("permessage-deflate; {offer}")).expect("accept");
        let item = if response.is_empty() {
            "permessage-deflate".to_owned()
        } else {
            format!("permessage-deflate; {response}")
        };
        client.finalize(&item).expect("finalize");
        c_ext.push(Box::new(client));
        s_ext.push(Box::new(server));
    }
    let client = Connection::with_extensions(
        ConnectionType::Client,
        config.clone().key_source(KeySource::fixed([1, 2, 3, 4])),
        c_ext,
        &[],
    );
    let server = Connection::with_extensions(ConnectionType::Server, config, s_ext, &[]);
    (client, server)
}

/// A copy of a data or control event (`Event` itself is not `Clone`).
fn copy(event: &Event) -> Event {
    match event {
        Event::TextMessage(m) => Event::TextMessage(m.clone()),
        Event::BytesMessage(m) => Event::BytesMessage(m.clone()),
        Event::Ping(p) => Event::Ping(p.clone()),
        Event::Pong(p) => Event::Pong(p.clone()),
        _ => unreachable!("only data and control events are sent here"),
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, mut ops)) = data.split_first() else { return };
    let (mut client, mut server) = pair(mode & 1 == 1);
    let mut sent: [Vec<Event>; 2] = [Vec::new(), Vec::new()];
    let mut wires: [BytesMut; 2] = [BytesMut::new(), BytesMut::new()];
    let mut open_text: [Option<bool>; 2] = [None, None];
    while let [op, len, rest @ ..] = ops {
        let len = usize::from(*len).min(rest.len());
        let payload = &rest[..len];
        ops = &rest[len..];
        let side = usize::from(op & 1); // 0: client sends, 1: server sends
        let fin = op & 2 == 0;
        let event: Event = match (op >> 2) % 4 {
            0 => {
                let text = String::from_utf8_lossy(payload).into_owned();
                if open_text[side] == Some(false) {
                    continue;
                }
                open_text[side] = if fin { None } else { Some(true) };
                TextMessage { data: text.into(), frame_finished: true, message_finished: fin }.into()
            }
            1 => {
                if open_text[side] == Some(true) {
                    continue;
                }
                open_text[side] = if fin { None } else { Some(false) };
                BytesMessage { data: payload.to_vec().into(), frame_finished: true, message_finished: fin }
                    .into()
            }
            2 => Ping::new(payload[..len.min(125)].to_vec()).into(),
            _ => Pong::new(payload[..len.min(125)].to_vec()).into(),
        };
        sent[side].push(copy(&event));
        let conn = if side == 0 { &mut client } else { &mut server };
        conn.send(event, &mut wires[side]).expect("allowed send");
    }
    for (side, receiver) in [(0, &mut server), (1, &mut client)] {
        receiver.receive_data(&wires[side]).expect("open");
        let events: Vec<Event> = receiver.events().collect();
        // What was sent and what arrived, at message level (fragments joined).
        assert_eq!(normalize(&events), normalize(&sent[side]), "side {side}");
    }
});
