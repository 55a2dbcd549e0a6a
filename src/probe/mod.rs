//! Reachability of each terminal: every `probeIntervalMs` an ICMP echo, a TCP connect
//! to its port and, every few rounds, a TLS handshake verified exactly like real
//! traffic. The results feed a hysteresis tracker; its state is published on a
//! `watch` channel that the API shows and the transaction supervisors act on. When the
//! configured address is down and mDNS has seen the same `deviceId` elsewhere, the
//! monitor moves the terminal there — after the TLS handshake there verified.
//! Probing never blocks a transaction.

pub mod health;
pub mod icmp;
pub mod mdns;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::http::client::ClientError;
use crate::terminal::wire::now_rfc3339;
use crate::terminal::{AddressSource, TerminalClient};
pub use health::{Hysteresis, LinkState, Round, Tracker};
use icmp::{Echo, Icmp};
use mdns::Sightings;

/// A round also checks TLS every this many rounds (and on the first).
const TLS_EVERY_ROUNDS: u64 = 10;
/// A round's TLS check gets this many probe timeouts (at most `staticIptimeOut`): a
/// check that times out says nothing, and a link cut during it must not hold the
/// round (and so the detection) for the whole connect timeout.
const TLS_CHECK_PROBE_TIMEOUTS: u32 = 4;
/// Further TCP connects are started this far apart while earlier ones are pending,
/// so one lost SYN under random loss does not fail the round.
const TCP_STAGGER: Duration = Duration::from_millis(150);
const TCP_ATTEMPTS: u32 = 6;

#[derive(Clone, Debug)]
pub struct ProbeSettings {
    pub interval: Duration,
    /// `probeTimeoutMs`: the deadline of one probe's ICMP echo and TCP connect.
    pub timeout: Duration,
    /// `probeConfirmMs`: the pause before a quick re-probe while a disagreeing
    /// round is being confirmed (see [`Tracker::pending`]).
    pub confirm: Duration,
    /// `staticIptimeOut`: the deadline of the TLS handshake check.
    pub connect_timeout: Duration,
    pub hysteresis: Hysteresis,
}

/// What `/v1/terminals` shows of a terminal's link.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Health {
    pub device_id: String,
    pub state: LinkState,
    pub since: String,
    /// How many times the state changed since start-up.
    pub changes: u64,
    pub last_icmp_rtt_ms: Option<f64>,
    /// `ok`, `failed: …`, `timeout` or `unavailable`.
    pub icmp: String,
    pub tcp: String,
    pub tls: String,
    pub last_success: Option<String>,
    pub address: String,
    pub address_source: &'static str,
    pub certificate_expiry: Option<String>,
    /// TCP connect time of the last successful probe.
    pub last_tcp_rtt_ms: Option<f64>,
    /// TLS check time (connect and verified handshake) of the last successful check.
    pub last_tls_rtt_ms: Option<f64>,
    /// When each layer last succeeded, for `/metrics` (ages): icmp, tcp, tls.
    #[serde(skip)]
    pub last_ok_at: LayerTimes,
}

/// The last success of each probe layer.
#[derive(Clone, Copy, Debug, Default)]
pub struct LayerTimes {
    pub icmp: Option<Instant>,
    pub tcp: Option<Instant>,
    pub tls: Option<Instant>,
}

impl Health {
    pub fn initial(device_id: &str, address: SocketAddr) -> Health {
        Health {
            device_id: device_id.to_string(),
            state: LinkState::Unknown,
            since: now_rfc3339(),
            changes: 0,
            last_icmp_rtt_ms: None,
            icmp: "not checked yet".into(),
            tcp: "not checked yet".into(),
            tls: "not checked yet".into(),
            last_success: None,
            address: address.to_string(),
            address_source: AddressSource::Config.as_str(),
            certificate_expiry: None,
            last_tcp_rtt_ms: None,
            last_tls_rtt_ms: None,
            last_ok_at: LayerTimes::default(),
        }
    }
}

/// Starts the monitor of one terminal; the receiver always holds the latest health.
pub fn spawn(
    device_id: String,
    client: TerminalClient,
    icmp: Arc<Icmp>,
    settings: ProbeSettings,
    sightings: Option<Sightings>,
    shutdown: CancellationToken,
) -> (watch::Receiver<Health>, tokio::task::JoinHandle<()>) {
    let initial = Health::initial(&device_id, client.address().get().0);
    let (tx, rx) = watch::channel(initial);
    let handle = tokio::spawn(async move {
        let mut monitor = Monitor {
            client,
            icmp,
            settings,
            sightings,
            tracker: Tracker::default(),
            rounds: 0,
            publish: tx,
        };
        let mut next = Instant::now();
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = monitor.round() => {}
            }
            let now = Instant::now();
            // A failed (or, while down, a good) round is confirmed at once by quick
            // re-probes; the regular pace resumes from the decision.
            next = if monitor.tracker.pending() {
                now + monitor.settings.confirm.min(monitor.settings.interval)
            } else {
                next + monitor.settings.interval
            };
            if next < now {
                next = now;
            }
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = tokio::time::sleep_until(next) => {}
            }
        }
    });
    (rx, handle)
}

struct Monitor {
    client: TerminalClient,
    icmp: Arc<Icmp>,
    settings: ProbeSettings,
    sightings: Option<Sightings>,
    tracker: Tracker,
    rounds: u64,
    publish: watch::Sender<Health>,
}

impl Monitor {
    async fn round(&mut self) {
        let (addr, source) = self.client.address().get();
        // A round must end before the next one is due.
        let deadline = self
            .settings
            .interval
            .min(self.settings.connect_timeout)
            .min(self.settings.timeout);
        let tcp_started = Instant::now();
        let (echo, tcp) = tokio::join!(self.icmp.echo(addr.ip(), deadline), async {
            let r = tcp_probe(addr, deadline).await;
            (r, tcp_started.elapsed())
        });
        let (tcp, tcp_rtt) = tcp;
        let check_tls = tcp.is_ok() && self.rounds.is_multiple_of(TLS_EVERY_ROUNDS);
        self.rounds += 1;
        let tls_started = Instant::now();
        let tls = if check_tls {
            let limit = (self.settings.timeout * TLS_CHECK_PROBE_TIMEOUTS)
                .min(self.settings.connect_timeout);
            tokio::time::timeout(limit, self.client.http_to(addr).handshake())
                .await
                .ok()
        } else {
            None
        };
        let tls_rtt = tls_started.elapsed();
        // A TLS check that timed out says nothing the TCP probe did not; a rejected
        // certificate means the terminal is unusable.
        let tls_rejected = matches!(tls, Some(Err(ClientError::Tls { .. })));
        let service = tcp.is_ok() && !tls_rejected;
        let icmp_ok = echo.as_ref().map(|e| matches!(e, Echo::Reply(_)));
        let changed = self.tracker.observe(
            Round {
                service,
                icmp: icmp_ok,
            },
            self.settings.hysteresis,
        );
        let mut health = self.publish.borrow().clone();
        health.address = addr.to_string();
        health.address_source = source.as_str();
        health.icmp = match &echo {
            None => "unavailable".into(),
            Some(Echo::Reply(_)) => "ok".into(),
            Some(Echo::Timeout) => "timeout".into(),
            Some(Echo::Error(e)) => format!("failed: {e}"),
        };
        let now = Instant::now();
        if let Some(Echo::Reply(rtt)) = echo {
            health.last_icmp_rtt_ms = Some(rtt.as_secs_f64() * 1000.0);
            health.last_ok_at.icmp = Some(now);
        }
        if tcp.is_ok() {
            health.last_tcp_rtt_ms = Some(tcp_rtt.as_secs_f64() * 1000.0);
            health.last_ok_at.tcp = Some(now);
        }
        if let Some(Ok(_)) = &tls {
            health.last_tls_rtt_ms = Some(tls_rtt.as_secs_f64() * 1000.0);
            health.last_ok_at.tls = Some(now);
        }
        health.tcp = match &tcp {
            Ok(()) => "ok".into(),
            Err(e) => format!("failed: {e}"),
        };
        match &tls {
            Some(Ok(cert)) => {
                health.tls = "ok".into();
                health.certificate_expiry = cert.as_ref().and_then(|c| not_after(c));
            }
            Some(Err(e)) => health.tls = format!("failed: {e}"),
            None => {}
        }
        if service {
            health.last_success = Some(now_rfc3339());
        }
        if let Some(state) = changed {
            // The first verdict after start-up is not a change of the link.
            if health.state != LinkState::Unknown {
                health.changes += 1;
            }
            health.state = state;
            health.since = now_rfc3339();
            match state {
                LinkState::Down => {
                    tracing::warn!(device_id = %health.device_id, %addr, tcp = %health.tcp, "terminal is DOWN")
                }
                _ => {
                    tracing::info!(device_id = %health.device_id, %addr, state = state.as_str(), "terminal link state")
                }
            }
        }
        self.publish.send_replace(health);
        if self.tracker.state() == LinkState::Down {
            self.try_other_addresses(addr).await;
        }
    }

    /// While down: an address mDNS announced for this `deviceId` (or the configured one,
    /// after an earlier move) is adopted once a verified TLS handshake succeeds there.
    async fn try_other_addresses(&mut self, current: SocketAddr) {
        let Some(sightings) = &self.sightings else {
            return;
        };
        let device_id = self.publish.borrow().device_id.clone();
        let configured = self.client.address().configured();
        let mut candidates = sightings.addresses(&device_id);
        candidates.push(configured);
        for candidate in candidates.into_iter().filter(|a| *a != current) {
            match self.client.http_to(candidate).handshake().await {
                Ok(_) => {
                    let source = if candidate == configured {
                        AddressSource::Config
                    } else {
                        AddressSource::Mdns
                    };
                    tracing::warn!(
                        %device_id, from = %current, to = %candidate, source = source.as_str(),
                        "TERMINAL MOVED: using the address found by mDNS (its certificate verified)"
                    );
                    self.client.address().set(candidate, source);
                    self.publish.send_modify(|h| {
                        h.address = candidate.to_string();
                        h.address_source = source.as_str();
                    });
                    return;
                }
                Err(e) => {
                    tracing::warn!(%device_id, %candidate, error = %e, "mDNS candidate refused")
                }
            }
        }
    }
}

/// TCP connect within `deadline`, with staggered extra attempts; a refusal (RST) is
/// final at once.
async fn tcp_probe(addr: SocketAddr, deadline: Duration) -> Result<(), String> {
    let until = Instant::now() + deadline;
    let mut attempts = JoinSet::new();
    let mut started = 0;
    // All attempts fit in the deadline, however short the probe timeout is.
    let stagger_every = TCP_STAGGER.min(deadline / TCP_ATTEMPTS);
    loop {
        if started < TCP_ATTEMPTS && Instant::now() < until {
            attempts.spawn(tokio::time::timeout_at(until, TcpStream::connect(addr)));
            started += 1;
        }
        let stagger = tokio::time::sleep(stagger_every);
        tokio::select! {
            joined = attempts.join_next() => match joined {
                Some(Ok(Ok(Ok(_stream)))) => return Ok(()),
                Some(Ok(Ok(Err(e)))) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
                    return Err("connection refused".into());
                }
                Some(Ok(Ok(Err(e)))) => {
                    if attempts.is_empty() && started >= TCP_ATTEMPTS {
                        return Err(e.to_string());
                    }
                }
                Some(_) | None => {
                    if attempts.is_empty() && (started >= TCP_ATTEMPTS || Instant::now() >= until) {
                        return Err(format!("no answer within {} ms", deadline.as_millis()));
                    }
                }
            },
            _ = stagger, if started < TCP_ATTEMPTS => {}
        }
    }
}

fn not_after(cert: &rustls::pki_types::CertificateDer<'_>) -> Option<String> {
    let (_, parsed) = x509_parser::parse_x509_certificate(cert.as_ref()).ok()?;
    parsed
        .validity()
        .not_after
        .to_datetime()
        .format(&time::format_description::well_known::Rfc3339)
        .ok()
}
