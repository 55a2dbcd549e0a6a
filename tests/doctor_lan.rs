//! `ecrlink doctor` against a fixed-IP terminal on the namespace LAN (tests/common/lan.rs),
//! one fault at a time: none (exit 0), ICMP dropped (a warning, still ready to sell), every
//! packet dropped (TCP fails after `staticIptimeOut`), TCP reset (refused). Needs root, so
//! every test is `#[ignore]`d with the reason; `.ci/run` runs them as root.
mod common;

use std::process::Command;

use common::lan::{self, Fault, Host};
use common::*;
use serde_json::json;

fn doctor(w: &World, sim: &Proc) -> (i32, String) {
    let path = w.path(&format!("doctor-lan-{}.json", sim.addr.port()));
    let config = w.gateway_config(sim.addr, json!({}));
    std::fs::write(&path, serde_json::to_vec(&config).unwrap()).unwrap();
    let out = Command::new(ecrlink_bin())
        .args(["doctor", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    (out.status.code().unwrap_or(-1), text)
}

fn line<'a>(text: &'a str, layer: &str) -> &'a str {
    text.lines()
        .find(|l| l.split_whitespace().nth(1) == Some(layer))
        .unwrap_or_else(|| panic!("no {layer} line:\n{text}"))
}

#[test]
#[ignore = "needs root, iproute2 and nftables: .ci/run runs it (cargo test -- --include-ignored)"]
fn each_lan_fault_gets_its_verdict() {
    lan::require();
    let w = World::new();
    let terminal = Host::new();
    let sim = terminal.sim(&w, &w.certs(), &["--card-time", "0"]);

    let (code, text) = doctor(&w, &sim);
    assert_eq!(code, 0, "{text}");
    assert!(line(&text, "icmp").contains(" OK "), "{text}");
    assert!(line(&text, "tls").contains(" OK "), "{text}");

    terminal.fault(Fault::DropIcmp);
    let (code, text) = doctor(&w, &sim);
    assert_eq!(code, 0, "ICMP is not needed for a sale: {text}");
    assert!(
        line(&text, "icmp").contains("WARN") && line(&text, "icmp").contains("no echo reply"),
        "{text}"
    );
    assert!(line(&text, "version").contains(" OK "), "{text}");

    terminal.fault(Fault::DropAll);
    let (code, text) = doctor(&w, &sim);
    assert_ne!(code, 0, "{text}");
    assert!(
        line(&text, "tcp").contains("FAIL") && line(&text, "tcp").contains("did not answer"),
        "{text}"
    );
    assert!(line(&text, "tcp").contains("firewall"), "{text}");

    terminal.fault(Fault::ResetTcp(sim.addr.port()));
    let (code, text) = doctor(&w, &sim);
    assert_ne!(code, 0, "{text}");
    assert!(line(&text, "tcp").contains("refused"), "{text}");

    terminal.clear_faults();
    let (code, text) = doctor(&w, &sim);
    assert_eq!(code, 0, "healthy again: {text}");
}
