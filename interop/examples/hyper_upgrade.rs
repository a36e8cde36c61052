//! WebSocket behind hyper 1.x with `wsproto::hyper`: hyper parses the HTTP request and sends
//! the response; wsproto validates the upgrade, writes the 101 and runs the connection on the
//! upgraded stream.
//!
//! ```text
//! cargo run -p wsproto-interop --example hyper_upgrade              # listens on 127.0.0.1:9004
//! cargo run --example client -- ws://127.0.0.1:9004/ws              # talk to it
//! ```
//!
//! `/ws` becomes an echo WebSocket (with permessage-deflate when offered); a request there
//! that is not a valid upgrade gets the status it calls for (400, 426); any other path gets
//! an ordinary HTTP answer from the same hyper service. See `h2_echo` for HTTP/2.

use std::convert::Infallible;
use std::net::SocketAddr;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use wsproto::hyper::IncomingUpgrade;
use wsproto::upgrade::UpgradeConfig;
use wsproto::AcceptConnection;

#[path = "../../examples/common/session_echo.rs"]
mod session_echo;

const DEFAULT_ADDR: &str = "127.0.0.1:9004";

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::io::Result<()> {
    let addr = std::env::args().nth(1).unwrap_or_else(|| DEFAULT_ADDR.to_string());
    let listener = TcpListener::bind(&addr).await?;
    eprintln!(
        "hyper server listening on http://{0}/ (WebSocket echo at ws://{0}/ws)",
        listener.local_addr()?
    );
    loop {
        let (stream, peer) = listener.accept().await?;
        tokio::spawn(async move {
            let service = service_fn(move |req| handle(req, peer));
            // `with_upgrades` keeps the connection alive for the upgrade after the 101.
            let conn = http1::Builder::new().serve_connection(TokioIo::new(stream), service).with_upgrades();
            if let Err(e) = conn.await {
                eprintln!("{peer}: http error: {e}");
            }
        });
    }
}

async fn handle(mut req: Request<Incoming>, peer: SocketAddr) -> Result<Response<Full<Bytes>>, Infallible> {
    if req.uri().path() != "/ws" {
        return Ok(Response::new(Full::from("wsproto behind hyper: the WebSocket is at /ws\n")));
    }
    // 1. Validate the request hyper parsed (method, Upgrade, Connection, key, version).
    let incoming = match IncomingUpgrade::from_request(&mut req) {
        Ok(incoming) => incoming,
        Err(refused) => {
            eprintln!("{peer}: {refused}");
            return Ok(refused.response().map(Full::from));
        }
    };
    eprintln!(
        "{peer}: upgrade request for {} (offers {:?})",
        incoming.request().target,
        incoming.request().extensions
    );

    // 2. Accept: the 101 (accept key, negotiated extensions) for hyper to send, and the
    //    WebSocket that follows once it is sent.
    let config = UpgradeConfig::default();
    let (response, pending) = match incoming.accept(AcceptConnection::new(), &config) {
        Ok(accepted) => accepted,
        Err(refused) => return Ok(refused.response().map(Full::from)),
    };
    tokio::spawn(async move {
        let mut ws = match pending.await {
            Ok(ws) => ws,
            Err(e) => return eprintln!("{peer}: upgrade failed: {e}"),
        };
        eprintln!("{peer}: connected");
        match session_echo::echo(&mut ws).await {
            Ok(()) => eprintln!("{peer}: closed"),
            Err(e) => eprintln!("{peer}: error: {e}"),
        }
    });
    Ok(response.map(|()| Full::new(Bytes::new())))
}
