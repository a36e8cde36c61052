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
//! the others post. A post is a [`PreparedMessage`]: framed, and compressed, once for all the
//! connections that receive it (the server resets its compression context after each message,
//! `server_no_context_takeover`, so that the compressed bytes can be shared). Each connection is a session: pings are answered, a keepalive ping every
//! 20 s cuts off vanished clients, the close handshake is completed, and permessage-deflate is
//! negotiated when a client offers it. Ctrl-C (SIGINT) or SIGTERM stops accepting and closes
//! every connection with 1001 (going away), waiting up to 5 s, then exits with status 0. Errors
//! are printed as `error: ...`, with status 1.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::broadcast::{self, error::RecvError};
use wsproto::extensions::PerMessageDeflate;
use wsproto::session::Shutdown;
use wsproto::upgrade::{self, UpgradeConfig};
use wsproto::{Event, PreparedMessage, TextMessage};

#[path = "common/cli.rs"]
mod cli;
#[path = "common/signal.rs"]
mod signal;

const DEFAULT_ADDR: &str = "127.0.0.1:9002";

/// A chat line: who posted it, and the message, framed once for every recipient.
#[derive(Clone, Debug)]
struct Post {
    from: SocketAddr,
    message: PreparedMessage,
}

impl Post {
    fn new(from: SocketAddr, text: String) -> Self {
        Post { from, message: PreparedMessage::text(text) }
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let addr = std::env::args().nth(1).unwrap_or_else(|| DEFAULT_ADDR.to_string());
    let listener = match TcpListener::bind(&addr).await {
        Ok(listener) => listener,
        Err(e) => return cli::fail(cli::bind_failed(&addr, &e, "chat")),
    };
    match listener.local_addr() {
        Ok(local) => eprintln!("chat server listening on ws://{local} (Ctrl-C or SIGTERM stops it)"),
        Err(e) => return cli::fail(format_args!("cannot read the listening address: {e}")),
    }
    // Slow readers that fall more than 256 posts behind skip the ones they missed.
    let (posts, _) = broadcast::channel::<Post>(256);
    // Whole messages (a post is relayed once complete), permessage-deflate when offered,
    // without context takeover on our side so each post is compressed once for everyone (with
    // context takeover every connection would compress it again with its own state); the
    // compression states are shared between connections through the config's pool (its clones
    // share it).
    let config =
        UpgradeConfig::default().deflate(|| PerMessageDeflate::new().server_no_context_takeover(true));
    let shutdown = Shutdown::new();
    let stop = signal::stop();
    tokio::pin!(stop);
    let signal = loop {
        let (stream, peer) = match signal::accept_or_stop(&listener, stop.as_mut()).await {
            Ok(accepted) => accepted,
            Err(signal) => break signal,
        };
        let (posts, config, shutdown) = (posts.clone(), config.clone(), shutdown.clone());
        tokio::spawn(async move {
            match serve(stream, peer, posts, config, shutdown).await {
                Ok(()) => eprintln!("{peer}: left"),
                Err(e) => eprintln!("{peer}: {e}"),
            }
        });
    };
    drop(listener);
    eprintln!("{signal}: closing {} connections with 1001 (going away)", shutdown.live());
    let left = shutdown.graceful(Duration::from_secs(5)).await;
    eprintln!("shut down ({left} connections did not close in time)");
    ExitCode::SUCCESS
}

async fn serve(
    stream: TcpStream,
    peer: SocketAddr,
    posts: broadcast::Sender<Post>,
    config: UpgradeConfig,
    shutdown: Shutdown,
) -> Result<(), wsproto::Error> {
    stream.set_nodelay(true)?;
    let (ws, _) = upgrade::accept(stream, config).await?;
    let mut ws = ws.with_shutdown(&shutdown);
    let mut inbox = posts.subscribe();
    let _ = posts.send(Post::new(peer, format!("* {peer} joined")));

    loop {
        tokio::select! {
            event = ws.next() => match event.transpose()? {
                Some(Event::TextMessage(m)) => {
                    // Err only when nobody listens, which cannot happen: we hold a receiver.
                    let _ = posts.send(Post::new(peer, format!("{peer}: {}", m.data)));
                }
                Some(Event::BytesMessage(_)) => {
                    ws.send(TextMessage::new("binary messages are not relayed").into()).await?;
                }
                Some(Event::CloseConnection(_)) => {
                    // The session replies and shuts down; let it finish, relay nothing more.
                    while ws.next().await.is_some() {}
                    break;
                }
                // Pings are answered by the session.
                Some(_) => {}
                None => break,
            },
            post = inbox.recv() => match post {
                Ok(post) if post.from != peer => ws.send(post.message.into()).await?,
                Ok(_) => {}
                Err(RecvError::Lagged(n)) => {
                    ws.send(TextMessage::new(format!("* {n} messages skipped")).into()).await?;
                }
                Err(RecvError::Closed) => break,
            },
        }
    }
    let _ = posts.send(Post::new(peer, format!("* {peer} left")));
    Ok(())
}
