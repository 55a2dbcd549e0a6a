//! Configuration: the vendor connector's mode F `config.json` as it is (strings for
//! numbers and booleans included) plus ecrlink's own keys, layered
//! defaults → JSON file → `ECRLINK_<KEY>` environment → command line, then read into
//! typed values in one pass that reports every problem. No other module reads the
//! environment or a config file. `config/examples/README.md` explains every key.

mod error;
mod fallback;
mod keys;
mod layers;
mod types;
mod validate;
mod values;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{Value, json};

pub use error::{ConfigError, Problem};
pub use fallback::MqttFallback;
pub use types::{Mode, Secret, StartTechnology};

use layers::Origin;

/// The effective configuration, every value typed and checked.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// Where the integrator API listens (`url` + `port`; "localhost" is 127.0.0.1, port 0
    /// asks for an ephemeral port).
    pub listen: SocketAddr,
    /// `SSL`: serve the API over HTTPS.
    pub ssl: bool,
    pub mode: Mode,
    /// `deviceId`: `[A-Za-z0-9._-]{1,64}`.
    pub device_id: String,
    /// `terminalIp`: the terminal's fixed address (port 3000 when not given).
    pub terminal_addr: SocketAddr,
    /// `staticIptimeOut`: deadline for TCP connect plus TLS handshake to the terminal.
    pub static_ip_timeout: Duration,
    /// `startTecnology`: whether the push fallback is wanted.
    pub start_technology: StartTechnology,
    /// `loopsBefore`: unanswered status polls in a row before switching transport.
    pub loops_before: u32,
    /// `timeStop`: the longest a sale may take before the POS gets `unknown`.
    pub time_stop: Duration,
    /// `retries`: most background reconciliation attempts after a sale ended `unknown`.
    pub retries: u32,
    /// `pollSeconds`: interval of status polls during a sale; shorter than `time_stop`.
    pub poll_interval: Duration,
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
    /// `notFoundHorizonSeconds`: the least time between the two `not_found` lookups
    /// that let a transaction end "never arrived".
    pub not_found_horizon: Duration,
}

/// `mdns: { "enabled": bool, "interfaces": ["eth0", …] }`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MdnsConfig {
    pub enabled: bool,
    pub interfaces: Vec<String>,
}

/// Command-line overrides keyed by JSON key name, e.g. `("port", json!(0))`; they beat
/// every other layer. A name that is not a key is reported like an unknown file key.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    pub values: Vec<(String, Value)>,
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
    let json = match std::fs::read(path) {
        Ok(bytes) => {
            let layer = layers::parse_json(&bytes).map_err(|message| ConfigError::Syntax {
                path: Some(path.to_path_buf()),
                message,
            })?;
            Some((layer, Origin::File(path)))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if path_is_explicit {
                return Err(ConfigError::NotFound {
                    path: path.to_path_buf(),
                });
            }
            None
        }
        Err(source) => {
            return Err(ConfigError::Io {
                path: path.to_path_buf(),
                source,
            });
        }
    };
    let (env, env_problems) = layers::process_env();
    build(json, &env, env_problems, overrides)
}

/// Like [`load`] but pure: the JSON is given as text (or absent) and the environment
/// explicitly, with the same `ECRLINK_` rules; the process environment is not read.
pub fn load_from(
    json_text: Option<&str>,
    env: &[(String, String)],
    overrides: &Overrides,
) -> Result<Config, ConfigError> {
    let json = match json_text {
        Some(text) => {
            let layer =
                layers::parse_json(text.as_bytes()).map_err(|message| ConfigError::Syntax {
                    path: None,
                    message,
                })?;
            Some((layer, Origin::Text))
        }
        None => None,
    };
    build(json, env, Vec::new(), overrides)
}

fn build(
    json: Option<(layers::JsonLayer, Origin<'_>)>,
    env: &[(String, String)],
    mut problems: Vec<Problem>,
    overrides: &Overrides,
) -> Result<Config, ConfigError> {
    let (merged, merge_problems) = layers::merge(json, env, &overrides.values);
    problems.extend(merge_problems);
    validate::validate(&merged, problems)
}

impl Config {
    /// The MQTT fallback if it is configured and `startTecnology` is not `"none"`.
    pub fn mqtt_fallback(&self) -> Option<&MqttFallback> {
        self.fallback
            .as_ref()
            .filter(|_| self.start_technology.wants_push_fallback())
    }

    /// The effective configuration in the seed's key names, as `ecrlink config check`
    /// prints it: secrets as "***", durations in seconds (`probeIntervalMs` in ms).
    /// Without the secrets it loads back into the same `Config`.
    pub fn effective(&self) -> Value {
        let mask = |secret: &Option<Secret>| secret.as_ref().map(|_| "***");
        // Whole seconds print as integers, as the seed writes them.
        let seconds = |d: Duration| match d.subsec_nanos() {
            0 => json!(d.as_secs()),
            _ => json!(d.as_secs_f64()),
        };
        let mut effective = json!({
            keys::PORT: self.listen.port(),
            keys::URL: self.listen.ip().to_string(),
            keys::TERMINAL_IP: self.terminal_addr.to_string(),
            keys::STATIC_IP_TIMEOUT: seconds(self.static_ip_timeout),
            keys::KEY: mask(&self.key),
            keys::MODE: self.mode.as_str(),
            keys::SSL: self.ssl,
            keys::START_TECHNOLOGY: self.start_technology.as_str(),
            keys::LOOPS_BEFORE: self.loops_before,
            keys::TIME_STOP: seconds(self.time_stop),
            keys::RETRIES: self.retries,
            keys::DEVICE_ID: self.device_id,
            keys::CERTS_DIR: self.certs_dir.to_string_lossy(),
            keys::POLL_SECONDS: seconds(self.poll_interval),
            keys::JOURNAL: self.journal.to_string_lossy(),
            keys::JOURNAL_RETENTION_DAYS: self.journal_retention_days,
            keys::PROBE_INTERVAL_MS: u64::try_from(self.probe_interval.as_millis()).unwrap_or(u64::MAX),
            keys::API_KEY: mask(&self.api_key),
            keys::PROBE_DOWN_AFTER: self.probe_down_after,
            keys::PROBE_UP_AFTER: self.probe_up_after,
            keys::MDNS: { "enabled": self.mdns.enabled, "interfaces": self.mdns.interfaces },
            keys::NOT_FOUND_HORIZON: seconds(self.not_found_horizon),
        });
        if let (Some(fallback), Value::Object(map)) = (&self.fallback, &mut effective) {
            map.insert(keys::FALLBACK.to_string(), fallback.effective());
        }
        effective
    }
}
