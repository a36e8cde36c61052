//! WebSocket over TLS (`wss://`): tokio-rustls (ring provider) with a self-signed certificate
//! generated at start by rcgen, and the upgrade helper over the TLS stream.
//!
//! ```text
//! cargo run -p wsproto-interop --example tls_echo                   # server on 127.0.0.1:9443
//! cargo run -p wsproto-interop --example tls_echo -- --client hi    # client: sends "hi", prints the echo
//! ```
//!
//! The server writes its certificate (DER) to `$TMPDIR/wsproto-tls-echo.der`; the client
//! trusts exactly that certificate, for the name `localhost`. Both take `--addr HOST:PORT`.

use std::path::PathBuf;
use std::sync::Arc;

use futures_util::{SinkExt, StreamExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::rustls::crypto::ring;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivatePkcs8KeyDer, ServerName};
use tokio_rustls::rustls::{ClientConfig, RootCertStore, ServerConfig};
use tokio_rustls::{TlsAcceptor, TlsConnector};
use wsproto::upgrade::{self, UpgradeConfig};
use wsproto::{Event, Request, TextMessage};

#[path = "../../examples/common/session_echo.rs"]
mod echo;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

const DEFAULT_ADDR: &str = "127.0.0.1:9443";

fn cert_path() -> PathBuf {
    std::env::temp_dir().join("wsproto-tls-echo.der")
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), BoxError> {
    let mut args = std::env::args().skip(1).peekable();
    let mut addr = DEFAULT_ADDR.to_string();
    let mut client_messages = None;
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--addr" => addr = args.next().ok_or("--addr needs HOST:PORT")?,
            "--client" => client_messages = Some(Vec::new()),
            _ => match client_messages.as_mut() {
                Some(messages) => messages.push(arg),
                None => return Err(format!("unexpected argument {arg}").into()),
            },
        }
    }
    match client_messages {
        Some(messages) => client(&addr, messages).await,
        None => server(&addr).await,
    }
}

async fn server(addr: &str) -> Result<(), BoxError> {
    // A fresh self-signed certificate for localhost, in memory.
    let certified =
        rcgen::generate_simple_self_signed(vec!["localhost".to_string(), "127.0.0.1".to_string()])?;
    let cert = certified.cert.der().clone();
    let key = PrivatePkcs8KeyDer::from(certified.signing_key.serialize_der());
    std::fs::write(cert_path(), &cert)?;
    // The same certificate in PEM, for `wss_client --ca`.
    std::fs::write(cert_path().with_extension("pem"), certified.cert.pem())?;

    let tls = ServerConfig::builder_with_provider(Arc::new(ring::default_provider()))
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(vec![cert], key.into())?;
    let acceptor = TlsAcceptor::from(Arc::new(tls));

    let listener = TcpListener::bind(addr).await?;
    eprintln!("TLS echo server listening on wss://localhost:{}/", listener.local_addr()?.port());
    eprintln!(
        "certificate written to {} (PEM: {})",
        cert_path().display(),
        cert_path().with_extension("pem").display()
    );
    loop {
        let (stream, peer) = listener.accept().await?;
        let acceptor = acceptor.clone();
        tokio::spawn(async move {
            let result: Result<(), BoxError> = async {
                stream.set_nodelay(true)?;
                let tls = acceptor.accept(stream).await?;
                let config = UpgradeConfig::default();
                let (mut ws, request) = upgrade::accept(tls, config).await?;
                eprintln!("{peer}: connected over TLS to {}", request.target);
                echo::echo(&mut ws).await?;
                Ok(())
            }
            .await;
            match result {
                Ok(()) => eprintln!("{peer}: closed"),
                Err(e) => eprintln!("{peer}: error: {e}"),
            }
        });
    }
}

async fn client(addr: &str, mut messages: Vec<String>) -> Result<(), BoxError> {
    if messages.is_empty() {
        messages.push("hello over TLS".to_string());
    }
    // Trust only the certificate the server wrote.
    let mut roots = RootCertStore::empty();
    roots.add(CertificateDer::from(std::fs::read(cert_path())?))?;
    let tls = ClientConfig::builder_with_provider(Arc::new(ring::default_provider()))
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = TlsConnector::from(Arc::new(tls));

    let stream = TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    let tls = connector.connect(ServerName::try_from("localhost")?, stream).await?;
    let port = addr.rsplit_once(':').map_or("443", |(_, port)| port);
    let request = Request::new(format!("localhost:{port}"), "/");
    let config = UpgradeConfig::default();
    let (mut ws, _accept) = upgrade::client(tls, request, config).await?;

    for message in messages {
        ws.send(TextMessage::new(message).into()).await?;
        // The session answers pings while we wait.
        match ws.next().await.transpose()? {
            Some(Event::TextMessage(m)) => println!("{}", m.data),
            Some(other) => return Err(format!("unexpected {other:?}").into()),
            None => return Err("connection lost".into()),
        }
    }
    // Sends the close, waits for the server's, and shuts the TLS stream down (close_notify).
    ws.close().await?;
    eprintln!("closed");
    Ok(())
}
