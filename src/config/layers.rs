//! The layers: the JSON file, then `ECRLINK_*` variables, then the command line, each setting
//! a value at a key path and remembering its source ("from environment variable ECRLINK_PORT").
//! A variable names a path with `__` between keys and list indexes (from 0), matched without
//! regard to case: `ECRLINK_TERMINALS__1__TERMINALIP` sets `terminals[1].terminalIp`. Values
//! stay the strings given (`"0001"` is not 1); a JSON object or list sets that whole value.

use serde::de::{Deserializer, MapAccess, Visitor};
use serde_json::{Map, Value};

use super::error::{ConfigError, Problem};
use super::schema::{Object, all_keys};

const ENV_PREFIX: &str = "ECRLINK_";
const ENV_SEPARATOR: &str = "__";

/// The merged values and, per key path a layer set, its source.
#[derive(Default)]
pub(super) struct Layers {
    pub tree: Value,
    sources: Vec<(String, String)>,
}

/// `["terminals", "1", "terminalIp"]` → `terminals[1].terminalIp` (keys are never numbers).
fn display(path: &[String]) -> String {
    let step = |(i, s): (usize, &String)| match s.parse::<usize>() {
        Ok(_) => format!("[{s}]"),
        Err(_) if i == 0 => s.clone(),
        Err(_) => format!(".{s}"),
    };
    path.iter().enumerate().map(step).collect()
}

/// Whether `path` lies inside the value at `above` (`terminals[1].deviceId` in `terminals`).
fn under(path: &str, above: &str) -> bool {
    path.strip_prefix(above)
        .is_some_and(|r| r.starts_with(['.', '[']))
}

impl Layers {
    /// Where the value at `path` came from: the layer that set it or a key above it, else one
    /// that set a key inside it.
    pub fn source(&self, path: &str) -> Option<String> {
        let sources = || self.sources.iter();
        let above = sources().filter(|(p, _)| p == path || under(path, p));
        let found = above.max_by_key(|(p, _)| p.len());
        let found = found.or_else(|| sources().find(|(p, _)| under(p, path)));
        found.map(|(_, s)| s.clone())
    }

    fn set(&mut self, path: &[String], value: Value, source: &str) -> Result<(), String> {
        let mut node = &mut self.tree;
        for step in path {
            let Ok(i) = step.parse::<usize>() else {
                if !node.is_object() {
                    *node = Value::Object(Map::new());
                }
                node = &mut node[step.as_str()];
                continue;
            };
            if !node.is_array() {
                *node = Value::Array(Vec::new());
            }
            let items = node.as_array_mut().expect("made a list");
            let n = items.len();
            if i > n {
                return Err(format!(
                    "the list has {n} entries: use index {n} to add one"
                ));
            }
            if i == n {
                items.push(Value::Null);
            }
            node = &mut items[i];
        }
        *node = value;
        let at = display(path);
        self.sources.retain(|(p, _)| *p != at && !under(p, &at));
        self.sources.push((at, source.to_string()));
        Ok(())
    }

    /// Applies `ECRLINK_*` variables; one naming no key, or a second naming the same path, is a
    /// problem: an override is never silently ignored.
    fn apply_env(&mut self, env: &[(String, String)], problems: &mut Vec<Problem>) {
        let mut seen: Vec<(String, &str)> = Vec::new();
        let ours = env
            .iter()
            .filter(|(n, _)| !n.eq_ignore_ascii_case(crate::constants::LOG_FORMAT_ENV))
            .filter_map(|(n, v)| Some((n, v, env_suffix(n)?)));
        for (name, value, suffix) in ours {
            let source = format!("environment variable {name}");
            let Some(path) = env_path(suffix) else {
                let message = format!(
                    "is not a setting: {ENV_PREFIX}<KEY> must name a config key, nested keys \
                     and list indexes joined by {ENV_SEPARATOR} (like ECRLINK_TERMINALS__0__TERMINALIP)"
                );
                problems.push(Problem::new(name.clone(), Some(source.clone()), message));
                continue;
            };
            let at = display(&path);
            if let Some((_, first)) = seen.iter().find(|(p, _)| *p == at) {
                let message = format!("is set by both {first} and {name}; keep one");
                problems.push(Problem::new(at, Some(source.clone()), message));
                continue;
            }
            let value = match serde_json::from_str::<Value>(value) {
                Ok(json @ (Value::Object(_) | Value::Array(_))) => json,
                _ => Value::String(value.clone()),
            };
            if let Err(message) = self.set(&path, value, &source) {
                problems.push(Problem::new(at.clone(), Some(source.clone()), message));
            }
            seen.push((at, name));
        }
    }
}

/// The part after `ECRLINK_` (prefix matched case-insensitively), if the variable has it.
fn env_suffix(name: &str) -> Option<&str> {
    let (prefix, n) = (name.get(..ENV_PREFIX.len())?, ENV_PREFIX.len());
    prefix.eq_ignore_ascii_case(ENV_PREFIX).then(|| &name[n..])
}

/// `TERMINALS__1__TERMINALIP` → `terminals`, `1`, `terminalIp`: keys spelled as in the file.
fn env_path(suffix: &str) -> Option<Vec<String>> {
    let key = |part: &str| all_keys().find(|k| k.eq_ignore_ascii_case(part));
    let step = |(i, part): (usize, &str)| match part.parse::<usize>() {
        Ok(_) if i > 0 => Some(part.to_string()),
        _ => key(part).map(str::to_string),
    };
    suffix.split(ENV_SEPARATOR).enumerate().map(step).collect()
}

/// The process's `ECRLINK_*` variables (`std::env::vars` would panic on any non-UTF-8 one).
pub(super) fn process_env() -> (Vec<(String, String)>, Vec<Problem>) {
    let (mut vars, mut problems) = (Vec::new(), Vec::new());
    for (name, value) in std::env::vars_os() {
        let Some(name) = name.into_string().ok().filter(|n| env_suffix(n).is_some()) else {
            continue;
        };
        match value.into_string() {
            Ok(value) => vars.push((name, value)),
            Err(_) => {
                let source = Some(format!("environment variable {name}"));
                problems.push(Problem::new(name, source, "is not valid UTF-8"));
            }
        }
    }
    (vars, problems)
}

/// A file's object and the keys it holds twice; Notepad's UTF-8 byte-order mark is skipped.
fn parse_json(bytes: &[u8]) -> Result<(Object, Vec<String>), String> {
    struct TopLevel;
    impl<'de> Visitor<'de> for TopLevel {
        type Value = (Object, Vec<String>);
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a JSON object of settings, like {\"terminalIp\": \"192.168.1.20\"}")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<Self::Value, A::Error> {
            let (mut values, mut duplicates) = (Map::new(), Vec::new());
            while let Some((key, value)) = access.next_entry::<String, Value>()? {
                if values.insert(key.clone(), value).is_some() && !duplicates.contains(&key) {
                    duplicates.push(key);
                }
            }
            Ok((values, duplicates))
        }
    }
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let text = std::str::from_utf8(bytes).map_err(|e| {
        let at = e.valid_up_to();
        format!("not UTF-8 text (bad byte at offset {at}); save the file as UTF-8")
    })?;
    let mut deserializer = serde_json::Deserializer::from_str(text);
    let layer = (&mut deserializer).deserialize_map(TopLevel);
    (layer.and_then(|layer| deserializer.end().map(|()| layer))).map_err(|e| e.to_string())
}

/// The layers, then the validation pass; `file` is the file's bytes and its source name.
pub(super) fn build(
    file: Option<(&[u8], String)>,
    path: Option<&std::path::Path>,
    env: &[(String, String)],
    mut problems: Vec<Problem>,
    cli: Vec<(String, Value)>,
) -> Result<super::Config, ConfigError> {
    let mut layers = Layers::default();
    if let Some((bytes, source)) = file {
        let path = path.map(Into::into);
        let syntax = |message| ConfigError::Syntax { path, message };
        let (tree, duplicates) = parse_json(bytes).map_err(syntax)?;
        for key in duplicates {
            let message = "appears more than once; only the last value would count";
            problems.push(Problem::new(key, Some(source.clone()), message));
        }
        layers.sources = tree.keys().map(|k| (k.clone(), source.clone())).collect();
        layers.tree = Value::Object(tree);
    }
    layers.apply_env(env, &mut problems);
    for (key, value) in cli {
        let set = layers.set(&[key], value, "command line");
        set.expect("a top-level key is always settable");
    }
    super::validate::validate(layers, problems)
}
