//! The one validation pass: the merged values read into [`RawConfig`], then every key typed
//! and checked, each problem kept with its key path, bad value and source. The defaults live
//! here, by their key.

use std::net::Ipv4Addr;

use super::layers::Layers;
use super::schema::{LANE, Lenient, Object, Origins, Raw, RawConfig, RawFallback, RawMdns};
use super::schema::{RawMqtt, RawTerminal};
use super::*;
use crate::constants::{COMERCIA_DEFAULT_PORT, COMERCIA_DEFAULT_SOURCE, DEFAULT_DEVICE_ID};
use crate::constants::{DEFAULT_MAX_CONNECTIONS_PER_IP as MAX_CONNS, DEFAULT_PORT};
use crate::constants::{DEFAULT_NOT_FOUND_HORIZON as HORIZON, DEFAULT_PROBE_CONFIRM};
use crate::constants::{DEFAULT_PROBE_TIMEOUT, DEFAULT_STARTS_PER_SECOND_PER_IP as STARTS};
use crate::http::limits::LimitSettings;
use crate::pki;
use crate::probe::health::{DEFAULT_DOWN_AFTER as DOWN, DEFAULT_UP_AFTER as UP};

mod lanes;

use lanes::{client_identity, lanes};

const MAX_NAME_LEN: usize = 64;

pub(super) fn validate(layers: Layers, problems: Vec<Problem>) -> Result<Config, ConfigError> {
    let tree = layers.tree.as_object().cloned().unwrap_or_default();
    let mut r = Reader { layers, problems };
    let raw = r.strict("", tree);
    let config = config(&mut r, raw);
    match r.problems.is_empty() {
        true => Ok(config),
        false => Err(ConfigError::Invalid(r.problems)),
    }
}

/// Reads in the order problems are listed; a bad value's default stands in for it.
fn config(r: &mut Reader, raw: RawConfig) -> Config {
    let (s, millis) = (Duration::from_secs, Duration::from_millis);
    let count = range(1, u32::MAX, "must be a whole number, at least 1");
    let rounds = range(1, 100, "must be a whole number from 1 to 100");
    let port = r.get(raw.port, DEFAULT_PORT, &ok);
    let url = r.get(raw.url, Ipv4Addr::LOCALHOST.into(), &ok);
    let ssl = r.get(raw.ssl, true, &ok);
    r.get(raw.mode, "F".into(), &|mode| check_mode(mode));
    let timeout = r.get(raw.static_ip_timeout, s(5), &secs(120.0));
    let push = r.get(raw.start_tecnology, StartTechnology::None, &ok);
    let loops_before = r.get(raw.loops_before, 3, &count);
    let stop = r.try_get(raw.time_stop, s(240), &secs(86_400.0));
    let poll = r.try_get(raw.poll_seconds, s(10), &secs(300.0));
    let why = "must be from 1 to 300 seconds: \"never arrived\" needs two lookups some time apart";
    let horizon = range(s(1), s(300), why);
    let why = "must not be empty (remove it to run without an API key)";
    let given = |k: &Secret| range(1, usize::MAX, why)(&k.expose().len());
    let per_ip = range(1, 100_000, "must be a whole number from 1 to 100000");
    let ms = |lo, hi| range(lo, hi, &format!("must be a whole number from {lo} to {hi}"));
    let probe_timeout = DEFAULT_PROBE_TIMEOUT.as_millis() as u64;
    let probe_confirm = DEFAULT_PROBE_CONFIRM.as_millis() as u64;
    let mut config = Config {
        listen: SocketAddr::new(url, port),
        ssl,
        start_technology: push,
        loops_before,
        time_stop: stop.unwrap_or_default(),
        retries: r.get(raw.retries, 600, &count),
        not_found_horizon: r.get(raw.not_found_horizon_seconds, HORIZON, &horizon),
        key: r
            .opt(raw.key, &ok)
            .flatten()
            .filter(|k| !k.expose().is_empty()),
        api_key: r.opt(raw.api_key, &given).flatten(),
        refund_key: r.opt(raw.refund_key, &given).flatten(),
        client_auth: r.get(raw.client_auth, false, &ok),
        metrics_public: r.get(raw.metrics_public, false, &ok),
        cors_origins: r.get(raw.cors_origins, Origins::default(), &ok).0,
        limits: LimitSettings {
            connections_per_ip: r.get(raw.max_connections_per_ip, MAX_CONNS as u32, &per_ip)
                as usize,
            starts_per_second: r.get(raw.starts_per_second_per_ip, STARTS, &per_ip),
        },
        certs_dir: r.get(raw.certs_dir, "certs".into(), &ok),
        journal: r.get(raw.journal, "data/journal.db".into(), &ok),
        journal_retention_days: r.get(raw.journal_retention_days, 90, &count),
        probe_interval: millis(r.get(raw.probe_interval_ms, 1000, &ms(100, 3_600_000))),
        probe_down_after: r.get(raw.probe_down_after, DOWN, &rounds),
        probe_up_after: r.get(raw.probe_up_after, UP, &rounds),
        probe_timeout: millis(r.get(raw.probe_timeout_ms, probe_timeout, &ms(10, 60_000))),
        probe_confirm: millis(r.get(raw.probe_confirm_ms, probe_confirm, &ms(0, 60_000))),
        mdns: mdns(r, raw.mdns),
        fallback: None,
        terminals: Vec::new(),
    };
    config.fallback = mqtt(r, raw.fallback, &config.certs_dir);
    let pins = r.opt(raw.terminal_pin, &ok).flatten();
    let identity = (raw.terminal_client_cert, raw.terminal_client_key);
    let identity = client_identity(r, identity);
    let lane = Terminal {
        device_id: DEFAULT_DEVICE_ID.into(),
        address: SocketAddr::from(([127, 0, 0, 1], DEFAULT_PORT)),
        profile: Profile::Instore,
        comercia: None,
        static_ip_timeout: timeout,
        poll_interval: poll.unwrap_or_default(),
        fallback: push.wants_push_fallback() && config.fallback.is_some(),
        pins: pins.map(|p| p.0).unwrap_or_default(),
        client_identity: identity.flatten(),
    };
    let shorthand = (raw.terminal_ip, raw.device_id);
    let terminals = lanes(r, raw.terminals, shorthand, (&lane, stop), poll);
    config.terminals = terminals.unwrap_or_default();
    config
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
fn mdns(r: &mut Reader, raw: Lenient<Object>) -> MdnsConfig {
    let mdns: RawMdns = r.nested(raw);
    let enabled = r.get(mdns.enabled, false, &ok);
    let interfaces = r.try_get(mdns.interfaces, Vec::new(), &ok);
    let announce = r.get(mdns.announce, false, &ok);
    let none = interfaces.as_ref().is_some_and(Vec::is_empty);
    for (key, on, what) in [
        ("mdns.announce", announce, "announce the gateway on"),
        ("mdns", enabled, "browse on"),
    ] {
        if on && none {
            let message = format!(
                "mdns.interfaces must name the interfaces to {what} (the mDNS daemon would \
                 otherwise join every interface of the machine)"
            );
            r.problem(key, None, message);
        }
    }
    let interfaces = interfaces.unwrap_or_default();
    MdnsConfig {
        enabled,
        announce,
        interfaces,
    }
}

/// `fallback.mqtt`; the files default to the certificates folder.
fn mqtt(r: &mut Reader, raw: Lenient<Object>, dir: &Path) -> Option<MqttFallback> {
    let raw: RawFallback = r.nested(raw);
    let map = r.opt(raw.mqtt, &ok)??;
    let mqtt: RawMqtt = r.strict("fallback.mqtt", map);
    let missing = "the broker's address, like \"mqtts://192.168.1.10:8883\"";
    let broker = r.need(mqtt.url, missing, &ok);
    let client_id = r.opt(mqtt.client_id, &|t| name(t));
    let mut file = |field, default: &str| Some(r.opt(field, &ok)?.unwrap_or(dir.join(default)));
    let client_cert = file(mqtt.client_cert, pki::CLIENT_CERT);
    let client_key = file(mqtt.client_key, pki::CLIENT_KEY);
    let ca_cert = file(mqtt.ca_cert, pki::CA_CERT);
    Some(MqttFallback {
        broker: broker?,
        client_id: client_id?.unwrap_or_else(default_client_id),
        client_cert: client_cert?,
        client_key: client_key?,
        ca_cert: ca_cert?,
    })
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

/// `deviceId` and `clientId`: safe in topics, file names and logs.
fn name(text: &str) -> Result<(), String> {
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-');
    let why = format!("must be 1 to {MAX_NAME_LEN} characters of A-Z, a-z, 0-9, '.', '_' or '-'");
    range(1, MAX_NAME_LEN, &why)(&text.len())?;
    text.chars().all(allowed).then_some(()).ok_or(why)
}

/// Collects problems: a read that gives `None`, or a default for a bad value, has pushed one.
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
    fn read<T>(&mut self, f: Lenient<T>, check: Check<T>) -> Option<Option<T>> {
        let Lenient::Given(path, value, read) = f else {
            return Some(None);
        };
        let read = read.and_then(|v| check(&v).map(|()| Some(v)));
        read.map_err(|m| self.problem(&path, Some(&value), m)).ok()
    }

    fn try_get<T>(&mut self, f: Lenient<T>, default: T, check: Check<T>) -> Option<T> {
        Some(self.read(f, check)?.unwrap_or(default))
    }

    /// Like `try_get`, the default standing in for a bad value too.
    fn get<T: Clone>(&mut self, f: Lenient<T>, default: T, check: Check<T>) -> T {
        self.try_get(f, default.clone(), check).unwrap_or(default)
    }

    /// An optional key: `Some(None)` when absent or null.
    fn opt<T>(&mut self, f: Lenient<T>, check: Check<T>) -> Option<Option<T>> {
        self.read(f.or_absent(), check)
    }

    fn need<T>(&mut self, f: Lenient<T>, missing: &str, check: Check<T>) -> Option<T> {
        let f = f.or_absent(); // `null` is no value, and a required key has no default
        if let Lenient::Missing(path) = &f {
            self.problem(path, None, format!("is required: {missing}"));
        }
        self.read(f, check)?
    }

    /// Reads an object into its struct, every key as `[path, value, given]`. Unknown keys are
    /// reported and dropped first, so serde (whose fields all take any value) cannot stop.
    fn strict<T: Raw>(&mut self, path: &str, mut map: Object) -> T {
        let keys = super::schema::fields::<T>();
        let at = |key: &str| match path {
            "" => key.to_string(),
            _ => format!("{path}.{key}"),
        };
        for key in map.keys().filter(|k| !keys.contains(&k.as_str())) {
            // It may be a misspelt secret: its value is not shown.
            self.problem(&at(key), None, format!("unknown key; {}", hint(keys, key)));
        }
        let mut value = |key: &str| match map.remove(key) {
            Some(value) => json!([at(key), value, true]),
            None => json!([at(key), null, false]),
        };
        let raw: Object = keys.iter().map(|k| (k.to_string(), value(k))).collect();
        T::deserialize(Value::Object(raw)).expect("every key is [path, value, given]")
    }

    /// A nested object's struct, all keys missing when it is absent (or reported).
    fn nested<T: Raw>(&mut self, f: Lenient<Object>) -> T {
        let path = f.path().to_string();
        let map = self.opt(f, &ok).flatten().unwrap_or_default();
        self.strict(&path, map)
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
