//! The certificate directory: creating the whole set, adding broker and device
//! certificates, and writing files so a key is never readable by others, never half
//! written, and never silently replaced.

use std::io::Write;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use time::OffsetDateTime;

use super::issue::split_names;
use super::{
    CA_CERT, CA_DER, CA_KEY, CLIENT_CERT, CLIENT_KEY, Ca, GATEWAY_CERT, GATEWAY_CLIENT_CN,
    GATEWAY_KEY, Leaf, LeafSpec, PkiError, TERMINAL_CERT, TERMINAL_KEY,
};

/// The MQTT broker's certificate and key, written by [`issue_broker`].
pub const BROKER_CERT: &str = "broker.pem";
/// See [`BROKER_CERT`].
pub const BROKER_KEY: &str = "broker.key";
/// Common name of the broker certificate.
const BROKER_CN: &str = "ecrlink-broker";

/// Who may read a file once written.
#[derive(Clone, Copy)]
pub(super) enum Access {
    /// Private keys: owner only.
    Secret,
    /// Certificates: anyone, so a broker running as another user can read them.
    Public,
}

/// What `ecrlink certs init` should create.
#[derive(Clone, Debug)]
pub struct InitOptions {
    pub dir: PathBuf,
    pub terminal_ips: Vec<IpAddr>,
    pub gateway_names: Vec<String>,
    pub force: bool,
}

/// Creates a new CA and the terminal, gateway and client certificates in `opts.dir`.
///
/// Without `force` nothing is written if any of the nine files exists, so a second run
/// cannot leave a mix of two CAs. With `force` the CA is replaced too: every certificate it
/// issued before (broker, devices) stops verifying and must be issued again.
pub fn init(opts: &InitOptions) -> Result<Vec<PathBuf>, PkiError> {
    init_with_ca_out(opts, None)
}

/// [`init`], with `ca.key` (and a copy of `ca.pem`, so the pair loads together) written
/// to `ca_out` instead of `opts.dir`: the CA key need not live on the gateway.
pub fn init_with_ca_out(
    opts: &InitOptions,
    ca_out: Option<&Path>,
) -> Result<Vec<PathBuf>, PkiError> {
    let dir = opts.dir.as_path();
    let names = [
        CA_CERT,
        CA_KEY,
        CA_DER,
        TERMINAL_CERT,
        TERMINAL_KEY,
        GATEWAY_CERT,
        GATEWAY_KEY,
        CLIENT_CERT,
        CLIENT_KEY,
    ];
    if !opts.force {
        let mut paths: Vec<PathBuf> = names.iter().map(|n| dir.join(n)).collect();
        if let Some(out) = ca_out {
            paths.extend([out.join(CA_KEY), out.join(CA_CERT)]);
        }
        refuse_existing(&paths)?;
    }

    // Everything is made before anything is written, so a bad name leaves no files behind.
    let today = OffsetDateTime::now_utc().date();
    // The date tells an old CA from a regenerated one in a till's certificate store.
    let ca = Ca::generate_for(&format!("ecrlink private CA {today}"), &opts.gateway_names)?;
    let terminal = ca.issue(&LeafSpec::terminal(&opts.terminal_ips))?;
    let gateway = ca.issue(&LeafSpec::gateway(&opts.gateway_names))?;
    let client = ca.issue(&LeafSpec::client(GATEWAY_CLIENT_CN))?;

    create_private_dir(dir)?;
    let force = opts.force;
    let mut written = Vec::with_capacity(names.len());
    if let Some(out) = ca_out {
        create_private_dir(out)?;
        for (name, contents, access) in [
            (CA_KEY, ca.key_pem(), Access::Secret),
            (CA_CERT, ca.cert_pem().to_string(), Access::Public),
        ] {
            let path = out.join(name);
            write_file(&path, contents.as_bytes(), access, force)?;
            written.push(path);
        }
        if force {
            // A forced init replaced the CA: an old key left here would belong to nothing.
            let _ = std::fs::remove_file(dir.join(CA_KEY));
        }
    }
    let mut put = |name: &str, contents: &[u8], access: Access| {
        let path = dir.join(name);
        write_file(&path, contents, access, force)?;
        written.push(path);
        Ok::<_, PkiError>(())
    };
    if ca_out.is_none() {
        put(CA_KEY, ca.key_pem().as_bytes(), Access::Secret)?;
    }
    put(CA_CERT, ca.cert_pem().as_bytes(), Access::Public)?;
    put(CA_DER, ca.cert_der(), Access::Public)?;
    for (leaf, cert, key) in [
        (&terminal, TERMINAL_CERT, TERMINAL_KEY),
        (&gateway, GATEWAY_CERT, GATEWAY_KEY),
        (&client, CLIENT_CERT, CLIENT_KEY),
    ] {
        put(key, leaf.key_pem.as_bytes(), Access::Secret)?;
        put(cert, leaf.cert_pem.as_bytes(), Access::Public)?;
    }
    Ok(written)
}

/// Issues `broker.pem`/`broker.key` for the LAN MQTT broker from the CA in `dir`. `names`
/// may hold host names or addresses; loopback names are always included so a broker on
/// the gateway's own machine verifies too.
pub fn issue_broker(
    dir: &Path,
    ips: &[IpAddr],
    names: &[String],
    force: bool,
) -> Result<Vec<PathBuf>, PkiError> {
    // A name the CA may not vouch for would give a certificate no client accepts.
    let permitted = super::summarize(&dir.join(CA_CERT))?.permitted;
    let ip_names = ips.iter().map(|ip| ip.to_string());
    if let Some(name) = names
        .iter()
        .cloned()
        .chain(ip_names)
        .find(|n| !super::constraints::permits(&permitted, n))
    {
        return Err(PkiError::InvalidSpec {
            reason: format!(
                "the CA's name constraints do not permit {name:?} (`certs show` lists them): \
                 use the broker's LAN address or a name under .lan, .local, .internal or .home.arpa"
            ),
        });
    }
    let mut all_names = names.to_vec();
    all_names.extend(["localhost".to_string(), "127.0.0.1".to_string()]);
    let (dns_names, mut all_ips) = split_names(&all_names);
    all_ips.splice(0..0, ips.iter().copied());
    let spec = LeafSpec::server(BROKER_CN, &dns_names, &all_ips);
    issue_into(dir, &spec, BROKER_CERT, BROKER_KEY, force)
}

/// Issues `device-<ID>.pem`/`.key`, a client certificate whose CN is the device id, for a
/// terminal that talks to the MQTT broker (the broker takes the CN as the user name).
pub fn issue_device(dir: &Path, device_id: &str, force: bool) -> Result<Vec<PathBuf>, PkiError> {
    let valid = (1..=64).contains(&device_id.len())
        && device_id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if !valid {
        return Err(PkiError::InvalidDeviceId {
            id: device_id.to_string(),
        });
    }
    let cert = format!("device-{device_id}.pem");
    let key = format!("device-{device_id}.key");
    issue_into(dir, &LeafSpec::client(device_id), &cert, &key, force)
}

fn issue_into(
    dir: &Path,
    spec: &LeafSpec,
    cert: &str,
    key: &str,
    force: bool,
) -> Result<Vec<PathBuf>, PkiError> {
    let (cert_path, key_path) = (dir.join(cert), dir.join(key));
    if !force {
        // Checked before loading the CA, so the refusal is the first thing reported.
        refuse_existing(&[cert_path.clone(), key_path.clone()])?;
    }
    let leaf = Ca::load(dir)?.issue(spec)?;
    leaf.write(&cert_path, &key_path, force)?;
    Ok(vec![cert_path, key_path])
}

impl Leaf {
    /// Writes the key (owner-only) and then the certificate. Without `force` neither file
    /// may exist; with it both are replaced atomically, so a running server never reads a
    /// half-written file and a replaced key never keeps a wider mode.
    pub fn write(&self, cert_path: &Path, key_path: &Path, force: bool) -> Result<(), PkiError> {
        if !force {
            refuse_existing(&[cert_path.to_path_buf(), key_path.to_path_buf()])?;
        }
        write_file(key_path, self.key_pem.as_bytes(), Access::Secret, force)?;
        write_file(cert_path, self.cert_pem.as_bytes(), Access::Public, force)
    }
}

pub(super) fn refuse_existing(paths: &[PathBuf]) -> Result<(), PkiError> {
    // symlink_metadata also catches a dangling symlink, which a write would follow.
    match paths.iter().find(|p| p.symlink_metadata().is_ok()) {
        Some(path) => Err(PkiError::Exists { path: path.clone() }),
        None => Ok(()),
    }
}

pub(super) fn create_private_dir(dir: &Path) -> Result<(), PkiError> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir).map_err(|source| PkiError::Io {
        path: dir.to_path_buf(),
        source,
    })
}

/// Writes through a temporary file in the same directory and renames it into place. The
/// temporary file is created owner-only, so a key is never readable by others, even briefly.
pub(super) fn write_file(
    path: &Path,
    contents: &[u8],
    access: Access,
    force: bool,
) -> Result<(), PkiError> {
    let io_err = |source| PkiError::Io {
        path: path.to_path_buf(),
        source,
    };
    let dir = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    let mut tmp = tempfile::Builder::new()
        .prefix(".ecrlink-")
        .tempfile_in(dir)
        .map_err(io_err)?;
    tmp.write_all(contents).map_err(io_err)?;
    tmp.as_file().sync_all().map_err(io_err)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = match access {
            Access::Secret => 0o600,
            Access::Public => 0o644,
        };
        let perms = std::fs::Permissions::from_mode(mode);
        tmp.as_file().set_permissions(perms).map_err(io_err)?;
    }
    // Windows has no mode bits: keys there rely on the directory's ACL.
    #[cfg(not(unix))]
    let _ = access;

    let persisted = if force {
        tmp.persist(path)
    } else {
        tmp.persist_noclobber(path)
    };
    persisted.map(drop).map_err(|e| {
        if !force && e.error.kind() == std::io::ErrorKind::AlreadyExists {
            PkiError::Exists {
                path: path.to_path_buf(),
            }
        } else {
            io_err(e.error)
        }
    })
}
