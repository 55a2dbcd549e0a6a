//! `ecrlink certs renew`: every leaf in the certificate folder issued again under the same
//! CA, with the same names and usage and a fresh key, so nothing has to be trusted anew.
//! The CA key may live elsewhere (`certs init --ca-out`).

use std::path::{Path, PathBuf};

use x509_parser::extensions::GeneralName;

use super::show::pem_to_der;
use super::store::{Access, write_file};
use super::{CA_CERT, Ca, LeafSpec, PkiError, read_text};

/// Re-issues each `NAME.pem` in `dir` that has a `NAME.key` next to it (terminal,
/// gateway, client, broker, devices), signed by the CA in `ca_dir` (default `dir`).
/// Returns the files written.
pub fn renew(dir: &Path, ca_dir: Option<&Path>) -> Result<Vec<PathBuf>, PkiError> {
    let ca = Ca::load(ca_dir.unwrap_or(dir))?;
    let io_err = |source| PkiError::Io {
        path: dir.to_path_buf(),
        source,
    };
    let mut leaves = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io_err)? {
        let cert = entry.map_err(io_err)?.path();
        let key = cert.with_extension("key");
        let is_pem = cert.extension().is_some_and(|e| e == "pem");
        if is_pem && key.is_file() && cert.file_name().is_some_and(|n| n != CA_CERT) {
            leaves.push((cert, key));
        }
    }
    leaves.sort();
    // Every spec is read first: a file that is not a leaf stops the renewal before any write.
    let mut specs = Vec::with_capacity(leaves.len());
    for (cert, key) in leaves {
        specs.push((spec_of(&cert)?, cert, key));
    }
    let mut written = Vec::new();
    for (spec, cert, key) in specs {
        let leaf = ca.issue(&spec)?;
        write_file(&key, leaf.key_pem.as_bytes(), Access::Secret, true)?;
        write_file(&cert, leaf.cert_pem.as_bytes(), Access::Public, true)?;
        written.extend([cert, key]);
    }
    Ok(written)
}

/// The spec a leaf was made from: its CN, SANs and usage, with a fresh validity.
fn spec_of(path: &Path) -> Result<LeafSpec, PkiError> {
    let parse_err = |reason: String| PkiError::Parse {
        path: path.to_path_buf(),
        reason,
    };
    let der = pem_to_der(&read_text(path)?).map_err(parse_err)?;
    let (_, cert) =
        x509_parser::parse_x509_certificate(&der).map_err(|e| parse_err(e.to_string()))?;
    if cert.is_ca() {
        return Err(parse_err("a CA certificate, not a leaf".into()));
    }
    let common_name = cert
        .subject()
        .iter_common_name()
        .next()
        .and_then(|cn| cn.as_str().ok())
        .ok_or_else(|| parse_err("no common name".into()))?
        .to_string();
    let (mut dns_names, mut ips) = (Vec::new(), Vec::new());
    if let Ok(Some(ext)) = cert.subject_alternative_name() {
        for name in &ext.value.general_names {
            match name {
                GeneralName::DNSName(dns) => dns_names.push(dns.to_string()),
                GeneralName::IPAddress(bytes) => match bytes.len() {
                    4 => ips.extend(<[u8; 4]>::try_from(*bytes).ok().map(std::net::IpAddr::from)),
                    16 => ips.extend(
                        <[u8; 16]>::try_from(*bytes)
                            .ok()
                            .map(std::net::IpAddr::from),
                    ),
                    _ => {}
                },
                _ => {}
            }
        }
    }
    let client = matches!(cert.extended_key_usage(), Ok(Some(eku)) if eku.value.client_auth);
    Ok(match client {
        true => LeafSpec::client(&common_name),
        false => LeafSpec::server(&common_name, &dns_names, &ips),
    })
}
