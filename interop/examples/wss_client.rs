//! A `wss://` (or `ws://`) line client: each line of stdin is sent as a text message, replies
//! are printed to stdout.
//!
//! ```text
//! cargo run -p wsproto-interop --example tls_echo &                  # a local wss:// server
//! cargo run -p wsproto-interop --example wss_client -- wss://localhost:9443/ --ca /tmp/wsproto-tls-echo.pem
//! cargo run -p wsproto-interop --example wss_client -- wss://example.com/ --proxy http://proxy:3128
//! ```
//!
//! `--ca FILE` trusts the PEM certificates in FILE besides the built-in (webpki-roots) ones;
//! `--proxy URL` tunnels through an HTTP `CONNECT` proxy. The connection is a session: pings
//! are answered, and end of input closes cleanly.

use std::sync::Arc;

use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio_rustls::rustls::crypto::ring;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::CertificateDer;
use tokio_rustls::rustls::{ClientConfig, RootCertStore};
use wsproto::upgrade::{self, Proxy, UpgradeConfig};
use wsproto::{CloseCode, CloseConnection, Event, TextMessage};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), BoxError> {
    let mut args = std::env::args().skip(1);
    let mut url = None;
    let mut config = UpgradeConfig::default();
    let mut roots = RootCertStore { roots: webpki_roots::TLS_SERVER_ROOTS.to_vec() };
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--ca" => {
                let file = args.next().ok_or("--ca needs a PEM file")?;
                for cert in CertificateDer::pem_file_iter(&file)? {
                    roots.add(cert?)?;
                }
            }
            "--proxy" => config = config.proxy(Proxy::http(&args.next().ok_or("--proxy needs a URL")?)?),
            _ => url = Some(arg),
        }
    }
    let url = url.ok_or("usage: wss_client URL [--ca FILE] [--proxy URL]")?;
    let tls = ClientConfig::builder_with_provider(Arc::new(ring::default_provider()))
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let (mut ws, accept) = upgrade::connect_with(&url, config.tls_config(Arc::new(tls))).await?;
    eprintln!(
        "connected to {url} (permessage-deflate {})",
        if accept.deflate().is_some() { "on" } else { "off" }
    );

    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    let mut input_open = true;
    loop {
        tokio::select! {
            line = lines.next_line(), if input_open => match line? {
                Some(line) => ws.send(TextMessage::new(line).into()).await?,
                None => {
                    // End of input: close, and print what still arrives until the server's reply.
                    input_open = false;
                    ws.send(CloseConnection::new(CloseCode::NORMAL_CLOSURE).into()).await?;
                }
            },
            event = ws.next() => match event.transpose()? {
                Some(Event::TextMessage(m)) => println!("{}", m.data),
                Some(Event::BytesMessage(m)) => println!("<{} bytes>", m.data.len()),
                Some(Event::CloseConnection(close)) => eprintln!("closed: {} {}", close.code, close.reason.unwrap_or_default()),
                Some(_) => {}
                None => return Ok(()),
            },
        }
    }
}
