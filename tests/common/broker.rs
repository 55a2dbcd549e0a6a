//! A real mosquitto for the MQTT tests: a config written into the World's folder with the
//! project's certificates, a loopback port held by the test ([`PortHold`]) for the broker's
//! whole life, killed on drop. The tests are `#[ignore]`d with the reason (`.ci/run` runs
//! them with `--include-ignored`); run without mosquitto, [`Broker::start`] fails with how
//! to get it, never a silent pass.
//!
//! Where mosquitto is, for the tests and `.ci/run` alike: `$TEST_MOSQUITTO` when set
//! (`.ci/run` sets it), else the first `mosquitto` on `$PATH`, then in `/usr/sbin`
//! (Debian's place, not on a normal user's PATH). Not `ECRLINK_MOSQUITTO`: the gateway
//! takes every `ECRLINK_*` variable as a config key and refuses unknown ones.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ecrlink::pki;
use tokio_rustls::TlsConnector;

use super::{PortHold, World};

/// The reason every MQTT test gives in `#[ignore = …]` (kept in step by hand: the
/// attribute needs a literal).
pub const NEEDS: &str = "needs mosquitto: .ci/run runs it (cargo test -- --include-ignored)";

pub struct Broker {
    pub addr: SocketAddr,
    _port: PortHold,
    conf: PathBuf,
    log: PathBuf,
    child: Option<Child>,
    certs: PathBuf,
}

impl Broker {
    /// The mosquitto binary, found as `.ci/run` finds it (see the module doc).
    pub fn binary() -> Result<PathBuf, String> {
        if let Some(path) = std::env::var_os("TEST_MOSQUITTO") {
            let path = PathBuf::from(path);
            return if is_executable(&path) {
                Ok(path)
            } else {
                Err(format!(
                    "TEST_MOSQUITTO={} is not an executable file",
                    path.display()
                ))
            };
        }
        let path = std::env::var_os("PATH").unwrap_or_default();
        std::env::split_paths(&path)
            .chain([PathBuf::from("/usr/sbin")])
            .map(|dir| dir.join("mosquitto"))
            .find(|p| is_executable(p))
            .ok_or_else(|| {
                "mosquitto is not installed (not on PATH nor in /usr/sbin; \
                 apt-get install mosquitto, or set TEST_MOSQUITTO; .ci/run installs it)"
                    .to_string()
            })
    }

    /// Issues the broker (127.0.0.1) and device certificates into the World's PKI,
    /// writes the config and starts mosquitto on a free loopback port.
    pub async fn start(world: &World) -> Broker {
        Broker::start_on(world, "127.0.0.1".parse().unwrap()).await
    }

    /// The same on `ip` (e.g. the test's end of a namespace LAN, so a simulator in
    /// the namespace reaches it too); its certificate names `ip` and 127.0.0.1.
    pub async fn start_on(world: &World, ip: std::net::IpAddr) -> Broker {
        let certs = world.certs();
        if !certs.join(pki::BROKER_CERT).exists() {
            let ips = [ip, "127.0.0.1".parse().unwrap()];
            pki::issue_broker(&certs, &ips, &[], false).unwrap();
        }
        let device = certs.join(format!("device-{}.pem", super::DEVICE));
        if !device.exists() {
            pki::issue_device(&certs, super::DEVICE, false).unwrap();
        }
        // mosquitto is a process of its own and binds by port number; the held port
        // (SO_REUSEADDR, like mosquitto's listener) stays ours across restarts.
        let hold = PortHold::on(std::net::SocketAddr::new(ip, 0));
        let addr = hold.addr;
        let port = addr.port();
        let acl = concat!(env!("CARGO_MANIFEST_DIR"), "/config/mosquitto/acl");
        let conf = world.path(&format!("mosquitto-{port}.conf"));
        std::fs::write(
            &conf,
            format!(
                "per_listener_settings false\nallow_anonymous false\n\
                 # Run as whoever runs the tests (mosquitto would switch from root to its own user).\n\
                 user {user}\n\
                 listener {port} {ip}\n\
                 cafile {ca}\ncertfile {cert}\nkeyfile {key}\n\
                 require_certificate true\nuse_identity_as_username true\n\
                 acl_file {acl}\npersistence false\nset_tcp_nodelay true\n\
                 log_dest stderr\nlog_type all\nconnection_messages true\n",
                user = current_user(),
                ca = certs.join(pki::CA_CERT).display(),
                cert = certs.join(pki::BROKER_CERT).display(),
                key = certs.join(pki::BROKER_KEY).display(),
            ),
        )
        .unwrap();
        let log = world.path(&format!("mosquitto-{port}.log"));
        let mut broker = Broker {
            addr,
            _port: hold,
            conf,
            log,
            child: None,
            certs,
        };
        broker.restart().await;
        broker
    }

    pub fn url(&self) -> String {
        format!("mqtts://{}", self.addr)
    }

    /// Starts (again) on the same port and waits until it completes a TLS handshake.
    pub async fn restart(&mut self) {
        self.stop();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        let binary = Self::binary().unwrap_or_else(|why| panic!("{why}; {NEEDS}"));
        let child = Command::new(binary)
            .arg("-c")
            .arg(&self.conf)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start mosquitto");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while !self.accepts_tls().await {
            if let Some(Ok(Some(status))) = self.child.as_mut().map(|c| c.try_wait()) {
                panic!("mosquitto exited with {status}:\n{}", self.log_text());
            }
            assert!(
                Instant::now() < deadline,
                "mosquitto did not come up:\n{}",
                self.log_text()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// SIGKILL: the broker vanishes without a goodbye, as in a power cut.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    async fn accepts_tls(&self) -> bool {
        let Ok(tcp) = tokio::net::TcpStream::connect(self.addr).await else {
            return false;
        };
        let tls = self.client_tls(pki::CLIENT_CERT, pki::CLIENT_KEY);
        let name = rustls::pki_types::ServerName::IpAddress(self.addr.ip().into());
        TlsConnector::from(tls).connect(name, tcp).await.is_ok()
    }

    /// A client TLS config trusting the project CA and presenting `cert`/`key` from the certs folder.
    pub fn client_tls(&self, cert: &str, key: &str) -> Arc<rustls::ClientConfig> {
        ecrlink::tls::client_config(
            &self.certs.join(pki::CA_CERT),
            Some((&self.certs.join(cert), &self.certs.join(key))),
        )
        .unwrap()
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.stop();
    }
}

fn current_user() -> String {
    std::env::var("USER")
        .ok()
        .filter(|u| !u.is_empty())
        .or_else(|| {
            let out = Command::new("id").arg("-un").output().ok()?;
            Some(String::from_utf8_lossy(&out.stdout).trim().to_string())
        })
        .unwrap_or_else(|| "root".into())
}

fn is_executable(path: &std::path::Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}
