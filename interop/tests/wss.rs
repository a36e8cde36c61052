//! `wss://` through `upgrade::connect_with` (feature `rustls`) against a local rustls server
//! with a self-signed certificate.

use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpListener;
use tokio_rustls::rustls::crypto::ring;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivatePkcs8KeyDer};
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::TlsAcceptor;
use wsproto::upgrade::{self, UpgradeConfig};
use wsproto::{Event, TextMessage};

/// A TLS echo server for `localhost` on a free port; returns the port and its certificate.
async fn tls_echo_server() -> (u16, CertificateDer<'static>) {
    let (port, cert, _pem) = tls_echo_server_pem().await;
    (port, cert)
}

/// [`tls_echo_server`], with the certificate in PEM as well.
async fn tls_echo_server_pem() -> (u16, CertificateDer<'static>, String) {
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let cert = certified.cert.der().clone();
    let pem = certified.cert.pem();
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
                let Ok((mut ws, _)) = upgrade::accept(tls, UpgradeConfig::default()).await else { return };
                while let Some(Ok(event)) = ws.next().await {
                    if let Event::TextMessage(m) = event {
                        let _ = ws.send(m.into()).await;
                    }
                }
            });
        }
    });
    (port, cert, pem)
}

/// A client configuration that trusts `cert` only, built with the rustls wsproto re-exports
/// (no rustls dependency of the user's own).
fn trusting(cert: CertificateDer<'static>) -> wsproto::rustls::ClientConfig {
    use wsproto::rustls::{ClientConfig, RootCertStore};
    let mut roots = RootCertStore::empty();
    roots.add(cert).unwrap();
    ClientConfig::builder_with_provider(Arc::new(wsproto::rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth()
}

#[tokio::test]
async fn wss_connects_with_the_given_roots_and_checks_the_host() {
    tokio::time::timeout(Duration::from_secs(20), async {
        let (port, cert) = tls_echo_server().await;
        let tls = trusting(cert);
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
        assert!(matches!(error, wsproto::Error::Io(_)), "{error}");

        // The built-in roots do not know a self-signed certificate.
        let url = format!("wss://localhost:{port}/");
        let error = upgrade::connect(&url).await.unwrap_err();
        assert!(error.to_string().contains("certificate"), "{error}");
    })
    .await
    .expect("test timed out");
}

#[tokio::test]
async fn wss_trusts_a_private_ca_given_as_pem() {
    tokio::time::timeout(Duration::from_secs(20), async {
        let (port, _cert, pem) = tls_echo_server_pem().await;
        // No rustls code: the PEM file's certificates join the built-in roots.
        let config = UpgradeConfig::default().tls_roots_pem(pem.as_bytes()).unwrap();
        let url = format!("wss://localhost:{port}/");
        let (mut ws, accept) = upgrade::connect_with(&url, config.clone()).await.unwrap();
        assert!(accept.deflate().is_some(), "deflate offered and accepted by default");
        ws.send("private CA".into()).await.unwrap();
        let Some(Ok(Event::TextMessage(echo))) = ws.next().await else { panic!("an echo") };
        assert_eq!(echo.data, "private CA");

        // The roots add up: another CA's PEM keeps the first one trusted.
        let other = rcgen::generate_simple_self_signed(vec!["other.example".to_string()]).unwrap();
        let config = config.tls_roots_pem(other.cert.pem().as_bytes()).unwrap();
        let (mut ws, _) = upgrade::connect_with(&url, config).await.unwrap();
        ws.send("still trusted".into()).await.unwrap();
        let Some(Ok(Event::TextMessage(echo))) = ws.next().await else { panic!("an echo") };
        assert_eq!(echo.data, "still trusted");

        // A PEM without a certificate is a typed error at configuration time.
        let error = UpgradeConfig::default().tls_roots_pem(b"-----BEGIN PRIVATE KEY-----\n").unwrap_err();
        assert!(matches!(error, wsproto::Error::TlsConfig { .. }), "{error}");
    })
    .await
    .expect("test timed out");
}

/// A minimal HTTP CONNECT proxy: checks `Proxy-Authorization` when `auth` is given, answers
/// 407 otherwise, then relays bytes both ways. Returns its port and the targets it tunnelled to.
async fn connect_proxy(auth: Option<&'static str>) -> (u16, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let log = seen.clone();
    tokio::spawn(async move {
        while let Ok((mut client, _)) = listener.accept().await {
            let log = log.clone();
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") {
                    if client.read(&mut byte).await.unwrap_or(0) == 0 {
                        return;
                    }
                    head.push(byte[0]);
                }
                let head = String::from_utf8(head).unwrap();
                let target = head.split_whitespace().nth(1).unwrap().to_string();
                log.lock().unwrap().push(target.clone());
                if let Some(expected) = auth {
                    if !head.contains(&format!("Proxy-Authorization: Basic {expected}\r\n")) {
                        let _ = client.write_all(b"HTTP/1.1 407 Proxy Authentication Required\r\n\r\n").await;
                        return;
                    }
                }
                let Ok(mut upstream) =
                    tokio::net::TcpStream::connect(target.replace("localhost", "127.0.0.1")).await
                else {
                    let _ = client.write_all(b"HTTP/1.1 502 Bad Gateway\r\n\r\n").await;
                    return;
                };
                client.write_all(b"HTTP/1.1 200 Connection Established\r\n\r\n").await.unwrap();
                let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
            });
        }
    });
    (port, seen)
}

#[tokio::test]
async fn ws_and_wss_through_an_http_connect_proxy_with_basic_auth() {
    tokio::time::timeout(Duration::from_secs(20), async {
        let (tls_port, cert) = tls_echo_server().await;
        // "user:p@ss" in Basic.
        let (proxy_port, seen) = connect_proxy(Some("dXNlcjpwQHNz")).await;
        let tls = trusting(cert);
        let proxy = upgrade::Proxy::http(&format!("http://user:p%40ss@127.0.0.1:{proxy_port}")).unwrap();
        let config = UpgradeConfig::default().tls_config(Arc::new(tls)).proxy(proxy);

        // wss:// end to end through the tunnel.
        let url = format!("wss://localhost:{tls_port}/");
        let (mut ws, _) = upgrade::connect_with(&url, config.clone()).await.unwrap();
        ws.send(TextMessage::new("through the proxy").into()).await.unwrap();
        let Some(Ok(Event::TextMessage(echo))) = ws.next().await else { panic!("an echo") };
        assert_eq!(echo.data, "through the proxy");
        assert_eq!(seen.lock().unwrap().as_slice(), [format!("localhost:{tls_port}")]);

        // ws:// too (a plain server behind the proxy).
        let plain = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let plain_port = plain.local_addr().unwrap().port();
        tokio::spawn(async move {
            let (stream, _) = plain.accept().await.unwrap();
            let (mut ws, _) = upgrade::accept(stream, UpgradeConfig::default()).await.unwrap();
            while let Some(Ok(event)) = ws.next().await {
                if let Event::TextMessage(m) = event {
                    let _ = ws.send(m.into()).await;
                }
            }
        });
        let url = format!("ws://127.0.0.1:{plain_port}/");
        let (mut ws, _) = upgrade::connect_with(&url, config).await.unwrap();
        ws.send(TextMessage::new("plain").into()).await.unwrap();
        let Some(Ok(Event::TextMessage(echo))) = ws.next().await else { panic!("an echo") };
        assert_eq!(echo.data, "plain");

        // Wrong credentials: the proxy's refusal, with its status.
        let proxy = upgrade::Proxy::http(&format!("http://user:wrong@127.0.0.1:{proxy_port}")).unwrap();
        let error = upgrade::connect_with(&url, UpgradeConfig::default().proxy(proxy)).await.unwrap_err();
        assert!(matches!(error, wsproto::Error::ProxyRefused(407)), "{error}");
    })
    .await
    .expect("test timed out");
}

#[tokio::test(start_paused = true)]
async fn a_server_that_stalls_the_tls_handshake_is_cut_off_at_the_connect_timeout() {
    // It accepts TCP and never answers the ClientHello: the TLS handshake is part of
    // establishing the transport, so `connect_timeout` ends the wait (the HTTP handshake's
    // timeout only starts once TLS is up).
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let held = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = listener.accept().await {
            held.push(stream);
        }
    });
    let config = UpgradeConfig::default().connect_timeout(Duration::from_secs(3));
    let started = tokio::time::Instant::now();
    let outcome = tokio::time::timeout(
        Duration::from_secs(60),
        upgrade::connect_with(&format!("wss://localhost:{port}/"), config),
    )
    .await
    .expect("connect_with waited past its connect timeout");
    let error = outcome.unwrap_err();
    assert!(matches!(error, wsproto::Error::ConnectTimeout), "{error}");
    assert_eq!(started.elapsed(), Duration::from_secs(3));
    held.abort();
}
