//! JSON logs for log shippers: the gateway with `ECRLINK_LOGFORMAT=json`, the simulator
//! with `--log-format json`. Every line is one JSON object; the request's lines carry
//! `request_id` (the caller's `X-Request-Id`), `transaction_id` and `device_id`. A full run
//! — sales of every outcome, a refund, a void, a conflict, a cancel, lookups — leaves no
//! card number (the simulator's PAN, nor any Luhn-valid run of 13–19 digits), no
//! `otherData` and no API key in any log line.

mod common;

use std::time::Duration;

use common::{DEVICE, Proc, World, ecrlink_bin, eventually, sale};
use ecrlink::sim::state::CARD_PAN;
use serde_json::{Value, json};

const API_KEY: &str = "logs-test-key-7f3a9c";
const OTHER_DATA_MARK: &str = "OTHERDATA-must-not-be-logged";

fn luhn(digits: &str) -> bool {
    let sum: u32 = digits
        .chars()
        .rev()
        .filter_map(|c| c.to_digit(10))
        .enumerate()
        .map(|(i, d)| {
            if i % 2 == 1 {
                (d * 2) % 9 + u32::from(d == 9) * 9
            } else {
                d
            }
        })
        .sum();
    sum.is_multiple_of(10)
}

/// Runs of 13–19 digits that pass the Luhn check: what a card number looks like.
fn card_like(line: &str) -> Vec<String> {
    line.split(|c: char| !c.is_ascii_digit())
        .filter(|run| (13..=19).contains(&run.len()) && luhn(run))
        .map(str::to_string)
        .collect()
}

#[test]
fn the_scanner_finds_card_numbers() {
    assert!(luhn(CARD_PAN), "the simulator's PAN is a valid card number");
    assert_eq!(
        card_like(&format!("x={CARD_PAN} y")),
        vec![CARD_PAN.to_string()]
    );
    assert!(card_like("476173******0010 1796236240285221998").is_empty());
}

#[tokio::test]
async fn json_lines_name_the_request_and_never_hold_card_data_or_secrets() {
    let w = World::new();
    let sim = w.sim(&["--card-time", "0", "--log-format", "json"]);
    let config = w.gateway_config(sim.addr, json!({"apiKey": API_KEY}));
    let path = w.path("config-logs.json");
    std::fs::write(&path, serde_json::to_vec(&config).unwrap()).unwrap();
    let gw = Proc::start_program(
        "env",
        &[
            "ECRLINK_LOGFORMAT=json".to_string(),
            ecrlink_bin(),
            "serve".into(),
            "--config".into(),
            path.display().to_string(),
        ],
        &w.path("gateway-logs.log"),
    );
    let port = gw.addr.port();
    let ca = w.certs().join(ecrlink::pki::CA_CERT);
    let curl = |args: &[&str]| {
        let out = std::process::Command::new("curl")
            .args(["-sS", "--cacert"])
            .arg(&ca)
            .args(["-H", &format!("Authorization: Bearer {API_KEY}")])
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        String::from_utf8_lossy(&out.stdout).to_string()
    };
    let url = |p: &str| format!("https://localhost:{port}{p}");
    let mut body = sale("LOG-1", 1000);
    body["otherData"] = json!({"note": OTHER_DATA_MARK});
    let answer = curl(&[
        "-H",
        "Content-Type: application/json",
        "-H",
        "X-Request-Id: till-3-req-42",
        "-d",
        &body.to_string(),
        &url("/v1/sale"),
    ]);
    assert!(answer.contains("approved"), "{answer}");
    // Every outcome, a refund, a void, a conflict, lookups and a cancel.
    let c = w.gateway_client(gw.addr);
    let _ = c.get("/v1/getVersion").await;
    for (id, amount) in [("LOG-2", 1001), ("LOG-3", 1002), ("LOG-4", 1003)] {
        let s = sale(id, amount).to_string();
        curl(&[
            "-H",
            "Content-Type: application/json",
            "-d",
            &s,
            &url("/v1/sale"),
        ]);
    }
    let mut refund = sale("LOG-R", 200);
    refund["originalTransactionId"] = json!("LOG-1");
    curl(&[
        "-H",
        "Content-Type: application/json",
        "-d",
        &refund.to_string(),
        &url("/v1/refund"),
    ]);
    let void_sale = sale("LOG-5", 700).to_string();
    curl(&[
        "-H",
        "Content-Type: application/json",
        "-d",
        &void_sale,
        &url("/v1/sale"),
    ]);
    let mut void = sale("LOG-V", 700);
    void["originalTransactionId"] = json!("LOG-5");
    curl(&[
        "-H",
        "Content-Type: application/json",
        "-d",
        &void.to_string(),
        &url("/v1/void"),
    ]);
    let conflict = sale("LOG-1", 999).to_string();
    curl(&[
        "-H",
        "Content-Type: application/json",
        "-d",
        &conflict,
        &url("/v1/sale"),
    ]);
    curl(&[&url("/v1/transactions/LOG-1")]);
    curl(&[&url("/v1/transactions/LOG-1/events")]);
    curl(&["-X", "POST", &url("/v1/transactions/LOG-1/cancel")]);
    curl(&[&url("/v1/terminals")]);

    // The gateway logs the sale's start inside the request: wait for that line.
    let gateway_lines = eventually(Duration::from_secs(10), "the sale's log line", || async {
        let text = gw.log_text();
        text.contains("till-3-req-42").then_some(text)
    })
    .await;
    let mut named = false;
    for (who, text) in [("gateway", gateway_lines), ("sim", sim.log_text())] {
        assert!(!text.trim().is_empty(), "{who} logged nothing");
        for line in text.lines() {
            let v: Value = serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("{who}: not one JSON object per line ({e}): {line}"));
            assert!(
                v["timestamp"].is_string() && v["level"].is_string(),
                "{line}"
            );
            assert!(!line.contains(CARD_PAN), "{who} logged the PAN: {line}");
            assert!(
                card_like(line).is_empty(),
                "{who} logged a card-like number: {line}"
            );
            assert!(
                !line.contains(OTHER_DATA_MARK),
                "{who} logged otherData: {line}"
            );
            assert!(!line.contains(API_KEY), "{who} logged the API key: {line}");
            if v["span"]["request_id"] == "till-3-req-42" {
                assert_eq!(v["span"]["transaction_id"], "LOG-1", "{line}");
                assert_eq!(v["span"]["device_id"], DEVICE, "{line}");
                named = true;
            }
        }
    }
    assert!(
        named,
        "no gateway line named request, transaction and device"
    );
}
