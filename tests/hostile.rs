//! Hostile and slow peers: each attack gets the right close code with bounded memory.
//! (The slowloris handshake and the peer vanishing mid-frame are in tests/codec.rs.)
#![cfg(feature = "tokio")]

mod support;

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncWriteExt, DuplexStream};
use tokio_util::codec::Framed;
use wsproto::codec::WsCodec;
use wsproto::Delivery;
use wsproto::{BytesMessage, Config, Connection, ConnectionType, Event};

fn server(io: DuplexStream, config: Config) -> Framed<DuplexStream, WsCodec> {
    Framed::new(io, WsCodec::new(Connection::new(ConnectionType::Server, config)))
}

async fn close_code(ws: &mut Framed<DuplexStream, WsCodec>) -> u16 {
    loop {
        let event = tokio::time::timeout(Duration::from_secs(5), ws.next()).await.unwrap().unwrap().unwrap();
        if let Event::CloseConnection(close) = event {
            return close.code.0;
        }
    }
}

#[tokio::test]
async fn a_peer_that_never_reads_gets_backpressure_not_our_memory() {
    let (a, _never_read) = tokio::io::duplex(64 << 10);
    let mut ws = server(a, Config::default());
    let message = bytes::Bytes::from(vec![7u8; 16 << 10]);
    let mut sent = 0usize;
    // Send until a send blocks: the sink applies backpressure.
    while let Ok(result) =
        tokio::time::timeout(Duration::from_millis(200), ws.send(BytesMessage::new(message.clone()).into()))
            .await
    {
        result.unwrap();
        sent += 1;
        assert!(sent < 1000, "sends never blocked");
    }
    // Blocked after the pipe filled: what we hold is about one message, not everything sent.
    assert!(sent >= 3, "the pipe absorbed some messages first ({sent})");
    assert!(ws.write_buffer().len() <= 2 * message.len() + 64, "write buffer {}", ws.write_buffer().len());
}

#[tokio::test]
async fn endless_continuation_frames_hit_the_message_limit() {
    let (a, mut b) = tokio::io::duplex(1 << 20);
    let mut ws = server(a, Config::default().max_message_size(64 << 10).delivery(Delivery::Messages));
    let writer = tokio::spawn(async move {
        b.write_all(&support::masked(0x01, &[b'a'; 1024])).await.unwrap();
        let continuation = support::masked(0x00, &[b'a'; 1024]);
        for _ in 0..10_000 {
            if b.write_all(&continuation).await.is_err() {
                break;
            }
        }
        b
    });
    assert_eq!(close_code(&mut ws).await, 1009);
    assert!(ws.read_buffer().capacity() <= 2 << 20);
    drop(ws);
    drop(writer.await.unwrap());
}

#[tokio::test]
async fn a_1_gib_frame_sent_in_pieces_is_refused_at_its_header() {
    for config in [Config::default(), Config::default().max_frame_size(usize::MAX).max_message_size(64 << 20)]
    {
        let (a, mut b) = tokio::io::duplex(1 << 16);
        let mut ws = server(a, config);
        let mut header = vec![0x82, 0xff];
        header.extend_from_slice(&(1u64 << 30).to_be_bytes());
        header.extend_from_slice(&support::KEY);
        b.write_all(&header).await.unwrap();
        // Only a piece of the payload follows; the verdict does not wait for the rest.
        b.write_all(&[0u8; 4096]).await.unwrap();
        assert_eq!(close_code(&mut ws).await, 1009);
        assert!(ws.read_buffer().capacity() <= 1 << 20);
    }
}

#[tokio::test]
async fn invalid_utf8_split_across_fragments_fails_at_the_first_impossible_byte() {
    let (a, mut b) = tokio::io::duplex(1 << 16);
    let mut ws = server(a, Config::default());
    // "κ" then the first byte of a 4-byte sequence, then a byte that cannot follow it. The
    // rest of the message never arrives: the failure must not wait for it.
    b.write_all(&[support::masked(0x01, b"\xce\xba\xf0"), support::masked(0x00, b"\x28")].concat())
        .await
        .unwrap();
    assert_eq!(close_code(&mut ws).await, 1007);
}

#[cfg(feature = "deflate")]
#[tokio::test]
async fn a_compressed_bomb_over_the_wire_gets_1009_with_bounded_memory() {
    use flate2::{Compress, Compression, FlushCompress};
    use tokio::io::AsyncReadExt;
    use wsproto::extensions::PerMessageDeflate;
    use wsproto::upgrade::{self, UpgradeConfig};
    use wsproto::{ConnectionType, Request, WsConnection};

    let (a, mut b) = tokio::io::duplex(1 << 16);
    let server = tokio::spawn(async move {
        let config = UpgradeConfig::default().config(Config::default().max_message_size(64 << 10));
        // The bare codec, to watch its read buffer.
        let mut ws = upgrade::accept(a, config).await.unwrap().0.into_inner();
        let mut peak = 0;
        loop {
            let event = ws.next().await.unwrap().unwrap();
            peak = peak.max(ws.read_buffer().capacity());
            if let Event::CloseConnection(close) = event {
                return (close.code.0, peak);
            }
        }
    });
    // The attacker: a sans-IO client negotiating deflate, then a hand-made bomb frame.
    let mut attacker = WsConnection::with_config(
        ConnectionType::Client,
        Config::default().key_source(wsproto::KeySource::fixed(support::KEY)),
    )
    .with_extension(PerMessageDeflate::new());
    let request = attacker.send_bytes(Request::new("h", "/")).unwrap();
    b.write_all(&request).await.unwrap();
    let mut response = vec![0u8; 4096];
    let n = b.read(&mut response).await.unwrap();
    attacker.receive_data(&response[..n]).unwrap();
    assert!(matches!(attacker.next_event(), Some(Event::AcceptConnection(_))));

    let zeros = vec![0u8; 16 << 20];
    let mut deflate = Compress::new(Compression::best(), false);
    let mut compressed = Vec::with_capacity(64 << 10);
    deflate.compress_vec(&zeros, &mut compressed, FlushCompress::Sync).unwrap();
    assert!(compressed.len() < 32 << 10, "bomb is small: {}", compressed.len());
    let payload = &compressed[..compressed.len() - 4];
    b.write_all(&support::masked(0xc2, payload)).await.unwrap();
    let (code, peak) = server.await.unwrap();
    assert_eq!(code, 1009);
    assert!(peak <= 1 << 20, "read buffer peak {peak}");
}
