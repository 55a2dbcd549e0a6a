//! The `comercia-pos` profile next to the InStore one, behind one gateway: two simulated
//! terminals (`sim` and `sim --profile comercia-pos` with a vendor CA made by `certs
//! vendor-ca`), sales and refunds by amount, a lost payment answer, a duplicated order,
//! a wrong `X-SOURCE`, certificates for another name or from ecrlink's own CA, the
//! calls the profile refuses, its report, amounts around rounding edges; `safety`: what
//! may have been delivered is only asked about (lost answer, another order's verdict,
//! `913`, busy `1001`+`602`, a restart).
#[path = "../common/mod.rs"]
mod common;
mod safety;

use std::path::PathBuf;
use std::time::Duration;

use common::*;
use ecrlink::config::{self, Overrides, Profile};
use ecrlink::http::client::HttpClient;
use ecrlink::tls;
use hyper::StatusCode;
use hyper::header::{HeaderName, HeaderValue};
use rustls::pki_types::ServerName;
use serde_json::{Value, json};

const INSTORE: &str = "LANE-1";
const COMERCIA: &str = "LANE-2";
const VENDOR_NAME: &str = "pos.comercia.test";

struct Store {
    w: World,
    vendor: PathBuf,
    instore: Proc,
    comercia: Proc,
    gw: Proc,
}

/// `certs vendor-ca` through the real binary: a CA that is not ecrlink's.
fn vendor_ca(w: &World) -> PathBuf {
    let dir = w.path("vendor");
    let out = std::process::Command::new(ecrlink_bin())
        .args(["certs", "vendor-ca", "--dir"])
        .arg(&dir)
        .args(["--name", VENDOR_NAME, "--ip", "127.0.0.1"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    dir
}

fn comercia_sim(w: &World, certs: &std::path::Path, extra: &[&str]) -> Proc {
    let mut args: Vec<String> = [
        "sim",
        "--listen",
        "127.0.0.1:0",
        "--profile",
        "comercia-pos",
    ]
    .map(String::from)
    .to_vec();
    args.extend(["--certs".into(), certs.display().to_string()]);
    args.extend(["--device-id", COMERCIA, "--card-time", "0.2"].map(String::from));
    args.extend(extra.iter().map(|s| s.to_string()));
    Proc::start(&args, &w.path(&format!("sim-comercia-{}.log", extra.len())))
}

impl Store {
    fn open(lane: Value) -> Store {
        Store::open_with(lane, None)
    }

    /// `lane` is merged over the comercia-pos terminal's entry; `sim_certs` is the folder
    /// its simulator takes its certificate from (the vendor pair by default).
    fn open_with(lane: Value, sim_certs: Option<PathBuf>) -> Store {
        let w = World::new();
        let vendor = vendor_ca(&w);
        let instore = w.sim(&["--device-id", INSTORE, "--card-time", "0.2"]);
        let comercia = comercia_sim(&w, &sim_certs.unwrap_or(vendor.clone()), &[]);
        let mut entry = json!({"deviceId": COMERCIA, "terminalIp": comercia.addr.to_string(),
            "profile": "comercia-pos", "serverName": VENDOR_NAME,
            "caCert": vendor.join("ca.pem")});
        if let (Value::Object(e), Value::Object(extra)) = (&mut entry, lane) {
            e.extend(extra);
        }
        let terminals =
            json!([{"deviceId": INSTORE, "terminalIp": instore.addr.to_string()}, entry]);
        let mut config = w.gateway_config(
            instore.addr,
            json!({"terminals": terminals, "timeStop": 10}),
        );
        let map = config.as_object_mut().unwrap();
        map.remove("terminalIp");
        map.remove("deviceId");
        let gw = w.gateway(&config);
        Store {
            w,
            vendor,
            instore,
            comercia,
            gw,
        }
    }

    fn gateway(&self) -> Client {
        self.w.gateway_client(self.gw.addr)
    }

    /// The comercia simulator as its API expects to be called (vendor CA, its name,
    /// `X-SOURCE`); `/sim/*` needs no header.
    fn comercia_terminal(&self) -> Client {
        let tls = tls::client_config(&self.vendor.join("ca.pem"), None).unwrap();
        let name = ServerName::try_from(VENDOR_NAME).unwrap().to_owned();
        let http = HttpClient::https(self.comercia.addr, tls, name, Duration::from_secs(5))
            .with_header(
                HeaderName::from_static("x-source"),
                HeaderValue::from_static("COMERCIA"),
            );
        Client(http)
    }
}

fn sale_on(device: &str, id: &str, amount: u64) -> Value {
    json!({"deviceId": device, "transactionId": id, "paymentApp": "comercia",
           "amount": amount, "currencyCode": "EUR"})
}

fn refund_on(device: &str, id: &str, original: &str, amount: u64) -> Value {
    let mut body = sale_on(device, id, amount);
    body["originalTransactionId"] = json!(original);
    body
}

async fn starts(terminal: &Client, id: &str) -> u64 {
    sim_stats(terminal).await["startRequests"][id]
        .as_u64()
        .unwrap_or(0)
}

#[tokio::test]
async fn both_profiles_sell_and_refund_by_amount() {
    let s = Store::open(json!({}));
    let gw = s.gateway();
    for device in [INSTORE, COMERCIA] {
        for (amount, status) in [(1050, "approved"), (1001, "declined"), (1002, "cancelled")] {
            let id = format!("{device}-S{amount}");
            let (st, r) = gw.post("/v1/sale", &sale_on(device, &id, amount)).await;
            assert_eq!(st, StatusCode::OK, "{r}");
            assert_eq!(r["status"], status, "{device} {amount}: {r}");
            assert_eq!(r["amount"], amount);
            assert_eq!(r["deviceId"], device);
        }
        let sale = format!("{device}-S1050");
        let (_, r) = gw.get(&format!("/v1/transactions/{sale}")).await;
        assert!(
            r["authorizationCode"]
                .as_str()
                .is_some_and(|a| !a.is_empty()),
            "{r}"
        );
        assert_eq!(r["maskedPan"], "476173******0010");
        assert_eq!(r["cardBrand"], "VISA");
        let (st, r) = gw
            .post(
                "/v1/refund",
                &refund_on(device, &format!("{device}-R1"), &sale, 500),
            )
            .await;
        assert_eq!(
            (st, r["status"].clone()),
            (StatusCode::OK, json!("approved")),
            "{r}"
        );
    }
    // The comercia lane keeps the terminal's codes and its whole ticket, in the journal.
    let (_, r) = gw.get("/v1/transactions/LANE-2-S1050").await;
    assert_eq!(r["resultCode"], "0");
    assert_eq!(r["receipt"]["Amount"], "10.50");
    assert_eq!(r["receipt"]["TerminalId"], COMERCIA);
    let (_, r) = gw.get("/v1/transactions/LANE-2-S1001").await;
    assert_eq!(r["resultCode"], "190", "{r}");
    let (_, r) = gw.get("/v1/transactions/LANE-2-R1").await;
    assert_eq!(
        (r["receipt"]["Type"].clone(), r["receipt"]["Amount"].clone()),
        (json!("Refund"), json!("5.00"))
    );
    // The instore lane is unchanged: no receipt, its own codes.
    let (_, r) = gw.get("/v1/transactions/LANE-1-S1050").await;
    assert!(r.get("receipt").is_none(), "{r}");
    assert_eq!(r["resultCode"], "00");
    let t = s.comercia_terminal();
    for id in ["LANE-2-S1050", "LANE-2-S1001", "LANE-2-S1002", "LANE-2-R1"] {
        assert_eq!(starts(&t, id).await, 1, "{id} sent once");
    }
}

#[tokio::test]
async fn a_wrong_x_source_is_a_configuration_error_naming_the_terminal() {
    let s = Store::open(json!({"source": "NOT-OURS"}));
    let (_, r) = s
        .gateway()
        .post("/v1/sale", &sale_on(COMERCIA, "SRC-1", 1000))
        .await;
    assert_eq!(r["status"], "failed", "{r}");
    let message = r["resultMessage"].as_str().unwrap();
    for part in [COMERCIA, "X-SOURCE", "1010", "source"] {
        assert!(message.contains(part), "{part} in {message}");
    }
    assert_eq!(sim_stats(&s.comercia_terminal()).await["transactions"], 0);
}

#[tokio::test]
async fn a_certificate_for_another_name_is_refused_nothing_sent() {
    let s = Store::open(json!({"serverName": "other.comercia.test"}));
    let (st, r) = s
        .gateway()
        .post("/v1/sale", &sale_on(COMERCIA, "NAME-1", 1000))
        .await;
    assert_eq!(st, StatusCode::BAD_GATEWAY, "{r}");
    assert_eq!(r["error"]["code"], "terminal_tls_error");
    assert_eq!(sim_stats(&s.comercia_terminal()).await["requests"], 0);
}

#[tokio::test]
async fn a_certificate_from_ecrlinks_own_ca_is_refused_on_a_comercia_lane() {
    // The simulator shows ecrlink's terminal certificate; the lane trusts only the vendor CA.
    let w_certs = World::new();
    let s = Store::open_with(
        json!({"serverName": "instorepaymentapi.globalpayments.es"}),
        Some(w_certs.certs()),
    );
    let (st, r) = s
        .gateway()
        .post("/v1/sale", &sale_on(COMERCIA, "CA-1", 1000))
        .await;
    assert_eq!(st, StatusCode::BAD_GATEWAY, "{r}");
    assert_eq!(r["error"]["code"], "terminal_tls_error");
    let admin = w_certs.terminal_client(s.comercia.addr);
    assert_eq!(
        sim_stats(&admin).await["requests"],
        0,
        "nothing reached the terminal"
    );
    // The instore lane next to it still sells with ecrlink's CA.
    let (_, r) = s
        .gateway()
        .post("/v1/sale", &sale_on(INSTORE, "CA-2", 1000))
        .await;
    assert_eq!(r["status"], "approved", "{r}");
    let _ = &s.instore;
}

#[tokio::test]
async fn void_cancel_and_other_currencies_are_refused_before_anything_is_sent() {
    let s = Store::open(json!({}));
    let gw = s.gateway();
    let (_, r) = gw.post("/v1/sale", &sale_on(COMERCIA, "V-1", 1000)).await;
    assert_eq!(r["status"], "approved");
    let (st, r) = gw
        .post("/v1/void", &refund_on(COMERCIA, "V-2", "V-1", 1000))
        .await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "{r}");
    assert_eq!(r["error"]["code"], "unsupported_by_terminal");
    assert!(
        r["error"]["message"]
            .as_str()
            .unwrap()
            .contains("comercia-pos")
    );
    let (st, r) = gw.post("/v1/transactions/V-1/cancel", &json!({})).await;
    assert_eq!(
        (st, r["error"]["code"].clone()),
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            json!("unsupported_by_terminal")
        )
    );
    let mut usd = sale_on(COMERCIA, "V-3", 1000);
    usd["currencyCode"] = json!("USD");
    let (st, r) = gw.post("/v1/sale", &usd).await;
    assert_eq!(st, StatusCode::BAD_REQUEST, "{r}");
    let message = r["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("comercia-pos") && message.contains("EUR"),
        "{message}"
    );
    let (st, _) = gw.get("/v1/transactions/V-3").await;
    assert_eq!(st, StatusCode::NOT_FOUND, "nothing journaled");
    assert_eq!(sim_stats(&s.comercia_terminal()).await["transactions"], 1);
}

#[tokio::test]
async fn the_terminal_report_is_passed_through() {
    let s = Store::open(json!({}));
    let gw = s.gateway();
    let (_, r) = gw.post("/v1/sale", &sale_on(COMERCIA, "REP-1", 4200)).await;
    assert_eq!(r["status"], "approved");
    let (st, report) = gw.get("/v1/terminals/LANE-2/report").await;
    assert_eq!(st, StatusCode::OK, "{report}");
    assert_eq!(report["payments"][0]["Amount"], "42.00", "{report}");
    let (st, r) = gw.get("/v1/terminals/LANE-1/report").await;
    assert_eq!(
        (st, r["error"]["code"].clone()),
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            json!("unsupported_by_terminal")
        )
    );
    let (st, _) = gw.get("/v1/terminals/NOPE/report").await;
    assert_eq!(st, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn amounts_cross_the_wire_exactly_around_rounding_edges() {
    let s = Store::open(json!({}));
    let gw = s.gateway();
    for (cents, euros) in [
        (1, "0.01"),
        (10, "0.10"),
        (99, "0.99"),
        (100, "1.00"),
        (101, "1.01"),
        (999_999, "9999.99"),
    ] {
        let id = format!("AMT-{cents}");
        let (_, r) = gw.post("/v1/sale", &sale_on(COMERCIA, &id, cents)).await;
        assert_eq!(r["amount"], cents, "{r}");
        assert_eq!(r["receipt"]["Amount"], euros, "{r}");
        // Outcome by amount, as on the instore side: ...01 declined.
        let expected = if cents % 100 == 1 {
            "declined"
        } else {
            "approved"
        };
        assert_eq!(r["status"], expected, "{r}");
    }
}

#[test]
fn config_keys_of_the_profile() {
    let lanes = |lane: Value| {
        let text =
            json!({"terminals": [{"deviceId": "L1", "terminalIp": "10.0.0.5"}, lane]}).to_string();
        config::load_from(Some(&text), &[], &Overrides::default())
    };
    let c = lanes(
        json!({"deviceId": "L2", "terminalIp": "10.0.0.6", "profile": "comercia-pos",
        "serverName": VENDOR_NAME, "caCert": "vendor/ca.pem"}),
    )
    .unwrap();
    let (instore, comercia) = (&c.terminals[0], &c.terminals[1]);
    assert_eq!(
        (
            instore.profile,
            instore.address.port(),
            instore.comercia.is_none()
        ),
        (Profile::Instore, 3000, true)
    );
    assert_eq!(
        (comercia.profile, comercia.address.port()),
        (Profile::ComerciaPos, 2011)
    );
    let lane = comercia.comercia.as_ref().unwrap();
    assert_eq!(
        (lane.server_name.as_str(), lane.source.as_str()),
        (VENDOR_NAME, "COMERCIA")
    );
    assert_eq!(c.effective()["terminals"][1]["serverName"], VENDOR_NAME);
    let c = lanes(
        json!({"deviceId": "L2", "terminalIp": "10.0.0.6:2002", "profile": "comercia-pos",
        "serverName": VENDOR_NAME, "caCert": "ca.pem", "source": "SHOP"}),
    )
    .unwrap();
    assert_eq!(c.terminals[1].address.port(), 2002);
    let err = lanes(json!({"deviceId": "L2", "terminalIp": "10.0.0.6", "profile": "comercia-pos"}))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("terminals[1].serverName") && err.contains("terminals[1].caCert"),
        "{err}"
    );
    let err = lanes(json!({"deviceId": "L2", "terminalIp": "10.0.0.6", "serverName": VENDOR_NAME}))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("terminals[1].serverName") && err.contains("comercia-pos"),
        "{err}"
    );
    let err = lanes(
        json!({"deviceId": "L2", "terminalIp": "10.0.0.6", "profile": "comercia-pos",
        "serverName": "10.0.0.6", "caCert": "ca.pem", "source": "two words"}),
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("terminals[1].serverName") && err.contains("terminals[1].source"),
        "{err}"
    );
    let err = lanes(json!({"deviceId": "L2", "terminalIp": "10.0.0.6", "profile": "nope"}))
        .unwrap_err()
        .to_string();
    assert!(err.contains("comercia-pos"), "{err}");
}

#[test]
fn a_missing_vendor_ca_stops_serve_naming_the_terminal() {
    let w = World::new();
    let lane = json!({"deviceId": COMERCIA, "terminalIp": "127.0.0.1", "profile": "comercia-pos",
        "serverName": VENDOR_NAME, "caCert": w.path("no-such/ca.pem")});
    let mut config = w.gateway_config("127.0.0.1:9".parse().unwrap(), json!({"terminals": [lane]}));
    let map = config.as_object_mut().unwrap();
    map.remove("terminalIp");
    map.remove("deviceId");
    let path = w.path("config.json");
    std::fs::write(&path, config.to_string()).unwrap();
    let out = std::process::Command::new(ecrlink_bin())
        .args(["serve", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(COMERCIA) && err.contains("caCert") && err.contains("no-such"),
        "{err}"
    );
}
