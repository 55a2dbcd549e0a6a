//! What `serve` checks in its certificate folder before it trusts it: no private key
//! readable by others (refused), no CA key on the gateway (a warning: it can mint
//! certificates), and how long each certificate has left (warned 30 days ahead).

use std::path::{Path, PathBuf};

use time::OffsetDateTime;

use super::{CA_KEY, PkiError, show};
use crate::constants::CERT_EXPIRY_WARNING;

/// One certificate's end of validity, for the log and `/metrics`.
#[derive(Debug, Clone)]
pub struct Expiry {
    pub file: String,
    pub not_after: OffsetDateTime,
}

/// Refuses any of `keys` (the ones this gateway uses) and `dir/ca.key` when group or
/// others may read them; warns when `ca.key` sits in `dir`; returns every certificate's
/// expiry, warning about those with less than [`CERT_EXPIRY_WARNING`] left. A broker's
/// or device's key in the folder is not checked: it may be shared with their user.
pub fn check_serving(dir: &Path, keys: &[PathBuf]) -> Result<Vec<Expiry>, PkiError> {
    let mut all: Vec<PathBuf> = keys.to_vec();
    all.push(dir.join(CA_KEY));
    for key in all.iter().filter(|k| k.exists()) {
        key_is_private(key)?;
    }
    if dir.join(CA_KEY).exists() {
        tracing::warn!(
            file = %dir.join(CA_KEY).display(),
            "the CA key sits in certsDir: whoever copies it can issue certificates this \
             shop's PCs trust; move it off the gateway (certs init --ca-out, certs renew --ca-dir)"
        );
    }
    let summaries = show(dir).unwrap_or_default();
    let now = OffsetDateTime::now_utc();
    let mut expiries = Vec::new();
    for s in summaries {
        let Ok(not_after) =
            OffsetDateTime::parse(&s.not_after, &time::format_description::well_known::Rfc3339)
        else {
            continue;
        };
        let file = s
            .file
            .file_name()
            .map(|f| f.to_string_lossy().to_string())
            .unwrap_or_default();
        let left = not_after - now;
        if left < CERT_EXPIRY_WARNING {
            tracing::warn!(
                %file, not_after = %s.not_after, days_left = left.whole_days(),
                "certificate expires soon: run `ecrlink certs renew --dir {}`", dir.display()
            );
        }
        expiries.push(Expiry { file, not_after });
    }
    Ok(expiries)
}

/// A key file that group or others can read is refused: it is the identity of this gateway.
pub fn key_is_private(path: &Path) -> Result<(), PkiError> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let meta = std::fs::metadata(path).map_err(|source| PkiError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(PkiError::KeyExposed {
                path: path.to_path_buf(),
                mode,
            });
        }
    }
    // Windows: the folder's ACL decides (packaging/windows/README.md).
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}
