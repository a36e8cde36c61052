//! An echo server without tokio: [`WsConnection`] driven over a blocking
//! `std::net::TcpStream`, one thread per client, like python wsproto's `handle_client`.
//!
//! ```text
//! cargo run --example sans_io_server                        # listens on 127.0.0.1:8765
//! cargo run --no-default-features --example sans_io_server  # the core alone: no tokio, no deflate
//! cargo run --example client -- ws://127.0.0.1:8765/        # talk to it
//! ```
//!
//! The loop is the whole sans-IO contract: read bytes, feed them with `receive_data`, drain
//! the events, write the bytes `send` produces; at EOF call `receive_eof` and drain again.

use std::io::{self, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::ExitCode;
use std::thread;

use bytes::BytesMut;
use wsproto::{AcceptConnection, ConnectionType, Event, ProtocolError, WsConnection};

#[path = "common/cli.rs"]
mod cli;

const DEFAULT_ADDR: &str = "127.0.0.1:8765";

fn main() -> ExitCode {
    let addr = std::env::args().nth(1).unwrap_or_else(|| DEFAULT_ADDR.to_string());
    let listener = match TcpListener::bind(&addr) {
        Ok(listener) => listener,
        Err(e) => return cli::fail(cli::bind_failed(&addr, &e, "sans_io_server")),
    };
    match listener.local_addr() {
        Ok(local) => eprintln!("sans-IO echo server listening on ws://{local}"),
        Err(e) => return cli::fail(format_args!("cannot read the listening address: {e}")),
    }
    for stream in listener.incoming() {
        // A connection reset before it was accepted, or no descriptor left: keep listening.
        let Ok(stream) = stream else { continue };
        let Ok(peer) = stream.peer_addr() else { continue };
        thread::spawn(move || match handle_client(stream) {
            Ok(()) => eprintln!("{peer}: closed"),
            Err(e) => eprintln!("{peer}: {e}"),
        });
    }
    ExitCode::SUCCESS
}

fn handle_client(mut socket: TcpStream) -> io::Result<()> {
    socket.set_nodelay(true)?;
    let mut ws = WsConnection::new(ConnectionType::Server);
    let mut buf = [0u8; 4096];
    let mut out = BytesMut::new();
    loop {
        let n = socket.read(&mut buf)?;
        if n == 0 {
            // EOF: the connection reports it as an event (1006 if no close handshake).
            let _ = ws.receive_eof();
        } else if let Err(e) = ws.receive_data(&buf[..n]) {
            // A bad upgrade request: send the suggested HTTP rejection (400, 426, 431).
            if let ProtocolError::Remote(remote) = &e {
                if ws.send(remote.event_hint(), &mut out).is_ok() {
                    socket.write_all(&out)?;
                }
            }
            return Err(io::Error::new(io::ErrorKind::InvalidData, e));
        }

        let mut done = n == 0;
        while let Some(event) = ws.next_event() {
            let reply: Event = match event {
                Event::Request(_) => AcceptConnection::new().into(),
                // Data arrives in chunks; echoing each chunk keeps memory bounded.
                Event::TextMessage(m) => m.into(),
                Event::BytesMessage(m) => m.into(),
                Event::Ping(ping) => ping.response().into(),
                Event::CloseConnection(close) => {
                    done = true;
                    match close.reply() {
                        Some(reply) => reply.into(),
                        // We closed first (or the peer vanished): nothing to answer.
                        None => break,
                    }
                }
                _ => continue,
            };
            ws.send(reply, &mut out).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
        }
        // One write for everything this read produced.
        if !out.is_empty() {
            socket.write_all(&out)?;
            out.clear();
        }
        if done {
            return Ok(());
        }
    }
}
