//! A line-based WebSocket client: each line of stdin is sent as a text message, replies are
//! printed to stdout.
//!
//! ```text
//! cargo run --example echo_server &              # something to talk to
//! cargo run --example client                     # connects to ws://127.0.0.1:9001/
//! cargo run --example client -- ws://127.0.0.1:9002/
//! cargo run --example client -- ws://example.com/ --proxy http://user:pass@proxy:3128
//! ```
//!
//! Offers permessage-deflate, answers pings, and on end of input (Ctrl-D) closes cleanly: it
//! sends a Close frame and waits for the server's Close before exiting. Errors (a bad URL, a
//! refused connection, a rejected handshake) are printed as `error: ...`, with status 1.

use std::process::ExitCode;

use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncBufReadExt, BufReader};
use wsproto::upgrade::{self, Proxy, UpgradeConfig};
use wsproto::{CloseCode, CloseConnection, Event, TextMessage};

#[path = "common/cli.rs"]
mod cli;

const DEFAULT_URL: &str = "ws://127.0.0.1:9001/";

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => cli::fail(e),
    }
}

async fn run() -> Result<(), String> {
    let mut url = DEFAULT_URL.to_string();
    // permessage-deflate is offered by default.
    let mut config = UpgradeConfig::default();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--proxy" => {
                let proxy = args.next().ok_or("--proxy needs a URL, e.g. --proxy http://127.0.0.1:3128")?;
                let proxy = Proxy::http(&proxy).map_err(|e| format!("proxy {proxy}: {e}"))?;
                config = config.proxy(proxy);
            }
            _ => url = arg,
        }
    }
    // Whole messages (a reply is printed once, however it was fragmented), permessage-deflate
    // offered; the URL gives the host, port, `Host` header and target.
    let (mut ws, accept) = upgrade::connect_with(&url, config).await.map_err(|e| match e {
        wsproto::Error::Io(io) if io.kind() == std::io::ErrorKind::ConnectionRefused => {
            format!("{url}: connection refused; is a server running there? (cargo run --example echo_server)")
        }
        e => format!("{url}: {e}"),
    })?;
    let lost = |e: wsproto::Error| format!("{url}: {e}");
    let deflate = accept.deflate().is_some();
    eprintln!(
        "connected to {url} (subprotocol {:?}, permessage-deflate {})",
        accept.subprotocol,
        if deflate { "on" } else { "off" }
    );

    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    let mut input_open = true;
    loop {
        tokio::select! {
            line = lines.next_line(), if input_open => match line.map_err(|e| format!("stdin: {e}"))? {
                Some(line) => ws.send(TextMessage::new(line).into()).await.map_err(lost)?,
                None => {
                    // End of input: start the closing handshake, then wait for the peer's Close.
                    input_open = false;
                    ws.send(CloseConnection::new(CloseCode::NORMAL_CLOSURE).into()).await.map_err(lost)?;
                }
            },
            event = ws.next() => match event.transpose().map_err(lost)? {
                Some(Event::TextMessage(m)) => println!("{}", m.data),
                Some(Event::BytesMessage(m)) => println!("<{} bytes>", m.data.len()),
                Some(Event::Ping(ping)) => ws.send(ping.response().into()).await.map_err(lost)?,
                Some(Event::CloseConnection(close)) => {
                    if let Some(reply) = close.reply() {
                        // The server closed first: answer it.
                        ws.send(reply.into()).await.map_err(lost)?;
                    }
                    eprintln!("closed: {} {}", close.code, close.reason.unwrap_or_default());
                    return Ok(());
                }
                Some(_) => {}
                None => {
                    eprintln!("connection lost");
                    return Ok(());
                }
            },
        }
    }
}
