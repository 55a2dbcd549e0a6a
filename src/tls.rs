//! TLS policy: which certificates the gateway trusts and presents. The terminal is
//! trusted only through the private CA, for its fixed name, whatever its IP; there is
//! deliberately no way to turn verification off.

use std::io;
use std::path::Path;
use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, RootCertStore, ServerConfig};

use crate::constants::TERMINAL_SERVER_NAME;

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {path}: {reason}")]
    Read { path: String, reason: String },
    #[error("{path} holds no certificate")]
    NoCertificate { path: String },
    #[error("invalid TLS material: {0}")]
    Rustls(#[from] rustls::Error),
}

/// The one crypto provider ecrlink uses; passed explicitly so no process-wide default
/// has to be guessed.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

pub fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| TlsError::Read {
            path: path.display().to_string(),
            reason: e.to_string(),
        })?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate {
            path: path.display().to_string(),
        });
    }
    Ok(certs)
}

pub fn load_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    PrivateKeyDer::from_pem_file(path).map_err(|e| TlsError::Read {
        path: path.display().to_string(),
        reason: e.to_string(),
    })
}

/// A server identity (gateway API or simulator) from a PEM certificate chain and key.
pub fn server_config(cert: &Path, key: &Path) -> Result<Arc<ServerConfig>, TlsError> {
    server_config_from(load_certs(cert)?, load_key(key)?)
}

pub fn server_config_from(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
) -> Result<Arc<ServerConfig>, TlsError> {
    let mut config = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(chain, key)?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// A client that trusts exactly the CA certificates in `ca_pem` (a file), optionally
/// presenting a client certificate for mutual TLS.
pub fn client_config(
    ca_pem: &Path,
    identity: Option<(&Path, &Path)>,
) -> Result<Arc<ClientConfig>, TlsError> {
    let identity = match identity {
        Some((cert, key)) => Some((load_certs(cert)?, load_key(key)?)),
        None => None,
    };
    client_config_from(load_certs(ca_pem)?, identity)
}

pub fn client_config_from(
    cas: Vec<CertificateDer<'static>>,
    identity: Option<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)>,
) -> Result<Arc<ClientConfig>, TlsError> {
    let mut roots = RootCertStore::empty();
    for ca in cas {
        roots.add(ca)?;
    }
    let builder = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots);
    let mut config = match identity {
        Some((chain, key)) => builder.with_client_auth_cert(chain, key)?,
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// The name every terminal is verified against, whatever address we dial.
pub fn terminal_server_name() -> ServerName<'static> {
    ServerName::try_from(TERMINAL_SERVER_NAME)
        .expect("TERMINAL_SERVER_NAME is a valid DNS name")
        .to_owned()
}

/// Turns a failed handshake into a sentence a support person can act on.
pub fn describe_handshake_error(err: &io::Error) -> String {
    use rustls::CertificateError as C;
    let Some(tls) = err
        .get_ref()
        .and_then(|e| e.downcast_ref::<rustls::Error>())
    else {
        return format!("TLS handshake failed: {err}");
    };
    match tls {
        rustls::Error::InvalidCertificate(C::UnknownIssuer) => {
            "certificate is not issued by the ecrlink CA (unknown issuer)".into()
        }
        rustls::Error::InvalidCertificate(C::Expired | C::ExpiredContext { .. }) => {
            "certificate has expired".into()
        }
        rustls::Error::InvalidCertificate(C::NotValidYet | C::NotValidYetContext { .. }) => {
            "certificate is not valid yet (check the clocks)".into()
        }
        rustls::Error::InvalidCertificate(
            C::NotValidForName | C::NotValidForNameContext { .. },
        ) => {
            format!("certificate is not valid for the name {TERMINAL_SERVER_NAME}")
        }
        rustls::Error::InvalidCertificate(C::Other(_)) if is_name_constraint_violation(tls) => {
            "certificate names a host or address outside what the CA may vouch for (its name \
             constraints)"
                .into()
        }
        rustls::Error::InvalidCertificate(C::Revoked) => "certificate is revoked".into(),
        rustls::Error::InvalidCertificate(C::ApplicationVerificationFailure) => {
            "certificate's public key matches no terminalPin".into()
        }
        rustls::Error::InvalidCertificate(other) => format!("certificate rejected: {other:?}"),
        other => format!("TLS handshake failed: {other}"),
    }
}

/// A leaf for a name or address the issuing CA's name constraints do not permit
/// (webpki reports it as an `Other` certificate error).
pub fn is_name_constraint_violation(err: &rustls::Error) -> bool {
    matches!(err, rustls::Error::InvalidCertificate(rustls::CertificateError::Other(o))
        if format!("{o:?}").contains("NameConstraintViolation"))
}
