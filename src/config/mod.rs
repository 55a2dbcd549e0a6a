//! Configuration: the vendor connector's mode F `config.json` as it is (strings for
//! numbers and booleans included) plus ecrlink's own keys, among them `terminals`, the
//! lanes of a store. Loading has three steps: the layers (JSON file → `ECRLINK_*`
//! environment → command line, in `layers`), serde structs that take any value
//! (`schema`), and one validation pass that reports every problem with its key path,
//! value and source (`validate`). No other module reads the environment or a config
//! file. `config/examples/README.md` explains every key.

mod error;
mod layers;
mod schema;
mod types;
mod validate;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{Value, json};

pub use error::{ConfigError, Problem};
pub use types::{Mode, Profile, Secret, StartTechnology};

use crate::transport::mqtt::wire::BrokerUrl;

/// The effective configuration, every value typed and checked.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// Where the integrator API listens (`url` + `port`; "localhost" is 127.0.0.1, port 0
    /// asks for an ephemeral port).
    pub listen: SocketAddr,
    /// `SSL`: serve the API over HTTPS.
    pub ssl: bool,
    pub mode: Mode,
    /// `terminals`, or the one terminal of the seed's `terminalIp`/`deviceId`. Never
    /// empty; `deviceId`s and addresses are unique.
    pub terminals: Vec<Terminal>,
    /// `startTecnology`: whether the push fallback is wanted.
    pub start_technology: StartTechnology,
    /// `loopsBefore`: unanswered status polls in a row before switching transport.
    pub loops_before: u32,
    /// `timeStop`: the longest a sale may take before the POS gets `unknown`.
    pub time_stop: Duration,
    /// `retries`: most background reconciliation attempts after a sale ended `unknown`.
    pub retries: u32,
    pub certs_dir: PathBuf,
    /// `journal`: the SQLite file of the transaction journal.
    pub journal: PathBuf,
    pub journal_retention_days: u32,
    /// `probeIntervalMs`: interval of the reachability probes.
    pub probe_interval: Duration,
    /// `probeDownAfter` / `probeUpAfter`: failed rounds before `down`, good rounds before `up`.
    pub probe_down_after: u32,
    pub probe_up_after: u32,
    /// `mdns`: browse for terminals that moved (off unless enabled with interfaces).
    pub mdns: MdnsConfig,
    /// `apiKey`: when set, API callers must present it.
    pub api_key: Option<Secret>,
    /// The seed's `key` (vendor installation key): accepted for compatibility, unused,
    /// since ecrlink pairs by certificates.
    pub key: Option<Secret>,
    /// `fallback.mqtt`, as configured; [`Config::mqtt_fallback`] says whether it is on.
    pub fallback: Option<MqttFallback>,
}

/// One lane's terminal.
#[derive(Debug, Clone, PartialEq)]
pub struct Terminal {
    /// `deviceId`: `[A-Za-z0-9._-]{1,64}`; the POS names the terminal of a sale by it.
    pub device_id: String,
    /// `terminalIp`: the terminal's fixed address (port 3000 when not given).
    pub address: SocketAddr,
    pub profile: Profile,
    /// `staticIptimeOut` (its own or the top-level one): deadline for TCP connect plus
    /// TLS handshake.
    pub static_ip_timeout: Duration,
    /// `pollSeconds` (its own or the top-level one): interval of status polls in a sale.
    pub poll_interval: Duration,
    /// Whether this terminal uses the push fallback: it is on for the gateway and the
    /// entry does not say `"fallback": false`.
    pub fallback: bool,
}

/// `mdns: { "enabled": bool, "interfaces": ["eth0", …] }`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MdnsConfig {
    pub enabled: bool,
    pub interfaces: Vec<String>,
}

/// `fallback.mqtt`: the broker and the gateway's identity towards it.
#[derive(Debug, Clone, PartialEq)]
pub struct MqttFallback {
    pub broker: BrokerUrl,
    /// `clientId`: unique per gateway on a broker; default `ecrlink-<host name>`.
    pub client_id: String,
    /// Default `certsDir/client.pem` (CN `ecrlink-gateway`).
    pub client_cert: PathBuf,
    /// Default `certsDir/client.key`.
    pub client_key: PathBuf,
    /// Default `certsDir/ca.pem`.
    pub ca_cert: PathBuf,
}

/// Command-line values; they beat every other layer. `values` holds any top-level key
/// by its JSON name (a name that is not a key is reported like an unknown file key).
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
        let typed = typed
            .into_iter()
            .filter_map(|(k, v)| Some((k.to_string(), v?)));
        typed.chain(self.values.iter().cloned()).collect()
    }
}

/// Loads the configuration from `path`, the process's `ECRLINK_*` variables and
/// `overrides`. A missing file is `NotFound` when `path_is_explicit` (the user named
/// it); a missing default file means "defaults and environment only", and the caller
/// says so in its log.
pub fn load(
    path: &Path,
    path_is_explicit: bool,
    overrides: &Overrides,
) -> Result<Config, ConfigError> {
    let file = match std::fs::read(path) {
        Ok(bytes) => Some((bytes, format!("file {}", path.display()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !path_is_explicit => None,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(ConfigError::NotFound {
                path: path.to_path_buf(),
            });
        }
        Err(source) => {
            let path = path.to_path_buf();
            return Err(ConfigError::Io { path, source });
        }
    };
    let (env, problems) = layers::process_env();
    build(file, Some(path), &env, problems, overrides)
}

/// Like [`load`] but with the JSON given as text (or absent) and the environment given
/// explicitly, with the same `ECRLINK_` rules; the process environment is not read.
pub fn load_from(
    json_text: Option<&str>,
    env: &[(String, String)],
    overrides: &Overrides,
) -> Result<Config, ConfigError> {
    let file = json_text.map(|text| (text.as_bytes().to_vec(), "JSON text".to_string()));
    build(file, None, env, Vec::new(), overrides)
}

fn build(
    file: Option<(Vec<u8>, String)>,
    path: Option<&Path>,
    env: &[(String, String)],
    mut problems: Vec<Problem>,
    overrides: &Overrides,
) -> Result<Config, ConfigError> {
    let file = match file {
        Some((bytes, source)) => {
            let json = layers::parse_json(&bytes).map_err(|message| ConfigError::Syntax {
                path: path.map(Path::to_path_buf),
                message,
            })?;
            for key in json.duplicates {
                problems.push(Problem {
                    key,
                    value: None,
                    source: Some(source.clone()),
                    message: "appears more than once; only the last value would count".into(),
                });
            }
            Some((json.values, source))
        }
        None => None,
    };
    let mut layers = layers::Layers::new(file);
    layers.apply_env(env, &mut problems);
    layers.apply_cli(&overrides.all());
    validate::validate(layers, problems)
}

impl Config {
    /// The MQTT fallback if it is configured and `startTecnology` is not `"none"`.
    pub fn mqtt_fallback(&self) -> Option<&MqttFallback> {
        self.fallback
            .as_ref()
            .filter(|_| self.start_technology.wants_push_fallback())
    }

    /// The effective configuration in the seed's key names, as `ecrlink config check`
    /// prints it: every terminal with its own timings, secrets as "***", durations in
    /// seconds (`probeIntervalMs` in ms). Without the secrets it loads back into the
    /// same `Config`.
    pub fn effective(&self) -> Value {
        let mask = |secret: &Option<Secret>| secret.as_ref().map(|_| "***");
        // Whole seconds print as integers, as the seed writes them.
        let seconds = |d: Duration| match d.subsec_nanos() {
            0 => json!(d.as_secs()),
            _ => json!(d.as_secs_f64()),
        };
        let terminals: Vec<Value> = (self.terminals.iter())
            .map(|t| {
                json!({
                    "deviceId": t.device_id, "terminalIp": t.address.to_string(),
                    "profile": t.profile.as_str(), "staticIptimeOut": seconds(t.static_ip_timeout),
                    "pollSeconds": seconds(t.poll_interval), "fallback": t.fallback,
                })
            })
            .collect();
        let mut effective = json!({
            "port": self.listen.port(),
            "url": self.listen.ip().to_string(),
            "SSL": self.ssl,
            "mode": self.mode.as_str(),
            "key": mask(&self.key),
            "apiKey": mask(&self.api_key),
            "startTecnology": self.start_technology.as_str(),
            "loopsBefore": self.loops_before,
            "timeStop": seconds(self.time_stop),
            "retries": self.retries,
            "certsDir": self.certs_dir.to_string_lossy(),
            "journal": self.journal.to_string_lossy(),
            "journalRetentionDays": self.journal_retention_days,
            "probeIntervalMs": u64::try_from(self.probe_interval.as_millis()).unwrap_or(u64::MAX),
            "probeDownAfter": self.probe_down_after,
            "probeUpAfter": self.probe_up_after,
            "mdns": { "enabled": self.mdns.enabled, "interfaces": self.mdns.interfaces },
            "terminals": terminals,
        });
        if let Some(m) = &self.fallback {
            effective["fallback"] = json!({ "mqtt": {
                "url": m.broker.to_string(), "clientId": m.client_id,
                "clientCert": m.client_cert.to_string_lossy(),
                "clientKey": m.client_key.to_string_lossy(),
                "caCert": m.ca_cert.to_string_lossy(),
            }});
        }
        effective
    }
}
