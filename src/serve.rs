//! `ecrlink serve`: wires the configuration into a running gateway: TLS material,
//! journal (with recovery and retention), per terminal (lane) its client, probe monitor,
//! transports and router (where new work goes), one MQTT connection for all lanes, and the API server.

use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::api::{self, Api, TerminalInfo};
use crate::config::{Config, Terminal};
use crate::journal::{Journal, JournalError};
use crate::pki;
use crate::probe::icmp::Icmp;
use crate::probe::{self, Hysteresis, ProbeSettings, mdns};
use crate::terminal::comercia::{self, Records};
use crate::terminal::{TerminalAddress, TerminalClient};
use crate::tls::{self, TlsError};
use crate::transport::Transport;
use crate::transport::direct::Direct;
use crate::transport::mqtt::MqttLink;
use crate::txn::router::Router;
use crate::txn::{Payments, TerminalLink, Timing};

/// How often old journal entries are pruned while running.
const PRUNE_EVERY: Duration = Duration::from_secs(24 * 3600);

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("TLS material in {dir}: {source} (create it with `ecrlink certs init --dir {dir}`)")]
    Tls { dir: String, source: TlsError },
    #[error(
        "MQTT fallback to {broker}: {source} (issue the files with `ecrlink certs init`, or set fallback.mqtt.clientCert/clientKey/caCert)"
    )]
    Fallback { broker: String, source: TlsError },
    #[error(transparent)]
    Journal(#[from] JournalError),
    #[error(transparent)]
    VendorCa(#[from] comercia::lane::LaneTlsError),
    #[error(transparent)]
    Exposure(#[from] api::client_auth::ExposureError),
    #[error(transparent)]
    Pki(#[from] pki::PkiError),
}

/// A gateway ready to serve: journal open, unfinished transactions resumed.
pub struct Gateway {
    api: Arc<Api>,
    tls: Option<Arc<rustls::ServerConfig>>,
    retention_days: u32,
    /// Each terminal's probe monitor and, with a fallback, its router.
    monitors: Vec<tokio::task::JoinHandle<()>>,
    mqtt_link: Option<Arc<MqttLink>>,
    /// `mdns.announce`: the interfaces to announce the gateway on.
    announce: Option<Vec<String>>,
}

/// What every lane shares: the private CA, ICMP sockets, mDNS sightings, the broker.
struct Shared<'a> {
    config: &'a Config,
    terminal_tls: Arc<rustls::ClientConfig>,
    icmp: Arc<Icmp>,
    sightings: Option<mdns::Sightings>,
    mqtt: Option<Arc<MqttLink>>,
    journal: Journal,
    shutdown: CancellationToken,
    /// `comercia-pos` lanes: each one's own CA, and the journal view of its transport.
    lane_tls: std::collections::HashMap<String, Arc<rustls::ClientConfig>>,
    records: Records,
}

impl Gateway {
    /// Loads TLS material, opens the journal, starts every terminal's monitors and
    /// resumes every unfinished transaction (each holds its terminal until reconciled).
    pub async fn prepare(
        config: &Config,
        shutdown: CancellationToken,
    ) -> Result<Gateway, ServeError> {
        let dir = &config.certs_dir;
        let tls_err = |source| ServeError::Tls {
            dir: dir.display().to_string(),
            source,
        };
        let terminal_tls = tls::client_config(&dir.join(pki::CA_CERT), None).map_err(tls_err)?;
        api::client_auth::check_exposure(config)?;
        let expiries = api::client_auth::check_files(config)?;
        let api_tls = api::client_auth::server_tls(config).map_err(tls_err)?;
        if !config.ssl {
            tracing::warn!(
                "\"SSL\": \"False\": the API is plain HTTP; use it only on a trusted host"
            );
        }
        let journal_path = config.journal.clone();
        let journal = tokio::task::spawn_blocking(move || Journal::open(&journal_path))
            .await
            .map_err(|e| JournalError::Task(e.to_string()))??;
        let sightings = if config.mdns.enabled {
            match mdns::browse(&config.mdns.interfaces, shutdown.clone()) {
                Ok(s) => Some(s),
                Err(e) => {
                    tracing::error!(error = %e, "mDNS browsing is off");
                    None
                }
            }
        } else {
            None
        };
        // One connection for every lane, and none when every lane says `"fallback": false`.
        let wanted = config.terminals.iter().any(|t| t.fallback);
        let mqtt = match (config.mqtt_fallback().filter(|_| wanted), &config.fallback) {
            (Some(mqtt), _) => {
                let identity = (mqtt.client_cert.as_path(), mqtt.client_key.as_path());
                let tls = tls::client_config(&mqtt.ca_cert, Some(identity)).map_err(|source| {
                    ServeError::Fallback {
                        broker: mqtt.broker.to_string(),
                        source,
                    }
                })?;
                tracing::info!(broker = %mqtt.broker, client_id = %mqtt.client_id, "MQTT fallback configured");
                Some(MqttLink::start(
                    mqtt.broker,
                    tls,
                    &mqtt.client_id,
                    shutdown.clone(),
                ))
            }
            (None, Some(_)) => {
                tracing::warn!(
                    "\"fallback\" is configured but \"startTecnology\" is \"none\": the MQTT fallback is off"
                );
                None
            }
            (None, None) => None,
        };
        let shared = Shared {
            config,
            terminal_tls,
            icmp: Arc::new(Icmp::open()),
            sightings,
            mqtt,
            journal: journal.clone(),
            shutdown: shutdown.clone(),
            lane_tls: comercia::lane::lane_tls(&config.terminals)?,
            records: comercia::lane::records(journal.clone()),
        };
        let (mut links, mut terminals, mut monitors) = (Vec::new(), Vec::new(), Vec::new());
        for terminal in &config.terminals {
            // A lane that pins its terminal or shows it a client certificate has its own.
            let ca = match &terminal.comercia {
                Some(lane) => lane.ca_cert.clone(),
                None => dir.join(pki::CA_CERT),
            };
            let own_tls = crate::pin::lane_config(&ca, terminal);
            let tls = own_tls.map_err(tls_err)?;
            let (link, info) = shared.lane(terminal, tls, &mut monitors);
            links.push(link);
            terminals.push(info);
        }
        let timing = Timing {
            // Only for links without their own: every lane here sets its `pollSeconds`.
            poll: config.terminals[0].poll_interval,
            time_stop: config.time_stop,
            loops_before: config.loops_before,
            retries: config.retries,
            not_found_horizon: config.not_found_horizon,
        };
        let payments = Payments::new(journal, timing, links, shutdown);
        let resumed = payments.recover().await?;
        if resumed > 0 {
            tracing::warn!(resumed, "unfinished transactions resumed from the journal");
        }
        let mut api = Api::new(payments, terminals, api::client_auth::access(config));
        api.cert_expiry = expiries;
        api.limits = crate::http::limits::Limits::new(config.limits);
        Ok(Gateway {
            api: Arc::new(api),
            tls: api_tls,
            retention_days: config.journal_retention_days,
            monitors,
            mqtt_link: shared.mqtt,
            announce: config.mdns.announce.then(|| config.mdns.interfaces.clone()),
        })
    }

    pub fn is_https(&self) -> bool {
        self.tls.is_some()
    }

    /// Serves until `shutdown` fires, then waits for every transaction task to stop
    /// (their state is in the journal for the next start).
    pub async fn run(self, listener: TcpListener, shutdown: CancellationToken) {
        let payments = self.api.payments.clone();
        let pruner = tokio::spawn(prune_periodically(
            payments.journal().clone(),
            self.retention_days,
            shutdown.clone(),
        ));
        let port = listener.local_addr().map(|a| a.port()).unwrap_or_default();
        let announcement = self.announce.as_ref().and_then(|interfaces| {
            mdns::announce_gateway(port, self.tls.is_some(), interfaces)
                .inspect(|_| {
                    tracing::info!(
                        ?interfaces,
                        port,
                        "mDNS: gateway announced as _ecrlink._tcp"
                    )
                })
                .inspect_err(|e| tracing::error!(error = %e, "mDNS: gateway not announced"))
                .ok()
        });
        api::run(listener, self.tls, self.api, shutdown).await;
        if let Some(daemon) = announcement {
            let _ = daemon.shutdown();
        }
        payments.wait_stopped().await;
        let _ = pruner.await;
        for monitor in self.monitors {
            let _ = monitor.await;
        }
        if let Some(link) = self.mqtt_link {
            link.stopped().await;
        }
    }
}

impl Shared<'_> {
    /// One lane: the terminal's client, its probe monitor, its transports (direct, then
    /// the shared broker unless the entry says `"fallback": false`) and router.
    fn lane(
        &self,
        terminal: &Terminal,
        tls: Option<Arc<rustls::ClientConfig>>,
        monitors: &mut Vec<tokio::task::JoinHandle<()>>,
    ) -> (TerminalLink, TerminalInfo) {
        let call_timeout = status_call_timeout(terminal.poll_interval);
        // Its own (pins, client certificate), else its profile's CA, else ecrlink's CA.
        let tls = tls
            .or_else(|| self.lane_tls.get(&terminal.device_id).cloned())
            .unwrap_or_else(|| self.terminal_tls.clone());
        let mut client = TerminalClient::new(
            TerminalAddress::new(terminal.address),
            tls,
            terminal.static_ip_timeout,
        )
        .with_call_timeout(call_timeout);
        if let Some(lane) = &terminal.comercia {
            client = comercia::lane::with_name(client, lane);
        }
        let settings = ProbeSettings {
            interval: self.config.probe_interval,
            timeout: self.config.probe_timeout,
            confirm: self.config.probe_confirm,
            connect_timeout: terminal.static_ip_timeout,
            hysteresis: Hysteresis {
                down_after: self.config.probe_down_after,
                up_after: self.config.probe_up_after,
            },
        };
        let (health, monitor) = probe::spawn(
            terminal.device_id.clone(),
            client.clone(),
            self.icmp.clone(),
            settings,
            self.sightings.clone(),
            self.shutdown.clone(),
        );
        monitors.push(monitor);
        let mut transports: Vec<Arc<dyn Transport>> = vec![Arc::new(Direct::new(client.clone()))];
        let mut comercia_api = None;
        if let Some(lane) = &terminal.comercia {
            let records = self.records.clone();
            let (api, transport) =
                comercia::lane::transport(&client, terminal, lane, call_timeout, records);
            (transports, comercia_api) = (vec![transport], Some(api));
        }
        if let Some(mqtt) = self
            .mqtt
            .as_ref()
            .filter(|_| terminal.fallback && terminal.comercia.is_none())
        {
            transports.push(Arc::new(mqtt.transport(&terminal.device_id, call_timeout)));
        }
        let mut link =
            TerminalLink::new(terminal.device_id.clone(), transports).with_health(health.clone());
        link.poll = Some(terminal.poll_interval);
        link.delivery_window = terminal.static_ip_timeout;
        link.other_addresses = self.sightings.is_some();
        if link.transports.len() > 1 {
            let router = Router {
                device_id: terminal.device_id.clone(),
                transports: link.transports.clone(),
                health: health.clone(),
                route: link.active.clone(),
                journal: self.journal.clone(),
                interval: self.config.probe_interval,
            };
            monitors.push(tokio::spawn(router.run(self.shutdown.clone())));
        }
        let info = TerminalInfo {
            device_id: terminal.device_id.clone(),
            health,
            comercia: comercia_api,
        };
        (link, info)
    }
}

/// Status polls should fail well before the next one is due, but never faster than
/// a TLS handshake on a busy LAN.
fn status_call_timeout(poll: Duration) -> Duration {
    poll.clamp(
        Duration::from_secs(1),
        crate::constants::TERMINAL_SHORT_CALL_TIMEOUT,
    )
}

async fn prune_periodically(journal: Journal, days: u32, shutdown: CancellationToken) {
    loop {
        match prune(&journal, days).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(pruned = n, days, "old journal entries pruned"),
            Err(e) => tracing::warn!(error = %e, "journal pruning failed"),
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(PRUNE_EVERY) => {}
        }
    }
}

/// Deletes final transactions older than `days` days.
pub async fn prune(journal: &Journal, days: u32) -> Result<usize, JournalError> {
    let cutoff = time::OffsetDateTime::now_utc() - time::Duration::days(days as i64);
    // `created_at` has three fraction digits now, but journals written before hold as
    // few as needed ("…:01.12Z", "…:01Z"), which sort as text only to the second. So the
    // cutoff is the start of its second with a fixed ".000": every earlier second
    // compares below it, and nothing from the cutoff's own second (or later) does.
    let whole = time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]");
    let cutoff = cutoff
        .format(&whole)
        .map_err(|e| JournalError::Corrupt(e.to_string()))?;
    journal.prune_before(format!("{cutoff}.000Z")).await
}
