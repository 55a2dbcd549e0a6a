//! The typed pass over the merged map: every key read into its type, every problem
//! collected (not just the first), each naming the key, the bad value and its source.
//!
//! The seed writes numbers and booleans as strings ("port": "3000", "SSL": "True") and
//! environment values are always strings: `values` reads them whichever way they come.

use std::net::SocketAddr;
use std::time::Duration;

use serde_json::Value;

use super::Config;
use super::error::{ConfigError, Problem};
use super::keys::{self, *};
use super::layers::Merged;
use super::types::{Mode, Secret, StartTechnology};
use super::values::{
    boolean, number, parse_device_id, parse_listen_ip, parse_path, parse_terminal_addr,
    scalar_text, whole_number,
};

/// Bounds of the timing keys. The upper bounds of `timeStop` and `probeIntervalMs` are
/// only there to keep `Instant + duration` far from overflow.
const MAX_STATIC_IP_TIMEOUT_SECS: f64 = 120.0;
const MAX_TIME_STOP_SECS: f64 = 86_400.0;
const MAX_POLL_SECS: f64 = 300.0;
const MAX_NOT_FOUND_HORIZON_SECS: f64 = 300.0;
const MIN_PROBE_INTERVAL_MS: u64 = 100;
const MAX_PROBE_INTERVAL_MS: u64 = 3_600_000;
const MAX_PROBE_ROUNDS: u64 = 100;

pub(super) fn validate(merged: &Merged, problems: Vec<Problem>) -> Result<Config, ConfigError> {
    let mut r = Reader { merged, problems };
    r.unknown_keys();

    let port = r
        .integer(PORT, 0, u64::from(u16::MAX))
        .and_then(|n| u16::try_from(n).ok());
    let listen_ip = r.parsed(URL, parse_listen_ip);
    let ssl = r.boolean(SSL);
    let mode = r.parsed(MODE, Mode::parse);
    let device_id = r.parsed(DEVICE_ID, parse_device_id);
    let terminal_addr = r.parsed(TERMINAL_IP, parse_terminal_addr);
    let static_ip_timeout = r.seconds(STATIC_IP_TIMEOUT, MAX_STATIC_IP_TIMEOUT_SECS);
    let start_technology = r.parsed(START_TECHNOLOGY, StartTechnology::parse);
    let loops_before = r.count(LOOPS_BEFORE);
    let time_stop = r.seconds(TIME_STOP, MAX_TIME_STOP_SECS);
    let retries = r.count(RETRIES);
    let poll_interval = r.seconds(POLL_SECONDS, MAX_POLL_SECS);
    if let (Some(poll), Some(stop)) = (poll_interval, time_stop)
        && poll >= stop
    {
        let message = format!(
            "must be shorter than timeStop ({} s): a sale would time out before its first \
             status poll",
            stop.as_secs_f64()
        );
        r.problem(POLL_SECONDS, message);
    }
    let certs_dir = r.parsed(CERTS_DIR, parse_path);
    let journal = r.parsed(JOURNAL, parse_path);
    let journal_retention_days = r.count(JOURNAL_RETENTION_DAYS);
    let probe_interval = r
        .integer(
            PROBE_INTERVAL_MS,
            MIN_PROBE_INTERVAL_MS,
            MAX_PROBE_INTERVAL_MS,
        )
        .map(Duration::from_millis);
    let api_key = r.secret(API_KEY);
    let key = r.secret(KEY);
    let probe_down_after = r
        .integer(PROBE_DOWN_AFTER, 1, MAX_PROBE_ROUNDS)
        .map(|n| n as u32);
    let probe_up_after = r
        .integer(PROBE_UP_AFTER, 1, MAX_PROBE_ROUNDS)
        .map(|n| n as u32);
    let mdns = r.mdns();
    let not_found_horizon = r.seconds(NOT_FOUND_HORIZON, MAX_NOT_FOUND_HORIZON_SECS);
    if not_found_horizon.is_some_and(|h| h < Duration::from_secs(1)) {
        r.problem(
            NOT_FOUND_HORIZON,
            "must be at least 1 s: \"never arrived\" needs two lookups some time apart".to_string(),
        );
    }
    let fallback = super::fallback::read(
        merged.values.get(FALLBACK),
        merged.source(FALLBACK),
        certs_dir.as_deref(),
        &mut r.problems,
    );

    match (
        port,
        listen_ip,
        ssl,
        mode,
        device_id,
        terminal_addr,
        static_ip_timeout,
        start_technology,
        loops_before,
        time_stop,
        retries,
        poll_interval,
        certs_dir,
        journal,
        journal_retention_days,
        probe_interval,
        api_key,
        key,
        fallback,
    ) {
        (
            Some(port),
            Some(listen_ip),
            Some(ssl),
            Some(mode),
            Some(device_id),
            Some(terminal_addr),
            Some(static_ip_timeout),
            Some(start_technology),
            Some(loops_before),
            Some(time_stop),
            Some(retries),
            Some(poll_interval),
            Some(certs_dir),
            Some(journal),
            Some(journal_retention_days),
            Some(probe_interval),
            Some(api_key),
            Some(key),
            Some(fallback),
        ) if r.problems.is_empty() => Ok(Config {
            listen: SocketAddr::new(listen_ip, port),
            ssl,
            mode,
            device_id,
            terminal_addr,
            static_ip_timeout,
            start_technology,
            loops_before,
            time_stop,
            retries,
            poll_interval,
            certs_dir,
            journal,
            journal_retention_days,
            probe_interval,
            api_key,
            key,
            probe_down_after: probe_down_after.unwrap_or_default(),
            probe_up_after: probe_up_after.unwrap_or_default(),
            mdns: mdns.unwrap_or_default(),
            fallback,
            not_found_horizon: not_found_horizon
                .unwrap_or(crate::constants::DEFAULT_NOT_FOUND_HORIZON),
        }),
        _ => {
            debug_assert!(!r.problems.is_empty(), "a key failed without a problem");
            Err(ConfigError::Invalid(r.problems))
        }
    }
}

/// Reads keys out of the merged map; every `None` it returns has pushed a problem.
struct Reader<'a> {
    merged: &'a Merged,
    problems: Vec<Problem>,
}

impl<'a> Reader<'a> {
    /// `mdns`: an object with `enabled` and `interfaces`. Enabled without interfaces is
    /// refused: the daemon would join every interface of the machine.
    fn mdns(&mut self) -> Option<super::MdnsConfig> {
        let value = self.required(MDNS)?;
        let Value::Object(obj) = value else {
            self.problem(
                MDNS,
                "must be an object like {\"enabled\": true, \"interfaces\": [\"eth0\"]}",
            );
            return None;
        };
        let mut ok = true;
        for key in obj
            .keys()
            .filter(|k| !matches!(k.as_str(), "enabled" | "interfaces"))
        {
            self.problem(
                MDNS,
                format!("unknown key mdns.{key} (known: enabled, interfaces)"),
            );
            ok = false;
        }
        let enabled = match obj.get("enabled") {
            None => Some(false),
            Some(v) => boolean(v),
        };
        if enabled.is_none() {
            self.problem(MDNS, "mdns.enabled must be true or false");
            ok = false;
        }
        let interfaces: Option<Vec<String>> = match obj.get("interfaces") {
            None => Some(Vec::new()),
            Some(Value::Array(items)) => items
                .iter()
                .map(|i| i.as_str().filter(|s| !s.is_empty()).map(str::to_string))
                .collect(),
            Some(_) => None,
        };
        if interfaces.is_none() {
            self.problem(MDNS, "mdns.interfaces must be a list of interface names");
            ok = false;
        }
        let (enabled, interfaces) = (enabled.unwrap_or(false), interfaces.unwrap_or_default());
        if enabled && interfaces.is_empty() {
            self.problem(
                MDNS,
                "mdns.interfaces must name the interfaces to browse on (the mDNS daemon would \
                 otherwise join every interface of the machine)",
            );
            ok = false;
        }
        ok.then_some(super::MdnsConfig {
            enabled,
            interfaces,
        })
    }

    fn unknown_keys(&mut self) {
        let unknown = self
            .merged
            .values
            .keys()
            .filter(|key| !keys::ALL.contains(&key.as_str()));
        for key in unknown {
            self.problems.push(Problem {
                key: key.clone(),
                // It may be a misspelt secret: don't show it.
                value: None,
                source: self.merged.source(key),
                message: format!("unknown key; {}", keys::hint(key)),
            });
        }
    }

    fn problem(&mut self, key: &str, message: impl Into<String>) {
        let value = match self.merged.values.get(key) {
            Some(value) if !keys::is_secret(key) => serde_json::to_string(value).ok(),
            _ => None,
        };
        self.problems.push(Problem {
            key: key.to_string(),
            value,
            source: self.merged.source(key),
            message: message.into(),
        });
    }

    /// The value of a key that must be there (every key with a default, and `terminalIp`).
    fn required(&mut self, key: &str) -> Option<&'a Value> {
        match self.merged.values.get(key) {
            Some(Value::Null) => {
                self.problem(key, "must not be null (remove the key to use the default)");
                None
            }
            Some(value) => Some(value),
            None if key == TERMINAL_IP => {
                let message = "is required: the terminal's fixed IP address, like \
                               \"192.168.1.20\" or \"192.168.1.20:3000\"";
                self.problem(key, message);
                None
            }
            None => {
                self.problem(key, "is missing");
                None
            }
        }
    }

    /// A scalar read as text, then parsed; the parser's error is the message.
    fn parsed<T>(&mut self, key: &str, parse: impl FnOnce(&str) -> Result<T, String>) -> Option<T> {
        let value = self.required(key)?;
        let Some(text) = scalar_text(value) else {
            self.problem(key, "must be a string");
            return None;
        };
        parse(&text)
            .map_err(|message| self.problem(key, message))
            .ok()
    }

    fn integer(&mut self, key: &str, min: u64, max: u64) -> Option<u64> {
        let value = self.required(key)?;
        match whole_number(value) {
            Some(n) if (min..=max).contains(&n) => Some(n),
            _ if max == u64::from(u32::MAX) => {
                self.problem(key, format!("must be a whole number, at least {min}"));
                None
            }
            _ => {
                self.problem(key, format!("must be a whole number from {min} to {max}"));
                None
            }
        }
    }

    /// A count of at least 1.
    fn count(&mut self, key: &str) -> Option<u32> {
        let n = self.integer(key, 1, u64::from(u32::MAX))?;
        u32::try_from(n).ok()
    }

    /// Seconds, fractions allowed, greater than 0 and at most `max`.
    fn seconds(&mut self, key: &str, max: f64) -> Option<Duration> {
        let value = self.required(key)?;
        match number(value) {
            Some(secs) if secs > 0.0 && secs <= max => Duration::try_from_secs_f64(secs).ok(),
            _ => {
                let message = format!("must be a number of seconds above 0 and at most {max}");
                self.problem(key, message);
                None
            }
        }
    }

    fn boolean(&mut self, key: &str) -> Option<bool> {
        let value = self.required(key)?;
        let flag = boolean(value);
        if flag.is_none() {
            self.problem(
                key,
                "must be true or false (\"True\", \"yes\", \"1\"… are accepted)",
            );
        }
        flag
    }

    /// An optional secret: `Some(None)` when not set (absent, null or, for the vendor's
    /// unused `key`, empty), `None` on a problem.
    fn secret(&mut self, key: &str) -> Option<Option<Secret>> {
        let value = match self.merged.values.get(key) {
            None | Some(Value::Null) => return Some(None),
            Some(value) => value,
        };
        match scalar_text(value) {
            Some(text) if text.is_empty() && key == API_KEY => {
                self.problem(
                    key,
                    "must not be empty (remove it to run without an API key)",
                );
                None
            }
            Some(text) if text.is_empty() => Some(None),
            Some(text) => Some(Some(Secret::new(text))),
            None => {
                self.problem(key, "must be a string");
                None
            }
        }
    }
}
