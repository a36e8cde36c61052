//! Property: what one side sends, the other receives, for arbitrary event sequences in both
//! roles, plain and with permessage-deflate under every negotiated parameter set, whatever
//! the chunking of the wire bytes.

mod support;

use bytes::BytesMut;
use proptest::prelude::*;
use support::{normalize, Norm};
use wsproto::extensions::Extension;
/// The negotiated extensions of a client and a server.
type ExtensionPair = (Vec<Box<dyn Extension>>, Vec<Box<dyn Extension>>);

use wsproto::{BytesMessage, Config, Connection, ConnectionType, Event, KeySource, Ping, Pong, TextMessage};

#[derive(Clone, Debug)]
enum Op {
    /// A message in `fragments` pieces (text or binary).
    Message {
        text: bool,
        data: Vec<u8>,
        fragments: usize,
    },
    Ping(Vec<u8>),
    Pong(Vec<u8>),
}

fn arb_op() -> impl Strategy<Value = Op> {
    prop_oneof![
        ("[a-zé€😀 ]{0,200}", 1usize..4).prop_map(|(s, fragments)| Op::Message {
            text: true,
            data: s.into_bytes(),
            fragments
        }),
        (proptest::collection::vec(any::<u8>(), 0..3000), 1usize..4)
            .prop_map(|(data, fragments)| Op::Message { text: false, data, fragments }),
        proptest::collection::vec(any::<u8>(), 0..126).prop_map(Op::Ping),
        proptest::collection::vec(any::<u8>(), 0..126).prop_map(Op::Pong),
    ]
}

/// Sends `ops` from `tx`; returns the wire bytes and the expected message-level view.
fn send_all(tx: &mut Connection, ops: &[Op]) -> (BytesMut, Vec<Norm>) {
    let mut wire = BytesMut::new();
    let mut expected = Vec::new();
    for op in ops {
        match op {
            Op::Message { text, data, fragments } => {
                let pieces = split(data, *fragments, *text);
                let last = pieces.len() - 1;
                for (i, piece) in pieces.into_iter().enumerate() {
                    let fin = i == last;
                    let event: Event = if *text {
                        let s = String::from_utf8(piece).expect("cut on char boundaries");
                        TextMessage { data: s.into(), frame_finished: true, message_finished: fin }.into()
                    } else {
                        BytesMessage { data: piece.into(), frame_finished: true, message_finished: fin }
                            .into()
                    };
                    tx.send(event, &mut wire).unwrap();
                }
                expected.push(if *text {
                    Norm::Text(String::from_utf8(data.clone()).unwrap(), true)
                } else {
                    Norm::Binary(data.clone(), true)
                });
            }
            Op::Ping(p) => {
                tx.send(Ping::new(p.clone()), &mut wire).unwrap();
                expected.push(Norm::Ping(p.clone()));
            }
            Op::Pong(p) => {
                tx.send(Pong::new(p.clone()), &mut wire).unwrap();
                expected.push(Norm::Pong(p.clone()));
            }
        }
    }
    (wire, expected)
}

/// Splits into at most `n` pieces (on character boundaries for text).
fn split(data: &[u8], n: usize, text: bool) -> Vec<Vec<u8>> {
    let step = data.len().div_ceil(n).max(1);
    let mut out = Vec::new();
    let mut start = 0;
    while start < data.len() {
        let mut end = (start + step).min(data.len());
        while text && std::str::from_utf8(&data[start..end]).is_err() {
            end += 1;
        }
        out.push(data[start..end].to_vec());
        start = end;
    }
    if out.is_empty() {
        out.push(Vec::new());
    }
    out
}

fn receive(rx: &mut Connection, wire: &[u8], chunk: usize) -> Vec<Norm> {
    let mut events = Vec::new();
    for piece in wire.chunks(chunk.max(1)) {
        rx.receive_data(piece).unwrap();
        events.extend(rx.events());
    }
    normalize(events)
}

#[cfg(feature = "deflate")]
fn deflate_pair(params: (bool, bool, Option<u8>, Option<u8>, u8)) -> ExtensionPair {
    use wsproto::extensions::PerMessageDeflate;
    let (cnct, snct, cbits, sbits, threshold) = params;
    let mut client =
        PerMessageDeflate::new().client_no_context_takeover(cnct).server_no_context_takeover(snct);
    if let Some(bits) = cbits {
        client = client.client_max_window_bits(bits);
    }
    if let Some(bits) = sbits {
        client = client.server_max_window_bits(bits);
    }
    let mut server = PerMessageDeflate::new().compression_threshold(usize::from(threshold));
    let offer = client.offer().unwrap();
    let item = |params: &str| {
        if params.is_empty() {
            "permessage-deflate".to_string()
        } else {
            format!("permessage-deflate; {params}")
        }
    };
    let Some(response) = server.accept(&item(&offer)) else {
        // Declined (server_max_window_bits=8 cannot be honoured): no extension.
        return (Vec::new(), Vec::new());
    };
    client.finalize(&item(&response)).unwrap();
    (vec![Box::new(client)], vec![Box::new(server)])
}

fn pair(extensions: ExtensionPair) -> (Connection, Connection) {
    let config = Config::default();
    let client = Connection::with_extensions(
        ConnectionType::Client,
        config.clone().key_source(KeySource::fixed([9, 8, 7, 6])),
        extensions.0,
        &[],
    );
    let server = Connection::with_extensions(ConnectionType::Server, config, extensions.1, &[]);
    (client, server)
}

fn check_both_ways(
    mut client: Connection,
    mut server: Connection,
    ops: &[Op],
    chunk: usize,
) -> Result<(), TestCaseError> {
    let (wire, expected) = send_all(&mut client, ops);
    prop_assert_eq!(receive(&mut server, &wire, chunk), expected, "client -> server");
    let (wire, expected) = send_all(&mut server, ops);
    prop_assert_eq!(receive(&mut client, &wire, chunk), expected, "server -> client");
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn events_round_trip_in_both_roles(ops in proptest::collection::vec(arb_op(), 1..12), chunk in 1usize..5000) {
        let (client, server) = pair((Vec::new(), Vec::new()));
        check_both_ways(client, server, &ops, chunk)?;
    }

    #[cfg(feature = "deflate")]
    #[test]
    fn deflate_round_trips_under_every_parameter_set(
        ops in proptest::collection::vec(arb_op(), 1..8),
        chunk in 1usize..5000,
        params in (any::<bool>(), any::<bool>(), proptest::option::of(8u8..=15), proptest::option::of(8u8..=15), 0u8..64),
    ) {
        let (client, server) = pair(deflate_pair(params));
        check_both_ways(client, server, &ops, chunk)?;
    }
}
