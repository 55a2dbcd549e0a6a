//! The config module from the outside: fixtures under tests/configs, the example
//! configs shipped in config/, layering, secrets and the effective view.

use std::collections::BTreeSet;
use std::fs;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ecrlink::config::{
    self, Config, ConfigError, Mode, Overrides, Problem, Secret, StartTechnology,
};
use ecrlink::constants::DEFAULT_DEVICE_ID;
use serde_json::{Value, json};

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

fn json_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "json"))
        .collect();
    files.sort();
    files
}

fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn overrides(pairs: &[(&str, Value)]) -> Overrides {
    Overrides {
        values: pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect(),
    }
}

fn from_text(text: &str) -> Result<Config, ConfigError> {
    config::load_from(Some(text), &[], &Overrides::default())
}

fn problems(result: Result<Config, ConfigError>) -> (Vec<Problem>, String) {
    match result {
        Err(error @ ConfigError::Invalid(_)) => (error.problems().to_vec(), error.to_string()),
        other => panic!("expected ConfigError::Invalid, got {other:?}"),
    }
}

fn seed_text() -> String {
    fs::read_to_string(repo("config/examples/seed-mode-f.json")).unwrap()
}

#[test]
fn every_valid_fixture_loads() {
    let files = json_files(&repo("tests/configs/valid"));
    assert!(files.len() >= 7, "valid fixtures went missing: {files:?}");
    for file in files {
        let text = fs::read_to_string(&file).unwrap();
        if let Err(error) = from_text(&text) {
            panic!("{}: {error}", file.display());
        }
    }
}

#[test]
fn every_example_config_in_the_repo_loads() {
    let mut files = json_files(&repo("config"));
    files.extend(json_files(&repo("config/examples")));
    assert!(files.len() >= 2, "example configs went missing: {files:?}");
    for file in files {
        // Through `load`, as `ecrlink config check FILE` reads it.
        if let Err(error) = config::load(&file, true, &Overrides::default()) {
            panic!("{}: {error}", file.display());
        }
    }
}

#[test]
fn simulator_example_matches_the_shared_constants() {
    let text = fs::read_to_string(repo("config/config.json")).unwrap();
    let config = from_text(&text).unwrap();
    assert_eq!(config.device_id, DEFAULT_DEVICE_ID);
    assert_eq!(config.terminal_addr, "127.0.0.1:3001".parse().unwrap());
    assert_eq!(config.listen, "127.0.0.1:3000".parse().unwrap());
    assert_eq!(config.start_technology, StartTechnology::None);
}

/// Invalid fixtures are named `what__key1+key2.json`: loading must fail with exactly
/// those keys among the problems; `SYNTAX` means a JSON syntax error.
#[test]
fn every_invalid_fixture_fails_naming_its_keys() {
    let files = json_files(&repo("tests/configs/invalid"));
    assert!(
        files.len() >= 13,
        "invalid fixtures went missing: {files:?}"
    );
    for file in files {
        let stem = file.file_stem().unwrap().to_str().unwrap();
        let (_, expected) = stem
            .split_once("__")
            .unwrap_or_else(|| panic!("{stem}: name it what__key.json"));
        let text = fs::read_to_string(&file).unwrap();
        let result = from_text(&text);
        if expected == "SYNTAX" {
            match result {
                Err(ConfigError::Syntax {
                    path: None,
                    message,
                }) => {
                    assert!(message.contains("line"), "{stem}: {message}")
                }
                other => panic!("{stem}: expected a syntax error, got {other:?}"),
            }
            continue;
        }
        let (problems, text) = problems(result);
        let found: BTreeSet<&str> = problems.iter().map(|p| p.key.as_str()).collect();
        let expected: BTreeSet<&str> = expected.split('+').collect();
        assert_eq!(found, expected, "{stem}: {text}");
        for key in expected {
            assert!(
                text.contains(key),
                "{stem}: message does not name {key}: {text}"
            );
        }
        assert_eq!(text.lines().count(), problems.len() + 1, "{stem}: {text}");
    }
}

#[test]
fn several_problems_are_all_reported_with_values_and_sources() {
    let (problems, text) = problems(from_text(
        r#"{ "mode": "B", "port": "abc", "SSL": "maybe", "colour": "blue", "pollSeconds": 0 }"#,
    ));
    assert_eq!(problems.len(), 6, "{text}");
    let port = problems.iter().find(|p| p.key == "port").unwrap();
    assert_eq!(port.value.as_deref(), Some("\"abc\""));
    assert_eq!(port.source.as_deref(), Some("JSON text"));
    assert!(text.contains("\"maybe\""), "{text}");
    let terminal = problems.iter().find(|p| p.key == "terminalIp").unwrap();
    assert!(terminal.message.contains("required"), "{text}");
}

#[test]
fn cloud_modes_are_refused_with_the_way_out() {
    for mode in ["B", "S"] {
        let text = format!(r#"{{ "mode": "{mode}", "terminalIp": "192.168.1.20" }}"#);
        let (problems, _) = problems(from_text(&text));
        let message = &problems[0].message;
        assert!(message.contains("cloud"), "{message}");
        assert!(message.contains("\"mode\": \"F\""), "{message}");
        assert!(message.contains("terminalIp"), "{message}");
    }
}

#[test]
fn seed_file_gives_exact_typed_values() {
    let config = from_text(&seed_text()).unwrap();
    assert_eq!(
        config.listen,
        "127.0.0.1:3000".parse::<SocketAddr>().unwrap()
    );
    assert!(config.ssl);
    assert_eq!(config.mode, Mode::F);
    assert_eq!(config.device_id, DEFAULT_DEVICE_ID);
    assert_eq!(config.terminal_addr, "192.168.55.105:3000".parse().unwrap());
    assert_eq!(config.static_ip_timeout, Duration::from_secs(5));
    assert_eq!(config.start_technology, StartTechnology::Pushy);
    assert_eq!(config.loops_before, 2);
    assert_eq!(config.time_stop, Duration::from_secs(240));
    assert_eq!(config.retries, 600);
    assert_eq!(config.poll_interval, Duration::from_secs(10));
    assert_eq!(config.certs_dir, PathBuf::from("certs"));
    assert_eq!(config.journal, PathBuf::from("data/journal.db"));
    assert_eq!(config.journal_retention_days, 90);
    assert_eq!(config.probe_interval, Duration::from_millis(1000));
    assert_eq!(config.api_key, None);
    assert_eq!(config.key, Some(Secret::new("3")));
}

#[test]
fn minimal_file_gets_the_seed_defaults() {
    let config = from_text(r#"{"terminalIp":"10.0.0.5"}"#).unwrap();
    assert_eq!(config.listen, "127.0.0.1:3000".parse().unwrap());
    assert_eq!(config.terminal_addr, "10.0.0.5:3000".parse().unwrap());
    assert!(config.ssl);
    assert_eq!(config.loops_before, 3);
    assert_eq!(config.start_technology, StartTechnology::None);
    assert_eq!(config.key, None);
}

#[test]
fn fractional_timings_and_v6_addresses() {
    let text = fs::read_to_string(repo("tests/configs/valid/fractional-timings.json")).unwrap();
    let config = from_text(&text).unwrap();
    assert_eq!(config.static_ip_timeout, Duration::from_millis(500));
    assert_eq!(config.time_stop, Duration::from_millis(2500));
    assert_eq!(config.poll_interval, Duration::from_millis(250));
    assert_eq!(config.probe_interval, Duration::from_millis(100));
    assert_eq!(config.effective()["staticIptimeOut"], 0.5);
    assert_eq!(from_text(&config.effective().to_string()).unwrap(), config);

    let text = fs::read_to_string(repo("tests/configs/valid/ipv6.json")).unwrap();
    let config = from_text(&text).unwrap();
    assert_eq!(config.listen, "[::1]:0".parse().unwrap());
    assert_eq!(config.terminal_addr, "[fd00::5]:3000".parse().unwrap());
}

#[test]
fn string_typed_values_are_read() {
    let text = fs::read_to_string(repo("tests/configs/valid/strings-everywhere.json")).unwrap();
    let config = from_text(&text).unwrap();
    assert_eq!(config.listen, "0.0.0.0:0".parse().unwrap());
    assert!(!config.ssl);
    assert_eq!(config.start_technology, StartTechnology::Signalr);
    assert_eq!(config.static_ip_timeout, Duration::from_millis(1500));
    assert_eq!((config.loops_before, config.retries), (2, 1));
    assert_eq!(config.device_id, "1234");
    assert_eq!(config.key.as_ref().map(Secret::expose), Some("3"));
}

#[test]
fn environment_overrides_the_file_case_insensitively() {
    let vars = env(&[
        ("ECRLINK_TERMINALIP", "10.1.2.3:4000"),
        ("ECRLINK_timeStop", "30"),
        ("ECRLINK_SSL", "false"),
        ("PATH", "/usr/bin"),
    ]);
    let config = config::load_from(Some(&seed_text()), &vars, &Overrides::default()).unwrap();
    assert_eq!(config.terminal_addr, "10.1.2.3:4000".parse().unwrap());
    assert_eq!(config.time_stop, Duration::from_secs(30));
    assert!(!config.ssl);
    assert_eq!(config.retries, 600, "untouched keys keep the file's value");
}

#[test]
fn environment_keeps_values_as_written() {
    // figment's Env would sniff "0001" into the number 1.
    let vars = env(&[("ECRLINK_DEVICEID", "0001"), ("ECRLINK_APIKEY", "00123")]);
    let config = config::load_from(
        Some(r#"{"terminalIp":"10.0.0.5"}"#),
        &vars,
        &Overrides::default(),
    )
    .unwrap();
    assert_eq!(config.device_id, "0001");
    assert_eq!(config.api_key.as_ref().map(Secret::expose), Some("00123"));
}

#[test]
fn unknown_environment_key_is_an_error_naming_the_variable() {
    let vars = env(&[("ECRLINK_TERMINAL_IP", "10.0.0.9")]);
    let (problems, text) = problems(config::load_from(
        Some(&seed_text()),
        &vars,
        &Overrides::default(),
    ));
    assert_eq!(problems.len(), 1, "{text}");
    assert_eq!(problems[0].key, "ECRLINK_TERMINAL_IP");
    assert!(text.contains("ECRLINK_TERMINAL_IP"), "{text}");
}

#[test]
fn a_bad_environment_value_names_its_variable() {
    let vars = env(&[("ECRLINK_port", "abc")]);
    let (problems, text) = problems(config::load_from(
        Some(&seed_text()),
        &vars,
        &Overrides::default(),
    ));
    assert_eq!(problems[0].key, "port");
    assert_eq!(
        problems[0].source.as_deref(),
        Some("environment variable ECRLINK_port")
    );
    assert!(text.contains("ECRLINK_port"), "{text}");
}

#[test]
fn command_line_beats_environment_beats_file() {
    let file = r#"{"terminalIp":"10.0.0.5", "port": 1000, "retries": 7}"#;
    let vars = env(&[("ECRLINK_PORT", "2000"), ("ECRLINK_RETRIES", "8")]);
    let cli = overrides(&[("port", json!(0))]);
    let config = config::load_from(Some(file), &vars, &cli).unwrap();
    assert_eq!(config.listen.port(), 0);
    assert_eq!(config.retries, 8);
    let config = config::load_from(Some(file), &vars, &Overrides::default()).unwrap();
    assert_eq!(config.listen.port(), 2000);
    let config = config::load_from(Some(file), &[], &Overrides::default()).unwrap();
    assert_eq!((config.listen.port(), config.retries), (1000, 7));
}

#[test]
fn unknown_command_line_key_is_reported() {
    let cli = overrides(&[("Port", json!(0))]);
    let (problems, text) = problems(config::load_from(Some(&seed_text()), &[], &cli));
    assert_eq!(problems[0].key, "Port");
    assert_eq!(problems[0].source.as_deref(), Some("command line"));
    assert!(text.contains("did you mean \"port\""), "{text}");
}

#[test]
fn secrets_are_masked_everywhere() {
    let secret = Secret::new("pa55word");
    assert_eq!(format!("{secret}"), "***");
    assert_eq!(format!("{secret:?}"), "***");
    assert_eq!(secret.expose(), "pa55word");

    let text = r#"{"terminalIp":"10.0.0.5", "apiKey": "pa55word", "key": "k3y-value"}"#;
    let config = from_text(text).unwrap();
    let debug = format!("{config:?}");
    assert!(
        !debug.contains("pa55word") && !debug.contains("k3y-value"),
        "{debug}"
    );
    let effective = config.effective();
    assert_eq!(effective["apiKey"], "***");
    assert_eq!(effective["key"], "***");
    assert!(!effective.to_string().contains("pa55word"));

    // A bad secret is reported without its value.
    let (problems, text) = problems(from_text(
        r#"{"terminalIp":"10.0.0.5", "apiKey": ["pa55word"]}"#,
    ));
    assert_eq!(problems[0].key, "apiKey");
    assert_eq!(problems[0].value, None);
    assert!(!text.contains("pa55word"), "{text}");
}

#[test]
fn effective_uses_seed_names_and_loads_back() {
    let config = from_text(&seed_text()).unwrap();
    let mut effective = config.effective();
    assert_eq!(effective["port"], 3000);
    assert_eq!(effective["url"], "127.0.0.1");
    assert_eq!(effective["terminalIp"], "192.168.55.105:3000");
    assert_eq!(effective["SSL"], true);
    assert_eq!(effective["startTecnology"], "pushy");
    assert_eq!(effective["timeStop"], 240);
    assert_eq!(effective["staticIptimeOut"], 5);
    assert_eq!(effective["probeIntervalMs"], 1000);
    assert_eq!(effective["apiKey"], Value::Null);

    // Without the masked secret it is a config file that gives the same Config.
    effective.as_object_mut().unwrap().remove("key");
    let again = from_text(&effective.to_string()).unwrap();
    assert_eq!(
        again,
        Config {
            key: None,
            ..config
        }
    );
}

#[test]
fn mqtt_fallback_defaults_to_the_certs_dir_and_none_turns_it_off() {
    let text = r#"{"terminalIp": "10.0.0.5", "certsDir": "/etc/ecrlink", "startTecnology": "mqtt",
                   "fallback": {"mqtt": {"url": "mqtts://10.0.0.2", "caCert": "other-ca.pem"}}}"#;
    let config = from_text(text).unwrap();
    let mqtt = config.mqtt_fallback().expect("fallback on");
    assert_eq!(mqtt.broker.to_string(), "mqtts://10.0.0.2:8883");
    assert_eq!(mqtt.client_cert, Path::new("/etc/ecrlink/client.pem"));
    assert_eq!(mqtt.client_key, Path::new("/etc/ecrlink/client.key"));
    assert_eq!(mqtt.ca_cert, Path::new("other-ca.pem"));
    // The effective view shows the resolved paths and loads back into the same Config.
    let effective = config.effective();
    assert_eq!(
        effective["fallback"]["mqtt"]["url"],
        "mqtts://10.0.0.2:8883"
    );
    let mut again = effective.clone();
    again.as_object_mut().unwrap().remove("key");
    assert_eq!(from_text(&again.to_string()).unwrap(), config);

    let off = from_text(&text.replace(
        "\"startTecnology\": \"mqtt\"",
        "\"startTecnology\": \"NONE\"",
    ))
    .unwrap();
    assert_eq!(off.start_technology, StartTechnology::None);
    assert!(off.fallback.is_some() && off.mqtt_fallback().is_none());
    // Without the key there is no fallback, and the effective view has no such key.
    let plain = from_text(r#"{"terminalIp": "10.0.0.5", "startTecnology": "pushy"}"#).unwrap();
    assert!(plain.mqtt_fallback().is_none());
    assert!(plain.effective().get("fallback").is_none());
}

#[test]
fn load_explicit_missing_file_is_not_found() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nope.json");
    match config::load(&path, true, &Overrides::default()) {
        Err(ConfigError::NotFound { path: reported }) => assert_eq!(reported, path),
        other => panic!("expected NotFound, got {other:?}"),
    }
}

#[test]
fn load_missing_default_file_falls_back_to_defaults() {
    // Reads the process environment: assumes no ECRLINK_* variables are set for tests.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.json");
    let cli = overrides(&[("terminalIp", json!("10.0.0.5"))]);
    let config = config::load(&path, false, &cli).unwrap();
    assert_eq!(config.terminal_addr, "10.0.0.5:3000".parse().unwrap());
    assert_eq!(config.listen.port(), 3000);
    // Without a terminal it is the usual problem, not a missing file.
    let (problems, _) = problems(config::load(&path, false, &Overrides::default()));
    assert_eq!(problems[0].key, "terminalIp");
}

#[test]
fn load_reports_the_file_as_source_and_syntax_with_its_path() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.json");
    fs::write(&path, r#"{"terminalIp": "10.0.0.5", "loopsBefore": 0}"#).unwrap();
    let (problems, _) = problems(config::load(&path, true, &Overrides::default()));
    assert_eq!(problems[0].key, "loopsBefore");
    assert_eq!(problems[0].source, Some(format!("file {}", path.display())));

    fs::write(&path, "{\n  \"terminalIp\": \"10.0.0.5\"\n  \"port\": 1\n}").unwrap();
    match config::load(&path, true, &Overrides::default()) {
        Err(error @ ConfigError::Syntax { .. }) => {
            let text = error.to_string();
            assert!(text.contains(&path.display().to_string()), "{text}");
            assert!(text.contains("line 3"), "{text}");
        }
        other => panic!("expected a syntax error, got {other:?}"),
    }
}
