//! The one validation pass: the merged values read into [`RawConfig`], then every key typed
//! and checked, each problem kept with its key path, bad value and source. The defaults live
//! here, by their key.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use serde_json::{Value, json};

use super::Terminal;
use super::error::{ConfigError, Problem};
use super::layers::Layers;
use super::schema::{LANE, Lenient, Object, Origins, RawConfig, RawFallback, RawMdns};
use super::schema::{RawMqtt, RawTerminal};
use super::{ComerciaLane, Config, MdnsConfig, MqttFallback, Profile, Secret, StartTechnology};
use crate::constants::{COMERCIA_DEFAULT_PORT, COMERCIA_DEFAULT_SOURCE, DEFAULT_DEVICE_ID};
use crate::constants::{DEFAULT_MAX_CONNECTIONS_PER_IP as MAX_CONNS, DEFAULT_PORT};
use crate::constants::{DEFAULT_NOT_FOUND_HORIZON as HORIZON, DEFAULT_PROBE_CONFIRM};
use crate::constants::{DEFAULT_PROBE_TIMEOUT, DEFAULT_STARTS_PER_SECOND_PER_IP as STARTS};
use crate::http::limits::LimitSettings;
use crate::pki;
use crate::probe::health::{DEFAULT_DOWN_AFTER as DOWN, DEFAULT_UP_AFTER as UP};

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
    let identity = client_identity(r, "", identity);
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

/// A lane's top-level settings and `timeStop`, which its polls must be shorter than.
type Top<'a> = (&'a Terminal, Option<Duration>);

/// `terminals`, or the shorthand's (`terminalIp`, `deviceId`) one terminal.
fn lanes(
    r: &mut Reader,
    list: Lenient<Vec<Value>>,
    (ip, id): (Lenient<SocketAddr>, Lenient<String>),
    (lane, stop): Top,
    poll: Option<Duration>,
) -> Option<Vec<Terminal>> {
    // The top-level pollSeconds counts only where a terminal uses it.
    let too_long = stop.and_then(|stop| poll.filter(|p| *p >= stop).map(|_| longer(stop)));
    let poll_problem = |r: &mut Reader| {
        if let (Some(message), Some(poll)) = (&too_long, poll) {
            r.problem("pollSeconds", Some(&poll.as_secs_f64().into()), message);
        }
    };
    // `None` for the shorthand; a list that is not one was reported and reads as empty.
    let Some(list) = r.opt(list, &ok).unwrap_or(Some(Vec::new())) else {
        poll_problem(r);
        let device_id = r.opt(id, &|t| name(t));
        let missing = "the terminal's fixed IP address, like \"192.168.1.20\" or \
                       \"192.168.1.20:3000\" (or \"terminals\", a list of one per lane)";
        let address = r.need("terminalIp", ip.or_absent(), missing, &ok);
        let mut one = lane.clone();
        one.device_id = device_id?.unwrap_or(one.device_id);
        one.address = address?;
        return Some(vec![one]);
    };
    let keys = match (ip.given(), id.given()) {
        (true, true) => Some("\"terminalIp\" and \"deviceId\""),
        (true, false) => Some("\"terminalIp\""),
        (false, true) => Some("\"deviceId\""),
        (false, false) => None,
    };
    if let Some(keys) = keys {
        let message = format!(
            "cannot be used together with the top-level {keys}, the shorthand for a one-entry \
             list: move them into \"terminals\""
        );
        r.problem("terminals", None, message);
    }
    if list.is_empty() && !r.problems.iter().any(|p| p.key == "terminals") {
        let message = format!("must list at least one terminal, like [{LANE}]");
        r.problem("terminals", Some(&Value::Array(Vec::new())), message);
    }
    let (n, mut read, mut top_poll_used) = (list.len(), Vec::new(), false);
    for (i, entry) in list.into_iter().enumerate() {
        let Value::Object(map) = entry else {
            let message = format!("must be an object like {LANE}");
            r.problem(&format!("terminals[{i}]"), Some(&entry), message);
            continue;
        };
        let raw: RawTerminal = r.strict(&format!("terminals[{i}]"), map);
        top_poll_used |= !raw.poll_seconds.given();
        read.extend(terminal(r, i, raw, (lane, stop)).map(|t| (i, t)));
    }
    if top_poll_used {
        poll_problem(r);
    }
    for (j, (i, terminal)) in read.iter().enumerate() {
        let twin = |same: &dyn Fn(&Terminal) -> bool| read[..j].iter().find(|(_, t)| same(t));
        if let Some((first, _)) = twin(&|t| t.device_id == terminal.device_id) {
            let message = format!("is also the deviceId of terminals[{first}]: each needs its own");
            let id = Value::from(terminal.device_id.clone());
            r.problem(&format!("terminals[{i}].deviceId"), Some(&id), message);
        }
        if let Some((first, _)) = twin(&|t| t.address == terminal.address) {
            let message = format!("is also the address of terminals[{first}]: each has its own");
            let addr = Value::from(terminal.address.to_string());
            r.problem(&format!("terminals[{i}].terminalIp"), Some(&addr), message);
        }
    }
    (read.len() == n).then(|| read.into_iter().map(|(_, t)| t).collect())
}

fn terminal(r: &mut Reader, i: usize, raw: RawTerminal, (lane, stop): Top) -> Option<Terminal> {
    let at = |key: &str| format!("terminals[{i}].{key}");
    let missing = "the deviceId the POS names this lane's terminal by";
    let device_id = r.need(&at("deviceId"), raw.device_id, missing, &|t| name(t));
    let port_given = match &raw.terminal_ip {
        Lenient::Given(_, Value::String(t), _) => t.trim().parse::<SocketAddr>().is_ok(),
        _ => true,
    };
    let missing = "the terminal's fixed IP address, like \"192.168.1.21\"";
    let address = r.need(&at("terminalIp"), raw.terminal_ip, missing, &ok);
    let profile = r.try_get(raw.profile, Profile::Instore, &ok);
    let is_comercia = profile == Some(Profile::ComerciaPos);
    let comercia = comercia_lane(r, &at, profile, (raw.server_name, raw.ca_cert, raw.source));
    // A comercia-pos terminal listens on its own default port.
    let address = address.map(|a| match is_comercia && !port_given {
        true => SocketAddr::new(a.ip(), COMERCIA_DEFAULT_PORT),
        false => a,
    });
    let timeout = r.opt(raw.static_ip_timeout, &secs(120.0));
    let poll = r.opt(raw.poll_seconds, &|poll| match stop {
        Some(stop) if *poll >= stop => Err(longer(stop)),
        _ => secs(300.0)(poll),
    });
    let fallback = r.opt(raw.fallback, &ok);
    let pins = r.opt(raw.terminal_pin, &ok);
    let identity = (raw.terminal_client_cert, raw.terminal_client_key);
    let identity = client_identity(r, &format!("terminals[{i}]."), identity);
    Some(Terminal {
        device_id: device_id?,
        address: address?,
        profile: profile?,
        static_ip_timeout: timeout?.unwrap_or(lane.static_ip_timeout),
        poll_interval: poll?.unwrap_or(lane.poll_interval),
        // The MQTT fallback speaks the InStore protocol only.
        fallback: lane.fallback && fallback?.unwrap_or(true) && !is_comercia,
        comercia: comercia?,
        pins: pins?.map(|p| p.0).unwrap_or_else(|| lane.pins.clone()),
        client_identity: identity?.or_else(|| lane.client_identity.clone()),
    })
}

/// A poll at least as long as `timeStop`.
fn longer(stop: Duration) -> String {
    let stop = stop.as_secs_f64();
    format!("must be shorter than timeStop ({stop} s): a sale would time out before its first poll")
}

/// `serverName` and `caCert` are required for a `comercia-pos` terminal and refused for an
/// `instore` one (its name and CA are fixed); `source` defaults to `COMERCIA`.
fn comercia_lane(
    r: &mut Reader,
    at: &dyn Fn(&str) -> String,
    profile: Option<Profile>,
    (name, ca, source): (Lenient<String>, Lenient<PathBuf>, Lenient<String>),
) -> Option<Option<ComerciaLane>> {
    if profile != Some(Profile::ComerciaPos) {
        let given = [
            ("serverName", name.given()),
            ("caCert", ca.given()),
            ("source", source.given()),
        ];
        for (key, _) in given.into_iter().filter(|(_, given)| *given) {
            let why = "is only for \"profile\": \"comercia-pos\" (an instore terminal's name and \
                       CA are fixed)";
            r.problem(&at(key), None, why);
        }
        return profile.map(|_| None);
    }
    let dns = |t: &String| match rustls::pki_types::ServerName::try_from(t.as_str()) {
        Ok(rustls::pki_types::ServerName::DnsName(_)) => Ok(()),
        _ => Err("must be the DNS name the terminal's certificate carries".to_string()),
    };
    let header = |t: &String| {
        let fits = (1..=64).contains(&t.len()) && t.bytes().all(|b| b.is_ascii_graphic());
        let why = "must be 1 to 64 visible ASCII characters (the X-SOURCE header)";
        fits.then_some(()).ok_or(why.to_string())
    };
    let missing = "the name in the terminal's certificate";
    let name = r.need(&at("serverName"), name.or_absent(), missing, &dns);
    let missing = "the vendor SDK's CA file (PEM)";
    let ca = r.need(&at("caCert"), ca.or_absent(), missing, &ok);
    let source = r.opt(source, &header);
    Some(Some(ComerciaLane {
        server_name: name?,
        ca_cert: ca?,
        source: source?.unwrap_or_else(|| COMERCIA_DEFAULT_SOURCE.into()),
    }))
}

/// `terminalClientCert` and `terminalClientKey`: both or neither.
fn client_identity(
    r: &mut Reader,
    at: &str,
    (cert, key): (Lenient<PathBuf>, Lenient<PathBuf>),
) -> Option<Option<(PathBuf, PathBuf)>> {
    let cert = r.opt(cert, &ok)?;
    let key = r.opt(key, &ok)?;
    let (given, missing) = match (cert, key) {
        (Some(cert), Some(key)) => return Some(Some((cert, key))),
        (None, None) => return Some(None),
        (Some(_), None) => ("terminalClientCert", "terminalClientKey"),
        (None, Some(_)) => ("terminalClientKey", "terminalClientCert"),
    };
    let message = format!("is required with {at}{given}: the certificate and its key go together");
    r.problem(&format!("{at}{missing}"), None, message);
    None
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
    let mdns: RawMdns = r.nested("mdns", raw);
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
    let raw: RawFallback = r.nested("fallback", raw);
    let map = r.opt(raw.mqtt, &ok)??;
    let mqtt: RawMqtt = r.strict("fallback.mqtt", map);
    let missing = "the broker's address, like \"mqtts://192.168.1.10:8883\"";
    let broker = r.need("fallback.mqtt.url", mqtt.url, missing, &ok);
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

    fn need<T>(&mut self, path: &str, f: Lenient<T>, missing: &str, check: Check<T>) -> Option<T> {
        let value = self.read(f, check)?;
        if value.is_none() {
            self.problem(path, None, format!("is required: {missing}"));
        }
        value
    }

    /// Reads an object into its struct, each value as `[key path, value]`. Unknown keys are
    /// reported and dropped first, so serde (whose fields all take any value) cannot stop.
    fn strict<T: for<'de> Deserialize<'de> + Default>(&mut self, path: &str, map: Object) -> T {
        let keys = super::schema::fields::<T>();
        let mut known = Object::new();
        for (key, value) in map {
            let at = match path {
                "" => key.clone(),
                _ => format!("{path}.{key}"),
            };
            if keys.contains(&key.as_str()) {
                known.insert(key, json!([at, value]));
            } else {
                // It may be a misspelt secret: its value is not shown.
                self.problem(&at, None, format!("unknown key; {}", hint(keys, &key)));
            }
        }
        T::deserialize(Value::Object(known)).unwrap_or_default()
    }

    /// A nested object's struct; the default one when absent (or reported).
    fn nested<T: for<'de> Deserialize<'de> + Default>(
        &mut self,
        path: &str,
        f: Lenient<Object>,
    ) -> T {
        match self.opt(f, &ok) {
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
