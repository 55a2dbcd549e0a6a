//! Configuration: the vendor connector's mode F `config.json` as it is (numbers and booleans
//! as strings included) plus ecrlink's own keys. Three steps: the layers (file → `ECRLINK_*`
//! environment → command line), serde structs that take any value (`schema`), and one
//! validation pass reporting every problem with key path, value and source (`validate`).
//! No other module reads the environment or a config file; `config/examples/README.md`
//! explains every key.

mod error;
mod layers;
mod schema;
mod validate;

use std::io::ErrorKind;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::{fmt, time::Duration};

use serde_json::{Value, json};

pub use error::{ConfigError, Problem};

use crate::transport::mqtt::wire::BrokerUrl;

/// The effective configuration, every value typed and checked (the mode is always F).
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// `url` + `port` ("localhost" is 127.0.0.1; port 0 asks for a free one).
    pub listen: SocketAddr,
    pub ssl: bool,
    /// `terminals`, or the seed's `terminalIp`/`deviceId` as one; ids and addresses unique.
    pub terminals: Vec<Terminal>,
    pub start_technology: StartTechnology,
    pub loops_before: u32,
    pub time_stop: Duration,
    pub retries: u32,
    /// The least time between the two `not_found` lookups that end a sale as "never arrived".
    pub not_found_horizon: Duration,
    pub certs_dir: PathBuf,
    pub journal: PathBuf,
    pub journal_retention_days: u32,
    pub probe_interval: Duration,
    pub probe_down_after: u32,
    pub probe_up_after: u32,
    pub probe_timeout: Duration,
    /// The pause between quick re-probes that confirm a change.
    pub probe_confirm: Duration,
    pub mdns: MdnsConfig,
    pub api_key: Option<Secret>,
    /// The seed's vendor installation key: accepted, unused (ecrlink pairs by certificates).
    pub key: Option<Secret>,
    /// `fallback.mqtt` as configured; [`Config::mqtt_fallback`] says whether it is on.
    pub fallback: Option<MqttFallback>,
    /// When set, refunds, voids and operator resolutions need it.
    pub refund_key: Option<Secret>,
    pub client_auth: bool,
    pub metrics_public: bool,
    /// Normalized, lower case.
    pub cors_origins: Vec<String>,
    /// `maxConnectionsPerIp`, `startsPerSecondPerIp` (loopback clients are exempt).
    pub limits: crate::http::limits::LimitSettings,
}

/// One lane's terminal; unset timings are the top-level ones.
#[derive(Debug, Clone, PartialEq)]
pub struct Terminal {
    pub device_id: String,
    /// `terminalIp` (port 3000 when not given).
    pub address: SocketAddr,
    pub profile: Profile,
    /// Deadline for TCP connect plus TLS handshake.
    pub static_ip_timeout: Duration,
    pub poll_interval: Duration,
    /// On for the gateway, and not `"fallback": false` here.
    pub fallback: bool,
    /// The `comercia-pos` profile's own settings (`None` for `instore`).
    pub comercia: Option<ComerciaLane>,
    /// `terminalPin`: SPKI pins (`sha256/<base64>`).
    pub pins: Vec<String>,
    /// `terminalClientCert` and `terminalClientKey`, presented to the terminal.
    pub client_identity: Option<(PathBuf, PathBuf)>,
}

/// A `comercia-pos` terminal: its certificate's name, the only CA trusted for it (the vendor
/// SDK's), and the `X-SOURCE` value its payment app expects.
#[derive(Debug, Clone, PartialEq)]
pub struct ComerciaLane {
    pub server_name: String,
    pub ca_cert: PathBuf,
    pub source: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MdnsConfig {
    pub enabled: bool,
    /// The gateway announces itself (`_ecrlink._tcp.local.`) on `interfaces`; off by default.
    pub announce: bool,
    pub interfaces: Vec<String>,
}

/// `fallback.mqtt`: the broker and the gateway's identity towards it (files in `certsDir` by
/// default).
#[derive(Debug, Clone, PartialEq)]
pub struct MqttFallback {
    pub broker: BrokerUrl,
    /// Unique per gateway on a broker; default `ecrlink-<host name>`.
    pub client_id: String,
    pub client_cert: PathBuf,
    pub client_key: PathBuf,
    pub ca_cert: PathBuf,
}

/// Command-line values, which beat every other layer; `values` holds any top-level key by its
/// JSON name.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    pub port: Option<u16>,
    pub terminal_ip: Option<String>,
    pub journal: Option<PathBuf>,
    pub certs_dir: Option<PathBuf>,
    pub values: Vec<(String, Value)>,
}

impl Overrides {
    fn all(&self) -> Vec<(String, Value)> {
        let path = |p: &Option<PathBuf>| p.as_ref().map(|p| json!(p.display().to_string()));
        let typed = [
            ("port", self.port.map(Value::from)),
            ("terminalIp", self.terminal_ip.clone().map(Value::from)),
            ("journal", path(&self.journal)),
            ("certsDir", path(&self.certs_dir)),
        ];
        let typed = typed.into_iter().filter_map(|(k, v)| Some((k.into(), v?)));
        typed.chain(self.values.iter().cloned()).collect()
    }
}

/// Loads `path`, the process's `ECRLINK_*` variables and `cli`. A missing file is `NotFound`
/// when `path_is_explicit`; a missing default file means defaults and environment only.
pub fn load(path: &Path, path_is_explicit: bool, cli: &Overrides) -> Result<Config, ConfigError> {
    let bytes = match std::fs::read(path) {
        Ok(bytes) => Some(bytes),
        Err(e) if e.kind() != ErrorKind::NotFound => {
            return Err(ConfigError::Io {
                path: path.into(),
                source: e,
            });
        }
        Err(_) if path_is_explicit => return Err(ConfigError::NotFound { path: path.into() }),
        Err(_) => None,
    };
    let source = format!("file {}", path.display());
    let file = bytes.as_deref().map(|b| (b, source));
    let (env, problems) = layers::process_env();
    layers::build(file, Some(path), &env, problems, cli.all())
}

/// Like [`load`], with the JSON as text (or absent) and the environment given, not read.
pub fn load_from(
    json_text: Option<&str>,
    env: &[(String, String)],
    cli: &Overrides,
) -> Result<Config, ConfigError> {
    let file = json_text.map(|text| (text.as_bytes(), "JSON text".into()));
    layers::build(file, None, env, Vec::new(), cli.all())
}

impl Config {
    /// The MQTT fallback if configured and `startTecnology` is not `"none"`.
    pub fn mqtt_fallback(&self) -> Option<&MqttFallback> {
        let on = self.start_technology.wants_push_fallback();
        self.fallback.as_ref().filter(|_| on)
    }

    /// The effective configuration in the seed's key names, as `ecrlink config check` prints
    /// it: every terminal with its own timings, secrets as "***", durations in seconds (or
    /// ms where the key says so). Without the secrets it loads back into the same `Config`.
    pub fn effective(&self) -> Value {
        let mask = |secret: &Option<Secret>| secret.as_ref().map(|_| "***");
        // Whole seconds print as integers, as the seed writes them.
        let seconds = |d: Duration| match d.subsec_nanos() {
            0 => json!(d.as_secs()),
            _ => json!(d.as_secs_f64()),
        };
        let ms = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        let path = |p: &PathBuf| p.to_string_lossy().into_owned();
        let terminal = |t: &Terminal| {
            let (c, id) = (t.comercia.as_ref(), t.client_identity.as_ref());
            let mut view = json!({
                "deviceId": t.device_id, "terminalIp": t.address.to_string(),
                "profile": t.profile.as_str(), "staticIptimeOut": seconds(t.static_ip_timeout),
                "pollSeconds": seconds(t.poll_interval), "fallback": t.fallback,
                "serverName": c.map(|c| &c.server_name), "caCert": c.map(|c| path(&c.ca_cert)),
                "source": c.map(|c| &c.source), "terminalPin": (!t.pins.is_empty()).then_some(&t.pins),
                "terminalClientCert": id.map(|i| path(&i.0)), "terminalClientKey": id.map(|i| path(&i.1)),
            });
            // A lane shows only the keys it has.
            view.as_object_mut()
                .expect("an object")
                .retain(|_, v| !v.is_null());
            view
        };
        let mut effective = json!({
            "port": self.listen.port(), "url": self.listen.ip().to_string(), "SSL": self.ssl,
            "mode": "F", "key": mask(&self.key), "apiKey": mask(&self.api_key),
            "startTecnology": self.start_technology.as_str(),
            "loopsBefore": self.loops_before, "timeStop": seconds(self.time_stop),
            "retries": self.retries, "notFoundHorizonSeconds": seconds(self.not_found_horizon),
            "certsDir": path(&self.certs_dir), "journal": path(&self.journal),
            "journalRetentionDays": self.journal_retention_days,
            "probeIntervalMs": ms(self.probe_interval), "probeDownAfter": self.probe_down_after,
            "probeUpAfter": self.probe_up_after, "probeTimeoutMs": ms(self.probe_timeout),
            "probeConfirmMs": ms(self.probe_confirm),
            "mdns": { "enabled": self.mdns.enabled, "announce": self.mdns.announce, "interfaces": self.mdns.interfaces },
            "terminals": self.terminals.iter().map(terminal).collect::<Vec<_>>(),
            "refundKey": mask(&self.refund_key), "clientAuth": self.client_auth,
            "metricsPublic": self.metrics_public, "corsOrigins": self.cors_origins,
            "maxConnectionsPerIp": self.limits.connections_per_ip,
            "startsPerSecondPerIp": self.limits.starts_per_second,
        });
        if let Some(m) = &self.fallback {
            effective["fallback"] = json!({ "mqtt": {
                "url": m.broker.to_string(), "clientId": m.client_id, "clientCert": path(&m.client_cert),
                "clientKey": path(&m.client_key), "caCert": path(&m.ca_cert),
            }});
        }
        effective
    }
}

/// Never printed: `Debug` and `Display` show `***`; [`Secret::expose`] reads it on purpose.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// The seed's `startTecnology` (the vendor's spelling): any value but `none` asks for the
/// push fallback over MQTT when one is configured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartTechnology {
    None,
    Pushy,
    Signalr,
    Mqtt,
}

impl StartTechnology {
    const ALL: [Self; 4] = [Self::None, Self::Pushy, Self::Signalr, Self::Mqtt];

    pub fn as_str(self) -> &'static str {
        ["none", "pushy", "signalr", "mqtt"][self as usize]
    }

    pub fn wants_push_fallback(self) -> bool {
        self != StartTechnology::None
    }
}

/// The protocol a terminal speaks: the InStore REST API (DESIGN.md) or the payment app's own
/// (`comercia-pos`, `terminal::comercia`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Profile {
    #[default]
    Instore,
    ComerciaPos,
}

impl Profile {
    const ALL: [Self; 2] = [Profile::Instore, Profile::ComerciaPos];

    pub fn as_str(self) -> &'static str {
        ["instore", "comercia-pos"][self as usize]
    }
}
