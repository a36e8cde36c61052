//! Autobahn|Testsuite testee, client role: `cargo run --release --example autobahn_client -- 9002`.
//!
//! Reads the case count from the suite's fuzzing server, runs every case (echoing each
//! message, offering permessage-deflate), then asks the server to write its reports.

use std::process::ExitCode;

use futures_util::StreamExt;
use tokio::net::TcpStream;
use tokio_util::codec::Framed;
use wsproto::codec::WsCodec;
use wsproto::upgrade::{self, UpgradeConfig};
use wsproto::Delivery;
use wsproto::{Config, Event, Request};

#[path = "common/cli.rs"]
mod cli;
#[path = "common/echo.rs"]
mod echo;

const AGENT: &str = "wsproto-rs";

async fn open(port: u16, target: String) -> Result<Framed<TcpStream, WsCodec>, wsproto::Error> {
    let io = TcpStream::connect(("127.0.0.1", port)).await?;
    io.set_nodelay(true)?;
    let request = Request::new(format!("127.0.0.1:{port}"), target);
    let config = UpgradeConfig::default().config(
        Config::default().max_frame_size(32 << 20).max_message_size(32 << 20).delivery(Delivery::Frames),
    );
    Ok(upgrade::client(io, request, config).await?.0.into_inner())
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => cli::fail(e),
    }
}

async fn run() -> Result<(), String> {
    let port = std::env::args().nth(1).unwrap_or_else(|| "9001".into());
    let port: u16 = port
        .parse()
        .map_err(|_| format!("{port:?} is not a port number: cargo run --example autobahn_client -- 9001"))?;
    let fuzzing_server = |e: wsproto::Error| {
        format!("the fuzzing server on 127.0.0.1:{port}: {e} (is `wstest -m fuzzingserver` running?)")
    };
    let mut ws = open(port, "/getCaseCount".into()).await.map_err(fuzzing_server)?;
    let mut count = String::new();
    while let Some(event) = ws.next().await {
        match event.map_err(|e| fuzzing_server(e.into()))? {
            Event::TextMessage(m) => count.push_str(&m.data),
            Event::CloseConnection(_) => break,
            _ => {}
        }
    }
    let count: u32 = count.trim().parse().map_err(|_| format!("the case count {count:?} is not a number"))?;
    for case in 1..=count {
        match open(port, format!("/runCase?case={case}&agent={AGENT}")).await {
            Ok(mut ws) => {
                if let Err(e) = echo::echo(&mut ws).await {
                    eprintln!("case {case}: {e}");
                }
            }
            Err(e) => eprintln!("case {case}: connect failed: {e}"),
        }
    }
    let mut ws = open(port, format!("/updateReports?agent={AGENT}")).await.map_err(fuzzing_server)?;
    echo::echo(&mut ws).await.map_err(|e| format!("updating the reports: {e}"))?;
    eprintln!("ran {count} cases");
    Ok(())
}
