//! Optional SPKI pinning of a terminal's certificate (`terminalPin`: `sha256/<base64>`,
//! one or a list for rotation) and its optional client certificate (`terminalClientCert`
//! / `terminalClientKey`). The pin is checked inside the TLS verifier, after the private
//! CA and the fixed name, so a mismatch fails the handshake like a wrong CA: not a byte
//! of a request is ever written to an unpinned terminal.

use std::path::Path;
use std::sync::Arc;

use rustls::ClientConfig;

use crate::config::Terminal;
use crate::tls::{self, TlsError};
use crate::tls_check::{Checked, webpki};

/// `sha256/` + base64 of the SHA-256 of the certificate's SubjectPublicKeyInfo (the form
/// HPKP and curl's `--pinnedpubkey` use). `None` for a certificate that does not parse.
pub fn spki_pin(cert_der: &[u8]) -> Option<String> {
    let (_, cert) = x509_parser::parse_x509_certificate(cert_der).ok()?;
    let digest = ring::digest::digest(&ring::digest::SHA256, cert.tbs_certificate.subject_pki.raw);
    Some(format!("sha256/{}", base64(digest.as_ref())))
}

/// Whether `text` is a well-formed pin (`sha256/` and 44 base64 characters).
pub fn is_pin(text: &str) -> bool {
    let Some(b64) = text.strip_prefix("sha256/") else {
        return false;
    };
    let body = b64.trim_end_matches('=');
    b64.len() == 44
        && b64.ends_with('=')
        && body.len() == 43
        && body
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/')
}

fn base64(bytes: &[u8]) -> String {
    const ABC: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | u32::from(*b) << (16 - 8 * i));
        for i in 0..4 {
            let c = if i <= chunk.len() {
                ABC[(n >> (18 - 6 * i) & 63) as usize]
            } else {
                b'='
            };
            out.push(char::from(c));
        }
    }
    out
}

/// A lane's own TLS client configuration when it pins its terminal or presents a client
/// certificate; `None` means the shared private-CA configuration is all it needs.
pub fn lane_config(ca_pem: &Path, t: &Terminal) -> Result<Option<Arc<ClientConfig>>, TlsError> {
    if t.pins.is_empty() && t.client_identity.is_none() {
        return Ok(None);
    }
    let verifier = webpki(ca_pem)?;
    let builder = ClientConfig::builder_with_provider(tls::provider())
        .with_safe_default_protocol_versions()?;
    let builder = match t.pins.is_empty() {
        true => builder.with_webpki_verifier(verifier),
        // The private CA and the fixed name first (WebPKI's verdict), then the pin.
        false => {
            let pins = t.pins.clone();
            builder
                .dangerous()
                .with_custom_certificate_verifier(Checked::new(
                    verifier,
                    Box::new(move |end_entity, verdict| {
                        let verified = verdict?;
                        match spki_pin(end_entity) {
                            Some(pin) if pins.contains(&pin) => Ok(verified),
                            _ => Err(rustls::Error::InvalidCertificate(
                                rustls::CertificateError::ApplicationVerificationFailure,
                            )),
                        }
                    }),
                ))
        }
    };
    let mut config = match &t.client_identity {
        Some((cert, key)) => {
            builder.with_client_auth_cert(tls::load_certs(cert)?, tls::load_key(key)?)?
        }
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Some(Arc::new(config)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_rfc4648() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
        assert_eq!(base64(b"foobar"), "Zm9vYmFy");
    }

    #[test]
    fn pins_are_recognised() {
        let pin = format!("sha256/{}", base64(&[7u8; 32]));
        assert!(is_pin(&pin), "{pin}");
        assert!(!is_pin("sha1/AAAA"));
        assert!(!is_pin(&pin[..pin.len() - 2]));
    }
}
