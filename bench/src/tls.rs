//! TLS for the `tls-echo` section: one self-signed certificate, made once and kept under
//! `target/wsbench/` so the server processes and the load generator agree on it.

use std::path::PathBuf;
use std::sync::Arc;

use tokio_rustls::rustls::crypto::ring;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use tokio_rustls::rustls::{ClientConfig, RootCertStore, ServerConfig};
use tokio_rustls::{TlsAcceptor, TlsConnector};

const NAME: &str = "localhost";

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/wsbench")
}

/// The certificate and key (DER), made on first use.
fn certificate() -> (CertificateDer<'static>, PrivateKeyDer<'static>) {
    let (cert_path, key_path) = (dir().join("tls-cert.der"), dir().join("tls-key.der"));
    if let (Ok(cert), Ok(key)) = (std::fs::read(&cert_path), std::fs::read(&key_path)) {
        return (CertificateDer::from(cert), PrivatePkcs8KeyDer::from(key).into());
    }
    let certified = rcgen::generate_simple_self_signed(vec![NAME.to_string()]).expect("certificate");
    let cert = certified.cert.der().clone();
    let key = certified.signing_key.serialize_der();
    std::fs::create_dir_all(dir()).expect("create target/wsbench");
    std::fs::write(&cert_path, &cert).expect("write certificate");
    std::fs::write(&key_path, &key).expect("write key");
    (cert, PrivatePkcs8KeyDer::from(key).into())
}

pub fn acceptor() -> TlsAcceptor {
    let (cert, key) = certificate();
    let config = ServerConfig::builder_with_provider(Arc::new(ring::default_provider()))
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .with_no_client_auth()
        .with_single_cert(vec![cert], key)
        .expect("server config");
    TlsAcceptor::from(Arc::new(config))
}

pub fn connector() -> TlsConnector {
    let (cert, _) = certificate();
    let mut roots = RootCertStore::empty();
    roots.add(cert).expect("trust the certificate");
    let config = ClientConfig::builder_with_provider(Arc::new(ring::default_provider()))
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    TlsConnector::from(Arc::new(config))
}

pub fn server_name() -> ServerName<'static> {
    ServerName::try_from(NAME).expect("server name")
}
