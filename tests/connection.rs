//! The post-handshake `Connection`: RFC 6455 vectors, peer violations, the state table, EOF,
//! streaming delivery and a client/server pair.

mod support;

use bytes::BytesMut;
use proptest::prelude::*;
use support::*;
use wsproto::Delivery;
use wsproto::{
    BytesMessage, CloseCode, CloseConnection, CloseSource, Config, Connection, ConnectionState,
    ConnectionType, Event, KeySource, LocalProtocolError, PeerViolation, Ping, Pong, TextMessage,
};

use ConnectionType::{Client, Server};

fn hex(s: &str) -> Vec<u8> {
    let s: String = s.split_whitespace().collect();
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
}

fn server_out(event: impl Into<Event>) -> Vec<u8> {
    Connection::new(Server, Config::default()).send_bytes(event).unwrap().to_vec()
}

fn client_out(event: impl Into<Event>) -> Vec<u8> {
    let config = Config::default().key_source(KeySource::fixed(KEY));
    Connection::new(Client, config).send_bytes(event).unwrap().to_vec()
}

// RFC 6455 §5.7, byte for byte, both directions.

#[test]
fn rfc_unmasked_hello() {
    let wire = hex("81 05 48 65 6c 6c 6f");
    check_decode(Client, &wire, &[Norm::Text("Hello".into(), true)]);
    assert_eq!(server_out(TextMessage::new("Hello")), wire);
}

#[test]
fn rfc_masked_hello() {
    let wire = hex("81 85 37 fa 21 3d 7f 9f 4d 51 58");
    check_decode(Server, &wire, &[Norm::Text("Hello".into(), true)]);
    assert_eq!(client_out(TextMessage::new("Hello")), wire);
}

#[test]
fn rfc_fragmented_hello() {
    let wire = hex("01 03 48 65 6c 80 02 6c 6f");
    let events = check_decode(Client, &wire, &[Norm::Text("Hello".into(), true)]);
    assert_eq!(
        events,
        vec![
            Event::TextMessage(TextMessage {
                data: "Hel".into(),
                frame_finished: true,
                message_finished: false
            }),
            Event::TextMessage(TextMessage {
                data: "lo".into(),
                frame_finished: true,
                message_finished: true
            }),
        ]
    );
    let mut server = Connection::new(Server, Config::default());
    let mut out = BytesMut::new();
    server.send(TextMessage::fragment("Hel"), &mut out).unwrap();
    server.send(TextMessage::new("lo"), &mut out).unwrap();
    assert_eq!(&out[..], &wire[..]);
}

#[test]
fn rfc_ping_and_masked_pong() {
    let ping = hex("89 05 48 65 6c 6c 6f");
    check_decode(Client, &ping, &[Norm::Ping(b"Hello".to_vec())]);
    assert_eq!(server_out(Ping::new("Hello")), ping);
    let pong = hex("8a 85 37 fa 21 3d 7f 9f 4d 51 58");
    check_decode(Server, &pong, &[Norm::Pong(b"Hello".to_vec())]);
    assert_eq!(client_out(Pong::new("Hello")), pong);
}

#[test]
fn rfc_length_encodings() {
    let data256: Vec<u8> = (0..256u32).map(|i| i as u8).collect();
    let mut wire = hex("82 7e 01 00");
    wire.extend_from_slice(&data256);
    check_decode(Client, &wire, &[Norm::Binary(data256.clone(), true)]);
    assert_eq!(server_out(BytesMessage::new(data256)), wire);

    let data64k: Vec<u8> = (0..65536u32).map(|i| (i * 7) as u8).collect();
    let mut wire = hex("82 7f 00 00 00 00 00 01 00 00");
    wire.extend_from_slice(&data64k);
    let (events, _) = feed_pieces(Client, Config::default(), &[&wire]);
    assert_eq!(normalize(events), vec![Norm::Binary(data64k.clone(), true)]);
    assert_eq!(server_out(BytesMessage::new(data64k)), wire);
}

// Peer violations (frame-level protocol errors by the remote): each yields a CloseConnection
// event with its code, never an error.

/// Feeds `input` whole, byte by byte and in each delivery mode; every way must fail the
/// connection with the same typed violation, owing our close frame. Returns the violation.
fn violation(role: ConnectionType, input: &[u8]) -> PeerViolation {
    let mut seen: Option<PeerViolation> = None;
    for config in [
        Config::default(),
        Config::default().delivery(Delivery::Chunks { min_size: 1 }),
        Config::default().delivery(Delivery::Frames),
    ] {
        for pieces in [vec![input], input.chunks(1).collect()] {
            let (events, conn) = feed_pieces(role, config.clone(), &pieces);
            let Some(Event::CloseConnection(close)) = events.last() else { panic!("no close in {events:?}") };
            assert_eq!(conn.state(), ConnectionState::RemoteClosing, "a violation waits for our close reply");
            let CloseSource::Violation(v) = &close.source else { panic!("not a violation: {close:?}") };
            assert_eq!(close.code, v.close_code());
            assert_eq!(close.reason.as_deref(), Some(v.reason()));
            assert_eq!(close.reply().map(|r| r.code), Some(v.close_code()), "our close frame is owed");
            if let Some(first) = &seen {
                assert_eq!(first, v, "same violation however the bytes arrive");
            }
            seen = Some(v.clone());
        }
    }
    seen.unwrap()
}

#[test]
fn bad_input_rows_yield_their_close_codes() {
    use PeerViolation as V;
    let rows: Vec<(&str, Vec<u8>, V, u16)> = vec![
        ("invalid opcode 0x3", masked(0x83, b""), V::ReservedOpcode(3), 1002),
        ("invalid opcode 0xb", masked(0x8b, b""), V::ReservedOpcode(0xb), 1002),
        ("fragmented control", masked(0x09, b""), V::FragmentedControlFrame, 1002),
        ("control len > 125", [0x89, 0xfe, 0x00, 0x7e].to_vec(), V::ControlFrameTooLong, 1002),
        ("16-bit length <= 125", [0x82, 0xfe, 0x00, 0x05].to_vec(), V::NonMinimalLength, 1002),
        (
            "64-bit length <= 65535",
            [0x82, 0xff, 0, 0, 0, 0, 0, 0, 0xff, 0xff].to_vec(),
            V::NonMinimalLength,
            1002,
        ),
        ("64-bit length MSB set", [0x82, 0xff, 0x80, 0, 0, 0, 0, 0, 0, 0].to_vec(), V::LengthMsbSet, 1002),
        ("RSV1 without extension", masked(0xc1, b"x"), V::UnexpectedReservedBits, 1002),
        ("RSV2 without extension", masked(0xa1, b"x"), V::UnexpectedReservedBits, 1002),
        ("RSV3 without extension", masked(0x91, b"x"), V::UnexpectedReservedBits, 1002),
        ("server got unmasked frame", unmasked(0x81, b"x"), V::UnmaskedFrame, 1002),
        ("continuation without message", masked(0x80, b"x"), V::UnexpectedContinuation, 1002),
        (
            "text while message in progress",
            [masked(0x01, b"a"), masked(0x81, b"b")].concat(),
            V::ExpectedContinuation,
            1002,
        ),
        (
            "binary while message in progress",
            [masked(0x02, b"a"), masked(0x82, b"b")].concat(),
            V::ExpectedContinuation,
            1002,
        ),
        ("invalid UTF-8", masked(0x81, b"\xce\xba\xff"), V::InvalidUtf8, 1007),
        ("UTF-8 incomplete at message end", masked(0x81, b"\xce"), V::IncompleteUtf8, 1007),
        ("close with 1-byte payload", masked(0x88, b"\x03"), V::CloseFrameTooShort, 1002),
        ("close code 999", masked(0x88, &999u16.to_be_bytes()), V::InvalidCloseCode(999), 1002),
        ("close code 5000", masked(0x88, &5000u16.to_be_bytes()), V::InvalidCloseCode(5000), 1002),
        ("close code 1005", masked(0x88, &1005u16.to_be_bytes()), V::InvalidCloseCode(1005), 1002),
        ("close code 1006", masked(0x88, &1006u16.to_be_bytes()), V::InvalidCloseCode(1006), 1002),
        ("close code 1015", masked(0x88, &1015u16.to_be_bytes()), V::InvalidCloseCode(1015), 1002),
        ("close code 1004", masked(0x88, &1004u16.to_be_bytes()), V::InvalidCloseCode(1004), 1002),
        ("close code 1016", masked(0x88, &1016u16.to_be_bytes()), V::InvalidCloseCode(1016), 1002),
        ("close code 2999", masked(0x88, &2999u16.to_be_bytes()), V::InvalidCloseCode(2999), 1002),
        ("close reason invalid UTF-8", masked(0x88, b"\x03\xe8\xff\xfe"), V::InvalidCloseReason, 1007),
    ];
    for (name, input, expected, code) in rows {
        let found = violation(Server, &input);
        assert_eq!(found, expected, "{name}");
        assert_eq!(found.close_code(), code, "{name}");
    }
    assert_eq!(violation(Client, &masked(0x81, b"x")), V::MaskedFrame, "client got masked frame");
}

#[test]
fn received_close_says_where_it_came_from_and_whether_a_reply_is_owed() {
    // The peer closes first: its close frame, our reply owed, and sending it completes the close.
    let mut conn = Connection::new(Server, Config::default());
    conn.receive_data(&masked(0x88, b"\x03\xe9bye")).unwrap();
    let Some(Event::CloseConnection(close)) = conn.next_event() else { panic!() };
    assert_eq!(
        (close.code, close.reason.as_deref(), &close.source),
        (CloseCode::GOING_AWAY, Some("bye"), &CloseSource::Peer)
    );
    let reply = close.reply().expect("the peer closed first: we owe the reply");
    assert_eq!(
        (reply.code, reply.reason.as_deref(), &reply.source),
        (CloseCode::GOING_AWAY, Some("bye"), &CloseSource::Local)
    );
    assert_eq!(conn.send_bytes(reply).unwrap()[..], unmasked(0x88, b"\x03\xe9bye")[..]);
    assert_eq!(conn.state(), ConnectionState::Closed);

    // We close first: the peer's close answers ours, nothing is owed.
    let mut conn = Connection::new(Server, Config::default());
    conn.send_bytes(CloseConnection::new(CloseCode::NORMAL_CLOSURE)).unwrap();
    conn.receive_data(&masked(0x88, &1000u16.to_be_bytes())).unwrap();
    let Some(Event::CloseConnection(close)) = conn.next_event() else { panic!() };
    assert_eq!((&close.source, close.reply_owed, close.reply()), (&CloseSource::Peer, false, None));
    assert_eq!(conn.state(), ConnectionState::Closed);

    // A violation after we closed: reported, but our close frame is already out.
    let mut conn = Connection::new(Server, Config::default());
    conn.send_bytes(CloseConnection::new(CloseCode::NORMAL_CLOSURE)).unwrap();
    conn.receive_data(&masked(0x81, b"\xff")).unwrap();
    let Some(Event::CloseConnection(close)) = conn.next_event() else { panic!() };
    assert_eq!((close.violation(), close.reply()), (Some(&PeerViolation::InvalidUtf8), None));
    assert_eq!(conn.state(), ConnectionState::Closed);

    // The transport ends without a closing handshake: 1006, nothing to reply.
    let mut conn = Connection::new(Server, Config::default());
    conn.receive_eof();
    let Some(Event::CloseConnection(close)) = conn.next_event() else { panic!() };
    assert_eq!(
        (close.code, close.reason.as_deref(), &close.source, close.reply()),
        (CloseCode::ABNORMAL_CLOSURE, None, &CloseSource::TransportEnded, None)
    );
}

#[test]
fn limits_yield_1009() {
    let config = Config::default().max_frame_size(10);
    let (events, _) = feed_pieces(Server, config, &[&masked(0x82, &[0; 11])]);
    assert_eq!(
        normalize(events),
        vec![Norm::Close(1009, Some("frame exceeds the maximum frame size".into()))]
    );

    // The message limit counts across fragments, before the payload arrives.
    let config = Config::default().max_message_size(10);
    let input = [masked(0x02, &[1; 6]), masked(0x80, &[2; 6])].concat();
    let (events, _) = feed_pieces(Server, config, &[&input]);
    assert!(matches!(events.last(), Some(Event::CloseConnection(c)) if c.code == 1009), "{events:?}");

    // A 2^63-1 length header is refused at once, without waiting for payload.
    let huge = [0x82, 0xff, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 1, 2, 3, 4];
    let (events, _) = feed_pieces(Server, Config::default(), &[&huge]);
    assert!(matches!(&events[..], [Event::CloseConnection(c)] if c.code == 1009));
}

#[test]
fn utf8_fails_fast_inside_partially_received_frame() {
    let frame = masked(0x81, &[b"ab\xff".as_slice(), &[b'c'; 100]].concat());
    // Only the header and the first 3 payload bytes arrive.
    for config in [
        Config::default(),
        Config::default().delivery(Delivery::Chunks { min_size: 1 }),
        Config::default().delivery(Delivery::Frames),
    ] {
        let (events, _) = feed_pieces(Server, config, &[&frame[..6 + 3]]);
        assert!(matches!(events.last(), Some(Event::CloseConnection(c)) if c.code == 1007), "{events:?}");
    }
    // Split across fragments: fails at the first impossible byte (f4 90 is never valid).
    let input = [masked(0x01, b"a\xf4"), masked(0x80, b"\x90")].concat();
    let (events, _) = feed_pieces(Server, Config::default(), &[&input]);
    assert_eq!(
        normalize(events),
        vec![Norm::Text("a".into(), false), Norm::Close(1007, Some("invalid UTF-8 in text message".into()))]
    );
}

#[test]
fn code_point_split_across_fragments_is_carried() {
    let euro = "€".as_bytes();
    let input = [masked(0x01, &euro[..1]), masked(0x00, &euro[1..2]), masked(0x80, &euro[2..])].concat();
    let events = check_decode(Server, &input, &[Norm::Text("€".into(), true)]);
    let texts: Vec<String> = events
        .iter()
        .map(|e| match e {
            Event::TextMessage(m) => m.data.to_string(),
            _ => panic!(),
        })
        .collect();
    assert_eq!(texts, ["", "", "€"]);
}

// Streaming delivery.

#[test]
fn partial_frames_stream_as_chunks() {
    let payload: Vec<u8> = (0..100u8).collect();
    let wire = masked(0x82, &payload);
    let pieces = [&wire[..30], &wire[30..70], &wire[70..]];
    let chunks = |config: Config| -> Vec<(usize, bool)> {
        let (events, _) = feed_pieces(Server, config, &pieces);
        events
            .iter()
            .map(|e| match e {
                Event::BytesMessage(m) => (m.data.len(), m.frame_finished),
                _ => panic!(),
            })
            .collect()
    };
    // Every byte as it arrives (python wsproto's behaviour).
    assert_eq!(
        chunks(Config::default().delivery(Delivery::Chunks { min_size: 1 })),
        [(24, false), (40, false), (36, true)]
    );
    // Chunks of at least 32 bytes: the first 24 wait for more.
    assert_eq!(
        chunks(Config::default().delivery(Delivery::Chunks { min_size: 32 })),
        [(64, false), (36, true)]
    );
    // By default a frame this small is one event however it is split.
    assert_eq!(chunks(Config::default()), [(100, true)]);

    // Whole-frame mode: one event per frame.
    let (events, _) = feed_pieces(
        Server,
        Config::default().delivery(Delivery::Frames),
        &[&wire[..30], &wire[30..70], &wire[70..]],
    );
    assert_eq!(events, vec![Event::BytesMessage(BytesMessage::new(payload))]);
}

#[test]
fn delivery_messages_assembles_fragments_in_the_core() {
    // A text message in three fragments (a code point split across them) with a ping between,
    // fed byte by byte: the ping comes out as it arrives, the message once, whole.
    let wire = [
        masked(0x01, "h\u{e9}".as_bytes()[..2].as_ref()),
        masked(0x89, b"ping"),
        masked(0x00, &"h\u{e9}".as_bytes()[2..]),
        masked(0x80, "llo".as_bytes()),
        masked(0x82, b"one frame"),
    ]
    .concat();
    let pieces: Vec<&[u8]> = wire.chunks(1).collect();
    let config = Config::default().delivery(Delivery::Messages);
    let (events, conn) = feed_pieces(Server, config, &pieces);
    assert_eq!(conn.delivery(), Delivery::Messages);
    assert_eq!(
        events,
        vec![
            Event::Ping(Ping::new("ping")),
            Event::TextMessage(TextMessage::new("h\u{e9}llo")),
            Event::BytesMessage(BytesMessage::new("one frame")),
        ]
    );

    // The message limit counts the whole message: 1009 once the fragments exceed it.
    let config = Config::default().delivery(Delivery::Messages).max_message_size(8);
    let wire = [masked(0x02, b"12345"), masked(0x80, b"6789")].concat();
    let (events, _) = feed_pieces(Server, config, &[&wire]);
    let [Event::CloseConnection(close)] = &events[..] else { panic!("{events:?}") };
    assert_eq!(close.violation(), Some(&PeerViolation::MessageTooBig));
}

#[test]
fn a_huge_frame_streams_in_bounded_memory() {
    let config = Config::default().limits(wsproto::Limits::unlimited());
    let mut server = Connection::new(Server, config);
    let len: u64 = 1 << 30;
    let mut header = vec![0x82, 0xff];
    header.extend_from_slice(&len.to_be_bytes());
    header.extend_from_slice(&KEY);
    server.receive_data(&header).unwrap();
    assert!(server.next_event().is_none());
    let chunk = vec![0u8; 1 << 20];
    let mut total = 0usize;
    for _ in 0..8 {
        server.receive_data(&chunk).unwrap();
        for event in server.events() {
            let Event::BytesMessage(m) = event else { panic!() };
            assert!(!m.message_finished);
            total += m.data.len();
        }
        assert!(server.take_buffered().capacity() <= 2 << 20, "buffer stays bounded");
    }
    assert_eq!(total, 8 << 20);
}

// State machine after the handshake: what each state may send, and what it does with received
// bytes, a received close and EOF.

fn sends() -> Vec<(&'static str, Event)> {
    vec![
        ("text", TextMessage::new("x").into()),
        ("bytes", BytesMessage::new("x").into()),
        ("ping", Ping::new("p").into()),
        ("pong", Pong::new("p").into()),
        ("close", CloseConnection::new(1000u16).into()),
    ]
}

fn in_state(state: ConnectionState) -> Connection {
    let mut conn = Connection::new(Server, Config::default());
    let close = masked(0x88, &1000u16.to_be_bytes());
    match state {
        ConnectionState::Open => {}
        ConnectionState::LocalClosing => {
            conn.send_bytes(CloseConnection::new(1000u16)).unwrap();
        }
        ConnectionState::RemoteClosing => {
            conn.receive_data(&close).unwrap();
            assert_eq!(drain(&mut conn).len(), 1);
        }
        ConnectionState::Closed => {
            conn.send_bytes(CloseConnection::new(1000u16)).unwrap();
            conn.receive_data(&close).unwrap();
            assert_eq!(drain(&mut conn).len(), 1);
        }
        _ => unreachable!(),
    }
    assert_eq!(conn.state(), state);
    conn
}

#[test]
fn every_state_accepts_and_refuses_exactly_the_listed_sends() {
    use ConnectionState::*;
    for state in [Open, LocalClosing, RemoteClosing, Closed] {
        for (name, event) in sends() {
            let mut conn = in_state(state);
            let allowed = matches!((state, name), (Open, _) | (RemoteClosing, "close"));
            let result = conn.send_bytes(event);
            assert_eq!(result.is_ok(), allowed, "{state:?} {name}: {result:?}");
            if !allowed {
                assert!(matches!(result, Err(LocalProtocolError::EventNotAllowed { .. })));
                assert_eq!(conn.state(), state, "refused send leaves the state");
            }
        }
    }
    assert_eq!(in_state(Closed).receive_data(b"x"), Err(LocalProtocolError::ConnectionClosed));
    // REMOTE_CLOSING ignores what arrives.
    let mut conn = in_state(RemoteClosing);
    conn.receive_data(&masked(0x81, b"late")).unwrap();
    assert!(conn.next_event().is_none());
}

#[test]
fn close_handshake_both_directions() {
    for from_client in [true, false] {
        let mut pair = Pair::new();
        let (_, events) = pair.send(from_client, CloseConnection::with_reason(1001u16, "bye"));
        let Event::CloseConnection(close) = &events[0] else { panic!() };
        assert_eq!((close.code, close.reason.as_deref()), (CloseCode::GOING_AWAY, Some("bye")));
        let reply = close.response();
        let (_, events) = pair.send(!from_client, reply);
        assert!(matches!(&events[0], Event::CloseConnection(c) if c.code == 1001));
        assert_eq!(pair.client.state(), ConnectionState::Closed);
        assert_eq!(pair.server.state(), ConnectionState::Closed);
    }
}

#[test]
fn a_failure_response_completes_the_close() {
    // We were LOCAL_CLOSING when the peer violated the protocol: nothing to wait for.
    let mut conn = in_state(ConnectionState::LocalClosing);
    conn.receive_data(&masked(0x83, b"")).unwrap();
    assert!(matches!(conn.next_event(), Some(Event::CloseConnection(c)) if c.code == 1002));
    assert_eq!(conn.state(), ConnectionState::Closed);
    // From OPEN: replying with the failure's response() reaches CLOSED.
    let mut conn = Connection::new(Server, Config::default());
    conn.receive_data(&masked(0x81, b"\xff")).unwrap();
    let Some(Event::CloseConnection(failure)) = conn.next_event() else { panic!() };
    assert_eq!(failure.code, 1007);
    let bytes = conn.send_bytes(failure.response()).unwrap();
    assert_eq!(&bytes[..4], &[0x88, bytes.len() as u8 - 2, 0x03, 0xef][..]);
    assert_eq!(conn.state(), ConnectionState::Closed);
}

#[test]
fn eof_after_buffered_frames_still_delivers_them() {
    let mut conn = Connection::new(Server, Config::default());
    conn.receive_data(
        &[masked(0x81, b"one"), masked(0x82, b"two"), masked(0x81, b"par")[..5].to_vec()].concat(),
    )
    .unwrap();
    conn.receive_eof();
    let events = normalize(drain(&mut conn));
    assert_eq!(
        events,
        vec![Norm::Text("one".into(), true), Norm::Binary(b"two".to_vec(), true), Norm::Close(1006, None)]
    );
    assert_eq!(conn.state(), ConnectionState::Closed);
    assert!(conn.next_event().is_none(), "1006 reported once");
}

#[test]
fn regression_fuzz_no_1006_after_a_received_close() {
    // Found by fuzz target `connection`: the peer's close then EOF gave a second close event.
    let mut conn = Connection::new(Server, Config::default());
    conn.receive_data(&masked(0x88, &1001u16.to_be_bytes())).unwrap();
    conn.receive_eof();
    assert_eq!(normalize(drain(&mut conn)), vec![Norm::Close(1001, Some(String::new()))]);
    assert_eq!(conn.state(), ConnectionState::Closed);
    // Same after a violation we reported.
    let mut conn = Connection::new(Server, Config::default());
    conn.receive_data(&masked(0x83, b"")).unwrap();
    conn.receive_eof();
    assert_eq!(drain(&mut conn).len(), 1);
    // But a peer that vanishes while we wait for its close reply is abnormal.
    let mut conn = in_state(ConnectionState::LocalClosing);
    conn.receive_eof();
    assert_eq!(normalize(drain(&mut conn)), vec![Norm::Close(1006, None)]);
}

#[test]
fn eof_after_clean_close_is_not_abnormal() {
    let mut conn = in_state(ConnectionState::Closed);
    conn.receive_eof();
    assert!(conn.next_event().is_none());
}

#[test]
fn local_only_close_codes_are_refused_on_send() {
    for code in [1006u16, 1015, 999, 1004, 1016, 2999, 5000] {
        let mut conn = Connection::new(Server, Config::default());
        assert_eq!(
            conn.send_bytes(CloseConnection::new(code)),
            Err(LocalProtocolError::InvalidCloseCode(CloseCode(code)))
        );
        assert_eq!(conn.state(), ConnectionState::Open);
    }
    // 1005 means "no status": an empty close frame; with a reason it is refused.
    assert_eq!(&server_out(CloseConnection::new(1005u16))[..], &[0x88, 0x00]);
    let mut conn = Connection::new(Server, Config::default());
    assert_eq!(
        conn.send_bytes(CloseConnection::with_reason(1005u16, "x")),
        Err(LocalProtocolError::ReasonWithoutCode)
    );
    // Long reasons are truncated to 123 bytes on a character boundary.
    let out = server_out(CloseConnection::with_reason(1000u16, "é".repeat(100)));
    assert_eq!(out.len(), 2 + 2 + 122);
}

#[test]
fn local_misuse_is_typed() {
    let mut conn = Connection::new(Server, Config::default());
    assert_eq!(
        conn.send_bytes(Ping::new(vec![0; 126])),
        Err(LocalProtocolError::ControlPayloadTooLong { len: 126 })
    );
    conn.send_bytes(TextMessage::fragment("a")).unwrap();
    assert_eq!(conn.send_bytes(BytesMessage::new("b")), Err(LocalProtocolError::MessageTypeMismatch));
    // Control frames between our own fragments are fine.
    conn.send_bytes(Ping::new("p")).unwrap();
    assert_eq!(&conn.send_bytes(TextMessage::new("b")).unwrap()[..], b"\x80\x01b");
}

#[test]
fn pair_exchanges_every_event_type_both_ways() {
    for from_client in [true, false] {
        let mut pair = Pair::new();
        let cases: Vec<(Event, Vec<Norm>)> = vec![
            (TextMessage::new("héllo").into(), vec![Norm::Text("héllo".into(), true)]),
            (BytesMessage::new(vec![0u8, 1, 2]).into(), vec![Norm::Binary(vec![0, 1, 2], true)]),
            (BytesMessage::new(vec![7u8; 70_000]).into(), vec![Norm::Binary(vec![7; 70_000], true)]),
            (TextMessage::fragment("frag").into(), vec![Norm::Text("frag".into(), false)]),
            (Ping::new("mid").into(), vec![Norm::Ping(b"mid".to_vec())]),
            (TextMessage::new("ment").into(), vec![Norm::Text("ment".into(), true)]),
            (Pong::new("").into(), vec![Norm::Pong(vec![])]),
            (
                CloseConnection::with_reason(4000u16, "done").into(),
                vec![Norm::Close(4000, Some("done".into()))],
            ),
        ];
        for (event, expected) in cases {
            let (_, events) = pair.send(from_client, event);
            assert_eq!(normalize(events), expected);
        }
    }
}

#[test]
fn trailing_data_given_at_construction_is_parsed() {
    let mut conn =
        Connection::with_extensions(Server, Config::default(), Vec::new(), &masked(0x81, b"early"));
    assert_eq!(normalize(drain(&mut conn)), vec![Norm::Text("early".into(), true)]);
}

// Property: any split of the input gives the same events as the whole input.

fn arb_frames() -> impl Strategy<Value = Vec<u8>> {
    let text = prop_oneof![Just("".to_string()), "[a-zé€😀]{1,40}".prop_map(|s| s)];
    let binary = proptest::collection::vec(any::<u8>(), 0..300);
    let message = prop_oneof![
        text.clone().prop_map(|t| masked(0x81, t.as_bytes())),
        binary.clone().prop_map(|b| masked(0x82, &b)),
        // A text message fragmented at arbitrary byte positions (may split code points).
        (text, 0usize..40).prop_map(|(t, cut)| {
            let cut = cut.min(t.len());
            [masked(0x01, &t.as_bytes()[..cut]), masked(0x89, b"ping"), masked(0x80, &t.as_bytes()[cut..])]
                .concat()
        }),
        binary.prop_map(|b| masked(0x8a, &b[..b.len().min(125)])),
    ];
    proptest::collection::vec(message, 1..8).prop_map(|frames| frames.concat())
}

proptest! {
    #[test]
    fn any_split_gives_the_same_events(input in arb_frames(), cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..10)) {
        let (whole, _) = feed_pieces(Server, Config::default(), &[&input]);
        let mut points: Vec<usize> = cuts.iter().map(|i| i.index(input.len() + 1)).collect();
        points.sort_unstable();
        let mut pieces = Vec::new();
        let mut last = 0;
        for p in points {
            pieces.push(&input[last..p]);
            last = p;
        }
        pieces.push(&input[last..]);
        for config in [Config::default(), Config::default().delivery(Delivery::Chunks { min_size: 1 }), Config::default().delivery(Delivery::Frames)] {
            let (split, _) = feed_pieces(Server, config, &pieces);
            prop_assert_eq!(normalize(split), normalize(&whole));
        }
    }
}

#[test]
fn a_message_of_empty_continuation_frames_is_cut_off_at_the_fragment_limit() {
    // At the limit the message is whole; one frame more is a 1009, with a fixed reason.
    let config = Config::default().max_fragments(4);
    let four = [masked(0x01, b"a"), masked(0x00, b""), masked(0x00, b""), masked(0x80, b"b")].concat();
    let (events, conn) = feed_pieces(Server, config.clone(), &[&four]);
    assert_eq!(normalize(events), vec![Norm::Text("ab".into(), true)]);
    assert_eq!(conn.state(), ConnectionState::Open);

    let five =
        [masked(0x01, b"a"), masked(0x00, b""), masked(0x00, b""), masked(0x00, b""), masked(0x80, b"b")]
            .concat();
    let (events, _) = feed_pieces(Server, config, &[&five]);
    let Some(Event::CloseConnection(close)) = events.last() else { panic!("{events:?}") };
    assert_eq!(close.code, CloseCode::MESSAGE_TOO_BIG);
    assert_eq!(close.violation(), Some(&PeerViolation::TooManyFragments));

    // On by default: an endless stream of empty continuations ends at the default cap, and a
    // new message afterwards would start counting from one.
    let mut wire = masked(0x02, b"x");
    for _ in 0..wsproto::Limits::DEFAULT_MAX_FRAGMENTS {
        wire.extend_from_slice(&masked(0x00, b""));
    }
    let (events, _) = feed_pieces(Server, Config::default(), &[&wire]);
    let Some(Event::CloseConnection(close)) = events.last() else { panic!("no close") };
    assert_eq!(close.violation(), Some(&PeerViolation::TooManyFragments));
}

#[test]
fn fragment_count_restarts_with_each_message() {
    let config = Config::default().max_fragments(2);
    let wire = [masked(0x01, b"a"), masked(0x80, b"b"), masked(0x01, b"c"), masked(0x80, b"d")].concat();
    let (events, conn) = feed_pieces(Server, config, &[&wire]);
    assert_eq!(normalize(events), vec![Norm::Text("ab".into(), true), Norm::Text("cd".into(), true)]);
    assert_eq!(conn.state(), ConnectionState::Open);
}

#[test]
fn traffic_counts_wire_bytes_payload_and_whole_messages() {
    // RFC 6455 §5.7: the fragmented "Hello" (2 frames, 9 bytes), an unmasked ping (7 bytes)
    // and the single-frame "Hello" (7 bytes), fed byte by byte to a client.
    let wire = [hex("01 03 48 65 6c 80 02 6c 6f"), hex("89 05 48 65 6c 6c 6f"), hex("81 05 48 65 6c 6c 6f")]
        .concat();
    let mut client = Connection::new(Client, Config::default().key_source(KeySource::fixed(KEY)));
    for byte in &wire {
        client.receive_data(std::slice::from_ref(byte)).unwrap();
        while client.next_event().is_some() {}
    }
    let traffic = client.traffic();
    assert_eq!(traffic.bytes_received, wire.len() as u64);
    assert_eq!(traffic.messages_received, 2, "a fragmented message counts once; a ping is no message");
    assert_eq!(traffic.payload_received, 10);
    // Sent: one masked text frame (2 + 4 + 5 bytes), one message in two fragments, a ping.
    client.send_bytes(TextMessage::new("Hello")).unwrap();
    client
        .send_bytes(TextMessage { data: "Hel".into(), frame_finished: true, message_finished: false })
        .unwrap();
    client.send_bytes(TextMessage::new("lo")).unwrap();
    client.send_bytes(Ping::new("p")).unwrap();
    let traffic = client.traffic();
    assert_eq!(traffic.messages_sent, 2);
    assert_eq!(traffic.payload_sent, 10);
    assert_eq!(traffic.bytes_sent, (6 + 5) + (6 + 3) + (6 + 2) + (6 + 1));
    assert_eq!(traffic.sent_wire_per_payload(), Some(35.0 / 10.0));
    // A prepared message counts as one message of its payload.
    let mut server = Connection::new(Server, Config::default());
    let frame = server.send_prepared(&wsproto::PreparedMessage::binary(vec![0u8; 300])).unwrap();
    let traffic = server.traffic();
    assert_eq!(
        (traffic.messages_sent, traffic.payload_sent, traffic.bytes_sent),
        (1, 300, frame.len() as u64)
    );
}
