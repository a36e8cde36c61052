//! A WebSocket client on hyper's own HTTP clients, HTTP/1.1 or HTTP/2 (RFC 8441 extended
//! CONNECT; in clear text, with prior knowledge), with `wsproto::hyper::client_request`.
//!
//! ```text
//! cargo run -p wsproto-interop --example axum_echo &                   # a server for both versions
//! cargo run -p wsproto-interop --example hyper_client -- ws://127.0.0.1:9005/ws hello
//! cargo run -p wsproto-interop --example hyper_client -- --h2 ws://127.0.0.1:9005/ws hello
//! ```
//!
//! Sends each remaining argument as a text message, prints the replies, closes.

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use http::Version;
use http_body_util::Empty;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpStream;
use wsproto::upgrade::UpgradeConfig;
use wsproto::{CloseCode, Event, TextMessage};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), BoxError> {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let h2 = args.first().is_some_and(|a| a == "--h2");
    if h2 {
        args.remove(0);
    }
    let Some(url) = args.first().cloned() else {
        return Err("usage: hyper_client [--h2] ws://HOST:PORT/PATH [MESSAGE...]".into());
    };
    let parsed = url::Url::parse(&url)?;
    let addr =
        format!("{}:{}", parsed.host_str().ok_or("no host")?, parsed.port_or_known_default().unwrap_or(80));
    let io = TokioIo::new(TcpStream::connect(&addr).await?);
    let config = UpgradeConfig::default();

    // One request/response exchange on hyper's client, then the WebSocket on the upgraded
    // stream (the whole connection over HTTP/1.1, one stream over HTTP/2).
    let pending = if h2 {
        let (mut sender, conn) =
            hyper::client::conn::http2::Builder::new(TokioExecutor::new()).handshake(io).await?;
        tokio::spawn(conn);
        // The server's SETTINGS, which allow extended CONNECT, come with its first frames.
        sender.ready().await?;
        tokio::task::yield_now().await;
        let (request, upgrade) =
            wsproto::hyper::client_request::<Empty<Bytes>>(&url, Version::HTTP_2, &config)?;
        let mut response = sender.send_request(request).await?;
        let (accept, pending) = upgrade.finish(&mut response)?;
        eprintln!("connected over HTTP/2 (extensions: {:?})", accept.extensions);
        pending
    } else {
        let (mut sender, conn) = hyper::client::conn::http1::handshake(io).await?;
        tokio::spawn(conn.with_upgrades());
        let (request, upgrade) =
            wsproto::hyper::client_request::<Empty<Bytes>>(&url, Version::HTTP_11, &config)?;
        let mut response = sender.send_request(request).await?;
        let (accept, pending) = upgrade.finish(&mut response)?;
        eprintln!("connected over HTTP/1.1 (extensions: {:?})", accept.extensions);
        pending
    };
    let mut ws = pending.await?;
    for message in &args[1..] {
        ws.send(TextMessage::new(message.clone()).into()).await?;
        match ws.next().await.transpose()? {
            Some(Event::TextMessage(reply)) => println!("{}", reply.data),
            other => return Err(format!("unexpected reply: {other:?}").into()),
        }
    }
    ws.close_with(CloseCode::NORMAL_CLOSURE, "done").await?;
    Ok(())
}
