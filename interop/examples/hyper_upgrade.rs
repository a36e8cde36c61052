//! WebSocket behind hyper 1.x: hyper parses the HTTP request and sends the response; wsproto
//! validates the upgrade, computes the 101 and runs the connection on the upgraded stream.
//!
//! ```text
//! cargo run -p wsproto-interop --example hyper_upgrade              # listens on 127.0.0.1:9004
//! cargo run --example client -- ws://127.0.0.1:9004/ws              # talk to it
//! ```
//!
//! `GET /ws` with upgrade headers becomes an echo WebSocket (with permessage-deflate when
//! offered); any other request gets an ordinary HTTP answer from the same hyper service.

use std::convert::Infallible;
use std::net::SocketAddr;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio_util::codec::Framed;
use wsproto::codec::WsCodec;
use wsproto::extensions::PerMessageDeflate;
use wsproto::http_compat::rejection_response;
use wsproto::{AcceptConnection, ConnectionType, Event, ProtocolError, RejectConnection, WsConnection};

#[path = "../../examples/common/echo.rs"]
mod echo;

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
            // `with_upgrades` keeps the connection alive for `hyper::upgrade::on` after the 101.
            let conn = http1::Builder::new().serve_connection(TokioIo::new(stream), service).with_upgrades();
            if let Err(e) = conn.await {
                eprintln!("{peer}: http error: {e}");
            }
        });
    }
}

async fn handle(mut req: Request<Incoming>, peer: SocketAddr) -> Result<Response<Full<Bytes>>, Infallible> {
    if req.uri().path() != "/ws" {
        return Ok(text(StatusCode::OK, "wsproto behind hyper: the WebSocket is at /ws\n"));
    }

    // 1. Let wsproto validate the request hyper parsed (method, Upgrade, Connection, key, version).
    let mut ws = WsConnection::new(ConnectionType::Server).with_extension(PerMessageDeflate::new());
    if let Err(e) = ws.initiate_upgrade_request(&req) {
        eprintln!("{peer}: bad upgrade request: {e}");
        // A remote error carries the rejection to send (400, or 426 with the version we speak).
        let reject = match &e {
            ProtocolError::Remote(remote) => Some(remote.event_hint()),
            ProtocolError::Local(_) => None,
        };
        let reject = reject.unwrap_or_else(|| RejectConnection::new(400));
        return Ok(match rejection_response(&reject) {
            Ok(response) => response.map(|()| Full::new(Bytes::from(format!("{e}\n")))),
            Err(_) => text(StatusCode::BAD_REQUEST, &format!("{e}\n")),
        });
    }
    let Some(Event::Request(request)) = ws.next_event() else {
        unreachable!("a valid upgrade request yields a Request event")
    };
    eprintln!("{peer}: upgrade request for {} (offers {:?})", request.target, request.extensions);

    // 2. Accept: wsproto computes the 101 (Sec-WebSocket-Accept, negotiated extensions) as an
    //    `http::Response` for hyper to send, and the connection is now open.
    let response = match ws.accept_response(AcceptConnection::new()) {
        Ok(response) => response,
        Err(e) => return Ok(text(StatusCode::INTERNAL_SERVER_ERROR, &format!("{e}\n"))),
    };
    let conn = ws.into_connection().expect("accepted: the connection exists");

    // 3. Once hyper has sent the 101, run the connection over the upgraded stream.
    let upgrade = hyper::upgrade::on(&mut req);
    tokio::spawn(async move {
        let io = match upgrade.await {
            Ok(upgraded) => TokioIo::new(upgraded),
            Err(e) => return eprintln!("{peer}: upgrade failed: {e}"),
        };
        let mut framed = Framed::new(io, WsCodec::new(conn));
        eprintln!("{peer}: connected");
        match echo::echo(&mut framed).await {
            Ok(close) => eprintln!("{peer}: closed ({:?})", close.map(|c| c.code)),
            Err(e) => eprintln!("{peer}: error: {e}"),
        }
    });
    Ok(response.map(|()| Full::new(Bytes::new())))
}

fn text(status: StatusCode, body: &str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body.to_owned())));
    *response.status_mut() = status;
    response
}
