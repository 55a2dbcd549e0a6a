//! `fallback`: the push fallback's settings, a nested object (the only one among the
//! keys): `{ "mqtt": { "url", "clientCert", "clientKey", "caCert" } }`. Problems are
//! named by their path, like `fallback.mqtt.url`.

use std::path::{Path, PathBuf};

use serde_json::{Map, Value, json};

use super::error::Problem;
use super::values::{parse_path, scalar_text};
use crate::pki;
use crate::transport::mqtt::wire::BrokerUrl;

pub(super) const FALLBACK: &str = "fallback";
const MQTT: &str = "mqtt";
const URL: &str = "url";
const CLIENT_CERT: &str = "clientCert";
const CLIENT_KEY: &str = "clientKey";
const CA_CERT: &str = "caCert";
const MQTT_KEYS: [&str; 4] = [URL, CLIENT_CERT, CLIENT_KEY, CA_CERT];

/// The MQTT fallback: the broker and the gateway's identity towards it.
#[derive(Debug, Clone, PartialEq)]
pub struct MqttFallback {
    pub broker: BrokerUrl,
    /// Default `certsDir/client.pem` (CN `ecrlink-gateway`).
    pub client_cert: PathBuf,
    /// Default `certsDir/client.key`.
    pub client_key: PathBuf,
    /// Default `certsDir/ca.pem`.
    pub ca_cert: PathBuf,
}

impl MqttFallback {
    pub(super) fn effective(&self) -> Value {
        json!({ MQTT: {
            URL: self.broker.to_string(),
            CLIENT_CERT: self.client_cert.to_string_lossy(),
            CLIENT_KEY: self.client_key.to_string_lossy(),
            CA_CERT: self.ca_cert.to_string_lossy(),
        }})
    }
}

fn problem(
    problems: &mut Vec<Problem>,
    key: String,
    value: Option<&Value>,
    source: &Option<String>,
    message: impl Into<String>,
) {
    problems.push(Problem {
        key,
        value: value.and_then(|v| serde_json::to_string(v).ok()),
        source: source.clone(),
        message: message.into(),
    });
}

/// Reads `fallback`. `Some(None)` when absent or null; `None` after pushing problems.
/// `certs_dir` (when valid) gives the default paths.
pub(super) fn read(
    value: Option<&Value>,
    source: Option<String>,
    certs_dir: Option<&Path>,
    problems: &mut Vec<Problem>,
) -> Option<Option<MqttFallback>> {
    let value = match value {
        None | Some(Value::Null) => return Some(None),
        Some(v) => v,
    };
    let Some(outer) = value.as_object() else {
        problem(
            problems,
            FALLBACK.into(),
            Some(value),
            &source,
            "must be an object like {\"mqtt\": {\"url\": \"mqtts://192.168.1.10:8883\"}}",
        );
        return None;
    };
    let before = problems.len();
    for key in outer.keys().filter(|k| k.as_str() != MQTT) {
        problem(
            problems,
            format!("{FALLBACK}.{key}"),
            None,
            &source,
            "unknown key; the only fallback is \"mqtt\"",
        );
    }
    let mqtt = match outer.get(MQTT) {
        None | Some(Value::Null) => {
            if problems.len() > before {
                return None;
            }
            // `"fallback": {}` configures nothing.
            return Some(None);
        }
        Some(v) => v,
    };
    let Some(mqtt) = mqtt.as_object() else {
        problem(
            problems,
            format!("{FALLBACK}.{MQTT}"),
            Some(mqtt),
            &source,
            "must be an object with \"url\" and optionally \"clientCert\", \"clientKey\", \"caCert\"",
        );
        return None;
    };
    let result = read_mqtt(mqtt, &source, certs_dir, problems);
    if problems.len() > before {
        None
    } else {
        result.map(Some)
    }
}

fn read_mqtt(
    mqtt: &Map<String, Value>,
    source: &Option<String>,
    certs_dir: Option<&Path>,
    problems: &mut Vec<Problem>,
) -> Option<MqttFallback> {
    let name = |key: &str| format!("{FALLBACK}.{MQTT}.{key}");
    for key in mqtt.keys().filter(|k| !MQTT_KEYS.contains(&k.as_str())) {
        problem(
            problems,
            name(key),
            None,
            source,
            format!("unknown key; known keys: {}", MQTT_KEYS.join(", ")),
        );
    }
    let broker = match mqtt.get(URL) {
        None | Some(Value::Null) => {
            problem(
                problems,
                name(URL),
                None,
                source,
                "is required: the broker's address, like \"mqtts://192.168.1.10:8883\"",
            );
            None
        }
        Some(v) => match scalar_text(v).map(|t| BrokerUrl::parse(&t)) {
            Some(Ok(url)) => Some(url),
            Some(Err(message)) => {
                problem(problems, name(URL), Some(v), source, message);
                None
            }
            None => {
                problem(problems, name(URL), Some(v), source, "must be a string");
                None
            }
        },
    };
    let mut path = |key: &str, default: &str| -> Option<PathBuf> {
        match mqtt.get(key) {
            None | Some(Value::Null) => certs_dir.map(|dir| dir.join(default)),
            Some(v) => match scalar_text(v).map(|t| parse_path(&t)) {
                Some(Ok(p)) => Some(p),
                Some(Err(message)) => {
                    problem(problems, name(key), Some(v), source, message);
                    None
                }
                None => {
                    problem(
                        problems,
                        name(key),
                        Some(v),
                        source,
                        "must be a string (a file path)",
                    );
                    None
                }
            },
        }
    };
    let client_cert = path(CLIENT_CERT, pki::CLIENT_CERT);
    let client_key = path(CLIENT_KEY, pki::CLIENT_KEY);
    let ca_cert = path(CA_CERT, pki::CA_CERT);
    Some(MqttFallback {
        broker: broker?,
        client_cert: client_cert?,
        client_key: client_key?,
        ca_cert: ca_cert?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(value: Value) -> (Option<Option<MqttFallback>>, Vec<String>) {
        let mut problems = Vec::new();
        let r = read(Some(&value), None, Some(Path::new("certs")), &mut problems);
        (r, problems.into_iter().map(|p| p.to_string()).collect())
    }

    #[test]
    fn defaults_come_from_the_certs_dir() {
        let (r, problems) = run(json!({"mqtt": {"url": "mqtts://10.0.0.2"}}));
        assert!(problems.is_empty(), "{problems:?}");
        let m = r.unwrap().unwrap();
        assert_eq!(m.broker.to_string(), "mqtts://10.0.0.2:8883");
        assert_eq!(m.client_cert, Path::new("certs/client.pem"));
        assert_eq!(m.client_key, Path::new("certs/client.key"));
        assert_eq!(m.ca_cert, Path::new("certs/ca.pem"));
    }

    #[test]
    fn every_problem_is_named_by_its_path() {
        let (r, problems) =
            run(json!({"mqtt": {"url": "mqtt://x", "clientKey": "", "colour": 1}, "pushy": {}}));
        assert!(r.is_none());
        let text = problems.join("\n");
        for key in [
            "fallback.pushy",
            "fallback.mqtt.colour",
            "fallback.mqtt.url",
            "fallback.mqtt.clientKey",
        ] {
            assert!(text.contains(key), "{key}: {text}");
        }
        assert_eq!(problems.len(), 4, "{text}");
        let (_, problems) = run(json!({"mqtt": {}}));
        assert!(
            problems[0].contains("fallback.mqtt.url: is required"),
            "{problems:?}"
        );
        let (_, problems) = run(json!("mqtts://10.0.0.2"));
        assert!(
            problems[0].starts_with("fallback: must be an object"),
            "{problems:?}"
        );
        assert_eq!(run(json!({})).0, Some(None));
    }
}
