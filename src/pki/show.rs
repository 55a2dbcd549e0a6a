//! Reading certificates back: what `ecrlink certs show` prints, the fingerprints a
//! technician compares by eye, and the expiry the health API reports.

use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::GeneralName;

use super::{PkiError, read_text};

/// What one certificate file says, in plain strings.
#[derive(Debug, Clone)]
pub struct CertSummary {
    pub file: PathBuf,
    pub subject: String,
    pub issuer: String,
    /// `DNS:name` and `IP:address` entries, in certificate order.
    pub sans: Vec<String>,
    /// RFC 3339, UTC.
    pub not_before: String,
    /// RFC 3339, UTC.
    pub not_after: String,
    pub expired: bool,
    /// SHA-256 of the DER, uppercase hex with colons, as Windows and browsers show it.
    pub sha256: String,
    /// Whether the certificate may sign others.
    pub is_ca: bool,
    /// Extended key usages by their usual names (`serverAuth`, `clientAuth`).
    pub ext_key_usages: Vec<String>,
    /// A CA's permitted name constraints (`DNS:local`, `IP:10.0.0.0/8`); empty for none.
    pub permitted: Vec<String>,
    /// The SPKI pin (`sha256/<base64>`) a `terminalPin` names this certificate by.
    pub pin: String,
}

impl fmt::Display for CertSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{}", self.file.display())?;
        writeln!(f, "  subject:   {}", self.subject)?;
        writeln!(f, "  issuer:    {}", self.issuer)?;
        let role = match (self.is_ca, self.ext_key_usages.is_empty()) {
            (true, _) => "certificate authority".to_string(),
            (false, true) => "any".to_string(),
            (false, false) => self.ext_key_usages.join(", "),
        };
        writeln!(f, "  usage:     {role}")?;
        if !self.sans.is_empty() {
            writeln!(f, "  names:     {}", self.sans.join(", "))?;
        }
        if !self.permitted.is_empty() {
            writeln!(f, "  permits:   {}", self.permitted.join(", "))?;
        }
        writeln!(f, "  valid:     {} to {}", self.not_before, self.not_after)?;
        if self.expired {
            writeln!(f, "  status:    EXPIRED")?;
        }
        writeln!(f, "  sha256:    {}", self.sha256)?;
        write!(f, "  pin:       {}", self.pin)
    }
}

/// Summarizes the first certificate in a PEM file.
pub fn summarize(path: &Path) -> Result<CertSummary, PkiError> {
    let parse_err = |reason: String| PkiError::Parse {
        path: path.to_path_buf(),
        reason,
    };
    let der = pem_to_der(&read_text(path)?).map_err(parse_err)?;
    let (_, cert) =
        x509_parser::parse_x509_certificate(&der).map_err(|e| parse_err(e.to_string()))?;

    let sans = match cert.subject_alternative_name() {
        Ok(Some(ext)) => ext.value.general_names.iter().map(describe_name).collect(),
        Ok(None) => Vec::new(),
        Err(e) => return Err(parse_err(format!("subjectAltName: {e}"))),
    };
    let ext_key_usages = match cert.extended_key_usage() {
        Ok(Some(ext)) => {
            let eku = ext.value;
            [
                (eku.server_auth, "serverAuth"),
                (eku.client_auth, "clientAuth"),
                (eku.any, "any"),
            ]
            .iter()
            .filter(|(set, _)| *set)
            .map(|(_, name)| name.to_string())
            .collect()
        }
        Ok(None) => Vec::new(),
        Err(e) => return Err(parse_err(format!("extendedKeyUsage: {e}"))),
    };
    let permitted = match cert.name_constraints() {
        Ok(Some(ext)) => ext
            .value
            .permitted_subtrees
            .iter()
            .flatten()
            .map(|t| describe_subtree(&t.base))
            .collect(),
        Ok(None) => Vec::new(),
        Err(e) => return Err(parse_err(format!("nameConstraints: {e}"))),
    };
    let validity = cert.validity();
    let not_after = validity.not_after.to_datetime();
    Ok(CertSummary {
        file: path.to_path_buf(),
        subject: cert.subject().to_string(),
        issuer: cert.issuer().to_string(),
        sans,
        not_before: rfc3339(validity.not_before.to_datetime()),
        not_after: rfc3339(not_after),
        expired: not_after < OffsetDateTime::now_utc(),
        sha256: fingerprint_sha256(&der),
        is_ca: cert.is_ca(),
        ext_key_usages,
        permitted,
        pin: crate::pin::spki_pin(&der).unwrap_or_default(),
    })
}

/// Summaries of every certificate (`*.pem` holding a certificate) in `dir`, sorted by file
/// name. PEM files holding keys are skipped, so a key saved as `.pem` is never parsed here.
pub fn show(dir: &Path) -> Result<Vec<CertSummary>, PkiError> {
    let io_err = |source| PkiError::Io {
        path: dir.to_path_buf(),
        source,
    };
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io_err)? {
        let path = entry.map_err(io_err)?.path();
        if path.extension().is_some_and(|ext| ext == "pem") && path.is_file() {
            files.push(path);
        }
    }
    files.sort();
    let mut summaries = Vec::with_capacity(files.len());
    for path in files {
        if read_text(&path)?.contains("-----BEGIN CERTIFICATE-----") {
            summaries.push(summarize(&path)?);
        }
    }
    Ok(summaries)
}

/// SHA-256 of `der` as uppercase hex pairs joined by colons (95 characters).
pub fn fingerprint_sha256(der: &[u8]) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, der);
    let hex: Vec<String> = digest.as_ref().iter().map(|b| format!("{b:02X}")).collect();
    hex.join(":")
}

/// When the first certificate in `cert_pem` expires.
pub fn not_after(cert_pem: &str) -> Result<OffsetDateTime, PkiError> {
    let bad = |reason: String| PkiError::BadCertificate { reason };
    let der = pem_to_der(cert_pem).map_err(bad)?;
    let (_, cert): (_, X509Certificate<'_>) =
        x509_parser::parse_x509_certificate(&der).map_err(|e| bad(e.to_string()))?;
    Ok(cert.validity().not_after.to_datetime())
}

/// The DER of the first CERTIFICATE block in `pem`; the error is a reason without a path,
/// for the caller to attach.
pub(super) fn pem_to_der(pem: &str) -> Result<Vec<u8>, String> {
    for block in x509_parser::pem::Pem::iter_from_buffer(pem.as_bytes()) {
        let block = block.map_err(|e| format!("bad PEM: {e}"))?;
        if block.label == "CERTIFICATE" {
            return Ok(block.contents);
        }
    }
    Err("no CERTIFICATE block".into())
}

fn describe_name(name: &GeneralName<'_>) -> String {
    match name {
        GeneralName::DNSName(dns) => format!("DNS:{dns}"),
        GeneralName::IPAddress(bytes) => match ip_from_bytes(bytes) {
            Some(ip) => format!("IP:{ip}"),
            None => format!("IP:<{} bytes>", bytes.len()),
        },
        other => other.to_string(),
    }
}

/// A name-constraint subtree: an IP one is an address and a mask.
fn describe_subtree(name: &GeneralName<'_>) -> String {
    let GeneralName::IPAddress(bytes) = name else {
        return describe_name(name);
    };
    let (addr, mask) = bytes.split_at(bytes.len() / 2);
    let prefix: u32 = mask.iter().map(|b| b.count_ones()).sum();
    match ip_from_bytes(addr) {
        Some(ip) => format!("IP:{ip}/{prefix}"),
        None => describe_name(name),
    }
}

fn ip_from_bytes(bytes: &[u8]) -> Option<IpAddr> {
    match bytes.len() {
        4 => <[u8; 4]>::try_from(bytes).ok().map(IpAddr::from),
        16 => <[u8; 16]>::try_from(bytes).ok().map(IpAddr::from),
        _ => None,
    }
}

fn rfc3339(at: OffsetDateTime) -> String {
    // Certificate times are whole seconds in UTC, which RFC 3339 always represents.
    at.format(&Rfc3339).unwrap_or_else(|_| at.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprint_is_95_uppercase_hex_chars() {
        let fp = fingerprint_sha256(b"abc");
        assert_eq!(fp.len(), 95);
        // SHA-256("abc") from FIPS 180-2.
        assert!(fp.starts_with("BA:78:16:BF:8F:01:CF:EA"), "{fp}");
        assert!(fp.ends_with("F2:00:15:AD"), "{fp}");
    }

    #[test]
    fn ip_san_bytes_become_addresses() {
        assert_eq!(
            ip_from_bytes(&[192, 168, 1, 9]),
            Some(IpAddr::from([192, 168, 1, 9]))
        );
        let v6 = ip_from_bytes(&[0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
        assert_eq!(v6, Some("::1".parse().expect("literal")));
        assert_eq!(ip_from_bytes(&[1, 2, 3]), None);
    }

    #[test]
    fn pem_without_certificate_is_rejected() {
        let key_only = "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n";
        assert!(pem_to_der(key_only).is_err());
        assert!(matches!(
            not_after("garbage"),
            Err(PkiError::BadCertificate { .. })
        ));
    }
}
