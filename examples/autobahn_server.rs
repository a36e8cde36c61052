//! Autobahn|Testsuite testee, server role: `cargo run --release --example autobahn_server -- 9001`.
//!
//! Echoes every message on 127.0.0.1:PORT, accepting permessage-deflate with any parameters
//! the suite offers, with limits large enough for section 9 (16 MiB messages).

use std::process::ExitCode;

use tokio::net::TcpListener;
use wsproto::extensions::PerMessageDeflate;
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
            let config = UpgradeConfig::default()
                .config(
                    Config::default()
                        .max_frame_size(32 << 20)
                        .max_message_size(32 << 20)
                        .delivery(Delivery::Frames),
                )
                .extension(PerMessageDeflate::new);
            if let Ok((ws, _)) = upgrade::accept(stream, config).await {
                // The bare codec: the suite checks every frame, so the echo keeps their structure.
                let _ = echo::echo(&mut ws.into_inner()).await;
            }
        });
    }
}
