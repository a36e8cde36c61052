//! An axum 0.8 echo route at `/ws` with `wsproto::axum::WebSocketUpgrade`: permessage-deflate
//! when the client offers it, over HTTP/1.1 and over HTTP/2 (extended CONNECT, RFC 8441; in
//! clear text, HTTP/2 needs a client with prior knowledge).
//!
//! ```text
//! cargo run -p wsproto-interop --example axum_echo                  # listens on 127.0.0.1:9005
//! cargo run -p wsproto-interop --example axum_echo -- 0.0.0.0:8080
//! cargo run --example client -- ws://127.0.0.1:9005/ws              # talk to it
//! ```

use axum::response::Response;
use axum::routing::{any, get};
use axum::Router;
use tokio::net::TcpListener;
use wsproto::axum::WebSocketUpgrade;

#[path = "../../examples/common/session_echo.rs"]
mod session_echo;

const DEFAULT_ADDR: &str = "127.0.0.1:9005";

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let addr = std::env::args().nth(1).unwrap_or_else(|| DEFAULT_ADDR.to_string());
    // `any`: over HTTP/2 the upgrade is a CONNECT, over HTTP/1.1 a GET.
    let app = Router::new().route("/ws", any(ws)).route("/", get(|| async { "WebSocket echo at /ws\n" }));
    let listener = TcpListener::bind(&addr).await?;
    eprintln!("axum echo listening on ws://{}/ws", listener.local_addr()?);
    axum::serve(listener, app).await
}

async fn ws(upgrade: WebSocketUpgrade) -> Response {
    let version = upgrade.version();
    upgrade.on_upgrade(move |mut ws| async move {
        eprintln!("WebSocket over {version:?}");
        // The session answers pings and the close by itself; echo the messages.
        if let Err(e) = session_echo::echo(&mut ws).await {
            eprintln!("WebSocket over {version:?}: {e}");
        }
    })
}
