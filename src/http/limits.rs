//! Per-client limits of the API beyond loopback: concurrent connections per IP and a
//! token bucket of transaction starts per IP. Loopback clients (a POS on the same PC,
//! benchmarks, contract runs) are exempt. Time is passed in, so the rules are tested
//! without clocks.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use crate::constants::LIMITS_TRACKED_IPS;

/// `maxConnectionsPerIp` and `startsPerSecondPerIp`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LimitSettings {
    pub connections_per_ip: usize,
    pub starts_per_second: u32,
}

#[derive(Debug)]
struct PerIp {
    connections: usize,
    tokens: f64,
    refilled: Instant,
}

/// The limits' state, shared by the accept loop and the request handlers.
#[derive(Debug)]
pub struct Limits {
    settings: LimitSettings,
    clients: Mutex<HashMap<IpAddr, PerIp>>,
    /// Connections answered 503 because their IP had too many open.
    pub refused_connections: AtomicU64,
    /// Starts answered 429 because their IP started too many.
    pub refused_starts: AtomicU64,
}

/// Held while a connection is open; frees its slot when dropped.
#[derive(Debug)]
pub struct Slot {
    limits: Arc<Limits>,
    ip: IpAddr,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut clients = self.limits.lock();
        if let Some(c) = clients.get_mut(&self.ip) {
            c.connections = c.connections.saturating_sub(1);
        }
    }
}

fn exempt(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V6(v6) => v6
            .to_ipv4_mapped()
            .map_or(v6.is_loopback(), |v4| v4.is_loopback()),
        ip => ip.is_loopback(),
    }
}

impl Limits {
    pub fn new(settings: LimitSettings) -> Arc<Limits> {
        Arc::new(Limits {
            settings,
            clients: Mutex::new(HashMap::new()),
            refused_connections: AtomicU64::new(0),
            refused_starts: AtomicU64::new(0),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<IpAddr, PerIp>> {
        self.clients.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn entry<'a>(
        &self,
        clients: &'a mut HashMap<IpAddr, PerIp>,
        ip: IpAddr,
        now: Instant,
    ) -> &'a mut PerIp {
        if clients.len() >= LIMITS_TRACKED_IPS && !clients.contains_key(&ip) {
            // Forget idle clients whose bucket has refilled: they are back to a fresh start.
            let rate = f64::from(self.settings.starts_per_second);
            clients.retain(|_, c| {
                let idle = now.saturating_duration_since(c.refilled).as_secs_f64();
                c.connections > 0 || c.tokens + idle * rate < rate
            });
        }
        clients.entry(ip).or_insert_with(|| PerIp {
            connections: 0,
            tokens: f64::from(self.settings.starts_per_second),
            refilled: now,
        })
    }

    /// A slot for a new connection from `ip`, `Ok(None)` for an exempt client, or `Err`
    /// when the IP already holds `connections_per_ip`.
    pub fn connect(self: &Arc<Self>, ip: IpAddr) -> Result<Option<Slot>, TooManyConnections> {
        if exempt(ip) {
            return Ok(None);
        }
        let mut clients = self.lock();
        let c = self.entry(&mut clients, ip, Instant::now());
        if c.connections >= self.settings.connections_per_ip {
            self.refused_connections.fetch_add(1, Ordering::Relaxed);
            return Err(TooManyConnections(self.settings.connections_per_ip));
        }
        c.connections += 1;
        Ok(Some(Slot {
            limits: self.clone(),
            ip,
        }))
    }

    /// Takes one transaction start from `ip`'s bucket at `now`.
    pub fn start(&self, ip: IpAddr, now: Instant) -> Result<(), StartRateExceeded> {
        if exempt(ip) {
            return Ok(());
        }
        let rate = f64::from(self.settings.starts_per_second);
        let mut clients = self.lock();
        let c = self.entry(&mut clients, ip, now);
        let elapsed = now.saturating_duration_since(c.refilled).as_secs_f64();
        c.tokens = (c.tokens + elapsed * rate).min(rate);
        c.refilled = now;
        if c.tokens < 1.0 {
            self.refused_starts.fetch_add(1, Ordering::Relaxed);
            return Err(StartRateExceeded(self.settings.starts_per_second));
        }
        c.tokens -= 1.0;
        Ok(())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error(
    "this client already has {0} connections open to the gateway (maxConnectionsPerIp); close idle ones or reuse them"
)]
pub struct TooManyConnections(pub usize);

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error(
    "this client started more than {0} transactions in a second (startsPerSecondPerIp); nothing was sent to the terminal, try again in a second"
)]
pub struct StartRateExceeded(pub u32);

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    const LAN: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(192, 168, 1, 30));

    fn limits() -> Arc<Limits> {
        Limits::new(LimitSettings {
            connections_per_ip: 2,
            starts_per_second: 3,
        })
    }

    #[test]
    fn connections_per_ip_are_capped_and_freed() {
        let l = limits();
        let a = l.connect(LAN).unwrap();
        let _b = l.connect(LAN).unwrap();
        assert_eq!(l.connect(LAN).unwrap_err(), TooManyConnections(2));
        let other = IpAddr::from([192, 168, 1, 31]);
        assert!(
            l.connect(other).unwrap().is_some(),
            "another client is not affected"
        );
        drop(a);
        assert!(
            l.connect(LAN).unwrap().is_some(),
            "a closed connection frees its slot"
        );
        assert_eq!(l.refused_connections.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn loopback_is_exempt() {
        let l = limits();
        let mapped: IpAddr = "::ffff:127.0.0.2".parse().unwrap();
        for ip in [
            IpAddr::from([127, 0, 0, 1]),
            IpAddr::from([127, 9, 9, 9]),
            "::1".parse().unwrap(),
            mapped,
        ] {
            for _ in 0..10 {
                assert!(l.connect(ip).unwrap().is_none());
                assert!(l.start(ip, Instant::now()).is_ok());
            }
        }
    }

    #[test]
    fn starts_refill_at_the_rate() {
        let l = limits();
        let t0 = Instant::now();
        for _ in 0..3 {
            l.start(LAN, t0).unwrap();
        }
        assert_eq!(l.start(LAN, t0), Err(StartRateExceeded(3)));
        // A third of a second gives one start back, not more.
        let t1 = t0 + Duration::from_millis(340);
        l.start(LAN, t1).unwrap();
        assert!(l.start(LAN, t1).is_err());
        // A long pause refills to the burst, never beyond.
        let t2 = t1 + Duration::from_secs(60);
        for _ in 0..3 {
            l.start(LAN, t2).unwrap();
        }
        assert!(l.start(LAN, t2).is_err());
        assert_eq!(l.refused_starts.load(Ordering::Relaxed), 3);
    }
}
