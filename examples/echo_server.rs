//! The main job: a WebSocket echo server.
//!
//! ```text
//! cargo run --example echo_server                 # listens on 127.0.0.1:9001
//! cargo run --example echo_server -- 0.0.0.0:8080
//! cargo run --example echo_server -- 127.0.0.1:0  # any free port (printed at start)
//! ```
//!
//! Echoes text and binary messages (whole messages, up to the default limits: 64 MiB per
//! message and 16 MiB per frame, so a client that sends a message as one frame, as browsers
//! do, can send up to 16 MiB; a larger frame is refused with 1009) with the README's echo
//! loop, and negotiates permessage-deflate when the client offers it. Each connection is a
//! [`Session`](wsproto::session::Session): it answers pings, sends keepalive pings, completes
//! the close handshake, and cuts off a peer that stops reading. Runs on every core.
//!
//! Stop it with Ctrl-C (SIGINT) or SIGTERM: it stops accepting, asks every connection to close
//! with 1001 (going away), waits up to 5 s for the closing handshakes, and exits with status 0.
//! A second signal stops it at once. Errors are printed as `error: ...` and exit with status 1.
//!
//! Logs go to stderr through `tracing-subscriber`, filtered by `RUST_LOG` (default `info`; e.g.
//! `RUST_LOG=debug`, or `RUST_LOG=warn,echo_server=info`): the address at start, one line per
//! connection when it ends, and the shutdown. Built with the crate's `tracing` feature
//! (`cargo run --release --features tracing --example echo_server`), the line per connection
//! is the library's (`websocket closed` with the close code, who closed, the traffic), inside
//! a `connection` span with the peer address and a `websocket` span with the role, HTTP
//! version and extensions, and `RUST_LOG=debug` explains every close.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use tokio::net::{TcpListener, TcpStream};
use tracing::{debug, info, warn};
use wsproto::session::Shutdown;
use wsproto::upgrade::{self, UpgradeConfig};
use wsproto::Event;

#[path = "common/cli.rs"]
mod cli;
#[path = "common/signal.rs"]
mod signal;

const DEFAULT_ADDR: &str = "127.0.0.1:9001";

/// How long the closing handshakes may take once shutdown begins.
const CLOSE_DEADLINE: Duration = Duration::from_secs(5);

#[tokio::main]
async fn main() -> ExitCode {
    log_to_stderr();
    let addr = std::env::args().nth(1).unwrap_or_else(|| DEFAULT_ADDR.to_string());
    let listener = match TcpListener::bind(&addr).await {
        Ok(listener) => listener,
        Err(e) => return cli::fail(cli::bind_failed(&addr, &e, "echo_server")),
    };
    match listener.local_addr() {
        Ok(local) => info!("echo server listening on ws://{local} (Ctrl-C or SIGTERM stops it)"),
        Err(e) => return cli::fail(format_args!("cannot read the listening address: {e}")),
    }
    // One configuration for every connection: permessage-deflate when the client offers it,
    // with compression states shared between connections through the config's pool (the
    // clones handed to each connection share it).
    // Behind an `Arc`: each connection's task then holds 8 bytes for it while the connection
    // lives, and the upgrade gets its own copy only for the handshake.
    let config = Arc::new(UpgradeConfig::default());
    let shutdown = Shutdown::new();
    let stop = signal::stop();
    tokio::pin!(stop);
    let signal = loop {
        let (stream, peer) = match signal::accept_or_stop(&listener, stop.as_mut()).await {
            Ok(accepted) => accepted,
            Err(signal) => break signal,
        };
        tokio::spawn(connection(stream, peer, config.clone(), shutdown.clone()));
    };
    // Stop accepting: new connections are refused from here on.
    drop(listener);
    let started = Instant::now();
    info!("{signal}: closing {} connections with 1001 (going away)", shutdown.live());
    tokio::select! {
        left = shutdown.graceful(CLOSE_DEADLINE) => {
            let took = started.elapsed().as_secs_f64();
            if left > 0 {
                warn!("shut down in {took:.2} s; {left} connections did not finish their closing handshake in time");
            } else {
                info!("shut down in {took:.2} s");
            }
        }
        signal = signal::stop() => warn!("{signal} again: stopping without waiting"),
    }
    ExitCode::SUCCESS
}

/// One connection's task, with its log line when it ends.
///
/// Spawned as it is (not wrapped in another `async move` block that would hold a second copy of
/// its arguments): the task's size is paid by every idle connection.
async fn connection(stream: TcpStream, peer: SocketAddr, config: Arc<UpgradeConfig>, shutdown: Shutdown) {
    // With the `tracing` feature the library logs the connection's line (in this span, which
    // gives it the peer address); without it, this is the line.
    #[cfg(feature = "tracing")]
    let result = {
        use tracing::Instrument;
        serve(stream, config, shutdown).instrument(tracing::info_span!("connection", %peer)).await
    };
    #[cfg(not(feature = "tracing"))]
    let result = serve(stream, config, shutdown).await;
    match result {
        Ok(()) if cfg!(feature = "tracing") => debug!("{peer}: closed"),
        Err(e) if cfg!(feature = "tracing") => debug!("{peer}: {e}"),
        Ok(()) => info!("{peer}: closed"),
        Err(e) => info!("{peer}: {e}"),
    }
}

/// Log lines to stderr, filtered by `RUST_LOG` (targets and levels, e.g. `debug` or
/// `warn,wsproto=debug`; default `info`).
fn log_to_stderr() {
    use tracing_subscriber::filter::Targets;
    use tracing_subscriber::prelude::*;
    let filter = std::env::var("RUST_LOG").ok().and_then(|spec| spec.parse::<Targets>().ok());
    let filter = filter.unwrap_or_else(|| Targets::new().with_default(tracing::Level::INFO));
    tracing_subscriber::registry()
        .with(tracing_subscriber::fmt::layer().with_writer(std::io::stderr).with_target(false))
        .with(filter)
        .init();
}

/// The upgrade, then the README's echo loop, registered for graceful shutdown.
async fn serve(
    stream: TcpStream,
    config: Arc<UpgradeConfig>,
    shutdown: Shutdown,
) -> Result<(), wsproto::Error> {
    stream.set_nodelay(true)?;
    // `_`, not a named binding: the request is dropped here instead of living as long as the
    // connection.
    let (ws, _) = upgrade::accept(stream, UpgradeConfig::clone(&config)).await?;
    let mut ws = ws.with_shutdown(&shutdown);
    while let Some(event) = ws.next().await {
        match event? {
            Event::TextMessage(m) => ws.send(m.into()).await?,
            Event::BytesMessage(m) => ws.send(m.into()).await?,
            _ => {}
        }
    }
    Ok(())
}
