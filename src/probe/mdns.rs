//! mDNS: the simulator (and a terminal) announces `_instorepay._tcp.local.` with its
//! `deviceId`; the gateway browses for it on the interfaces the config names, so a
//! terminal whose "fixed" IP was changed can still be found. Whatever mDNS says, the
//! terminal is only trusted after TLS verification of the fixed name.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};

use mdns_sd::{IfKind, ServiceDaemon, ServiceEvent, ServiceInfo};
use tokio_util::sync::CancellationToken;

pub const TERMINAL_SERVICE: &str = "_instorepay._tcp.local.";
/// What the gateway announces (with `mdns.announce`), for POS apps to find its API.
pub const GATEWAY_SERVICE: &str = "_ecrlink._tcp.local.";

#[derive(Debug, thiserror::Error)]
#[error("mDNS: {0}")]
pub struct MdnsError(String);

fn err(e: impl std::fmt::Display) -> MdnsError {
    MdnsError(e.to_string())
}

/// A daemon limited to `interfaces` (all of them when empty — only for the
/// simulator inside its own network namespace).
fn daemon(interfaces: &[String]) -> Result<ServiceDaemon, MdnsError> {
    let daemon = ServiceDaemon::new().map_err(err)?;
    if !interfaces.is_empty() {
        // Right after creation: the daemon joins every interface until told otherwise.
        daemon.disable_interface(IfKind::All).map_err(err)?;
        for name in interfaces {
            daemon
                .enable_interface(IfKind::Name(name.clone()))
                .map_err(err)?;
        }
    }
    Ok(daemon)
}

/// Announces a terminal; keep the daemon alive as long as the announcement.
pub fn announce_terminal(
    device_id: &str,
    port: u16,
    version: &str,
    interfaces: &[String],
) -> Result<ServiceDaemon, MdnsError> {
    let daemon = daemon(interfaces)?;
    // Instance and host names must be unique on the link; the `deviceId` travels in the
    // TXT record, which is what the gateway matches on.
    let instance = format!("{device_id}-{}", std::process::id());
    let host = format!("{}.local.", instance.to_ascii_lowercase().replace('.', "-"));
    let props = [("deviceId", device_id), ("version", version)];
    let info = ServiceInfo::new(TERMINAL_SERVICE, &instance, &host, "", port, &props[..])
        .map_err(err)?
        .enable_addr_auto();
    daemon.register(info).map_err(err)?;
    Ok(daemon)
}

/// Announces the gateway's API on `interfaces` (never every interface); keep the
/// daemon alive as long as the announcement. TXT: `version`, `scheme` (https/http),
/// `api` (the path prefix).
pub fn announce_gateway(
    port: u16,
    https: bool,
    interfaces: &[String],
) -> Result<ServiceDaemon, MdnsError> {
    if interfaces.is_empty() {
        return Err(MdnsError("no interfaces to announce the gateway on".into()));
    }
    let daemon = daemon(interfaces)?;
    let instance = format!("ecrlink-{}", std::process::id());
    let host = format!("{instance}.local.");
    let scheme = if https { "https" } else { "http" };
    let props = [
        ("version", env!("CARGO_PKG_VERSION")),
        ("scheme", scheme),
        ("api", "/v1"),
    ];
    let info = ServiceInfo::new(GATEWAY_SERVICE, &instance, &host, "", port, &props[..])
        .map_err(err)?
        .enable_addr_auto();
    daemon.register(info).map_err(err)?;
    Ok(daemon)
}

/// What browsing has seen: device id → announced addresses.
#[derive(Clone, Default)]
pub struct Sightings {
    inner: Arc<Mutex<HashMap<String, Vec<SocketAddr>>>>,
}

impl Sightings {
    pub fn addresses(&self, device_id: &str) -> Vec<SocketAddr> {
        self.inner
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(device_id)
            .cloned()
            .unwrap_or_default()
    }

    /// Adds what an announcement says. Two hosts may claim the same `deviceId` (an
    /// impostor, or a stale record): every address is kept as a candidate, since only
    /// the TLS handshake decides which one is the terminal.
    fn record(&self, device_id: String, addrs: Vec<SocketAddr>) {
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let known = inner.entry(device_id).or_default();
        for addr in addrs {
            if !known.contains(&addr) {
                known.push(addr);
            }
        }
    }
}

/// Browses for terminals on `interfaces` until `shutdown`.
pub fn browse(interfaces: &[String], shutdown: CancellationToken) -> Result<Sightings, MdnsError> {
    let daemon = daemon(interfaces)?;
    let events = daemon.browse(TERMINAL_SERVICE).map_err(err)?;
    let sightings = Sightings::default();
    let seen = sightings.clone();
    tokio::spawn(async move {
        loop {
            let event = tokio::select! {
                _ = shutdown.cancelled() => break,
                e = events.recv_async() => match e {
                    Ok(e) => e,
                    Err(_) => break,
                },
            };
            if let ServiceEvent::ServiceResolved(info) = event {
                let Some(device_id) = info.get_property_val_str("deviceId") else {
                    continue;
                };
                let port = info.get_port();
                let mut addrs: Vec<SocketAddr> = info
                    .get_addresses()
                    .iter()
                    .map(|ip| SocketAddr::new(ip.to_ip_addr(), port))
                    .filter(|a| !matches!(a.ip(), IpAddr::V6(v6) if v6.is_unicast_link_local()))
                    .collect();
                addrs.sort();
                tracing::info!(%device_id, ?addrs, "mDNS: terminal announced");
                seen.record(device_id.to_string(), addrs);
            }
        }
        let _ = daemon.shutdown();
    });
    Ok(sightings)
}
