//! Prepared messages: the shared bytes are exactly what a normal send writes, for every
//! negotiated encoding, and the state machine treats them like any whole message.

mod support;

use bytes::{Bytes, BytesMut};
use proptest::prelude::*;
use wsproto::extensions::Extension;
use wsproto::{
    BytesMessage, CloseCode, CloseConnection, Config, Connection, ConnectionState, ConnectionType, Delivery,
    Event, KeySource, LocalProtocolError, PreparedMessage, TextMessage,
};

fn config() -> Config {
    Config::default().delivery(Delivery::Messages).key_source(KeySource::fixed(support::KEY))
}

/// Negotiated (client, server) extension lists.
type Extensions = (Vec<Box<dyn Extension>>, Vec<Box<dyn Extension>>);

fn conn(role: ConnectionType, extensions: Vec<Box<dyn Extension>>) -> Connection {
    Connection::with_extensions(role, config(), extensions, &[])
}

/// What a normal send of the same message writes.
fn normal_event(msg: &PreparedMessage) -> Event {
    if msg.is_text() {
        TextMessage::new(String::from_utf8(msg.payload().to_vec()).unwrap()).into()
    } else {
        BytesMessage::new(msg.payload().clone()).into()
    }
}

/// Decodes `wire` with `rx` and returns the messages, as (is_text, payload).
fn receive(rx: &mut Connection, wire: &[u8]) -> Vec<(bool, Bytes)> {
    rx.receive_data(wire).unwrap();
    rx.events()
        .map(|event| match event {
            Event::TextMessage(m) => (true, m.data.into_bytes()),
            Event::BytesMessage(m) => (false, m.data),
            other => panic!("unexpected {other:?}"),
        })
        .collect()
}

#[cfg(feature = "deflate")]
mod deflate {
    use wsproto::extensions::{DeflatePool, Extension, PerMessageDeflate};

    /// Negotiated (client, server) extensions.
    pub(super) fn negotiate(
        mut client: PerMessageDeflate,
        mut server: PerMessageDeflate,
    ) -> (Box<dyn Extension>, Box<dyn Extension>) {
        let item = |p: &str| {
            if p.is_empty() {
                PerMessageDeflate::NAME.to_owned()
            } else {
                format!("permessage-deflate; {p}")
            }
        };
        let offer = client.offer().unwrap();
        let response = server.accept(&item(&offer)).unwrap();
        client.finalize(&item(&response)).unwrap();
        (Box::new(client), Box::new(server))
    }

    /// A server extension with `server_no_context_takeover` as given (and its client).
    pub(super) fn server(
        no_context_takeover: bool,
        pool: Option<&DeflatePool>,
    ) -> (Box<dyn Extension>, Box<dyn Extension>) {
        let mut server = PerMessageDeflate::new().server_no_context_takeover(no_context_takeover);
        if let Some(pool) = pool {
            server = server.pool(pool.clone());
        }
        negotiate(PerMessageDeflate::new(), server)
    }
}

#[test]
fn plain_server_shares_the_bytes_of_a_normal_send() {
    let json = format!(r#"{{"items": [{}]}}"#, (0..200).map(|i| i.to_string()).collect::<Vec<_>>().join(","));
    for msg in [PreparedMessage::text(json.clone()), PreparedMessage::binary(Bytes::from(vec![7u8; 70_000]))]
    {
        let mut expected = BytesMut::new();
        conn(ConnectionType::Server, vec![]).send(normal_event(&msg), &mut expected).unwrap();

        let mut a = conn(ConnectionType::Server, vec![]);
        let mut b = conn(ConnectionType::Server, vec![]);
        let fa = a.send_prepared(&msg).unwrap();
        let fb = b.send_prepared(&msg).unwrap();
        assert_eq!(fa, expected);
        assert_eq!(fa.as_ptr(), fb.as_ptr(), "one frame for both connections");
        // Through `send` (a copy into the caller's buffer) too.
        let mut out = BytesMut::new();
        a.send(&msg, &mut out).unwrap();
        assert_eq!(out, expected);

        let mut client = conn(ConnectionType::Client, vec![]);
        assert_eq!(receive(&mut client, &fa), vec![(msg.is_text(), msg.payload().clone())]);
    }
}

#[cfg(feature = "deflate")]
#[test]
fn deflate_without_context_takeover_shares_the_compressed_frame() {
    use wsproto::extensions::DeflatePool;
    let json = Bytes::from(
        format!(
            r#"[{}]"#,
            (0..500).map(|i| format!(r#"{{"id":{i},"name":"user{i}"}}"#)).collect::<Vec<_>>().join(",")
        )
        .into_bytes(),
    );
    let msg = PreparedMessage::binary(json.clone());
    let pool = DeflatePool::new();
    for pool in [None, Some(&pool)] {
        let (client_ext, server_ext) = deflate::server(true, pool);
        let mut twin = conn(ConnectionType::Server, vec![server_ext]);
        let mut expected = BytesMut::new();
        twin.send(normal_event(&msg), &mut expected).unwrap();
        assert_eq!(expected[0], 0xc2, "compressed: FIN, RSV1, binary");
        assert!(expected.len() < json.len() / 2);

        let mut frames = Vec::new();
        for _ in 0..3 {
            let (_, server_ext) = deflate::server(true, pool);
            let mut server = conn(ConnectionType::Server, vec![server_ext]);
            // Twice per connection: each message starts from a fresh context.
            frames.push(server.send_prepared(&msg).unwrap());
            frames.push(server.send_prepared(&msg).unwrap());
        }
        for frame in &frames {
            assert_eq!(frame, &expected);
            assert_eq!(frame.as_ptr(), frames[0].as_ptr(), "compressed once");
        }
        let mut client = conn(ConnectionType::Client, vec![client_ext]);
        let wire: Vec<u8> = frames[..2].concat();
        assert_eq!(receive(&mut client, &wire), vec![(false, json.clone()); 2]);
    }
    // The first encoding was built with a compressor from the pool, and returned it.
    assert_eq!(pool.len().0, 1);
}

#[cfg(feature = "deflate")]
#[test]
fn below_the_compression_threshold_the_plain_frame_is_shared() {
    use wsproto::extensions::PerMessageDeflate;
    let msg = PreparedMessage::text("short");
    let (client_ext, server_ext) =
        deflate::negotiate(PerMessageDeflate::new(), PerMessageDeflate::new().compression_threshold(64));
    let mut server = conn(ConnectionType::Server, vec![server_ext]);
    let frame = server.send_prepared(&msg).unwrap();
    assert_eq!(&frame[..], b"\x81\x05short");
    let plain = conn(ConnectionType::Server, vec![]).send_prepared(&msg).unwrap();
    assert_eq!(frame.as_ptr(), plain.as_ptr());
    let mut client = conn(ConnectionType::Client, vec![client_ext]);
    assert_eq!(receive(&mut client, &frame), vec![(true, Bytes::from_static(b"short"))]);
}

#[cfg(feature = "deflate")]
#[test]
fn deflate_with_context_takeover_compresses_per_connection() {
    let messages: Vec<PreparedMessage> = (0..4)
        .map(|i| PreparedMessage::text(format!("hello hello hello hello, message {i} of a conversation")))
        .collect();
    let (client_ext, server_ext) = deflate::server(false, None);
    let (_, twin_ext) = deflate::server(false, None);
    let mut server = conn(ConnectionType::Server, vec![server_ext]);
    let mut twin = conn(ConnectionType::Server, vec![twin_ext]);
    let (mut wire, mut expected) = (BytesMut::new(), BytesMut::new());
    for (i, msg) in messages.iter().enumerate() {
        // Prepared and normal sends interleave on one compression context.
        if i % 2 == 0 {
            server.send(msg, &mut wire).unwrap();
        } else {
            server.send(normal_event(msg), &mut wire).unwrap();
        }
        twin.send(normal_event(msg), &mut expected).unwrap();
    }
    assert_eq!(wire, expected, "the same bytes as normal sends");
    let mut client = conn(ConnectionType::Client, vec![client_ext]);
    let received = receive(&mut client, &wire);
    assert_eq!(received, messages.iter().map(|m| (true, m.payload().clone())).collect::<Vec<_>>());
    // Later messages use the shared context: the repeated text compresses to less.
    assert!(wire.len() < messages.iter().map(PreparedMessage::len).sum::<usize>());
}

#[test]
fn client_frames_a_prepared_message_as_a_normal_send() {
    let msg = PreparedMessage::text("from a client");
    let mut client = conn(ConnectionType::Client, vec![]);
    let mut twin = conn(ConnectionType::Client, vec![]);
    let frame = client.send_prepared(&msg).unwrap();
    assert_eq!(frame, twin.send_bytes(normal_event(&msg)).unwrap());
    assert_eq!(frame[1] & 0x80, 0x80, "masked");
    let mut server = conn(ConnectionType::Server, vec![]);
    assert_eq!(receive(&mut server, &frame), vec![(true, Bytes::from_static(b"from a client"))]);
}

#[cfg(feature = "deflate")]
#[test]
fn deflating_client_frames_a_prepared_message_as_a_normal_send() {
    use wsproto::extensions::PerMessageDeflate;
    let msg = PreparedMessage::text("compressed from a client, compressed from a client");
    let new = || {
        deflate::negotiate(
            PerMessageDeflate::new().client_no_context_takeover(true),
            PerMessageDeflate::new().client_no_context_takeover(true),
        )
    };
    let (client_ext, server_ext) = new();
    let (twin_ext, _) = new();
    let mut client = conn(ConnectionType::Client, vec![client_ext]);
    let mut twin = conn(ConnectionType::Client, vec![twin_ext]);
    let frame = client.send_prepared(&msg).unwrap();
    assert_eq!(frame, twin.send_bytes(normal_event(&msg)).unwrap());
    assert_eq!(frame[0], 0xc1, "compressed");
    let mut server = conn(ConnectionType::Server, vec![server_ext]);
    assert_eq!(receive(&mut server, &frame), vec![(true, msg.payload().clone())]);
}

#[test]
fn not_while_a_fragmented_message_is_in_progress() {
    let msg = PreparedMessage::binary(Bytes::from_static(b"whole"));
    let mut server = conn(ConnectionType::Server, vec![]);
    let mut out = BytesMut::new();
    server.send(TextMessage::fragment("part 1, "), &mut out).unwrap();
    let sent = out.len();
    assert_eq!(server.send(&msg, &mut out), Err(LocalProtocolError::MessageInProgress));
    assert_eq!(server.send_prepared(&msg), Err(LocalProtocolError::MessageInProgress));
    assert_eq!(out.len(), sent, "nothing written");
    // The fragmented message carries on, then the prepared one goes out.
    server.send(TextMessage::new("part 2"), &mut out).unwrap();
    server.send(&msg, &mut out).unwrap();
    let mut client = conn(ConnectionType::Client, vec![]);
    assert_eq!(
        receive(&mut client, &out),
        vec![(true, Bytes::from_static(b"part 1, part 2")), (false, Bytes::from_static(b"whole"))]
    );
}

#[test]
fn not_after_close() {
    let msg = PreparedMessage::text("late");
    let mut server = conn(ConnectionType::Server, vec![]);
    let mut out = BytesMut::new();
    server.send(CloseConnection::new(CloseCode::NORMAL_CLOSURE), &mut out).unwrap();
    let sent = out.len();
    let not_allowed = Err(LocalProtocolError::EventNotAllowed {
        event: "PreparedMessage",
        state: ConnectionState::LocalClosing,
    });
    assert_eq!(server.send(&msg, &mut out), not_allowed);
    assert_eq!(server.send_prepared(&msg).map(|_| ()), not_allowed);
    assert_eq!(out.len(), sent);

    // After the peer's close, too (only the close reply may follow).
    let mut server = conn(ConnectionType::Server, vec![]);
    let close = support::masked(0x88, &1000u16.to_be_bytes());
    server.receive_data(&close).unwrap();
    assert!(matches!(server.next_event(), Some(Event::CloseConnection(_))));
    assert!(matches!(
        server.send_prepared(&msg),
        Err(LocalProtocolError::EventNotAllowed { state: ConnectionState::RemoteClosing, .. })
    ));
}

#[test]
fn prepared_messages_are_cheap_plain_data() {
    fn plain<T: Clone + Eq + Send + Sync + std::fmt::Debug + 'static>() {}
    plain::<PreparedMessage>();
    let msg = PreparedMessage::text("x");
    assert_eq!(msg, msg.clone());
    assert_eq!(msg, PreparedMessage::text("x"));
    assert_ne!(msg, PreparedMessage::binary(Bytes::from_static(b"x")));
    assert_eq!(Event::from(&msg).name(), "PreparedMessage");
}

#[cfg(feature = "tokio")]
#[tokio::test]
async fn through_the_codec_and_a_session() {
    use futures_util::{SinkExt, StreamExt};
    use tokio_util::codec::Framed;
    use wsproto::codec::WsCodec;
    use wsproto::session::Session;

    let msg = PreparedMessage::text("broadcast");
    let (a, b) = tokio::io::duplex(1 << 16);
    let mut server = Framed::new(a, WsCodec::new(conn(ConnectionType::Server, vec![])));
    let mut client = Framed::new(b, WsCodec::new(conn(ConnectionType::Client, vec![])));
    server.send(msg.clone().into()).await.unwrap();
    let Some(Ok(Event::TextMessage(m))) = client.next().await else { panic!() };
    assert_eq!(m.data, "broadcast");

    let mut session = Session::new(server, Default::default());
    session.send((&msg).into()).await.unwrap();
    let (_reader, mut writer) = session.split();
    writer.send(msg.clone().into()).await.unwrap();
    for _ in 0..2 {
        let Some(Ok(Event::TextMessage(m))) = client.next().await else { panic!() };
        assert_eq!(m.data, "broadcast");
    }
}

#[cfg(feature = "deflate")]
fn extensions(spec: Option<(bool, u8, u32, u8)>) -> Extensions {
    use wsproto::extensions::PerMessageDeflate;
    let Some((no_context_takeover, bits, level, threshold)) = spec else { return (vec![], vec![]) };
    let server = PerMessageDeflate::new()
        .server_no_context_takeover(no_context_takeover)
        .server_max_window_bits(bits)
        .compression_level(flate2::Compression::new(level))
        .compression_threshold(usize::from(threshold));
    let (c, s) = deflate::negotiate(PerMessageDeflate::new(), server);
    (vec![c], vec![s])
}

#[cfg(not(feature = "deflate"))]
fn extensions(_: Option<(bool, u8, u32, u8)>) -> Extensions {
    (vec![], vec![])
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Any mix of prepared and normal messages writes the bytes normal sends write, and the
    /// peer receives the messages, whatever was negotiated.
    #[test]
    fn prepared_sends_match_normal_sends(
        spec in proptest::option::of((any::<bool>(), 9u8..=15, 0u32..=9, 0u8..40)),
        server_role in any::<bool>(),
        ops in proptest::collection::vec((any::<bool>(), any::<bool>(), "[a-z {}\":,0-9é]{0,300}"), 1..8),
    ) {
        let (client_ext, server_ext) = extensions(spec);
        let (twin_client_ext, twin_server_ext) = extensions(spec);
        let (mut tx, mut twin, mut rx) = if server_role {
            (
                conn(ConnectionType::Server, server_ext),
                conn(ConnectionType::Server, twin_server_ext),
                conn(ConnectionType::Client, client_ext),
            )
        } else {
            (
                conn(ConnectionType::Client, client_ext),
                conn(ConnectionType::Client, twin_client_ext),
                conn(ConnectionType::Server, server_ext),
            )
        };
        let (mut wire, mut expected, mut messages) = (BytesMut::new(), BytesMut::new(), Vec::new());
        for (prepared, text, data) in ops {
            let msg = if text { PreparedMessage::text(data) } else { PreparedMessage::binary(Bytes::from(data)) };
            if prepared {
                tx.send(&msg, &mut wire).unwrap();
            } else {
                tx.send(normal_event(&msg), &mut wire).unwrap();
            }
            twin.send(normal_event(&msg), &mut expected).unwrap();
            messages.push((msg.is_text(), msg.payload().clone()));
        }
        prop_assert_eq!(&wire, &expected);
        prop_assert_eq!(receive(&mut rx, &wire), messages);
    }
}

/// A third-party extension that reverses every data frame's payload and marks it with RSV3;
/// with `key`, it tells prepared messages the output is shareable, and counts how often it
/// encodes a shared message.
#[derive(Debug)]
struct Reverse {
    key: Option<u64>,
    shared_encodings: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl Extension for Reverse {
    fn name(&self) -> &str {
        "x-reverse"
    }
    fn enabled(&self) -> bool {
        true
    }
    fn offer(&mut self) -> Option<String> {
        Some(String::new())
    }
    fn frame_outbound(
        &mut self,
        _opcode: wsproto::frame::Opcode,
        rsv: wsproto::frame::Rsv,
        data: Bytes,
        _fin: bool,
    ) -> Result<(wsproto::frame::Rsv, Bytes), wsproto::ExtensionError> {
        Ok((rsv.union(wsproto::frame::Rsv::RSV3), data.iter().rev().copied().collect()))
    }
    fn shared_framing(
        &self,
        _opcode: wsproto::frame::Opcode,
        _len: usize,
    ) -> wsproto::extensions::SharedFraming {
        match self.key {
            Some(key) => wsproto::extensions::SharedFraming::Encoded(key),
            None => wsproto::extensions::SharedFraming::PerConnection,
        }
    }
    fn encode_shared(
        &self,
        _key: u64,
        _opcode: wsproto::frame::Opcode,
        payload: &[u8],
    ) -> Result<(wsproto::frame::Rsv, Bytes), wsproto::ExtensionError> {
        self.shared_encodings.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Ok((wsproto::frame::Rsv::RSV3, payload.iter().rev().copied().collect()))
    }
}

fn reverse(key: Option<u64>, count: &std::sync::Arc<std::sync::atomic::AtomicUsize>) -> Connection {
    let ext = Reverse { key, shared_encodings: count.clone() };
    conn(ConnectionType::Server, vec![Box::new(ext)])
}

#[test]
fn an_extension_without_a_sharing_hook_frames_each_connection_itself() {
    let count = Default::default();
    let msg = PreparedMessage::binary(Bytes::from_static(b"abc"));
    let mut expected = BytesMut::new();
    reverse(None, &count).send(normal_event(&msg), &mut expected).unwrap();
    assert_eq!(&expected[..], b"\x92\x03cba", "FIN, RSV3, binary, reversed");
    let a = reverse(None, &count).send_prepared(&msg).unwrap();
    let b = reverse(None, &count).send_prepared(&msg).unwrap();
    assert_eq!((&a[..], &b[..]), (&expected[..], &expected[..]));
    assert_ne!(a.as_ptr(), b.as_ptr(), "not shared: the extension did not say it may be");
    assert_eq!(count.load(std::sync::atomic::Ordering::Relaxed), 0);
}

#[test]
fn an_extension_with_a_sharing_key_encodes_once_per_key() {
    let count = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let msg = PreparedMessage::text("hello");
    let mut expected = BytesMut::new();
    reverse(Some(1), &count).send(normal_event(&msg), &mut expected).unwrap();
    let frames: Vec<(u64, Bytes)> = [1, 2, 1, 2, 1]
        .into_iter()
        .map(|key| (key, reverse(Some(key), &count).send_prepared(&msg).unwrap()))
        .collect();
    assert_eq!(count.load(std::sync::atomic::Ordering::Relaxed), 2, "one encoding per key");
    for (key, frame) in &frames {
        assert_eq!(&frame[..], &expected[..], "what a normal send writes");
        let first = &frames.iter().find(|(k, _)| k == key).unwrap().1;
        assert_eq!(frame.as_ptr(), first.as_ptr(), "shared by the connections of key {key}");
    }
}
