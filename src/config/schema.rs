//! The configuration's shape: serde structs with `deny_unknown_fields` whose values are each a
//! [`Lenient`] (as written + as read), so one bad value cannot stop serde before the others.
//! The seed's spellings are read here: numbers as strings, booleans as "True"/"yes"/"1".

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;
use serde::de::{self, Deserializer, value::MapDeserializer};
use serde_json::{Map, Value};

use super::{Profile, Secret, StartTechnology};
use crate::constants::DEFAULT_PORT;
use crate::transport::mqtt::wire::BrokerUrl;

pub(super) type Object = Map<String, Value>;

pub(super) const LANE: &str = r#"{"deviceId": "LANE-1", "terminalIp": "192.168.1.21"}"#;

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(super) struct RawConfig {
    pub port: Lenient<u16>,
    pub url: Lenient<IpAddr>,
    #[serde(rename = "SSL")]
    pub ssl: Lenient<bool>,
    pub mode: Lenient<String>,
    pub terminal_ip: Lenient<SocketAddr>,
    pub device_id: Lenient<String>,
    pub terminals: Lenient<Vec<Value>>,
    #[serde(rename = "staticIptimeOut")]
    pub static_ip_timeout: Lenient<Duration>,
    pub poll_seconds: Lenient<Duration>,
    pub start_tecnology: Lenient<StartTechnology>,
    pub loops_before: Lenient<u32>,
    pub time_stop: Lenient<Duration>,
    pub retries: Lenient<u32>,
    pub not_found_horizon_seconds: Lenient<Duration>,
    pub key: Lenient<Secret>,
    pub api_key: Lenient<Secret>,
    pub certs_dir: Lenient<PathBuf>,
    pub journal: Lenient<PathBuf>,
    pub journal_retention_days: Lenient<u32>,
    pub probe_interval_ms: Lenient<u64>,
    pub probe_down_after: Lenient<u32>,
    pub probe_up_after: Lenient<u32>,
    pub probe_timeout_ms: Lenient<u64>,
    pub probe_confirm_ms: Lenient<u64>,
    pub mdns: Lenient<Object>,
    pub fallback: Lenient<Object>,
    pub refund_key: Lenient<Secret>,
    pub client_auth: Lenient<bool>,
    pub metrics_public: Lenient<bool>,
    pub cors_origins: Lenient<Origins>,
    pub terminal_pin: Lenient<Pins>,
    pub terminal_client_cert: Lenient<PathBuf>,
    pub terminal_client_key: Lenient<PathBuf>,
    pub max_connections_per_ip: Lenient<u32>,
    pub starts_per_second_per_ip: Lenient<u32>,
}

/// `terminalPin`: one `"sha256/<base64>"` or a list of them; `corsOrigins`: web origins.
#[derive(Default, Clone)]
pub(super) struct Pins(pub Vec<String>);
#[derive(Default, Clone)]
pub(super) struct Origins(pub Vec<String>);

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(super) struct RawTerminal {
    pub device_id: Lenient<String>,
    pub terminal_ip: Lenient<SocketAddr>,
    pub profile: Lenient<Profile>,
    #[serde(rename = "staticIptimeOut")]
    pub static_ip_timeout: Lenient<Duration>,
    pub poll_seconds: Lenient<Duration>,
    pub fallback: Lenient<bool>,
    pub server_name: Lenient<String>,
    pub ca_cert: Lenient<PathBuf>,
    pub source: Lenient<String>,
    pub terminal_pin: Lenient<Pins>,
    pub terminal_client_cert: Lenient<PathBuf>,
    pub terminal_client_key: Lenient<PathBuf>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawMdns {
    pub enabled: Lenient<bool>,
    pub announce: Lenient<bool>,
    pub interfaces: Lenient<Vec<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawFallback {
    pub mqtt: Lenient<Object>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(super) struct RawMqtt {
    pub url: Lenient<BrokerUrl>,
    pub client_id: Lenient<String>,
    pub client_cert: Lenient<PathBuf>,
    pub client_key: Lenient<PathBuf>,
    pub ca_cert: Lenient<PathBuf>,
}

/// Every key an environment variable may name, at any depth.
pub(super) fn all_keys() -> impl Iterator<Item = &'static str> {
    let (top, lane, mdns) = (
        fields::<RawConfig>(),
        fields::<RawTerminal>(),
        fields::<RawMdns>(),
    );
    let mqtt = [fields::<RawFallback>(), fields::<RawMqtt>()];
    [top, lane, mdns].into_iter().chain(mqtt).flatten().copied()
}

/// A struct of this file, read by `Reader::strict`.
pub(super) trait Raw: for<'de> Deserialize<'de> {}
impl<T: for<'de> Deserialize<'de>> Raw for T {}

/// The keys serde's derive gives `T`: asked for one it lacks, `deny_unknown_fields` lists them.
pub(super) fn fields<T: Raw>() -> &'static [&'static str] {
    #[derive(Debug, thiserror::Error)]
    #[error("the expected fields")]
    struct Expected(&'static [&'static str]);
    impl de::Error for Expected {
        fn custom<M: std::fmt::Display>(_: M) -> Self {
            Expected(&[])
        }
        fn unknown_field(_: &str, expected: &'static [&'static str]) -> Self {
            Expected(expected)
        }
    }
    let probe = MapDeserializer::<_, Expected>::new(std::iter::once(("\0", ())));
    T::deserialize(probe).err().map_or(&[], |e| e.0)
}

/// A value with its key path: as given and what reading it gave, or missing. `Reader::strict`
/// hands serde every key as `[path, value, given]`.
pub(super) enum Lenient<T> {
    Missing(String),
    Given(String, Value, Result<T, String>),
}

impl<'de, T: FromJson> Deserialize<'de> for Lenient<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let (path, value, given) = <(String, Value, bool)>::deserialize(deserializer)?;
        let read = match &value {
            _ if !given => return Ok(Lenient::Missing(path)),
            Value::Null => Err("must not be null (remove the key to use the default)".into()),
            value => T::from_json(value),
        };
        Ok(Lenient::Given(path, value, read))
    }
}

impl<T> Lenient<T> {
    pub fn path(&self) -> &str {
        match self {
            Lenient::Missing(path) | Lenient::Given(path, ..) => path,
        }
    }

    /// A value other than `null` was given.
    pub fn given(&self) -> bool {
        matches!(self, Lenient::Given(_, value, _) if !value.is_null())
    }

    /// `null` read as absent, as for an optional key.
    pub fn or_absent(self) -> Self {
        match self.given() {
            true => self,
            false => Lenient::Missing(self.path().to_string()),
        }
    }
}

/// Reads one configuration value; the error is the message for the user.
pub(super) trait FromJson: Sized {
    fn from_json(value: &Value) -> Result<Self, String>;
}

macro_rules! from_json {
    ($($t:ty => $read:expr;)*) => {$(
        impl FromJson for $t {
            fn from_json(value: &Value) -> Result<$t, String> {
                $read(value)
            }
        }
    )*};
}
from_json! {
    u16 => |v| whole(&any(v), u16::MAX.into());
    u32 => |v| whole(&any(v), u32::MAX.into());
    u64 => |v| whole(&any(v), u64::MAX);
    bool => |v| boolean(&any(v));
    Duration => |v| seconds(&any(v));
    PathBuf => |v| path(any(v));
    StartTechnology => |v| named(&text(v)?, &StartTechnology::ALL, StartTechnology::as_str)
        .ok_or("must be one of none, pushy, signalr, mqtt".into());
    Profile => |v| named(&text(v)?, &Profile::ALL, Profile::as_str)
        .ok_or("must be \"instore\" or \"comercia-pos\"".into());
    BrokerUrl => |v| BrokerUrl::parse(&text(v)?);
    IpAddr => |v| listen_ip(&text(v)?);
    SocketAddr => |v| terminal_addr(&text(v)?);
    String => text;
    Secret => |v| text(v).map(Secret::new);
    Vec<String> => interfaces;
    Vec<Value> => |v: &Value| v.as_array().cloned().ok_or(format!("must be a list like [{LANE}]"));
    Object => |v: &Value| v.as_object().cloned().ok_or("must be an object of keys".into());
    Origins => origins;
    Pins => pins;
}

/// Any scalar as text: environment values and the seed's quoting make types unreliable.
fn text(value: &Value) -> Result<String, String> {
    match value {
        Value::String(text) => Ok(text.clone()),
        Value::Number(_) | Value::Bool(_) => Ok(value.to_string()),
        _ => Err("must be a string".into()),
    }
}

/// A scalar's text for types whose own message says what is wanted (a list reads as "").
fn any(value: &Value) -> String {
    text(value).unwrap_or_default()
}

/// One of `all` by its name, without regard to case.
fn named<T: Copy>(text: &str, all: &[T], name: fn(T) -> &'static str) -> Option<T> {
    let text = text.trim().to_ascii_lowercase();
    all.iter().copied().find(|t| name(*t) == text)
}

fn pins(value: &Value) -> Result<Pins, String> {
    let one = std::slice::from_ref(value);
    let pin = |v: &Value| Some(v.as_str().filter(|p| crate::pin::is_pin(p))?.to_string());
    let read: Option<Vec<String>> = value
        .as_array()
        .map_or(one, |l| l)
        .iter()
        .map(pin)
        .collect();
    let why = "must be a pin like \"sha256/<44 base64 characters>\" or a list of them \
               (`ecrlink certs show` prints each certificate's pin)";
    read.filter(|l| !l.is_empty())
        .map(Pins)
        .ok_or_else(|| why.into())
}

fn origins(value: &Value) -> Result<Origins, String> {
    let why = "must be a list of web origins like [\"https://pos.example.com\", \"http://localhost:8080\"] \
               (scheme and host, optional port, no path)";
    let origin = |v: &Value| crate::api::guard::normalize_origin(v.as_str()?);
    let read: Option<Vec<String>> = value.as_array().ok_or(why)?.iter().map(origin).collect();
    read.map(Origins).ok_or_else(|| why.into())
}

fn whole<T: TryFrom<u64>>(text: &str, max: u64) -> Result<T, String> {
    let n = text.trim().parse::<u64>().ok();
    n.and_then(|n| T::try_from(n).ok())
        .ok_or_else(|| format!("must be a whole number from 0 to {max}"))
}

fn boolean(text: &str) -> Result<bool, String> {
    match text.trim().to_ascii_lowercase().as_str() {
        "true" | "yes" | "on" | "1" => Ok(true),
        "false" | "no" | "off" | "0" => Ok(false),
        _ => Err("must be true or false (\"True\", \"yes\", \"1\"… are accepted)".into()),
    }
}

/// Seconds, fractions allowed, above 0.
fn seconds(text: &str) -> Result<Duration, String> {
    let secs = text.trim().parse::<f64>().ok().filter(|secs| *secs > 0.0);
    let duration = secs.and_then(|secs| Duration::try_from_secs_f64(secs).ok());
    duration.ok_or_else(|| "must be a number of seconds above 0".into())
}

fn path(text: String) -> Result<PathBuf, String> {
    let path = (!text.trim().is_empty()).then(|| PathBuf::from(text));
    path.ok_or_else(|| "must be a path (a non-empty string)".into())
}

fn interfaces(value: &Value) -> Result<Vec<String>, String> {
    let name = |v: &Value| v.as_str().filter(|s| !s.is_empty()).map(str::to_string);
    let names = value.as_array().and_then(|v| v.iter().map(name).collect());
    names.ok_or_else(|| "must be a list of interface names".into())
}

/// `url`: "localhost" or an IP literal; resolving a name could bind somewhere unexpected.
fn listen_ip(text: &str) -> Result<IpAddr, String> {
    let text = text.trim();
    if text.eq_ignore_ascii_case("localhost") {
        return Ok(IpAddr::V4(Ipv4Addr::LOCALHOST));
    }
    let bare = text.strip_prefix('[').and_then(|t| t.strip_suffix(']'));
    let why = "must be \"localhost\" or an IP address to listen on (like \"0.0.0.0\" or \"::1\"); \
               host names are not resolved";
    bare.unwrap_or(text).parse().map_err(|_| why.into())
}

/// `terminalIp`: "IP:PORT", "IP" (port 3000), "[v6]:PORT", "[v6]" or a bare v6 address; mode
/// F means a fixed IP, so a host name is refused rather than resolved.
fn terminal_addr(text: &str) -> Result<SocketAddr, String> {
    let text = text.trim();
    let bare = text.strip_prefix('[').and_then(|t| t.strip_suffix(']'));
    let ip = |t: &str| Some(SocketAddr::new(t.parse().ok()?, DEFAULT_PORT));
    let addr = text.parse().ok().or_else(|| ip(text)).or_else(|| ip(bare?));
    let addr: SocketAddr = addr.ok_or(
        "must be the terminal's IP address, optionally with a port (\"192.168.1.20:3000\", \
         \"192.168.1.20\" or \"[fd00::20]:3000\"); mode F uses a fixed IP, so host names are \
         not accepted",
    )?;
    let ip = addr.ip();
    if ip.is_unspecified() || ip.is_multicast() || ip == IpAddr::V4(Ipv4Addr::BROADCAST) {
        return Err(format!("{ip} is not the address of a terminal"));
    }
    if addr.port() == 0 {
        return Err("port 0 is not a terminal port (leave the port out for 3000)".into());
    }
    Ok(addr)
}
