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
//! sends a Close frame and waits for the server's Close before exiting.

use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncBufReadExt, BufReader};
use wsproto::upgrade::{self, Proxy, UpgradeConfig};
use wsproto::{CloseCode, CloseConnection, Event, TextMessage};

const DEFAULT_URL: &str = "ws://127.0.0.1:9001/";

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut url = DEFAULT_URL.to_string();
    // permessage-deflate is offered by default.
    let mut config = UpgradeConfig::default();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--proxy" => config = config.proxy(Proxy::http(&args.next().ok_or("--proxy needs a URL")?)?),
            _ => url = arg,
        }
    }
    // Whole messages (a reply is printed once, however it was fragmented), permessage-deflate
    // offered; the URL gives the host, port, `Host` header and target.
    let (mut ws, accept) = upgrade::connect_with(&url, config).await?;
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
            line = lines.next_line(), if input_open => match line? {
                Some(line) => ws.send(TextMessage::new(line).into()).await?,
                None => {
                    // End of input: start the closing handshake, then wait for the peer's Close.
                    input_open = false;
                    ws.send(CloseConnection::new(CloseCode::NORMAL_CLOSURE).into()).await?;
                }
            },
            event = ws.next() => match event.transpose()? {
                Some(Event::TextMessage(m)) => println!("{}", m.data),
                Some(Event::BytesMessage(m)) => println!("<{} bytes>", m.data.len()),
                Some(Event::Ping(ping)) => ws.send(ping.response().into()).await?,
                Some(Event::CloseConnection(close)) => {
                    if let Some(reply) = close.reply() {
                        // The server closed first: answer it.
                        ws.send(reply.into()).await?;
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
