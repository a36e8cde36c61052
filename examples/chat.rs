//! A broadcast chat server: every text message a client sends is relayed to all the other
//! clients.
//!
//! ```text
//! cargo run --example chat                       # listens on 127.0.0.1:9002
//! cargo run --example chat -- 0.0.0.0:8080
//! cargo run --example client -- ws://127.0.0.1:9002/    # in two or more terminals
//! ```
//!
//! Messages go through a `tokio::sync::broadcast` channel; each connection task relays what
//! the others post. Pings are answered, the close handshake is completed, and
//! permessage-deflate is negotiated when a client offers it.

use std::net::SocketAddr;

use futures_util::{SinkExt, StreamExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::broadcast::{self, error::RecvError};
use wsproto::extensions::{DeflatePool, PerMessageDeflate};
use wsproto::upgrade::{self, UpgradeConfig};
use wsproto::{Event, TextMessage, Utf8Bytes};

const DEFAULT_ADDR: &str = "127.0.0.1:9002";

/// A chat line: who posted it and what.
#[derive(Clone, Debug)]
struct Post {
    from: SocketAddr,
    text: Utf8Bytes,
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::io::Result<()> {
    let addr = std::env::args().nth(1).unwrap_or_else(|| DEFAULT_ADDR.to_string());
    let listener = TcpListener::bind(&addr).await?;
    eprintln!("chat server listening on ws://{}", listener.local_addr()?);
    // Slow readers that fall more than 256 posts behind skip the ones they missed.
    let (posts, _) = broadcast::channel::<Post>(256);
    // Whole messages (a post is relayed once complete), permessage-deflate when offered, with
    // compression states shared between connections through one pool.
    let pool = DeflatePool::new();
    let config = UpgradeConfig::default().extension(move || PerMessageDeflate::new().pool(pool.clone()));
    loop {
        let (stream, peer) = listener.accept().await?;
        let posts = posts.clone();
        let config = config.clone();
        tokio::spawn(async move {
            match serve(stream, peer, posts, config).await {
                Ok(()) => eprintln!("{peer}: left"),
                Err(e) => eprintln!("{peer}: error: {e}"),
            }
        });
    }
}

async fn serve(
    stream: TcpStream,
    peer: SocketAddr,
    posts: broadcast::Sender<Post>,
    config: UpgradeConfig,
) -> Result<(), wsproto::upgrade::Error> {
    stream.set_nodelay(true)?;
    let (mut ws, _request) = upgrade::accept(stream, config).await?;
    let mut inbox = posts.subscribe();
    eprintln!("{peer}: joined");
    let _ = posts.send(Post { from: peer, text: format!("* {peer} joined").into() });

    loop {
        tokio::select! {
            event = ws.next() => match event.transpose()? {
                Some(Event::TextMessage(m)) => {
                    let text = format!("{peer}: {}", m.data).into();
                    // Err only when nobody listens, which cannot happen: we hold a receiver.
                    let _ = posts.send(Post { from: peer, text });
                }
                Some(Event::BytesMessage(_)) => {
                    ws.send(TextMessage::new("binary messages are not relayed").into()).await?;
                }
                Some(Event::Ping(ping)) => ws.send(ping.response().into()).await?,
                Some(Event::CloseConnection(close)) => {
                    if let Some(reply) = close.reply() {
                        ws.send(reply.into()).await?;
                    }
                    break;
                }
                Some(_) => {}
                None => break,
            },
            post = inbox.recv() => match post {
                Ok(post) if post.from != peer => ws.send(TextMessage::new(post.text).into()).await?,
                Ok(_) => {}
                Err(RecvError::Lagged(n)) => {
                    ws.send(TextMessage::new(format!("* {n} messages skipped")).into()).await?;
                }
                Err(RecvError::Closed) => break,
            },
        }
    }
    let _ = posts.send(Post { from: peer, text: format!("* {peer} left").into() });
    Ok(())
}
