//! WebSocket over HTTP/2 (RFC 8441) and HTTP/1.1 on one TLS listener, with hyper 1.x and
//! `wsproto::hyper`.
//!
//! ```text
//! cargo run -p wsproto-interop --example h2_echo                  # listens on 127.0.0.1:9444
//! cargo run -p wsproto-interop --example h2_echo -- 0.0.0.0:8443
//! ```
//!
//! TLS with a self-signed certificate for `localhost` generated at start (written, as PEM, to
//! `$TMPDIR/wsproto-h2-echo.pem`). ALPN picks the HTTP version: `h2` is served by hyper's
//! HTTP/2 server with extended CONNECT enabled, `http/1.1` (or no ALPN) by its HTTP/1.1
//! server with upgrades. `/ws` echoes WebSocket messages over both; `GET /` answers with a
//! short page. Each WebSocket is logged with its HTTP version (`WebSocket over HTTP/2`).
//!
//! Try it with `cargo run -p wsproto-interop --example wss_client -- wss://localhost:9444/ws
//! --ca $TMPDIR/wsproto-h2-echo.pem` (HTTP/1.1), or from a browser that trusts the
//! certificate (which may use HTTP/2 for the WebSocket).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response, Version};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;
use tokio_rustls::rustls::crypto::ring;
use tokio_rustls::rustls::pki_types::PrivatePkcs8KeyDer;
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::TlsAcceptor;
use wsproto::hyper::IncomingUpgrade;
use wsproto::upgrade::UpgradeConfig;
use wsproto::AcceptConnection;

#[path = "../../examples/common/session_echo.rs"]
mod session_echo;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

const DEFAULT_ADDR: &str = "127.0.0.1:9444";

const PAGE: &str = "<!doctype html><title>wsproto h2_echo</title>\n\
<p>WebSocket echo at <code>/ws</code>, over HTTP/2 (RFC 8441) or HTTP/1.1.</p>\n";

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let addr = std::env::args().nth(1).unwrap_or_else(|| DEFAULT_ADDR.to_string());
    let acceptor = tls_acceptor()?;
    let listener = TcpListener::bind(&addr).await?;
    eprintln!("h2_echo listening on https://localhost:{}/ (WebSocket at /ws)", listener.local_addr()?.port());
    loop {
        let (stream, peer) = listener.accept().await?;
        let acceptor = acceptor.clone();
        tokio::spawn(async move {
            if let Err(e) = serve(acceptor, stream, peer).await {
                eprintln!("{peer}: {e}");
            }
        });
    }
}

/// A self-signed certificate for localhost, and ALPN offering HTTP/2 then HTTP/1.1.
fn tls_acceptor() -> Result<TlsAcceptor, BoxError> {
    let certified =
        rcgen::generate_simple_self_signed(vec!["localhost".to_string(), "127.0.0.1".to_string()])?;
    let pem_path = std::env::temp_dir().join("wsproto-h2-echo.pem");
    std::fs::write(&pem_path, certified.cert.pem())?;
    eprintln!("certificate written to {}", pem_path.display());
    let key = PrivatePkcs8KeyDer::from(certified.signing_key.serialize_der());
    let mut tls = ServerConfig::builder_with_provider(Arc::new(ring::default_provider()))
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(vec![certified.cert.der().clone()], key.into())?;
    tls.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(tls)))
}

async fn serve(
    acceptor: TlsAcceptor,
    stream: tokio::net::TcpStream,
    peer: SocketAddr,
) -> Result<(), BoxError> {
    let tls = acceptor.accept(stream).await?;
    let h2 = tls.get_ref().1.alpn_protocol() == Some(b"h2");
    let io = TokioIo::new(tls);
    let service = service_fn(move |req| handle(req, peer));
    if h2 {
        hyper::server::conn::http2::Builder::new(TokioExecutor::new())
            .enable_connect_protocol()
            .serve_connection(io, service)
            .await?;
    } else {
        hyper::server::conn::http1::Builder::new().serve_connection(io, service).with_upgrades().await?;
    }
    Ok(())
}

async fn handle(mut req: Request<Incoming>, peer: SocketAddr) -> Result<Response<Full<Bytes>>, Infallible> {
    if req.uri().path() != "/ws" {
        let mut page = Response::new(Full::from(PAGE));
        page.headers_mut().insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static("text/html"));
        return Ok(page);
    }
    let incoming = match IncomingUpgrade::from_request(&mut req) {
        Ok(incoming) => incoming,
        Err(refused) => {
            eprintln!("{peer}: {refused}");
            return Ok(refused.response().map(Full::from));
        }
    };
    let version = if incoming.version() == Version::HTTP_2 { "HTTP/2" } else { "HTTP/1.1" };
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
        eprintln!("{peer}: WebSocket over {version}");
        match session_echo::echo(&mut ws).await {
            Ok(()) => eprintln!("{peer}: WebSocket over {version} closed"),
            Err(e) => eprintln!("{peer}: WebSocket over {version}: {e}"),
        }
    });
    Ok(response.map(|()| Full::new(Bytes::new())))
}
