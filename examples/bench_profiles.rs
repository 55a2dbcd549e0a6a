//! Both terminal profiles behind one gateway: sequential sales on an `instore` lane and
//! on a `comercia-pos` lane (`sim --profile comercia-pos`, vendor CA from `certs
//! vendor-ca`), both simulators with `--card-time 0`. The InStore start call is held
//! until the verdict; the comercia-pos payment is answered at once with `1001` and its
//! verdict read from `status` (asked at once, then every `pollSeconds`), so this measures
//! what the second protocol costs per sale, and how many status calls it needs.
//!
//! cargo build --release && cargo run --release --example bench_profiles -- \
//!     [--sales 200] [--poll 0.2]

#[path = "bench_common/mod.rs"]
mod bench_common;

use std::time::{Duration, Instant};

use bench_common::*;
use hyper::{Method, StatusCode};
use serde_json::{Value, json};

const NAME: &str = "pos.comercia.bench";

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let sales: usize = arg("--sales", 200);
    let poll: f64 = arg("--poll", 0.2);
    let budget = Budget::new(Duration::from_secs(arg("--budget-secs", 300)));
    let world = World::new(&bench_base());
    let vendor = world.path("vendor");
    ecrlink::pki::vendor_ca(&vendor, NAME, &["127.0.0.1".parse().unwrap()], false).unwrap();
    let instore = world.sim();
    let certs = vendor.display().to_string();
    let comercia = Proc::start(
        &[
            "sim",
            "--listen",
            "127.0.0.1:0",
            "--certs",
            &certs,
            "--card-time",
            "0",
            "--profile",
            "comercia-pos",
            "--device-id",
            "LANE-2",
        ],
        &world.path("sim-comercia.log"),
    );
    let config = world.gateway_config(instore.addr, "journal.db");
    let mut c: Value = serde_json::from_slice(&std::fs::read(&config).unwrap()).unwrap();
    let map = c.as_object_mut().unwrap();
    map.remove("terminalIp");
    map.remove("deviceId");
    map.insert("pollSeconds".into(), json!(poll));
    map.insert("terminals".into(), json!([
        {"deviceId": DEVICE, "terminalIp": instore.addr.to_string()},
        {"deviceId": "LANE-2", "terminalIp": comercia.addr.to_string(), "profile": "comercia-pos",
         "serverName": NAME, "caCert": vendor.join("ca.pem")},
    ]));
    std::fs::write(&config, serde_json::to_vec(&c).unwrap()).unwrap();
    let gateway = world.gateway(&config);
    let mut pos = KeepAlive::connect(gateway.addr, world.client_tls(), "localhost").await;
    println!(
        "{sales} sequential sales per lane, pollSeconds {poll}, both simulators --card-time 0"
    );
    let stamp = std::process::id();
    for (lane, profile) in [(DEVICE, "instore"), ("LANE-2", "comercia-pos")] {
        let mut samples = Vec::with_capacity(sales);
        for n in 0..sales {
            budget.check("sales");
            let id = format!("P-{stamp}-{lane}-{n}");
            let body = json!({"deviceId": lane, "transactionId": id, "paymentApp": "comercia",
                              "amount": 1000, "currencyCode": "EUR"});
            let start = Instant::now();
            let (status, answer) = pos
                .call(
                    Method::POST,
                    "/v1/sale",
                    Some(serde_json::to_vec(&body).unwrap()),
                )
                .await;
            samples.push(start.elapsed());
            let v: Value = serde_json::from_slice(&answer).expect("JSON answer");
            assert_eq!(
                (status, v["status"].as_str()),
                (StatusCode::OK, Some("approved")),
                "{v}"
            );
        }
        let (m, p) = summarize(&mut samples);
        println!(
            "SUMMARY {profile} sale through the gateway: median {m:.2} ms, p99 {p:.2} ms over {sales} sales"
        );
    }
    let mut admin = KeepAlive::connect(
        comercia.addr,
        std::sync::Arc::new(
            (*ecrlink::tls::client_config(&vendor.join("ca.pem"), None).unwrap()).clone(),
        ),
        NAME,
    )
    .await;
    let (_, stats) = admin.call(Method::GET, "/sim/stats", None).await;
    let stats: Value = serde_json::from_slice(&stats).unwrap();
    let lookups: u64 = stats["lookupRequests"]
        .as_object()
        .unwrap()
        .values()
        .filter_map(Value::as_u64)
        .sum();
    let starts: u64 = stats["startRequests"]
        .as_object()
        .unwrap()
        .values()
        .filter_map(Value::as_u64)
        .sum();
    println!(
        "SUMMARY comercia-pos calls per sale: {:.2} payment, {:.2} status",
        starts as f64 / sales as f64,
        lookups as f64 / sales as f64
    );
}
