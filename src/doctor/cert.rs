//! The terminal's certificate in words. The doctor's TLS client verifies exactly like the
//! gateway's (the configured CA, the fixed name) — `Recorder` only keeps a copy of the
//! certificate the terminal presented, so a refusal can say whose it is, for which names
//! and when it is valid. Nothing is ever trusted that the gateway would not trust.

use std::path::Path;
use std::sync::{Arc, Mutex};

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use time::OffsetDateTime;

use crate::tls::{TlsError, load_certs, provider};

#[derive(Debug)]
pub struct Recorder {
    inner: Arc<WebPkiServerVerifier>,
    seen: Mutex<Option<CertificateDer<'static>>>,
}

impl Recorder {
    /// A client config that verifies against `ca_pem` and records what it was shown.
    pub fn config(ca_pem: &Path) -> Result<(Arc<ClientConfig>, Arc<Recorder>), TlsError> {
        let mut roots = RootCertStore::empty();
        for ca in load_certs(ca_pem)? {
            roots.add(ca)?;
        }
        let inner = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider())
            .build()
            .map_err(|e| TlsError::Rustls(rustls::Error::General(e.to_string())))?;
        let recorder = Arc::new(Recorder {
            inner,
            seen: Mutex::new(None),
        });
        // `dangerous()` is rustls' door for a custom verifier; this one delegates every
        // decision to the standard WebPKI verifier above.
        let mut config = ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()?
            .dangerous()
            .with_custom_certificate_verifier(recorder.clone())
            .with_no_client_auth();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok((Arc::new(config), recorder))
    }

    /// The certificate of the last handshake (and forgets it).
    pub fn take(&self) -> Option<CertificateDer<'static>> {
        self.seen.lock().unwrap_or_else(|p| p.into_inner()).take()
    }
}

impl ServerCertVerifier for Recorder {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        *self.seen.lock().unwrap_or_else(|p| p.into_inner()) =
            Some(end_entity.clone().into_owned());
        self.inner
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// Issuer, names and validity of a certificate, in one phrase.
pub fn describe(cert: &CertificateDer<'_>) -> String {
    let Ok((_, c)) = x509_parser::parse_x509_certificate(cert.as_ref()) else {
        return "an unreadable certificate".into();
    };
    let names: Vec<String> = c
        .subject_alternative_name()
        .ok()
        .flatten()
        .map(|san| {
            san.value
                .general_names
                .iter()
                .map(|n| n.to_string())
                .collect()
        })
        .unwrap_or_default();
    let date = |t: x509_parser::time::ASN1Time| t.to_datetime().date().to_string();
    format!(
        "issued by \"{}\" for {}, valid {} to {}",
        c.issuer(),
        if names.is_empty() {
            c.subject().to_string()
        } else {
            names.join(", ")
        },
        date(c.validity().not_before),
        date(c.validity().not_after)
    )
}

/// Days until `cert` expires (negative once expired).
pub fn days_left(cert: &CertificateDer<'_>) -> Option<f64> {
    let (_, c) = x509_parser::parse_x509_certificate(cert.as_ref()).ok()?;
    let end = c.validity().not_after.to_datetime();
    Some((end - OffsetDateTime::now_utc()).as_seconds_f64() / 86_400.0)
}
