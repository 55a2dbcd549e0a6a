//! The config module from the outside: fixtures under tests/configs, the example
//! configs shipped in config/, layering, secrets and the effective view.

use std::collections::BTreeSet;
use std::fs;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ecrlink::config::{
    self, Config, ConfigError, Overrides, Problem, Profile, Secret, StartTechnology, Terminal,
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
        ..Overrides::default()
    }
}

/// The one terminal of a shorthand config.
fn lane(config: &Config) -> &Terminal {
    assert_eq!(config.terminals.len(), 1, "{config:?}");
    &config.terminals[0]
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
    assert_eq!(lane(&config).device_id, DEFAULT_DEVICE_ID);
    assert_eq!(lane(&config).address, "127.0.0.1:3001".parse().unwrap());
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
fn null_is_no_value_and_a_required_key_set_to_null_is_required() {
    let (problems, text) = problems(from_text(
        r#"{ "terminals": [{ "deviceId": null, "terminalIp": null }], "pollSeconds": null }"#,
    ));
    for key in ["terminals[0].deviceId", "terminals[0].terminalIp"] {
        let p = problems.iter().find(|p| p.key == key).expect(&text);
        assert!(p.message.contains("is required"), "{key}: {text}");
    }
    let poll = problems
        .iter()
        .find(|p| p.key == "pollSeconds")
        .expect(&text);
    assert!(
        poll.message.contains("remove the key to use the default"),
        "{text}"
    );
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
    assert_eq!(config.effective()["mode"], "F");
    assert_eq!(lane(&config).device_id, DEFAULT_DEVICE_ID);
    assert_eq!(
        lane(&config).address,
        "192.168.55.105:3000".parse().unwrap()
    );
    assert_eq!(lane(&config).static_ip_timeout, Duration::from_secs(5));
    assert_eq!(lane(&config).profile, Profile::Instore);
    assert_eq!(config.start_technology, StartTechnology::Pushy);
    assert_eq!(config.loops_before, 2);
    assert_eq!(config.time_stop, Duration::from_secs(240));
    assert_eq!(config.retries, 600);
    assert_eq!(lane(&config).poll_interval, Duration::from_secs(10));
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
    assert_eq!(lane(&config).address, "10.0.0.5:3000".parse().unwrap());
    assert!(config.ssl);
    assert_eq!(config.loops_before, 3);
    assert_eq!(config.start_technology, StartTechnology::None);
    assert_eq!(config.key, None);
}

#[test]
fn fractional_timings_and_v6_addresses() {
    let text = fs::read_to_string(repo("tests/configs/valid/fractional-timings.json")).unwrap();
    let config = from_text(&text).unwrap();
    assert_eq!(lane(&config).static_ip_timeout, Duration::from_millis(500));
    assert_eq!(config.time_stop, Duration::from_millis(2500));
    assert_eq!(lane(&config).poll_interval, Duration::from_millis(250));
    assert_eq!(config.probe_interval, Duration::from_millis(100));
    assert_eq!(config.effective()["terminals"][0]["staticIptimeOut"], 0.5);
    assert_eq!(from_text(&config.effective().to_string()).unwrap(), config);

    let text = fs::read_to_string(repo("tests/configs/valid/ipv6.json")).unwrap();
    let config = from_text(&text).unwrap();
    assert_eq!(config.listen, "[::1]:0".parse().unwrap());
    assert_eq!(lane(&config).address, "[fd00::5]:3000".parse().unwrap());
}

#[test]
fn string_typed_values_are_read() {
    let text = fs::read_to_string(repo("tests/configs/valid/strings-everywhere.json")).unwrap();
    let config = from_text(&text).unwrap();
    assert_eq!(config.listen, "0.0.0.0:0".parse().unwrap());
    assert!(!config.ssl);
    assert_eq!(config.start_technology, StartTechnology::Signalr);
    assert_eq!(lane(&config).static_ip_timeout, Duration::from_millis(1500));
    assert_eq!((config.loops_before, config.retries), (2, 1));
    assert_eq!(lane(&config).device_id, "1234");
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
    assert_eq!(lane(&config).address, "10.1.2.3:4000".parse().unwrap());
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
    assert_eq!(lane(&config).device_id, "0001");
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
    assert_eq!(
        effective["terminals"][0]["terminalIp"],
        "192.168.55.105:3000"
    );
    assert_eq!(effective["terminals"][0]["deviceId"], DEFAULT_DEVICE_ID);
    assert_eq!(effective["terminals"][0]["profile"], "instore");
    assert!(effective.get("terminalIp").is_none(), "{effective}");
    assert_eq!(effective["SSL"], true);
    assert_eq!(effective["startTecnology"], "pushy");
    assert_eq!(effective["timeStop"], 240);
    assert_eq!(effective["terminals"][0]["staticIptimeOut"], 5);
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
    assert_eq!(lane(&config).address, "10.0.0.5:3000".parse().unwrap());
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

fn fixture(name: &str) -> String {
    fs::read_to_string(repo(&format!("tests/configs/valid/{name}"))).unwrap()
}

#[test]
fn a_store_of_three_lanes_gets_each_lane_its_own_settings() {
    let config = from_text(&fixture("store-three-lanes.json")).unwrap();
    let ids: Vec<&str> = config
        .terminals
        .iter()
        .map(|t| t.device_id.as_str())
        .collect();
    assert_eq!(ids, ["LANE-1", "LANE-2", "LANE-3"]);
    let [one, two, three] = &config.terminals[..] else {
        panic!("three lanes")
    };
    assert_eq!(one.address, "192.168.1.21:3000".parse().unwrap());
    assert_eq!(
        (one.poll_interval, two.poll_interval),
        (Duration::from_secs(10), Duration::from_secs(2))
    );
    assert_eq!(
        (one.static_ip_timeout, three.static_ip_timeout),
        (Duration::from_secs(5), Duration::from_millis(1500))
    );
    assert_eq!(
        (one.fallback, two.fallback, three.fallback),
        (true, true, false)
    );
    assert_eq!(config.mqtt_fallback().unwrap().client_id, "ecrlink-shop-7");
    // `config check` shows every lane resolved, and that loads back the same.
    let effective = config.effective();
    assert_eq!(effective["terminals"][2]["staticIptimeOut"], 1.5);
    assert_eq!(effective["terminals"][1]["pollSeconds"], 2);
    assert_eq!(effective["terminals"][2]["fallback"], false);
    assert_eq!(from_text(&effective.to_string()).unwrap(), config);
    // Without a fallback for the gateway no lane uses one.
    let text = fixture("store-three-lanes.json").replace("\"mqtt\",", "\"none\",");
    let off = from_text(&text).unwrap();
    assert!(off.terminals.iter().all(|t| !t.fallback));
}

#[test]
fn every_invalid_multi_terminal_case_is_named_in_one_run() {
    let text = r#"{
        "terminalIp": "192.168.1.20", "deviceId": "TILL", "timeStop": 20,
        "terminals": [
            { "deviceId": "LANE-1", "terminalIp": "192.168.1.21" },
            { "deviceId": "LANE-1", "terminalIp": "192.168.1.22" },
            { "deviceId": "LANE-3", "terminalIp": "192.168.1.21:3000" },
            { "deviceId": "lane 4", "terminalIp": "shop-lane-4.local", "profile": "pushy-cloud" },
            { "deviceId": "LANE-5", "pollSeconds": 20, "fallback": "perhaps", "colour": "red" },
            "192.168.1.26",
            { "deviceId": "LANE-7", "terminalIp": "192.168.1.27", "staticIptimeOut": 0 }
        ]
    }"#;
    let (problems, text) = problems(from_text(text));
    let keys: BTreeSet<&str> = problems.iter().map(|p| p.key.as_str()).collect();
    let expected = BTreeSet::from([
        "terminals",
        "terminals[1].deviceId",
        "terminals[2].terminalIp",
        "terminals[3].deviceId",
        "terminals[3].terminalIp",
        "terminals[3].profile",
        "terminals[4].terminalIp",
        "terminals[4].pollSeconds",
        "terminals[4].fallback",
        "terminals[4].colour",
        "terminals[5]",
        "terminals[6].staticIptimeOut",
    ]);
    assert_eq!(keys, expected, "{text}");
    assert_eq!(problems.len(), expected.len(), "{text}");
    let find = |key: &str| problems.iter().find(|p| p.key == key).unwrap();
    let both = &find("terminals").message;
    assert!(
        both.contains("\"terminalIp\"") && both.contains("\"deviceId\""),
        "{both}"
    );
    assert!(
        find("terminals[1].deviceId")
            .message
            .contains("terminals[0]"),
        "{text}"
    );
    assert_eq!(
        find("terminals[1].deviceId").value.as_deref(),
        Some("\"LANE-1\"")
    );
    assert!(
        find("terminals[2].terminalIp")
            .message
            .contains("terminals[0]"),
        "{text}"
    );
    assert_eq!(
        find("terminals[3].terminalIp").value.as_deref(),
        Some("\"shop-lane-4.local\"")
    );
    assert!(
        find("terminals[3].profile").message.contains("instore"),
        "{text}"
    );
    assert!(
        find("terminals[4].pollSeconds")
            .message
            .contains("timeStop"),
        "{text}"
    );
    assert!(
        find("terminals[4].colour").message.contains("unknown key"),
        "{text}"
    );
    assert_eq!(
        find("terminals[5]").value.as_deref(),
        Some("\"192.168.1.26\"")
    );
    assert!(
        problems
            .iter()
            .all(|p| p.source.is_none() || p.source.as_deref() == Some("JSON text"))
    );
}

#[test]
fn environment_overrides_nested_keys_with_a_double_underscore() {
    let vars = env(&[
        ("ECRLINK_TERMINALS__1__TERMINALIP", "10.9.9.9:4000"),
        ("ecrlink_terminals__2__pollseconds", "0.5"),
        ("ECRLINK_FALLBACK__MQTT__CLIENTID", "ecrlink-back-office"),
    ]);
    let text = fixture("store-three-lanes.json");
    let config = config::load_from(Some(&text), &vars, &Overrides::default()).unwrap();
    assert_eq!(
        config.terminals[1].address,
        "10.9.9.9:4000".parse().unwrap()
    );
    assert_eq!(
        config.terminals[1].device_id, "LANE-2",
        "the rest of the entry stays"
    );
    assert_eq!(
        config.terminals[2].poll_interval,
        Duration::from_millis(500)
    );
    assert_eq!(
        config.mqtt_fallback().unwrap().client_id,
        "ecrlink-back-office"
    );

    // A whole value as JSON: the fallback, or a list of lanes added to the shorthand-free file.
    let vars = env(&[
        (
            "ECRLINK_FALLBACK",
            r#"{"mqtt": {"url": "mqtts://10.0.0.2"}}"#,
        ),
        ("ECRLINK_STARTTECNOLOGY", "mqtt"),
        (
            "ECRLINK_TERMINALS",
            r#"[{"deviceId": "A", "terminalIp": "10.0.0.5"}]"#,
        ),
        ("ECRLINK_TERMINALS__1__DEVICEID", "B"),
        ("ECRLINK_TERMINALS__1__TERMINALIP", "10.0.0.6"),
    ]);
    let config = config::load_from(None, &vars, &Overrides::default()).unwrap();
    assert_eq!(
        config.mqtt_fallback().unwrap().broker.to_string(),
        "mqtts://10.0.0.2:8883"
    );
    assert_eq!(config.terminals.len(), 2);
    assert!(config.terminals.iter().all(|t| t.fallback));
    let client_id = &config.mqtt_fallback().unwrap().client_id;
    assert!(
        client_id.starts_with("ecrlink-") && client_id.len() > 8,
        "from the host name: {client_id}"
    );
}

#[test]
fn environment_problems_name_the_variable_and_the_path() {
    let vars = env(&[
        ("ECRLINK_TERMINALS__0__TERMINALIP", "lane1.local"),
        ("ECRLINK_TERMINALS__5__DEVICEID", "GAP"),
        ("ECRLINK_TERMINALS__0__COLOUR", "red"),
        ("ECRLINK_MQTT__URL", "mqtts://10.0.0.2"),
    ]);
    let text = fixture("store-three-lanes.json");
    let (problems, text) = problems(config::load_from(Some(&text), &vars, &Overrides::default()));
    let keys: Vec<&str> = problems.iter().map(|p| p.key.as_str()).collect();
    assert_eq!(
        keys,
        [
            "terminals[5].deviceId",
            "ECRLINK_TERMINALS__0__COLOUR",
            "mqtt",
            "terminals[0].terminalIp"
        ],
        "{text}"
    );
    assert!(problems[0].message.contains("use index 3"), "{text}");
    assert_eq!(
        problems[2].source.as_deref(),
        Some("environment variable ECRLINK_MQTT__URL")
    );
    assert_eq!(
        problems[3].source.as_deref(),
        Some("environment variable ECRLINK_TERMINALS__0__TERMINALIP")
    );
}

#[test]
fn the_shorthand_from_the_command_line_meets_the_list() {
    let cli = Overrides {
        terminal_ip: Some("10.0.0.9".into()),
        ..Overrides::default()
    };
    let text = fixture("store-three-lanes.json");
    let (problems, text) = problems(config::load_from(Some(&text), &[], &cli));
    assert_eq!(problems.len(), 1, "{text}");
    assert_eq!(problems[0].key, "terminals");
    assert!(problems[0].message.contains("terminalIp"), "{text}");
    // With the shorthand the flag replaces the address.
    let config = config::load_from(Some(&seed_text()), &[], &cli).unwrap();
    assert_eq!(lane(&config).address, "10.0.0.9:3000".parse().unwrap());
}

#[test]
fn a_problem_names_the_layer_its_value_came_from() {
    let file =
        r#"{"terminals": [{"deviceId": "A", "terminalIp": "10.0.0.5", "pollSeconds": "x"}]}"#;
    let vars = env(&[("ECRLINK_RETRIES", "0")]);
    let cli = overrides(&[("loopsBefore", json!(0))]);
    let (problems, text) = problems(config::load_from(Some(file), &vars, &cli));
    let source = |key: &str| {
        let p = problems
            .iter()
            .find(|p| p.key == key)
            .unwrap_or_else(|| panic!("{key}: {text}"));
        p.source.clone().unwrap_or_default()
    };
    assert_eq!(source("terminals[0].pollSeconds"), "JSON text");
    assert_eq!(source("retries"), "environment variable ECRLINK_RETRIES");
    assert_eq!(source("loopsBefore"), "command line");
}
