//! `ecrlink doctor` on loopback: a healthy terminal (exit 0, every layer named, the
//! unconfigured fallback reported, not failed), a terminal that is off, and terminal
//! certificates from another CA, for another name, expired and not yet valid — each
//! refused with the problem in words (issuer, names, dates) and a non-zero exit.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{Proc, World, ecrlink_bin};
use ecrlink::pki::{self, Ca, LeafSpec};
use serde_json::json;

struct Outcome {
    code: i32,
    text: String,
}

impl Outcome {
    fn line(&self, layer: &str) -> &str {
        self.text
            .lines()
            .find(|l| l.split_whitespace().nth(1) == Some(layer))
            .unwrap_or_else(|| panic!("no {layer} line in:\n{}", self.text))
    }
}

fn doctor(w: &World, terminal: std::net::SocketAddr) -> Outcome {
    let config = w.gateway_config(terminal, json!({}));
    doctor_with(w, &format!("doctor-{}.json", terminal.port()), &config)
}

/// `ecrlink doctor --config FILE` with `config` written to `file`.
fn doctor_with(w: &World, file: &str, config: &serde_json::Value) -> Outcome {
    let path = w.path(file);
    std::fs::write(&path, serde_json::to_vec(&config).unwrap()).unwrap();
    let out = Command::new(ecrlink_bin())
        .args(["doctor", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    Outcome {
        code: out.status.code().unwrap_or(-1),
        text: String::from_utf8_lossy(&out.stdout).to_string(),
    }
}

fn sim_with(w: &World, certs: &Path) -> Proc {
    Proc::start(
        &[
            "sim".into(),
            "--listen".into(),
            "127.0.0.1:0".into(),
            "--certs".into(),
            certs.display().to_string(),
        ],
        &w.path(&format!(
            "sim-{}.log",
            certs.file_name().unwrap().to_string_lossy()
        )),
    )
}

fn certs_with(w: &World, name: &str, leaf: &pki::Leaf) -> PathBuf {
    let dir = w.path(name);
    std::fs::create_dir_all(&dir).unwrap();
    leaf.write(
        &dir.join(pki::TERMINAL_CERT),
        &dir.join(pki::TERMINAL_KEY),
        false,
    )
    .unwrap();
    dir
}

#[test]
fn a_healthy_terminal_passes_every_layer() {
    let w = World::new();
    let sim = w.sim(&[]);
    let o = doctor(&w, sim.addr);
    assert_eq!(o.code, 0, "{}", o.text);
    for layer in ["config", "tcp", "tls", "cert", "clock", "version"] {
        assert!(o.line(layer).contains(" OK "), "{}", o.text);
    }
    assert!(
        o.line("tls")
            .contains("verified as instorepaymentapi.globalpayments.es")
    );
    let mqtt = o.line("mqtt");
    assert!(
        mqtt.contains("SKIP") && mqtt.contains("no MQTT fallback configured"),
        "{mqtt}"
    );
    assert!(o.text.contains("ready to sell: 0 failed"), "{}", o.text);
}

#[test]
fn a_terminal_that_is_off_fails_at_tcp() {
    let w = World::new();
    let mut sim = w.sim(&[]);
    let addr = sim.addr;
    sim.kill();
    let o = doctor(&w, addr);
    assert_ne!(o.code, 0, "{}", o.text);
    assert!(
        o.line("tcp").contains("FAIL") && o.line("tcp").contains("refused"),
        "{}",
        o.text
    );
    assert!(o.line("tcp").contains("fix:"), "{}", o.text);
    assert!(o.line("tls").contains("SKIP"), "{}", o.text);
}

#[test]
fn a_certificate_from_another_ca_is_named_with_its_issuer() {
    let w = World::new();
    let other = Ca::generate("Some Other Shop CA").unwrap();
    let leaf = other
        .issue(&LeafSpec::terminal(&["127.0.0.1".parse().unwrap()]))
        .unwrap();
    let sim = sim_with(&w, &certs_with(&w, "other-ca", &leaf));
    let o = doctor(&w, sim.addr);
    assert_ne!(o.code, 0, "{}", o.text);
    let tls = o.line("tls");
    assert!(
        tls.contains("FAIL") && tls.contains("unknown issuer"),
        "{tls}"
    );
    assert!(
        tls.contains("Some Other Shop CA"),
        "the issuer is named: {tls}"
    );
    assert!(tls.contains("another CA"), "{tls}");
}

#[test]
fn a_certificate_for_another_name_is_named_with_its_names() {
    let w = World::new();
    let ca = Ca::load(&w.certs()).unwrap();
    let spec = LeafSpec::server(
        "other",
        // A private suffix: a public name would already break the CA's name constraints.
        &["other.lan".into()],
        &["127.0.0.1".parse().unwrap()],
    );
    let sim = sim_with(&w, &certs_with(&w, "wrong-name", &ca.issue(&spec).unwrap()));
    let o = doctor(&w, sim.addr);
    assert_ne!(o.code, 0, "{}", o.text);
    let tls = o.line("tls");
    assert!(tls.contains("not valid for the name"), "{tls}");
    assert!(tls.contains("other.lan"), "the names it holds: {tls}");
}

#[test]
fn expired_and_not_yet_valid_certificates_are_named_with_their_dates() {
    let w = World::new();
    let ca = Ca::load(&w.certs()).unwrap();
    let ips = ["127.0.0.1".parse().unwrap()];
    let expired = ca.issue(&LeafSpec::terminal(&ips).expired()).unwrap();
    let sim = sim_with(&w, &certs_with(&w, "expired", &expired));
    let o = doctor(&w, sim.addr);
    assert_ne!(o.code, 0, "{}", o.text);
    let tls = o.line("tls");
    assert!(tls.contains("expired") && tls.contains("valid "), "{tls}");
    assert!(tls.contains("issue a new terminal certificate"), "{tls}");

    let mut future = LeafSpec::terminal(&ips);
    future.not_before = time::OffsetDateTime::now_utc() + time::Duration::days(10);
    let sim = sim_with(&w, &certs_with(&w, "future", &ca.issue(&future).unwrap()));
    let o = doctor(&w, sim.addr);
    assert_ne!(o.code, 0, "{}", o.text);
    assert!(o.line("tls").contains("not valid yet"), "{}", o.text);
}

#[test]
fn an_invalid_config_fails_first() {
    let w = World::new();
    let path = w.path("bad.json");
    std::fs::write(&path, br#"{"mode": "B"}"#).unwrap();
    let out = Command::new(ecrlink_bin())
        .args(["doctor", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_ne!(out.status.code(), Some(0));
    assert!(
        text.contains("config") && text.contains("FAIL") && text.contains("mode"),
        "{text}"
    );
}

/// A terminal whose clock is 10 minutes ahead: its `Date` header says so. Served by the
/// project's own HTTP server with the World's terminal certificate.
#[tokio::test(flavor = "multi_thread")]
async fn a_terminal_clock_far_off_is_a_warning_with_the_skew() {
    use ecrlink::http::{Body, json};
    let w = World::new();
    let tls = ecrlink::tls::server_config(
        &w.certs().join(pki::TERMINAL_CERT),
        &w.certs().join(pki::TERMINAL_KEY),
    )
    .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let shutdown = tokio_util::sync::CancellationToken::new();
    let handler = |_req, _peer| async {
        let ahead = time::OffsetDateTime::now_utc() + time::Duration::minutes(10);
        let format = time::macros::format_description!(
            "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
        );
        let mut resp: hyper::Response<Body> =
            json(hyper::StatusCode::OK, &json!({"version": "skewed 1"}));
        resp.headers_mut()
            .insert("date", ahead.format(format).unwrap().parse().unwrap());
        Ok(resp)
    };
    let server = tokio::spawn(ecrlink::http::server::serve(
        listener,
        Some(tls),
        handler,
        shutdown.clone(),
    ));
    let world = &w;
    let o = tokio::task::block_in_place(|| doctor(world, addr));
    shutdown.cancel();
    let _ = server.await;
    assert_eq!(o.code, 0, "a skewed clock does not stop a sale: {}", o.text);
    let clock = o.line("clock");
    assert!(
        clock.contains("WARN") && clock.contains("ahead of"),
        "{clock}"
    );
    let secs: f64 = clock
        .split(" is ")
        .nth(1)
        .unwrap()
        .split(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!((590.0..=610.0).contains(&secs), "{clock}");
    assert!(o.line("version").contains("skewed 1"), "{}", o.text);
}

/// A `comercia-pos` lane is checked against its own `caCert` for its `serverName`: a
/// simulator with the vendor CA's certificate passes; ecrlink's own CA on that lane fails.
#[test]
fn a_comercia_lane_is_verified_with_its_own_ca_and_name() {
    let w = World::new();
    let vendor = w.path("vendor");
    let made = Command::new(ecrlink_bin())
        .args(["certs", "vendor-ca", "--dir"])
        .arg(&vendor)
        .args(["--name", "pos.comercia.test", "--ip", "127.0.0.1"])
        .output()
        .unwrap();
    assert!(made.status.success(), "{made:?}");
    let sim = Proc::start(
        &[
            "sim".into(),
            "--listen".into(),
            "127.0.0.1:0".into(),
            "--profile".into(),
            "comercia-pos".into(),
            "--certs".into(),
            vendor.display().to_string(),
        ],
        &w.path("sim-comercia.log"),
    );
    let run = |ca: PathBuf| {
        let lane = json!({"deviceId": "LANE-C", "terminalIp": sim.addr.to_string(),
            "profile": "comercia-pos", "serverName": "pos.comercia.test", "caCert": ca});
        let mut config = w.gateway_config(sim.addr, json!({"terminals": [lane]}));
        let map = config.as_object_mut().unwrap();
        map.remove("terminalIp");
        map.remove("deviceId");
        doctor_with(&w, "doctor-comercia.json", &config)
    };
    let o = run(vendor.join(pki::CA_CERT));
    assert_eq!(o.code, 0, "{}", o.text);
    assert!(
        o.line("tls").contains("verified as pos.comercia.test"),
        "{}",
        o.text
    );
    assert!(o.line("version").contains("no version call"), "{}", o.text);
    let o = run(w.certs().join(pki::CA_CERT));
    assert_ne!(o.code, 0, "{}", o.text);
    assert!(o.line("tls").contains("FAIL"), "{}", o.text);
}

/// A gateway certificate in `certsDir` that expires within 30 days is a warning naming
/// the file and `certs renew`; the sale path still passes (exit 0).
#[test]
fn a_gateway_certificate_near_its_end_is_a_warning_with_the_renew_command() {
    let w = World::new();
    let sim = w.sim(&[]);
    let o = doctor(&w, sim.addr);
    assert!(o.line("certs").contains(" OK "), "{}", o.text);
    let ca = Ca::load(&w.certs()).unwrap();
    let mut spec = LeafSpec::gateway(&["localhost".into()]);
    spec.not_after = time::OffsetDateTime::now_utc() + time::Duration::days(10);
    let leaf = ca.issue(&spec).unwrap();
    let certs = w.certs();
    let (cert, key) = (certs.join(pki::GATEWAY_CERT), certs.join(pki::GATEWAY_KEY));
    leaf.write(&cert, &key, true).unwrap();
    let o = doctor(&w, sim.addr);
    assert_eq!(o.code, 0, "{}", o.text);
    let line = o.line("certs");
    assert!(
        line.contains("WARN") && line.contains("gateway.pem"),
        "{line}"
    );
    assert!(line.contains("certs renew"), "{line}");
}
