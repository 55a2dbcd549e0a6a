//! The terminal's certificate in words. The doctor's TLS client verifies exactly like the
//! gateway's (the configured CA, the fixed name) — `Recorder` only keeps a copy of the
//! certificate the terminal presented, so a refusal can say whose it is, for which names
//! and when it is valid. Nothing is ever trusted that the gateway would not trust.

use std::path::Path;
use std::sync::{Arc, Mutex};

use rustls::ClientConfig;
use rustls::pki_types::CertificateDer;
use time::OffsetDateTime;

use crate::tls::{TlsError, provider};
use crate::tls_check::{Checked, webpki};

#[derive(Debug, Default)]
pub struct Recorder {
    seen: Mutex<Option<CertificateDer<'static>>>,
}

impl Recorder {
    /// A client config that verifies against `ca_pem` and records what it was shown.
    pub fn config(ca_pem: &Path) -> Result<(Arc<ClientConfig>, Arc<Recorder>), TlsError> {
        let recorder = Arc::new(Recorder::default());
        let keep = recorder.clone();
        let verifier = Checked::new(
            webpki(ca_pem)?,
            Box::new(move |end_entity, verdict| {
                *keep.seen.lock().unwrap_or_else(|p| p.into_inner()) =
                    Some(end_entity.clone().into_owned());
                verdict
            }),
        );
        // `dangerous()` is rustls' door for a custom verifier; this one returns the
        // standard WebPKI verifier's verdict unchanged.
        let mut config = ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()?
            .dangerous()
            .with_custom_certificate_verifier(verifier)
            .with_no_client_auth();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok((Arc::new(config), recorder))
    }

    /// The certificate of the last handshake (and forgets it).
    pub fn take(&self) -> Option<CertificateDer<'static>> {
        self.seen.lock().unwrap_or_else(|p| p.into_inner()).take()
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
