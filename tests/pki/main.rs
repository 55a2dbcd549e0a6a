//! The private CA as clients see it: files on disk and their modes (`files`), and whether
//! rustls, the verifier the gateway uses, accepts or rejects each certificate for the right
//! reason (`chain`).

mod chain;
mod files;
mod renew;
mod trust;

use std::net::IpAddr;
#[cfg(unix)]
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use ecrlink::constants::TERMINAL_SERVER_NAME;
use ecrlink::pki::{self, Ca, InitOptions, LeafSpec, PkiError};
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::ServerCertVerifier;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::WebPkiClientVerifier;
use rustls::{CertificateError, Error as TlsError, RootCertStore};
use x509_parser::extensions::GeneralName;

const ALL_FILES: [&str; 9] = [
    pki::CA_CERT,
    pki::CA_KEY,
    pki::CA_DER,
    pki::TERMINAL_CERT,
    pki::TERMINAL_KEY,
    pki::GATEWAY_CERT,
    pki::GATEWAY_KEY,
    pki::CLIENT_CERT,
    pki::CLIENT_KEY,
];

fn ip(s: &str) -> IpAddr {
    s.parse().expect("test address")
}

fn init_in(dir: &Path, force: bool) -> Result<Vec<PathBuf>, PkiError> {
    pki::init(&InitOptions {
        dir: dir.to_path_buf(),
        terminal_ips: vec![ip("192.168.1.50"), ip("10.0.0.7")],
        gateway_names: vec!["till-1.lan".into(), "192.168.1.10".into()],
        force,
    })
}

fn der(pem: &str) -> CertificateDer<'static> {
    CertificateDer::from_pem_slice(pem.as_bytes()).expect("certificate PEM")
}

fn read(dir: &Path, name: &str) -> String {
    std::fs::read_to_string(dir.join(name)).expect("readable file")
}

/// Permission bits; only Unix has them (Windows relies on directory ACLs).
#[cfg(unix)]
fn mode(path: &Path) -> u32 {
    std::fs::metadata(path)
        .expect("metadata")
        .permissions()
        .mode()
        & 0o777
}

fn roots(ca_pem: &str) -> Arc<RootCertStore> {
    let mut roots = RootCertStore::empty();
    roots.add(der(ca_pem)).expect("CA accepted as root");
    Arc::new(roots)
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn verify_server(ca_pem: &str, leaf_pem: &str, name: &str) -> Result<(), TlsError> {
    let verifier = WebPkiServerVerifier::builder_with_provider(roots(ca_pem), provider())
        .build()
        .expect("verifier");
    let name = ServerName::try_from(name.to_string()).expect("server name");
    verifier
        .verify_server_cert(&der(leaf_pem), &[], &name, &[], UnixTime::now())
        .map(drop)
}

fn verify_client(ca_pem: &str, leaf_pem: &str) -> Result<(), TlsError> {
    let verifier = WebPkiClientVerifier::builder_with_provider(roots(ca_pem), provider())
        .build()
        .expect("verifier");
    verifier
        .verify_client_cert(&der(leaf_pem), &[], UnixTime::now())
        .map(drop)
}

fn cert_error(result: Result<(), TlsError>) -> CertificateError {
    match result {
        Err(TlsError::InvalidCertificate(e)) => e,
        other => panic!("expected a certificate error, got {other:?}"),
    }
}
