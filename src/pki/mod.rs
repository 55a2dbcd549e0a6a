//! The shop's private certificate authority and the certificates it issues.
//!
//! The payment terminal presents a certificate for the fixed name
//! [`TERMINAL_SERVER_NAME`](crate::constants::TERMINAL_SERVER_NAME), whatever IP it has on
//! the LAN, so trust comes from a CA the shop owns rather than from a public one. This module
//! makes that CA and every leaf the system needs (terminal, gateway API, gateway client
//! identity, MQTT broker, MQTT devices), writes them with safe file modes, and reads them
//! back for `ecrlink certs show` and the health API. TLS policy lives in `tls`, not here.
//!
//! - [`issue`]: key generation and signing, all in memory.
//! - [`store`]: the certificate directory (`init`, broker and device certificates, writing).
//! - [`show`]: reading certificates back: summaries, fingerprints, expiry.

pub mod checks;
pub mod constraints;
mod issue;
mod renew;
mod show;
mod store;
mod vendor;

use std::path::{Path, PathBuf};

pub use issue::{Ca, Leaf, LeafSpec, Usage};
pub use renew::renew;
pub use show::{CertSummary, fingerprint_sha256, not_after, show, summarize};
pub use store::{
    BROKER_CERT, BROKER_KEY, InitOptions, init, init_with_ca_out, issue_broker, issue_device,
};
pub use vendor::vendor_ca;

/// The CA certificate (PEM); the file clients are told to trust.
pub const CA_CERT: &str = "ca.pem";
/// The CA private key; whoever holds it can impersonate the terminal.
pub const CA_KEY: &str = "ca.key";
/// The CA certificate in DER, named and encoded the way Windows' certificate import and
/// the vendor's installation guide expect it.
pub const CA_DER: &str = "caroot.cer";
/// The terminal's server certificate, installed on the terminal's payment app.
pub const TERMINAL_CERT: &str = "terminal.pem";
/// The terminal's private key.
pub const TERMINAL_KEY: &str = "terminal.key";
/// The certificate of the gateway's own HTTPS API.
pub const GATEWAY_CERT: &str = "gateway.pem";
/// The private key of the gateway's own HTTPS API.
pub const GATEWAY_KEY: &str = "gateway.key";
/// The gateway's client identity, for terminals (or brokers) that require mutual TLS.
pub const CLIENT_CERT: &str = "client.pem";
/// The private key of the gateway's client identity.
pub const CLIENT_KEY: &str = "client.key";
/// Common name of the gateway's client certificate; a broker using the certificate's CN as
/// the user name sees the gateway under this name.
pub const GATEWAY_CLIENT_CN: &str = "ecrlink-gateway";

/// Everything that can go wrong making, writing or reading certificates.
#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    /// Reading or writing a file or directory failed.
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A file that would be written already exists and `force` was not given.
    #[error("{} already exists; refusing to overwrite it (use --force to replace it)", path.display())]
    Exists { path: PathBuf },
    /// rcgen refused to build or sign a certificate.
    #[error("certificate generation failed: {0}")]
    Rcgen(#[from] rcgen::Error),
    /// A file is not the certificate or key it should be.
    #[error("{}: {reason}", path.display())]
    Parse { path: PathBuf, reason: String },
    /// A certificate given in memory (not from a file) could not be read.
    #[error("invalid certificate: {reason}")]
    BadCertificate { reason: String },
    /// The CA key on disk does not belong to the CA certificate next to it.
    #[error("{} does not belong to {}: regenerate the CA or restore the matching pair", key.display(), cert.display())]
    KeyMismatch { cert: PathBuf, key: PathBuf },
    /// A name meant for a certificate is neither an IP address nor a valid DNS name.
    #[error("{name:?} is neither an IP address nor a valid DNS name")]
    InvalidName { name: String },
    /// A device id would make an unsafe file name or certificate name.
    #[error("device id {id:?} must be 1 to 64 characters of A-Z, a-z, 0-9, '.', '_' or '-'")]
    InvalidDeviceId { id: String },
    /// A private key file that group or others may read.
    #[error("{} is readable by others (mode {mode:o}): run `chmod 600 {}`", path.display(), path.display())]
    KeyExposed { path: PathBuf, mode: u32 },
    /// A leaf specification cannot produce a usable certificate.
    #[error("invalid certificate request: {reason}")]
    InvalidSpec { reason: String },
}

/// Reads a text file, naming the file in the error.
fn read_text(path: &Path) -> Result<String, PkiError> {
    std::fs::read_to_string(path).map_err(|source| PkiError::Io {
        path: path.to_path_buf(),
        source,
    })
}
