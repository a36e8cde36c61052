//! Same defaults on every entry point: permessage-deflate is offered by clients and accepted
//! by servers unless `UpgradeConfig::compression(false)` turns it off, and other settings keep
//! it.
#![cfg(all(feature = "tokio", feature = "deflate"))]

use tokio::io::{duplex, DuplexStream};
use tokio::net::TcpListener;
use wsproto::extensions::PerMessageDeflate;
use wsproto::upgrade::{self, Decision, UpgradeConfig};
use wsproto::{AcceptConnection, Connection, Request, SessionConfig};

fn deflated(connection: &Connection) -> bool {
    connection.extensions().iter().any(|e| e.name() == PerMessageDeflate::NAME && e.enabled())
}

fn on() -> UpgradeConfig {
    // Other settings never drop the default.
    UpgradeConfig::default().subprotocols(["chat"]).session(SessionConfig::default())
}

fn off() -> UpgradeConfig {
    UpgradeConfig::default().compression(false)
}

fn pipe() -> (DuplexStream, DuplexStream) {
    duplex(64 << 10)
}

/// Runs a server entry point (`accept` if `use_server` is false, else `server`) against a
/// client entry point (`client` or `client_url`); returns (client deflated, server deflated).
async fn run(
    client_config: UpgradeConfig,
    server_config: UpgradeConfig,
    use_server: bool,
    url: bool,
) -> (bool, bool) {
    let (a, b) = pipe();
    let server = async move {
        let (session, _) = if use_server {
            upgrade::server(b, |_: &Request| Decision::Accept(AcceptConnection::new()), server_config).await
        } else {
            upgrade::accept(b, server_config).await
        }
        .unwrap();
        deflated(session.connection())
    };
    let client = async move {
        let (session, _) = if url {
            upgrade::client_url(a, "ws://localhost/chat", client_config).await
        } else {
            upgrade::client(a, Request::new("localhost", "/chat"), client_config).await
        }
        .unwrap();
        deflated(session.connection())
    };
    tokio::join!(client, server)
}

#[tokio::test]
async fn client_and_accept_negotiate_deflate_by_default() {
    assert_eq!(run(on(), on(), false, false).await, (true, true));
    assert_eq!(run(UpgradeConfig::default(), UpgradeConfig::default(), false, false).await, (true, true));
}

#[tokio::test]
async fn client_url_and_server_negotiate_deflate_by_default() {
    assert_eq!(run(on(), on(), true, true).await, (true, true));
}

#[tokio::test]
async fn compression_false_turns_deflate_off_on_either_side() {
    for (use_server, url) in [(false, false), (true, false), (false, true), (true, true)] {
        assert_eq!(run(off(), on(), use_server, url).await, (false, false), "client off");
        assert_eq!(run(on(), off(), use_server, url).await, (false, false), "server off");
        assert_eq!(run(off().compression(true), on(), use_server, url).await, (true, true), "on again");
    }
}

#[tokio::test]
async fn tuned_deflate_replaces_the_default_and_is_negotiated() {
    let tuned = on().deflate(|| PerMessageDeflate::new().server_no_context_takeover(true));
    assert_eq!(run(tuned.clone(), on(), false, false).await, (true, true));
    assert_eq!(run(on(), tuned, false, false).await, (true, true));
    // An extension of the same name replaces the config's own rather than being offered twice.
    let replaced = UpgradeConfig::default().extension(PerMessageDeflate::new);
    assert_eq!(run(replaced.clone(), replaced, false, false).await, (true, true));
}

#[tokio::test]
async fn connect_and_connect_with_offer_deflate_unless_turned_off() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("ws://{}/chat", listener.local_addr().unwrap());
    let server = tokio::spawn(async move {
        let mut seen = Vec::new();
        for _ in 0..3 {
            let (stream, _) = listener.accept().await.unwrap();
            let (session, _) = upgrade::accept(stream, UpgradeConfig::default()).await.unwrap();
            seen.push(deflated(session.connection()));
        }
        seen
    });
    let (session, accept) = upgrade::connect(&url).await.unwrap();
    assert!(deflated(session.connection()) && !accept.extensions.is_empty());
    let (session, _) = upgrade::connect_with(&url, on()).await.unwrap();
    assert!(deflated(session.connection()));
    let (session, _) = upgrade::connect_with(&url, off()).await.unwrap();
    assert!(!deflated(session.connection()));
    assert_eq!(server.await.unwrap(), [true, true, false]);
}

#[cfg(feature = "hyper")]
#[test]
fn hyper_client_request_offers_deflate_unless_turned_off() {
    let offers = |config: &UpgradeConfig| {
        let (request, _) =
            wsproto::hyper::client_request::<()>("ws://localhost/chat", http::Version::HTTP_11, config)
                .unwrap();
        request
            .headers()
            .get_all("sec-websocket-extensions")
            .iter()
            .any(|v| v.to_str().unwrap().contains(PerMessageDeflate::NAME))
    };
    assert!(offers(&on()));
    assert!(!offers(&off()));
}
