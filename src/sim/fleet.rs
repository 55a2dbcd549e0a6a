//! `ecrlink sim`: one simulated terminal, or a store's worth (`--devices N`), wired from
//! a certificates folder: the terminal's TLS identity, each device's MQTT identity
//! (`device-<id>.pem`), mDNS announcements.
//!
//! N devices listen on N consecutive ports starting at the one asked for (with port 0,
//! the first free run of N ports above an ephemeral one), so a caller that reads the
//! first address knows them all: device `i` (from 0) is at `port + i`. The first device
//! has the `deviceId` given; the others count up from its trailing number
//! (`ECRLINK-SIM-0001`, `-0002`, …) or get `-2`, `-3`, … appended when it has none.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::{Faults, SimMqtt, SimOptions, Simulator, StateError};
use crate::pki;
use crate::probe::mdns::{self, MdnsError};
use crate::tls::{self, TlsError};
use crate::transport::mqtt::wire::BrokerUrl;

/// Runs of consecutive free ports tried before giving up.
const BIND_ATTEMPTS: usize = 50;

#[derive(Clone, Debug)]
pub struct FleetOptions {
    /// The first device's address; port 0 picks a free run of ports.
    pub listen: SocketAddr,
    pub devices: u16,
    /// Holds terminal.pem/.key, and ca.pem plus device-<id>.pem/.key for MQTT.
    pub certs: PathBuf,
    pub device_id: String,
    pub card_time: Duration,
    /// With several devices, each keeps its own file: `<stem>-<deviceId>.<ext>`.
    pub state: Option<PathBuf>,
    pub faults: Faults,
    /// Announce each device over mDNS, on these interfaces (all when empty).
    pub mdns: Option<Vec<String>>,
    /// Also serve over MQTT through this broker.
    pub mqtt: Option<BrokerUrl>,
    /// The protocol every device serves over HTTPS.
    pub profile: super::SimProfile,
}

#[derive(Debug, thiserror::Error)]
pub enum FleetError {
    #[error("terminal certificate in {dir}: {source}")]
    Tls { dir: String, source: TlsError },
    #[error(
        "MQTT identity of {device} in {dir}: {source} (issue it with `ecrlink certs device --dir {dir} --device-id {device}`)"
    )]
    MqttIdentity {
        device: String,
        dir: String,
        source: TlsError,
    },
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: String,
        source: std::io::Error,
    },
    #[error("simulator state: {0}")]
    State(#[from] StateError),
    #[error("mDNS announcement: {0}")]
    Mdns(#[from] MdnsError),
    #[error("--devices must be from 1 to 1000")]
    Devices,
}

/// Simulators bound and ready: [`Fleet::run`] serves them.
pub struct Fleet {
    devices: Vec<(String, TcpListener, Simulator)>,
    tls: std::sync::Arc<rustls::ServerConfig>,
    /// Kept alive for as long as the announcements.
    _mdns: Vec<mdns_sd::ServiceDaemon>,
}

impl Fleet {
    pub async fn bind(opts: FleetOptions) -> Result<Fleet, FleetError> {
        if !(1..=1000).contains(&opts.devices) {
            return Err(FleetError::Devices);
        }
        let dir = opts.certs.display().to_string();
        let terminal = (
            opts.certs.join(pki::TERMINAL_CERT),
            opts.certs.join(pki::TERMINAL_KEY),
        );
        let tls =
            tls::server_config(&terminal.0, &terminal.1).map_err(|source| FleetError::Tls {
                dir: dir.clone(),
                source,
            })?;
        let listeners = bind_consecutive(opts.listen, opts.devices).await?;
        let version = format!("ecrlink-sim {}", env!("CARGO_PKG_VERSION"));
        let (mut devices, mut announcements) = (Vec::new(), Vec::new());
        for (i, listener) in listeners.into_iter().enumerate() {
            let id = nth_device_id(&opts.device_id, i);
            let mqtt = match &opts.mqtt {
                Some(broker) => Some(mqtt_identity(&opts.certs, &id, *broker)?),
                None => None,
            };
            let state_file = match (&opts.state, opts.devices) {
                (Some(path), 1) => Some(path.clone()),
                (Some(path), _) => Some(state_file_of(path, &id)),
                (None, _) => None,
            };
            if let Some(interfaces) = &opts.mdns {
                let port = listener.local_addr().map_or(0, |a| a.port());
                announcements.push(mdns::announce_terminal(&id, port, &version, interfaces)?);
            }
            let simulator = Simulator::new(SimOptions {
                device_id: id.clone(),
                card_time: opts.card_time,
                state_file,
                faults: opts.faults.clone(),
                mqtt,
                profile: opts.profile,
                ..SimOptions::default()
            })?;
            devices.push((id, listener, simulator));
        }
        Ok(Fleet {
            devices,
            tls,
            _mdns: announcements,
        })
    }

    /// Each device's `deviceId` and bound address, the first device first.
    pub fn terminals(&self) -> Vec<(String, SocketAddr)> {
        let addr = |l: &TcpListener| l.local_addr().expect("a bound listener has an address");
        self.devices
            .iter()
            .map(|(id, listener, _)| (id.clone(), addr(listener)))
            .collect()
    }

    /// Serves every device until `shutdown` fires.
    pub async fn run(self, shutdown: CancellationToken) {
        let tasks = TaskTracker::new();
        for (_, listener, simulator) in self.devices {
            tasks.spawn(simulator.run(listener, self.tls.clone(), shutdown.clone()));
        }
        tasks.close();
        tasks.wait().await;
    }
}

/// `n` listeners on consecutive ports from `listen` (a free run when its port is 0).
async fn bind_consecutive(listen: SocketAddr, n: u16) -> Result<Vec<TcpListener>, FleetError> {
    let bind = |addr: SocketAddr| async move {
        TcpListener::bind(addr)
            .await
            .map_err(|source| FleetError::Bind {
                addr: addr.to_string(),
                source,
            })
    };
    for _ in 0..BIND_ATTEMPTS {
        let first = bind(listen).await?;
        let base = first.local_addr().map_err(|source| FleetError::Bind {
            addr: listen.to_string(),
            source,
        })?;
        let mut all = vec![first];
        for i in 1..n {
            let Some(port) = base.port().checked_add(i) else {
                break;
            };
            match bind(SocketAddr::new(base.ip(), port)).await {
                Ok(listener) => all.push(listener),
                // A port asked for by number must be free; a picked run is tried again.
                Err(e) if listen.port() != 0 => return Err(e),
                Err(_) => break,
            }
        }
        if all.len() == usize::from(n) {
            return Ok(all);
        }
    }
    Err(FleetError::Bind {
        addr: format!("{listen} (no run of {n} free consecutive ports found)"),
        source: std::io::ErrorKind::AddrInUse.into(),
    })
}

/// The `i`-th device's id (from 0): the trailing number counted up, width kept.
pub fn nth_device_id(first: &str, i: usize) -> String {
    if i == 0 {
        return first.to_string();
    }
    let stem = first.trim_end_matches(|c: char| c.is_ascii_digit());
    let digits = &first[stem.len()..];
    match digits.parse::<u64>() {
        Ok(n) => format!("{stem}{:0width$}", n + i as u64, width = digits.len()),
        Err(_) => format!("{first}-{}", i + 1),
    }
}

fn state_file_of(path: &Path, device_id: &str) -> PathBuf {
    let stem = path.file_stem().unwrap_or_default().to_string_lossy();
    let name = match path.extension() {
        Some(ext) => format!("{stem}-{device_id}.{}", ext.to_string_lossy()),
        None => format!("{stem}-{device_id}"),
    };
    path.with_file_name(name)
}

/// The device's MQTT client identity: `device-<id>.pem`/`.key`, trusting `ca.pem`.
fn mqtt_identity(certs: &Path, device_id: &str, broker: BrokerUrl) -> Result<SimMqtt, FleetError> {
    let cert = certs.join(format!("device-{device_id}.pem"));
    let key = certs.join(format!("device-{device_id}.key"));
    let tls =
        tls::client_config(&certs.join(pki::CA_CERT), Some((&cert, &key))).map_err(|source| {
            FleetError::MqttIdentity {
                device: device_id.to_string(),
                dir: certs.display().to_string(),
                source,
            }
        })?;
    Ok(SimMqtt { broker, tls })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_ids_count_up_from_the_first() {
        assert_eq!(nth_device_id("ECRLINK-SIM-0001", 0), "ECRLINK-SIM-0001");
        assert_eq!(nth_device_id("ECRLINK-SIM-0001", 2), "ECRLINK-SIM-0003");
        assert_eq!(nth_device_id("LANE9", 1), "LANE10");
        assert_eq!(nth_device_id("TILL", 1), "TILL-2");
        let state = state_file_of(Path::new("/tmp/sim.json"), "X-2");
        assert_eq!(state, Path::new("/tmp/sim-X-2.json"));
    }

    #[tokio::test]
    async fn devices_get_consecutive_ports() {
        let all = bind_consecutive("127.0.0.1:0".parse().unwrap(), 5)
            .await
            .unwrap();
        let ports: Vec<u16> = all.iter().map(|l| l.local_addr().unwrap().port()).collect();
        let first = ports[0];
        assert_eq!(ports, (first..first + 5).collect::<Vec<_>>());
        // A fixed port in use is an error, not another port.
        let taken = SocketAddr::new([127, 0, 0, 1].into(), first);
        assert!(bind_consecutive(taken, 2).await.is_err());
    }
}
