//! `ecrlink certs vendor-ca`: a CA that is *not* ecrlink's and a terminal certificate for
//! the vendor's name, the stand-in for the payment app's SDK CA when a `comercia-pos`
//! terminal is simulated. Kept in its own folder: the gateway trusts it only for the
//! lanes whose `caCert` names it.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use super::store::{Access, create_private_dir, refuse_existing, write_file};
use super::{CA_CERT, CA_KEY, Ca, LeafSpec, PkiError, TERMINAL_CERT, TERMINAL_KEY};

/// Writes `ca.pem`, `ca.key`, `terminal.pem` and `terminal.key` (for `name` and `ips`)
/// into `dir`; nothing is overwritten without `force`.
pub fn vendor_ca(
    dir: &Path,
    name: &str,
    ips: &[IpAddr],
    force: bool,
) -> Result<Vec<PathBuf>, PkiError> {
    let files = [CA_CERT, CA_KEY, TERMINAL_CERT, TERMINAL_KEY];
    let paths: Vec<PathBuf> = files.iter().map(|f| dir.join(f)).collect();
    if !force {
        refuse_existing(&paths)?;
    }
    let is_dns = matches!(
        rustls::pki_types::ServerName::try_from(name),
        Ok(rustls::pki_types::ServerName::DnsName(_))
    );
    if !is_dns {
        return Err(PkiError::InvalidName {
            name: name.to_string(),
        });
    }
    // ecrlink's name constraints, widened to the vendor name (a stand-in CA only).
    let ca = Ca::generate_for(
        &format!("vendor CA for {name} (not ecrlink's)"),
        &[name.to_string()],
    )?;
    let leaf = ca.issue(&LeafSpec::server(name, &[name.to_string()], ips))?;
    create_private_dir(dir)?;
    let contents = [
        (ca.cert_pem().to_string(), Access::Public),
        (ca.key_pem(), Access::Secret),
        (leaf.cert_pem.clone(), Access::Public),
        (leaf.key_pem.clone(), Access::Secret),
    ];
    for (path, (text, access)) in paths.iter().zip(contents) {
        write_file(path, text.as_bytes(), access, force)?;
    }
    Ok(paths)
}
