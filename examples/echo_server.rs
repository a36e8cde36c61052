//! The main job: a WebSocket echo server.
//!
//! ```text
//! cargo run --example echo_server                 # listens on 127.0.0.1:9001
//! cargo run --example echo_server -- 0.0.0.0:8080
//! ```
//!
//! Echoes text and binary messages (whole messages, up to the 64 MiB message limit),
//! negotiates permessage-deflate when the client offers it, and logs connections and errors to
//! stderr. Each connection is a [`Session`]: it answers pings, sends keepalive pings, completes
//! the close handshake, and cuts off a peer that stops reading. Runs on every core; Ctrl-C
//! asks every connection to close with 1001 (going away) and waits up to 5 s for them.

use std::net::SocketAddr;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::net::{TcpListener, TcpStream};
use wsproto::session::Shutdown;
use wsproto::upgrade::{self, Decision, UpgradeConfig};
use wsproto::{AcceptConnection, Event};

const DEFAULT_ADDR: &str = "127.0.0.1:9001";

type BoxError = Box<dyn std::error::Error + Send + Sync>;

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let addr = std::env::args().nth(1).unwrap_or_else(|| DEFAULT_ADDR.to_string());
    let listener = TcpListener::bind(&addr).await?;
    eprintln!("echo server listening on ws://{}", listener.local_addr()?);
    // One configuration for every connection: permessage-deflate when the client offers it,
    // with compression states shared between connections through the config's pool (the
    // clones handed to each connection share it).
    let config = UpgradeConfig::default();
    let shutdown = Shutdown::new();
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => accepted?,
            _ = tokio::signal::ctrl_c() => break,
        };
        let (config, shutdown) = (config.clone(), shutdown.clone());
        tokio::spawn(async move {
            match serve(stream, peer, config, &shutdown).await {
                Ok(()) => eprintln!("{peer}: closed"),
                Err(e) => eprintln!("{peer}: error: {e}"),
            }
        });
    }
    eprintln!("shutting down: closing {} connections", shutdown.live());
    let left = shutdown.graceful(Duration::from_secs(5)).await;
    if left > 0 {
        eprintln!("{left} connections did not close in time");
    }
    Ok(())
}

async fn serve(
    stream: TcpStream,
    peer: SocketAddr,
    config: UpgradeConfig,
    shutdown: &Shutdown,
) -> Result<(), BoxError> {
    stream.set_nodelay(true)?;
    let decide = |request: &wsproto::Request| {
        eprintln!("{peer}: upgrade request for {} (host {})", request.target, request.host);
        Decision::Accept(AcceptConnection::new())
    };
    let (ws, _request) = upgrade::server(stream, decide, config).await?;
    let mut ws = ws.with_shutdown(shutdown);
    eprintln!("{peer}: connected");
    while let Some(event) = ws.next().await {
        match event? {
            Event::TextMessage(m) => ws.send(m.into()).await?,
            Event::BytesMessage(m) => ws.send(m.into()).await?,
            Event::CloseConnection(close) if close.code != wsproto::CloseCode::NORMAL_CLOSURE => {
                eprintln!("{peer}: close {} {}", close.code, close.reason.unwrap_or_default());
            }
            _ => {} // pings and pongs are answered by the session
        }
    }
    Ok(())
}
