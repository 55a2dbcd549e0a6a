//! The command-line contract: what users and scripts rely on.
use std::process::{Command, Output};

fn ecrlink(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ecrlink"))
        .args(args)
        .env_remove("RUST_LOG")
        .output()
        .expect("run ecrlink")
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[test]
fn certs_init_show_and_refusal_to_overwrite() {
    let dir = tempfile::tempdir().unwrap();
    let certs = dir.path().join("certs");
    let certs = certs.to_str().unwrap();
    let out = ecrlink(&["certs", "init", "--dir", certs, "--terminal-ip", "10.0.0.5"]);
    assert!(out.status.success(), "{}", text(&out));
    for f in [
        "ca.pem",
        "ca.key",
        "caroot.cer",
        "terminal.pem",
        "terminal.key",
        "gateway.pem",
        "gateway.key",
        "client.pem",
        "client.key",
    ] {
        assert!(text(&out).contains(f), "{f} not reported");
    }
    let again = ecrlink(&["certs", "init", "--dir", certs]);
    assert!(!again.status.success());
    assert!(text(&again).contains("--force"), "{}", text(&again));
    let forced = ecrlink(&["certs", "init", "--dir", certs, "--force"]);
    assert!(forced.status.success(), "{}", text(&forced));
    let show = ecrlink(&["certs", "show", "--dir", certs]);
    assert!(show.status.success());
    let shown = text(&show);
    assert!(
        shown.contains("instorepaymentapi.globalpayments.es"),
        "{shown}"
    );
    assert!(shown.contains("localhost"), "{shown}");
    let device = ecrlink(&["certs", "device", "--dir", certs, "--device-id", "bad id"]);
    assert!(!device.status.success());
}

#[test]
fn config_check_prints_the_effective_config_or_every_problem() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.json");
    std::fs::write(&good, r#"{ "port": "3000", "url": "localhost", "terminalIp": "192.168.55.105:3000", "staticIptimeOut": 5, "key": "3", "mode": "F", "SSL": "True", "startTecnology": "pushy", "loopsBefore": 2, "timeStop": 240, "retries": 600 }"#).unwrap();
    let out = ecrlink(&["config", "check", "--config", good.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));
    let shown = String::from_utf8_lossy(&out.stdout);
    assert!(shown.contains("192.168.55.105:3000"), "{shown}");
    assert!(!shown.contains("\"3\""), "the seed key is masked: {shown}");
    let bad = dir.path().join("bad.json");
    std::fs::write(
        &bad,
        r#"{ "mode": "B", "terminalIp": "192.168.55.105", "colour": 1 }"#,
    )
    .unwrap();
    let out = ecrlink(&["config", "check", "--config", bad.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let t = text(&out);
    assert!(t.contains("mode") && t.contains("cloud"), "{t}");
    assert!(t.contains("colour"), "{t}");
    let missing = ecrlink(&["config", "check", "--config", "/nonexistent/ecrlink.json"]);
    assert!(!missing.status.success());
}

#[test]
fn serve_without_certificates_fails_with_one_clear_line() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("c.json");
    let body = serde_json::json!({"terminalIp": "127.0.0.1:9", "port": "0", "certsDir": dir.path().join("none"), "journal": dir.path().join("j.db")});
    std::fs::write(&cfg, body.to_string()).unwrap();
    let out = ecrlink(&["serve", "--config", cfg.to_str().unwrap()]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("ecrlink certs init"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn demo_smoke_runs_a_sale_end_to_end() {
    let out = ecrlink(&["demo", "--smoke"]);
    assert!(out.status.success(), "{}", text(&out));
    let t = String::from_utf8_lossy(&out.stdout);
    assert!(t.contains("approved sale 10.00 EUR"), "{t}");
    assert!(t.contains("smoke test passed"), "{t}");
}

#[test]
fn sim_mqtt_needs_an_mqtts_url_and_the_device_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let certs = dir.path().join("certs");
    let certs = certs.to_str().unwrap();
    assert!(ecrlink(&["certs", "init", "--dir", certs]).status.success());
    let plain = ecrlink(&[
        "sim",
        "--listen",
        "127.0.0.1:0",
        "--certs",
        certs,
        "--mqtt",
        "mqtt://127.0.0.1:1883",
    ]);
    assert!(!plain.status.success());
    assert!(text(&plain).contains("mqtts://"), "{}", text(&plain));
    // No device certificate yet: the error says how to make one.
    let missing = ecrlink(&[
        "sim",
        "--listen",
        "127.0.0.1:0",
        "--certs",
        certs,
        "--mqtt",
        "mqtts://127.0.0.1:8883",
    ]);
    assert!(!missing.status.success());
    let t = text(&missing);
    assert!(t.contains("ecrlink certs device"), "{t}");
    assert!(!t.contains("panicked"), "{t}");
}

#[test]
fn serve_with_a_fallback_but_no_client_certificate_fails_with_one_clear_line() {
    let dir = tempfile::tempdir().unwrap();
    let certs = dir.path().join("certs");
    assert!(
        ecrlink(&["certs", "init", "--dir", certs.to_str().unwrap()])
            .status
            .success()
    );
    let cfg = dir.path().join("c.json");
    let body = serde_json::json!({
        "terminalIp": "127.0.0.1:9", "port": "0", "certsDir": certs, "journal": dir.path().join("j.db"),
        "startTecnology": "mqtt",
        "fallback": {"mqtt": {"url": "mqtts://127.0.0.1:8883", "clientCert": dir.path().join("nope.pem")}},
    });
    std::fs::write(&cfg, body.to_string()).unwrap();
    let out = ecrlink(&["serve", "--config", cfg.to_str().unwrap()]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("MQTT fallback") && err.contains("nope.pem"),
        "{err}"
    );
    assert!(!err.contains("panicked"), "{err}");
}

/// Issue 17: `service` manages a Windows service; elsewhere it refuses in one line that
/// points at the systemd unit, and every subcommand is there (hidden `run` included).
#[cfg(not(windows))]
#[test]
fn service_is_windows_only_and_points_at_systemd() {
    for sub in ["install", "uninstall", "start", "stop", "status"] {
        let out = ecrlink(&["service", sub]);
        assert_eq!(out.status.code(), Some(1), "{sub}: {}", text(&out));
        let said = text(&out);
        assert!(said.contains("works only on Windows"), "{sub}: {said}");
        assert!(
            said.contains("systemctl enable --now ecrlink"),
            "{sub}: {said}"
        );
        assert_eq!(said.trim().lines().count(), 1, "{sub}: {said}");
    }
    let help = text(&ecrlink(&["service", "--help"]));
    assert!(
        !help.contains("\n  run "),
        "`service run` is for the SCM only: {help}"
    );
}
