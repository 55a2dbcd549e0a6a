//! Who may connect at all: the rule for listening beyond loopback (an API key or client
//! certificates, and never plain HTTP), the API's TLS identity, with mutual TLS against
//! the private CA when `clientAuth` is on, and the access rules `guard` applies.

use std::path::Path;
use std::sync::Arc;

use rustls::RootCertStore;
use rustls::server::WebPkiClientVerifier;

use super::guard::Access;
use crate::config::Config;
use crate::pki;
use crate::tls::{self, TlsError};

/// Why `serve` refuses a configuration that would let anyone on the LAN charge a card.
#[derive(Debug, thiserror::Error)]
pub enum ExposureError {
    #[error(
        "the API listens on {0}, beyond loopback, without client authentication: anyone on the \
         LAN could charge a card. Set \"apiKey\" (clients send 'Authorization: Bearer KEY'), or \
         \"clientAuth\": true (clients present a certificate from the private CA, like \
         client.pem), or listen on \"url\": \"localhost\""
    )]
    NoClientAuth(std::net::IpAddr),
    #[error(
        "the API listens on {0}, beyond loopback, with \"SSL\": \"False\": keys and card \
         results would cross the LAN in clear. Remove \"SSL\" (HTTPS is the default) or listen \
         on \"url\": \"localhost\""
    )]
    PlainHttp(std::net::IpAddr),
}

/// Refuses a listener beyond loopback without client authentication, or in plain HTTP.
pub fn check_exposure(config: &Config) -> Result<(), ExposureError> {
    let ip = config.listen.ip();
    if ip.is_loopback() {
        return Ok(());
    }
    if !config.ssl {
        return Err(ExposureError::PlainHttp(ip));
    }
    if config.api_key.is_none() && !config.client_auth {
        return Err(ExposureError::NoClientAuth(ip));
    }
    Ok(())
}

/// The API's TLS configuration: `None` for `"SSL": "False"`; with `clientAuth`, every
/// client must present a certificate issued by the private CA.
pub fn server_tls(config: &Config) -> Result<Option<Arc<rustls::ServerConfig>>, TlsError> {
    if !config.ssl {
        return Ok(None);
    }
    let dir = &config.certs_dir;
    let (cert, key) = (dir.join(pki::GATEWAY_CERT), dir.join(pki::GATEWAY_KEY));
    if !config.client_auth {
        return tls::server_config(&cert, &key).map(Some);
    }
    mutual_tls(&cert, &key, &dir.join(pki::CA_CERT)).map(Some)
}

fn mutual_tls(cert: &Path, key: &Path, ca: &Path) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let mut roots = RootCertStore::empty();
    for ca in tls::load_certs(ca)? {
        roots.add(ca)?;
    }
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), tls::provider())
        .build()
        .map_err(|e| TlsError::Rustls(rustls::Error::General(e.to_string())))?;
    let mut server = rustls::ServerConfig::builder_with_provider(tls::provider())
        .with_safe_default_protocol_versions()?
        .with_client_cert_verifier(verifier)
        .with_single_cert(tls::load_certs(cert)?, tls::load_key(key)?)?;
    server.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(server))
}

/// The access rules of `config`; the `Host` names are those of the gateway certificate.
pub fn access(config: &Config) -> Access {
    let names = pki::summarize(&config.certs_dir.join(pki::GATEWAY_CERT))
        .map(|s| s.sans)
        .unwrap_or_default();
    let host_names = names
        .iter()
        .filter_map(|san| san.strip_prefix("DNS:"))
        .map(|n| n.trim_end_matches('.').to_ascii_lowercase())
        .collect();
    Access {
        api_key: config.api_key.as_ref().map(|k| k.expose().to_string()),
        refund_key: config.refund_key.as_ref().map(|k| k.expose().to_string()),
        client_auth: config.client_auth,
        metrics_public: config.metrics_public,
        cors_origins: config.cors_origins.clone(),
        host_names,
        scheme: if config.ssl { "https" } else { "http" },
    }
}

/// The certificate folder's checks (`pki::checks`) on every key this gateway uses: its
/// API key, the MQTT client key, the terminals' client keys.
pub fn check_files(config: &Config) -> Result<Vec<pki::checks::Expiry>, pki::PkiError> {
    let mut keys: Vec<_> = config
        .fallback
        .iter()
        .map(|m| m.client_key.clone())
        .collect();
    if config.ssl {
        keys.push(config.certs_dir.join(pki::GATEWAY_KEY));
    }
    let lanes = config
        .terminals
        .iter()
        .filter_map(|t| t.client_identity.as_ref());
    keys.extend(lanes.map(|(_, key)| key.clone()));
    pki::checks::check_serving(&config.certs_dir, &keys)
}
