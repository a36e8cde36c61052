//! TLS for `wss://` (feature `rustls`).

use std::sync::Arc;

use tokio::net::TcpStream;
use tokio_rustls::rustls::pki_types::ServerName;
use tokio_rustls::rustls::{ClientConfig, RootCertStore};
use tokio_rustls::TlsConnector;

use super::{MaybeTlsStream, UpgradeConfig};

pub(super) enum Failure {
    Name,
    Io(std::io::Error),
}

/// The default client configuration: webpki-roots, the ring provider, safe defaults.
fn default_config() -> Arc<ClientConfig> {
    let roots = RootCertStore { roots: webpki_roots::TLS_SERVER_ROOTS.to_vec() };
    let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("the ring provider supports the default protocol versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    Arc::new(config)
}

pub(super) async fn connect(
    io: TcpStream,
    host: &str,
    config: &UpgradeConfig,
) -> Result<MaybeTlsStream, Failure> {
    let name = ServerName::try_from(host.to_owned()).map_err(|_| Failure::Name)?;
    let tls = config.tls.clone().unwrap_or_else(default_config);
    let stream = TlsConnector::from(tls).connect(name, io).await.map_err(Failure::Io)?;
    Ok(MaybeTlsStream::Rustls(Box::new(stream)))
}
