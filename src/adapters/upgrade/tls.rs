//! TLS for `wss://` (features `rustls`, `rustls-no-provider`).

use std::sync::Arc;

use tokio::net::TcpStream;
use tokio_rustls::rustls::crypto::CryptoProvider;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName};
use tokio_rustls::rustls::{ClientConfig, RootCertStore};
use tokio_rustls::TlsConnector;

use super::{MaybeTlsStream, UpgradeConfig};
use crate::adapters::error::Error;

/// Why [`connect`] failed.
pub(super) enum Failure {
    /// The host is not a name or address TLS can verify.
    Name,
    /// The TCP stream or the TLS handshake failed.
    Io(std::io::Error),
}

/// The certificates of a PEM input (`-----BEGIN CERTIFICATE-----` blocks; other blocks are
/// skipped), each checked to be usable as a trust anchor.
pub(super) fn parse_roots(pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, Error> {
    let invalid = |reason| Error::TlsConfig { reason };
    let mut certs = Vec::new();
    for cert in CertificateDer::pem_slice_iter(pem) {
        certs.push(cert.map_err(|_| invalid("the PEM input is malformed"))?);
    }
    if certs.is_empty() {
        return Err(invalid("the PEM input holds no CERTIFICATE block"));
    }
    let mut store = RootCertStore::empty();
    for cert in &certs {
        store
            .add(cert.clone())
            .map_err(|_| invalid("a certificate of the PEM input cannot be a trust anchor"))?;
    }
    Ok(certs)
}

/// The crypto provider of the default configuration: the process-level one if the app
/// installed one, else ring (feature `rustls`), else none.
fn provider() -> Result<Arc<CryptoProvider>, Error> {
    if let Some(provider) = CryptoProvider::get_default() {
        return Ok(provider.clone());
    }
    // rustls 0.23.48 deprecates ring's provider because ring has no post-quantum key
    // exchange; it is still the provider the `rustls` feature promises. An app that wants
    // post-quantum key exchange installs aws-lc-rs as the process default, used above.
    #[cfg(feature = "rustls")]
    #[allow(deprecated)]
    return Ok(Arc::new(tokio_rustls::rustls::crypto::ring::default_provider()));
    #[cfg(not(feature = "rustls"))]
    Err(Error::TlsConfig {
        reason: "no rustls crypto provider: install one at startup \
                 (rustls::crypto::CryptoProvider::install_default), enable wsproto's `rustls` \
                 feature (ring), or give a ClientConfig (UpgradeConfig::tls_config)",
    })
}

/// The default client configuration: the webpki-roots certificates and `extra_roots`,
/// the provider of [`provider`], safe protocol versions, no client certificate.
fn default_config(extra_roots: &[CertificateDer<'static>]) -> Result<Arc<ClientConfig>, Error> {
    let mut roots = RootCertStore { roots: webpki_roots::TLS_SERVER_ROOTS.to_vec() };
    for cert in extra_roots {
        // Checked when they were given (`parse_roots`).
        let _ = roots.add(cert.clone());
    }
    let config = ClientConfig::builder_with_provider(provider()?)
        .with_safe_default_protocol_versions()
        .map_err(|_| Error::TlsConfig {
            reason: "the crypto provider supports none of the safe TLS versions (1.2, 1.3)",
        })?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// The client configuration of `config`: its own, else the default one (resolved before
/// connecting, so a missing provider costs no connection).
pub(super) fn client_config(config: &UpgradeConfig) -> Result<Arc<ClientConfig>, Error> {
    match &config.tls {
        Some(tls) => Ok(tls.clone()),
        None => default_config(&config.tls_roots),
    }
}

pub(super) async fn connect(
    io: TcpStream,
    host: &str,
    tls: Arc<ClientConfig>,
) -> Result<MaybeTlsStream, Failure> {
    let name = ServerName::try_from(host.to_owned()).map_err(|_| Failure::Name)?;
    let stream = TlsConnector::from(tls).connect(name, io).await.map_err(Failure::Io)?;
    Ok(MaybeTlsStream::Rustls(Box::new(stream)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pem_without_a_certificate_is_refused() {
        let err = parse_roots(b"not pem at all").unwrap_err();
        assert!(matches!(err, Error::TlsConfig { .. }), "{err}");
        assert!(err.to_string().contains("no CERTIFICATE"), "{err}");
    }

    #[test]
    fn a_truncated_certificate_block_is_malformed() {
        let pem = b"-----BEGIN CERTIFICATE-----\nMIIB\n";
        let err = parse_roots(pem).unwrap_err();
        assert!(err.to_string().contains("malformed"), "{err}");
    }

    #[test]
    fn a_block_that_is_not_a_certificate_is_not_a_trust_anchor() {
        // Valid base64 in a CERTIFICATE block, but not DER of a certificate.
        let pem = b"-----BEGIN CERTIFICATE-----\naGVsbG8gd29ybGQ=\n-----END CERTIFICATE-----\n";
        let err = parse_roots(pem).unwrap_err();
        assert!(err.to_string().contains("trust anchor"), "{err}");
    }

    /// Without a provider, `wss://` is refused before any connection is made (the port is
    /// closed: with a provider the error is the refused connection).
    #[tokio::test]
    async fn no_provider_is_refused_before_connecting() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        drop(listener);
        let url = format!("wss://localhost:{port}/");
        let err = crate::upgrade::connect(&url).await.unwrap_err();
        if cfg!(feature = "rustls") {
            assert!(matches!(err, Error::Io(_)), "{err}");
        } else {
            assert!(matches!(err, Error::TlsConfig { .. }), "{err}");
        }
    }

    #[test]
    fn the_default_configuration_has_a_provider_or_says_how_to_get_one() {
        // A provider is there: ring with `rustls`; tests of `rustls-no-provider` alone install
        // none, and then the default configuration is refused with a typed error.
        let config = default_config(&[]);
        #[cfg(feature = "rustls")]
        assert!(!config.unwrap().crypto_provider().cipher_suites.is_empty());
        #[cfg(not(feature = "rustls"))]
        {
            let e = config.unwrap_err();
            assert!(e.to_string().contains("install_default"), "{e}");
        }
    }
}
