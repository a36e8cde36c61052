//! Autobahn|Testsuite testee, server role: `cargo run --release --example autobahn_server -- 9001`.
//!
//! Echoes every message on 127.0.0.1:PORT, accepting permessage-deflate with any parameters
//! the suite offers, with limits large enough for section 9 (16 MiB messages).

use std::process::ExitCode;

use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;
use wsproto::upgrade::{self, UpgradeConfig};
use wsproto::Config;
use wsproto::Delivery;

#[path = "common/cli.rs"]
mod cli;
#[path = "common/echo.rs"]
mod echo;

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let port = std::env::args().nth(1).unwrap_or_else(|| "9001".into());
    let Ok(port) = port.parse::<u16>() else {
        return cli::fail(format_args!(
            "{port:?} is not a port number: cargo run --example autobahn_server -- 9001"
        ));
    };
    let addr = format!("127.0.0.1:{port}");
    let listener = match TcpListener::bind(&addr).await {
        Ok(listener) => listener,
        Err(e) => return cli::fail(cli::bind_failed(&addr, &e, "autobahn_server")),
    };
    loop {
        let Ok((stream, _)) = listener.accept().await else { continue };
        tokio::spawn(async move {
            stream.set_nodelay(true).ok();
            let config = UpgradeConfig::default().config(
                Config::default()
                    .max_frame_size(32 << 20)
                    .max_message_size(32 << 20)
                    .delivery(Delivery::Frames),
            );
            if let Ok((ws, _)) = upgrade::accept(stream, config).await {
                // The bare codec: the suite checks every frame, so the echo keeps their structure.
                let mut ws = ws.into_inner();
                let _ = echo::echo(&mut ws).await;
                // What a Session does after the close and the bare codec leaves to us: shut
                // our side down, then read until the client closes. Closing a socket with
                // unread input (a frame the client sent after the one we failed on, or its
                // close reply) resets the connection, and the reset can destroy our last
                // frames in the client's receive queue before it reads them.
                let mut io = ws.into_inner();
                let _ = io.shutdown().await;
                let mut sink = tokio::io::sink();
                let drain = tokio::io::copy(&mut io, &mut sink);
                let _ = tokio::time::timeout(std::time::Duration::from_secs(2), drain).await;
            }
        });
    }
}
