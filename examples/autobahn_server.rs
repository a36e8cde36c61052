//! Autobahn|Testsuite testee, server role: `cargo run --release --example autobahn_server -- 9001`.
//!
//! Echoes every message on 127.0.0.1:PORT, accepting permessage-deflate with any parameters
//! the suite offers, with limits large enough for section 9 (16 MiB messages).

use tokio::net::TcpListener;
use wsproto::upgrade::{self, UpgradeConfig};
use wsproto::Config;
use wsproto::Delivery;

#[path = "common/echo.rs"]
mod echo;

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::io::Result<()> {
    let port = std::env::args().nth(1).unwrap_or_else(|| "9001".into());
    let listener = TcpListener::bind(("127.0.0.1", port.parse::<u16>().expect("port"))).await?;
    loop {
        let (stream, _) = listener.accept().await?;
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
                let _ = echo::echo(&mut ws.into_inner()).await;
            }
        });
    }
}
