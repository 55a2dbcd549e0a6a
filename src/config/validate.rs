//! The one validation pass: the merged values read into [`RawConfig`], then every key typed
//! and checked, each problem kept with its key path, bad value and source. The defaults live
//! here, by their key; `lanes` reads the `terminals` list.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::time::Duration;

use serde::Deserialize;
use serde_json::Value;

use super::error::{ConfigError, Problem};
use super::layers::Layers;
use super::schema::{Lenient, Object, Opt, RawConfig, RawFallback, RawMdns, RawMqtt};
use super::types::{Profile, StartTechnology};
use super::{Config, MdnsConfig, MqttFallback, Terminal};
use crate::constants::{DEFAULT_DEVICE_ID, DEFAULT_NOT_FOUND_HORIZON as HORIZON, DEFAULT_PORT};
use crate::constants::{DEFAULT_MAX_CONNECTIONS_PER_IP as MAX_CONNS, DEFAULT_PROBE_CONFIRM};
use crate::constants::{DEFAULT_PROBE_TIMEOUT, DEFAULT_STARTS_PER_SECOND_PER_IP as STARTS};
use crate::pki;
use crate::probe::health::{DEFAULT_DOWN_AFTER as DOWN, DEFAULT_UP_AFTER as UP};

mod lanes;

const MAX_NAME_LEN: usize = 64;

pub(super) fn validate(layers: Layers, problems: Vec<Problem>) -> Result<Config, ConfigError> {
    let tree = layers.tree.as_object().cloned().unwrap_or_default();
    let mut r = Reader { layers, problems };
    let raw = r.strict("", tree);
    match config(&mut r, raw) {
        Some(config) if r.problems.is_empty() => Ok(config),
        _ => Err(ConfigError::Invalid(r.problems)),
    }
}

fn config(r: &mut Reader, raw: RawConfig) -> Option<Config> {
    let s = Duration::from_secs;
    let port = r.get("port", raw.port, DEFAULT_PORT, &ok);
    let url = r.get("url", raw.url, Ipv4Addr::LOCALHOST.into(), &ok);
    let ssl = r.get("SSL", raw.ssl, true, &ok);
    r.get("mode", raw.mode, "F".into(), &|mode| check_mode(mode));
    let timeout = r.get("staticIptimeOut", raw.timeout, s(5), &secs(120.0));
    let push = r.get("startTecnology", raw.push, StartTechnology::None, &ok);
    let loops_before = r.get("loopsBefore", raw.loops_before, 3, &count);
    let time_stop = r.get("timeStop", raw.time_stop, s(240), &secs(86_400.0));
    let poll = r.get("pollSeconds", raw.poll_seconds, s(10), &secs(300.0));
    let retries = r.get("retries", raw.retries, 600, &count);
    let why = "must be from 1 to 300 seconds: \"never arrived\" needs two lookups some time apart";
    let horizon = r.get(
        "notFoundHorizonSeconds",
        raw.horizon,
        HORIZON,
        &range(s(1), s(300), why),
    );
    let key = r
        .opt("key", raw.key, &ok)
        .map(|k| k.filter(|k| !k.expose().is_empty()));
    let why = "must not be empty (remove it to run without an API key)";
    let given = |k: &super::Secret| range(1, usize::MAX, why)(&k.expose().len());
    let api_key = r.opt("apiKey", raw.api_key, &given);
    let refund_key = r.opt("refundKey", raw.refund_key, &given);
    let client_auth = r.get("clientAuth", raw.client_auth, false, &ok);
    let metrics_public = r.get("metricsPublic", raw.metrics_public, false, &ok);
    let cors = r.get("corsOrigins", raw.cors_origins, Default::default(), &ok);
    let per_ip = range(1, 100_000, "must be a whole number from 1 to 100000");
    let conns = r.get("maxConnectionsPerIp", raw.conns, MAX_CONNS as u32, &per_ip);
    let starts = r.get("startsPerSecondPerIp", raw.starts, STARTS, &per_ip);
    let certs_dir = r.get("certsDir", raw.certs_dir, "certs".into(), &ok);
    let journal = r.get("journal", raw.journal, "data/journal.db".into(), &ok);
    let retention = r.get("journalRetentionDays", raw.retention, 90, &count);
    let ms = |lo, hi| range(lo, hi, &format!("must be a whole number from {lo} to {hi}"));
    let probe = r.get("probeIntervalMs", raw.probe_ms, 1000, &ms(100, 3_600_000));
    let down = r.get("probeDownAfter", raw.probe_down_after, DOWN, &rounds);
    let up = r.get("probeUpAfter", raw.probe_up_after, UP, &rounds);
    let (t, c) = (
        DEFAULT_PROBE_TIMEOUT.as_millis(),
        DEFAULT_PROBE_CONFIRM.as_millis(),
    );
    let probe_timeout = r.get("probeTimeoutMs", raw.timeout_ms, t as u64, &ms(10, 60_000));
    let probe_confirm = r.get("probeConfirmMs", raw.confirm_ms, c as u64, &ms(0, 60_000));
    let mdns = mdns(r, raw.mdns);
    let fallback = mqtt(r, raw.fallback, certs_dir.as_deref());
    let pins = r.opt("terminalPin", raw.terminal_pin, &ok);
    let identity = (raw.terminal_client_cert, raw.terminal_client_key);
    let identity = lanes::client_identity(r, "", identity);
    let lane = Terminal {
        device_id: DEFAULT_DEVICE_ID.into(),
        address: SocketAddr::from(([127, 0, 0, 1], DEFAULT_PORT)),
        profile: Profile::Instore,
        comercia: None,
        static_ip_timeout: timeout.unwrap_or_default(),
        poll_interval: poll.unwrap_or_default(),
        fallback: push.is_some_and(StartTechnology::wants_push_fallback)
            && matches!(fallback, Some(Some(_))),
        pins: pins.flatten().map(|p| p.0).unwrap_or_default(),
        client_identity: identity.flatten(),
    };
    let shorthand = (raw.terminal_ip, raw.device_id);
    let terminals = lanes::lanes(r, raw.terminals, shorthand, (&lane, time_stop), poll);
    Some(Config {
        listen: SocketAddr::new(url?, port?),
        ssl: ssl?,
        terminals: terminals?,
        start_technology: push?,
        loops_before: loops_before?,
        time_stop: time_stop?,
        retries: retries?,
        not_found_horizon: horizon?,
        certs_dir: certs_dir?,
        journal: journal?,
        journal_retention_days: retention?,
        probe_interval: Duration::from_millis(probe?),
        probe_down_after: down?,
        probe_up_after: up?,
        probe_timeout: Duration::from_millis(probe_timeout?),
        probe_confirm: Duration::from_millis(probe_confirm?),
        mdns: mdns?,
        api_key: api_key?,
        key: key?,
        fallback: fallback?,
        refund_key: refund_key?,
        client_auth: client_auth?,
        metrics_public: metrics_public?,
        cors_origins: cors?.0,
        limits: crate::http::limits::LimitSettings {
            connections_per_ip: conns? as usize,
            starts_per_second: starts?,
        },
    })
}

/// The seed's `mode`: B (standard) and S (proxy) relay through the vendor's cloud; ecrlink is
/// cloud-free and runs only F, the fixed-IP mode, so the value is not kept.
fn check_mode(text: &str) -> Result<(), String> {
    let why = match text.trim().to_ascii_uppercase().as_str() {
        "F" => return Ok(()),
        "B" | "S" => {
            "modes B and S need the vendor's cloud (Pushy/SignalR via Azure); ecrlink is \
             cloud-free and runs mode F only: set \"mode\": \"F\" and \"terminalIp\""
        }
        _ => "must be \"F\" (the only mode ecrlink runs; B and S need the vendor's cloud)",
    };
    Err(why.into())
}

/// `mdns`: browsing or announcing needs the interfaces named.
fn mdns(r: &mut Reader, raw: Opt<Object>) -> Option<MdnsConfig> {
    let mdns: RawMdns = r.nested("mdns", raw);
    let enabled = r.get("mdns.enabled", mdns.enabled, false, &ok);
    let interfaces = r.get("mdns.interfaces", mdns.interfaces, Vec::new(), &ok);
    let announce = r.get("mdns.announce", mdns.announce, false, &ok);
    let none = interfaces.as_ref().is_some_and(Vec::is_empty);
    for (key, on, what) in [
        ("mdns.announce", announce, "announce the gateway on"),
        ("mdns", enabled, "browse on"),
    ] {
        if on == Some(true) && none {
            let message = format!(
                "mdns.interfaces must name the interfaces to {what} (the mDNS daemon would \
                 otherwise join every interface of the machine)"
            );
            r.problem(key, None, message);
        }
    }
    let (enabled, announce, interfaces) = (enabled?, announce?, interfaces?);
    Some(MdnsConfig {
        enabled,
        announce,
        interfaces,
    })
}

/// `fallback.mqtt`; the files default to the certificates folder.
fn mqtt(r: &mut Reader, raw: Opt<Object>, dir: Option<&Path>) -> Option<Option<MqttFallback>> {
    let raw: RawFallback = r.nested("fallback", raw);
    let Some(map) = r.opt("fallback.mqtt", raw.mqtt, &ok)? else {
        return Some(None);
    };
    let mqtt: RawMqtt = r.strict("fallback.mqtt", map);
    let missing = "the broker's address, like \"mqtts://192.168.1.10:8883\"";
    let broker = r.need("fallback.mqtt.url", mqtt.url, missing, &ok);
    let client_id = r.opt("fallback.mqtt.clientId", mqtt.client_id, &|t| name(t));
    let mut file = |key: &str, field, default: &str| {
        let given = r.opt(&format!("fallback.mqtt.{key}"), field, &ok)?;
        given.or_else(|| Some(dir?.join(default)))
    };
    let client_cert = file("clientCert", mqtt.client_cert, pki::CLIENT_CERT);
    let client_key = file("clientKey", mqtt.client_key, pki::CLIENT_KEY);
    let ca_cert = file("caCert", mqtt.ca_cert, pki::CA_CERT);
    Some(Some(MqttFallback {
        broker: broker?,
        client_id: client_id?.unwrap_or_else(default_client_id),
        client_cert: client_cert?,
        client_key: client_key?,
        ca_cert: ca_cert?,
    }))
}

/// `ecrlink-<host name>`, so two gateways on one broker do not take each other's session.
fn default_client_id() -> String {
    let host = (std::fs::read_to_string("/proc/sys/kernel/hostname"))
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .or_else(|_| std::env::var("COMPUTERNAME"))
        .unwrap_or_default();
    let safe = |c: char| if c.is_ascii_alphanumeric() { c } else { '-' };
    let max = MAX_NAME_LEN - "ecrlink-".len();
    let host: String = host.trim().chars().map(safe).take(max).collect();
    match host.is_empty() {
        true => pki::GATEWAY_CLIENT_CN.to_string(),
        false => format!("ecrlink-{host}"),
    }
}

type Check<'a, T> = &'a dyn Fn(&T) -> Result<(), String>;

fn ok<T>(_: &T) -> Result<(), String> {
    Ok(())
}

fn range<T: PartialOrd + Copy>(
    lo: T,
    hi: T,
    why: &str,
) -> impl Fn(&T) -> Result<(), String> + use<T> {
    let why = why.to_string();
    move |v| (lo..=hi).contains(v).then_some(()).ok_or(why.clone())
}

/// Seconds above 0 (the type's check) and at most `max`; the bounds of `timeStop` and
/// `probeIntervalMs` only keep `Instant + duration` far from overflow.
fn secs(max: f64) -> impl Fn(&Duration) -> Result<(), String> {
    let why = format!("must be a number of seconds above 0 and at most {max}");
    range(Duration::ZERO, Duration::from_secs_f64(max), &why)
}

fn count(n: &u32) -> Result<(), String> {
    range(1, u32::MAX, "must be a whole number, at least 1")(n)
}

fn rounds(n: &u32) -> Result<(), String> {
    range(1, 100, "must be a whole number from 1 to 100")(n)
}

/// `deviceId` and `clientId`: safe in topics, file names and logs.
fn name(text: &str) -> Result<(), String> {
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-');
    let why = format!("must be 1 to {MAX_NAME_LEN} characters of A-Z, a-z, 0-9, '.', '_' or '-'");
    range(1, MAX_NAME_LEN, &why)(&text.len())?;
    text.chars().all(allowed).then_some(()).ok_or(why)
}

/// Collects problems; every `None` it returns has pushed one.
struct Reader {
    layers: Layers,
    problems: Vec<Problem>,
}

impl Reader {
    fn problem(&mut self, path: &str, value: Option<&Value>, message: impl Into<String>) {
        let shown = value.filter(|_| !matches!(path, "key" | "apiKey" | "refundKey"));
        let value = shown.and_then(|v| serde_json::to_string(v).ok());
        let problem = Problem::new(path.to_string(), self.layers.source(path), message);
        self.problems.push(Problem { value, ..problem });
    }

    /// A value read and checked; `Some(None)` when missing.
    fn read<T>(&mut self, path: &str, f: Lenient<T>, check: Check<T>) -> Option<Option<T>> {
        let Lenient::Given(value, read) = f else {
            return Some(None);
        };
        let read = read.and_then(|v| check(&v).map(|()| Some(v)));
        read.map_err(|m| self.problem(path, Some(&value), m)).ok()
    }

    fn get<T>(&mut self, path: &str, f: Lenient<T>, default: T, check: Check<T>) -> Option<T> {
        Some(self.read(path, f, check)?.unwrap_or(default))
    }

    /// An optional key: `Some(None)` when absent or null.
    fn opt<T>(&mut self, path: &str, f: Opt<T>, check: Check<T>) -> Option<Option<T>> {
        self.read(path, f.unwrap_or_default(), check)
    }

    fn need<T>(&mut self, path: &str, f: Lenient<T>, missing: &str, check: Check<T>) -> Option<T> {
        let value = self.read(path, f, check)?;
        if value.is_none() {
            self.problem(path, None, format!("is required: {missing}"));
        }
        value
    }

    /// Reads an object into its struct: unknown keys are reported and dropped first, so serde
    /// (whose fields all take any value) has nothing left to stop at.
    fn strict<T: for<'de> Deserialize<'de> + Default>(&mut self, path: &str, mut map: Object) -> T {
        let keys = super::schema::fields::<T>();
        for key in map.keys().filter(|k| !keys.contains(&k.as_str())) {
            let at = match path {
                "" => key.clone(),
                _ => format!("{path}.{key}"),
            };
            // It may be a misspelt secret: its value is not shown.
            self.problem(&at, None, format!("unknown key; {}", hint(keys, key)));
        }
        map.retain(|key, _| keys.contains(&key.as_str()));
        T::deserialize(Value::Object(map)).unwrap_or_default()
    }

    /// A nested object's struct; the default one when absent (or reported).
    fn nested<T: for<'de> Deserialize<'de> + Default>(&mut self, path: &str, f: Opt<Object>) -> T {
        match self.opt(path, f, &ok) {
            Some(Some(map)) => self.strict(path, map),
            _ => T::default(),
        }
    }
}

/// The known key an unknown one probably meant, or the list of keys.
fn hint(keys: &[&str], unknown: &str) -> String {
    let same = keys.iter().find(|k| k.eq_ignore_ascii_case(unknown));
    let meant = match unknown.to_ascii_lowercase().as_str() {
        // The vendor misspells these; people who fix the spelling get told.
        "starttechnology" => Some("startTecnology"),
        "staticiptimeout" => Some("staticIptimeOut"),
        _ => same.copied(),
    };
    match meant {
        Some(key) => format!("did you mean \"{key}\"? (keys are case-sensitive)"),
        None => format!("known keys: {}", keys.join(", ")),
    }
}
