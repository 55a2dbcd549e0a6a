//! The layers of configuration and their merge: defaults → JSON file → `ECRLINK_*`
//! environment → command line. figment does the merge and remembers which layer each
//! value came from, so a problem can say "from environment variable ECRLINK_PORT".
//!
//! Each layer is a plain JSON map wrapped in [`Layer`], not figment's `Json` and `Env`
//! providers: the file is parsed here to report line/column, a UTF-8 BOM and duplicate
//! keys, and environment values are kept as the exact strings given, because `Env`
//! sniffs types ("0001" would become the number 1, a long numeric key would lose digits).

use std::collections::HashMap;
use std::fmt;
use std::path::Path;

use figment::value::{Dict, Map as ProfileMap, Value as FigmentValue};
use figment::{Figment, Metadata, Profile, Provider, Source};
use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};
use serde_json::{Map, Value};

use super::error::Problem;
use super::keys;

/// The configuration after merging, with where each value came from.
pub(super) struct Merged {
    pub values: Map<String, Value>,
    figment: Figment,
}

impl Merged {
    /// Where `key`'s value came from, e.g. `environment variable ECRLINK_PORT`.
    pub fn source(&self, key: &str) -> Option<String> {
        // figment reads "a.b" as a path into nested maps; such a key has no source here.
        if key.contains('.') {
            return None;
        }
        let metadata = self.figment.find_metadata(key)?;
        Some(metadata.interpolate(&Profile::Default, &[key]))
    }
}

/// A JSON object read from a file or given as text, with the keys it held twice.
pub(super) struct JsonLayer {
    pub values: Map<String, Value>,
    pub duplicates: Vec<String>,
}

/// Parses a config file's bytes. The error is a message with line and column.
/// Notepad saves UTF-8 with a byte-order mark; it is skipped.
pub(super) fn parse_json(bytes: &[u8]) -> Result<JsonLayer, String> {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let text = std::str::from_utf8(bytes).map_err(|e| {
        format!(
            "not UTF-8 text (bad byte at offset {}); save the file as UTF-8",
            e.valid_up_to()
        )
    })?;
    let mut deserializer = serde_json::Deserializer::from_str(text);
    let layer = JsonLayer::deserialize(&mut deserializer).map_err(|e| e.to_string())?;
    deserializer.end().map_err(|e| e.to_string())?;
    Ok(layer)
}

impl<'de> Deserialize<'de> for JsonLayer {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(JsonLayerVisitor)
    }
}

struct JsonLayerVisitor;

impl<'de> Visitor<'de> for JsonLayerVisitor {
    type Value = JsonLayer;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object of settings, like {\"terminalIp\": \"192.168.1.20\"}")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<JsonLayer, A::Error> {
        let mut layer = JsonLayer {
            values: Map::new(),
            duplicates: Vec::new(),
        };
        while let Some((key, value)) = access.next_entry::<String, Value>()? {
            if layer.values.insert(key.clone(), value).is_some() && !layer.duplicates.contains(&key)
            {
                layer.duplicates.push(key);
            }
        }
        Ok(layer)
    }
}

/// Where the JSON layer came from.
pub(super) enum Origin<'a> {
    File(&'a Path),
    Text,
}

/// Merges the layers. Problems found while building them (duplicate file keys,
/// environment variables that name no key) come back to be reported with the rest.
pub(super) fn merge(
    json: Option<(JsonLayer, Origin<'_>)>,
    env: &[(String, String)],
    cli: &[(String, Value)],
) -> (Merged, Vec<Problem>) {
    let mut problems = Vec::new();
    let mut figment = Figment::new().merge(Layer::new("default", keys::defaults()));

    if let Some((json, origin)) = json {
        let source = match origin {
            Origin::File(path) => format!("file {}", path.display()),
            Origin::Text => "JSON text".to_string(),
        };
        for key in json.duplicates {
            problems.push(Problem {
                key,
                value: None,
                source: Some(source.clone()),
                message: "appears more than once; only the last value would count".to_string(),
            });
        }
        let mut layer = Layer::new(&source, json.values);
        if let Origin::File(path) = origin {
            layer.metadata = layer.metadata.source(Source::File(path.to_path_buf()));
        }
        figment = figment.merge(layer);
    }

    let (env_values, env_names) = env_layer(env, &mut problems);
    let env_metadata = Metadata::named("environment variables").interpolater(move |_, path| {
        match path.first().and_then(|key| env_names.get(*key)) {
            Some(name) => format!("environment variable {name}"),
            None => "environment variables".to_string(),
        }
    });
    figment = figment.merge(Layer {
        metadata: env_metadata,
        values: env_values,
    });

    let cli_values = cli.iter().cloned().collect();
    figment = figment.merge(Layer::new("command line", cli_values));

    let values = match figment.extract::<Map<String, Value>>() {
        Ok(values) => values,
        Err(error) => {
            // Every layer is a JSON map, so this is not expected; report it, don't panic.
            problems.push(Problem {
                key: error.path.join("."),
                value: None,
                source: None,
                message: error.to_string(),
            });
            Map::new()
        }
    };
    (Merged { values, figment }, problems)
}

/// Maps `ECRLINK_<KEY>` variables onto the exact JSON key names. A prefixed variable that
/// names no key, or two variables naming the same key, is a problem: an override must never
/// be silently ignored. Returns the values and, per key, the variable that set it.
fn env_layer(
    env: &[(String, String)],
    problems: &mut Vec<Problem>,
) -> (Map<String, Value>, HashMap<String, String>) {
    let mut values = Map::new();
    let mut names: HashMap<String, String> = HashMap::new();
    for (name, value) in env {
        let Some(suffix) = env_suffix(name) else {
            continue;
        };
        let Some(key) = keys::from_env_suffix(suffix) else {
            problems.push(Problem {
                key: name.clone(),
                value: None,
                source: Some(format!("environment variable {name}")),
                message: format!(
                    "is not a setting: {}<KEY> must name a config key ({})",
                    keys::ENV_PREFIX,
                    keys::ALL.join(", ")
                ),
            });
            continue;
        };
        if let Some(first) = names.get(key) {
            problems.push(Problem {
                key: key.to_string(),
                value: None,
                source: Some(format!("environment variables {first} and {name}")),
                message: format!("is set by both {first} and {name}; keep one"),
            });
            continue;
        }
        names.insert(key.to_string(), name.clone());
        values.insert(key.to_string(), Value::String(value.clone()));
    }
    (values, names)
}

/// The part after `ECRLINK_` (prefix matched case-insensitively), if the variable has it.
fn env_suffix(name: &str) -> Option<&str> {
    let prefix = name.get(..keys::ENV_PREFIX.len())?;
    prefix
        .eq_ignore_ascii_case(keys::ENV_PREFIX)
        .then(|| &name[keys::ENV_PREFIX.len()..])
}

/// The process's `ECRLINK_*` variables. `std::env::vars` would panic on a non-UTF-8
/// variable anywhere in the environment; ours must be UTF-8, others are none of our business.
pub(super) fn process_env() -> (Vec<(String, String)>, Vec<Problem>) {
    let mut vars = Vec::new();
    let mut problems = Vec::new();
    for (name, value) in std::env::vars_os() {
        let Some(name) = name.to_str().filter(|name| env_suffix(name).is_some()) else {
            continue;
        };
        match value.into_string() {
            Ok(value) => vars.push((name.to_string(), value)),
            Err(_) => problems.push(Problem {
                key: name.to_string(),
                value: None,
                source: Some(format!("environment variable {name}")),
                message: "is not valid UTF-8".to_string(),
            }),
        }
    }
    (vars, problems)
}

/// One layer for figment: a JSON map and metadata whose interpolater names the source.
struct Layer {
    metadata: Metadata,
    values: Map<String, Value>,
}

impl Layer {
    fn new(source: &str, values: Map<String, Value>) -> Layer {
        let source = source.to_string();
        let metadata = Metadata::named(source.clone()).interpolater(move |_, _| source.clone());
        Layer { metadata, values }
    }
}

impl Provider for Layer {
    fn metadata(&self) -> Metadata {
        self.metadata.clone()
    }

    fn data(&self) -> Result<ProfileMap<Profile, Dict>, figment::Error> {
        let mut dict = Dict::new();
        for (key, value) in &self.values {
            dict.insert(key.clone(), FigmentValue::serialize(value)?);
        }
        Ok(Profile::Default.collect(dict))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn json_errors_carry_line_and_column() {
        let message = parse_json(b"{\n  \"port\": 3000,\n}").err().unwrap();
        assert!(message.contains("line 3"), "{message}");
        let message = parse_json(b"[1, 2]").err().unwrap();
        assert!(message.contains("JSON object"), "{message}");
        let message = parse_json(b"{} {}").err().unwrap();
        assert!(message.contains("trailing"), "{message}");
        let message = parse_json(b"{\"url\": \"caf\xE9\"}").err().unwrap();
        assert!(message.contains("UTF-8"), "{message}");
    }

    #[test]
    fn bom_is_skipped_and_duplicates_are_noted() {
        let layer = parse_json(b"\xEF\xBB\xBF{\"mode\": \"B\", \"mode\": \"F\"}").unwrap();
        assert_eq!(layer.values["mode"], "F");
        assert_eq!(layer.duplicates, vec!["mode".to_string()]);
    }

    #[test]
    fn env_values_stay_strings_and_sources_name_the_variable() {
        let (merged, problems) = merge(None, &env(&[("ECRLINK_deviceId", "0001")]), &[]);
        assert!(problems.is_empty());
        assert_eq!(merged.values["deviceId"], "0001");
        assert_eq!(
            merged.source("deviceId").as_deref(),
            Some("environment variable ECRLINK_deviceId")
        );
        assert_eq!(merged.source("port").as_deref(), Some("default"));
    }

    #[test]
    fn later_layers_win_and_keep_their_source() {
        let json = parse_json(br#"{"port": 1000, "retries": 5}"#).unwrap();
        let cli = [("port".to_string(), Value::from(0))];
        let (merged, _) = merge(
            Some((json, Origin::File(Path::new("x.json")))),
            &env(&[("ECRLINK_PORT", "2000")]),
            &cli,
        );
        assert_eq!(merged.values["port"], 0);
        assert_eq!(merged.source("port").as_deref(), Some("command line"));
        assert_eq!(merged.source("retries").as_deref(), Some("file x.json"));
    }

    #[test]
    fn unknown_and_ambiguous_variables_are_problems_others_ignored() {
        let vars = env(&[
            ("PATH", "/bin"),
            ("ECRLINKX", "1"),
            ("ECRLINK_BOGUS", "1"),
            ("ECRLINK_PORT", "1"),
            ("ecrlink_port", "2"),
        ]);
        let (merged, problems) = merge(None, &vars, &[]);
        let keys: Vec<&str> = problems.iter().map(|p| p.key.as_str()).collect();
        assert_eq!(keys, ["ECRLINK_BOGUS", "port"]);
        assert!(problems[1].message.contains("ecrlink_port"));
        assert_eq!(merged.values["port"], "1");
    }
}
