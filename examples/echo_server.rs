//! The main job: a WebSocket echo server.
//!
//! ```text
//! cargo run --example echo_server                 # listens on 127.0.0.1:9001
//! cargo run --example echo_server -- 0.0.0.0:8080
//! ```
//!
//! Echoes text and binary messages (chunk by chunk, so even huge messages need little
//! memory), answers pings, completes the close handshake, negotiates permessage-deflate when
//! the client offers it, and logs connections and errors to stderr.

use std::net::SocketAddr;

use tokio::net::{TcpListener, TcpStream};
use wsproto::extensions::{DeflatePool, PerMessageDeflate};
use wsproto::upgrade::{self, Decision, UpgradeConfig};
use wsproto::AcceptConnection;

#[path = "common/echo.rs"]
mod echo;

const DEFAULT_ADDR: &str = "127.0.0.1:9001";

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::io::Result<()> {
    let addr = std::env::args().nth(1).unwrap_or_else(|| DEFAULT_ADDR.to_string());
    let listener = TcpListener::bind(&addr).await?;
    eprintln!("echo server listening on ws://{}", listener.local_addr()?);
    // One configuration for every connection: permessage-deflate when the client offers it,
    // with compression states shared between connections through one pool.
    let pool = DeflatePool::new();
    let config = UpgradeConfig::default().extension(move || PerMessageDeflate::new().pool(pool.clone()));
    loop {
        let (stream, peer) = listener.accept().await?;
        let config = config.clone();
        tokio::spawn(async move {
            match serve(stream, peer, config).await {
                Ok(()) => eprintln!("{peer}: closed"),
                Err(e) => eprintln!("{peer}: error: {e}"),
            }
        });
    }
}

async fn serve(
    stream: TcpStream,
    peer: SocketAddr,
    config: UpgradeConfig,
) -> Result<(), wsproto::upgrade::Error> {
    stream.set_nodelay(true)?;
    let decide = |request: &wsproto::Request| {
        eprintln!("{peer}: upgrade request for {} (host {})", request.target, request.host);
        Decision::Accept(AcceptConnection::new())
    };
    let (mut ws, _request) = upgrade::server(stream, decide, config).await?;
    eprintln!("{peer}: connected");
    if let Some(close) = echo::echo(&mut ws).await? {
        if close.code != wsproto::CloseCode::NORMAL_CLOSURE {
            eprintln!("{peer}: close {} {}", close.code, close.reason.unwrap_or_default());
        }
    }
    Ok(())
}
