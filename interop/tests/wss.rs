//! `wss://` through `upgrade::connect_with` (feature `rustls`) against a local rustls server
//! with a self-signed certificate.

use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpListener;
use tokio_rustls::rustls::crypto::ring;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivatePkcs8KeyDer};
use tokio_rustls::rustls::{ClientConfig, RootCertStore, ServerConfig};
use tokio_rustls::TlsAcceptor;
use wsproto::upgrade::{self, UpgradeConfig};
use wsproto::{Event, TextMessage};

/// A TLS echo server for `localhost` on a free port; returns the port and its certificate.
async fn tls_echo_server() -> (u16, CertificateDer<'static>) {
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let cert = certified.cert.der().clone();
    let key = PrivatePkcs8KeyDer::from(certified.signing_key.serialize_der());
    let config = ServerConfig::builder_with_provider(Arc::new(ring::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert.clone()], key.into())
        .unwrap();
    let acceptor = TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(stream).await else { return };
                let Ok(mut ws) = upgrade::accept_session(tls, UpgradeConfig::default()).await else { return };
                while let Some(Ok(event)) = ws.next().await {
                    if let Event::TextMessage(m) = event {
                        let _ = ws.send(m.into()).await;
                    }
                }
            });
        }
    });
    (port, cert)
}

#[tokio::test]
async fn wss_connects_with_the_given_roots_and_checks_the_host() {
    tokio::time::timeout(Duration::from_secs(20), async {
        let (port, cert) = tls_echo_server().await;
        let mut roots = RootCertStore::empty();
        roots.add(cert).unwrap();
        let tls = ClientConfig::builder_with_provider(Arc::new(ring::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        let config = UpgradeConfig::default().tls_config(Arc::new(tls));

        // The certificate is for `localhost`, and SNI and Host say so.
        let url = format!("wss://localhost:{port}/chat");
        let (mut ws, _accept) = upgrade::connect_with(&url, config.clone()).await.unwrap();
        ws.send(TextMessage::new("over TLS").into()).await.unwrap();
        let Some(Ok(Event::TextMessage(echo))) = ws.next().await else { panic!("an echo") };
        assert_eq!(echo.data, "over TLS");
        assert!(matches!(ws.get_ref(), upgrade::MaybeTlsStream::Rustls(_)));

        // Another name for the same server does not match the certificate.
        let url = format!("wss://127.0.0.1:{port}/");
        let error = upgrade::connect_with(&url, config).await.unwrap_err();
        assert!(matches!(error, upgrade::Error::Io(_)), "{error}");

        // The built-in roots do not know a self-signed certificate.
        let url = format!("wss://localhost:{port}/");
        let error = upgrade::connect(&url).await.unwrap_err();
        assert!(error.to_string().contains("certificate"), "{error}");
    })
    .await
    .expect("test timed out");
}
