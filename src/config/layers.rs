//! The layers and their merge: the JSON file, then `ECRLINK_*` variables, then the
//! command line, each setting a value at a key path and remembering where it came from,
//! so a problem can say "from environment variable ECRLINK_PORT". Defaults are the
//! validation pass's, for keys no layer set.
//!
//! A variable names a path with `__` between keys and list indexes, matched without
//! regard to case: `ECRLINK_TERMINALS__1__TERMINALIP` sets `terminals[1].terminalIp`.
//! Values stay the strings given (`"0001"` is not the number 1); a value that is a JSON
//! object or list (`ECRLINK_FALLBACK='{"mqtt": …}'`) sets that whole value.

use std::fmt;

use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};
use serde_json::{Map, Value};

use super::error::Problem;
use super::schema::all_keys;

/// Environment variables that set a key start with this (matched case-insensitively).
pub(super) const ENV_PREFIX: &str = "ECRLINK_";
/// Between the keys of a nested path in a variable's name.
pub(super) const ENV_SEPARATOR: &str = "__";

/// The merged values and, per key path a layer set, its source.
pub(super) struct Layers {
    pub tree: Value,
    sources: Vec<(String, String)>,
}

#[derive(Clone, Debug, PartialEq)]
enum Step {
    Key(String),
    Index(usize),
}

fn display(path: &[Step]) -> String {
    let mut text = String::new();
    for step in path {
        match step {
            Step::Key(key) if text.is_empty() => text.push_str(key),
            Step::Key(key) => text.push_str(&format!(".{key}")),
            Step::Index(i) => text.push_str(&format!("[{i}]")),
        }
    }
    text
}

impl Layers {
    /// The file's (or text's) values, every top-level key credited to `source`.
    pub fn new(file: Option<(Map<String, Value>, String)>) -> Layers {
        let (tree, source) = file.unwrap_or_default();
        let sources = tree.keys().map(|k| (k.clone(), source.clone())).collect();
        Layers {
            tree: Value::Object(tree),
            sources,
        }
    }

    /// Where the value at `path` came from: the layer that set it or a key above it,
    /// else one that set a key inside it.
    pub fn source(&self, path: &str) -> Option<String> {
        let above = self
            .sources
            .iter()
            .filter(|(p, _)| p == path || under(path, p));
        let above = above.max_by_key(|(p, _)| p.len());
        let inside = || self.sources.iter().find(|(p, _)| under(p, path));
        above.or_else(inside).map(|(_, s)| s.clone())
    }

    fn set(&mut self, path: &[Step], value: Value, source: &str) -> Result<(), String> {
        let mut node = &mut self.tree;
        for step in path {
            node = match step {
                Step::Key(key) => {
                    if !node.is_object() {
                        *node = Value::Object(Map::new());
                    }
                    let map = node.as_object_mut().expect("made an object");
                    map.entry(key.clone()).or_insert(Value::Null)
                }
                Step::Index(i) => {
                    if !node.is_array() {
                        *node = Value::Array(Vec::new());
                    }
                    let items = node.as_array_mut().expect("made a list");
                    if *i > items.len() {
                        let n = items.len();
                        return Err(format!(
                            "the list has {n} entries: use index {n} to add one"
                        ));
                    }
                    if *i == items.len() {
                        items.push(Value::Null);
                    }
                    &mut items[*i]
                }
            };
        }
        *node = value;
        let at = display(path);
        self.sources.retain(|(p, _)| *p != at && !under(p, &at));
        self.sources.push((at, source.to_string()));
        Ok(())
    }

    /// Applies `ECRLINK_*` variables. A variable that names no key, or a second one
    /// naming the same path, is a problem: an override must never be silently ignored.
    pub fn apply_env(&mut self, env: &[(String, String)], problems: &mut Vec<Problem>) {
        let mut seen: Vec<(String, &str)> = Vec::new();
        for (name, value) in env {
            let Some(suffix) = env_suffix(name) else {
                continue;
            };
            let source = format!("environment variable {name}");
            let problem = |key: String, message: String| Problem {
                key,
                value: None,
                source: Some(source.clone()),
                message,
            };
            let Some(path) = env_path(suffix) else {
                let message = format!(
                    "is not a setting: {ENV_PREFIX}<KEY> must name a config key, nested keys and \
                     list indexes joined by {ENV_SEPARATOR} (like ECRLINK_TERMINALS__0__TERMINALIP)"
                );
                problems.push(problem(name.clone(), message));
                continue;
            };
            let at = display(&path);
            if let Some((_, first)) = seen.iter().find(|(p, _)| *p == at) {
                problems.push(problem(
                    at,
                    format!("is set by both {first} and {name}; keep one"),
                ));
                continue;
            }
            if let Err(message) = self.set(&path, env_value(value), &source) {
                problems.push(problem(at.clone(), message));
            }
            seen.push((at, name));
        }
    }

    /// Applies command-line values, keyed by their exact top-level key names.
    pub fn apply_cli(&mut self, values: &[(String, Value)]) {
        for (key, value) in values {
            let path = [Step::Key(key.clone())];
            self.set(&path, value.clone(), "command line")
                .expect("a top-level key is always settable");
        }
    }
}

/// Whether `path` lies inside the value at `above` (`terminals[1].deviceId` in `terminals`).
fn under(path: &str, above: &str) -> bool {
    path.strip_prefix(above)
        .is_some_and(|rest| rest.starts_with(['.', '[']))
}

/// The part after `ECRLINK_` (prefix matched case-insensitively), if the variable has it.
fn env_suffix(name: &str) -> Option<&str> {
    let prefix = name.get(..ENV_PREFIX.len())?;
    prefix
        .eq_ignore_ascii_case(ENV_PREFIX)
        .then(|| &name[ENV_PREFIX.len()..])
}

/// `TERMINALS__1__TERMINALIP` → `terminals[1].terminalIp`, keys spelled as in the file.
fn env_path(suffix: &str) -> Option<Vec<Step>> {
    let key = |part: &str| all_keys().find(|k| k.eq_ignore_ascii_case(part));
    let steps = suffix
        .split(ENV_SEPARATOR)
        .enumerate()
        .map(|(i, part)| match part.parse() {
            Ok(index) if i > 0 => Some(Step::Index(index)),
            _ => key(part).map(|k| Step::Key(k.to_string())),
        });
    steps.collect()
}

fn env_value(value: &str) -> Value {
    match serde_json::from_str::<Value>(value) {
        Ok(json @ (Value::Object(_) | Value::Array(_))) => json,
        _ => Value::String(value.to_string()),
    }
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
        struct TopLevel;
        impl<'de> Visitor<'de> for TopLevel {
            type Value = JsonLayer;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object of settings, like {\"terminalIp\": \"192.168.1.20\"}")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<JsonLayer, A::Error> {
                let (mut values, mut duplicates) = (Map::new(), Vec::new());
                while let Some((key, value)) = access.next_entry::<String, Value>()? {
                    if values.insert(key.clone(), value).is_some() && !duplicates.contains(&key) {
                        duplicates.push(key);
                    }
                }
                Ok(JsonLayer { values, duplicates })
            }
        }
        deserializer.deserialize_map(TopLevel)
    }
}
