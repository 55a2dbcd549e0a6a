//! Issue 3, reconcile time: how long after a hanging terminal answers again the
//! reconciled result is visible at `GET /v1/transactions/{id}`.
//!
//! Per trial: a sale (`--card-time 0.5`) reaches the simulator, the simulator's HTTPS
//! side is frozen mid-sale (`POST /sim/faults {"hang":true}`: connections and TLS are
//! still accepted, nothing is answered, the held answer neither), the POS hears 504
//! `unknown` at `timeStop` (1.5 s, or 1.5 x pollSeconds when that is longer: the
//! gateway wants pollSeconds < timeStop), the hang is held for a while, then cleared
//! (`POST /sim/faults {}`); from that moment the gateway's record is polled every 20 ms
//! until it shows a final status. The hold varies over the trials (0 .. `--hold-max`
//! seconds, evenly) because the answer depends on where the gateway is in its
//! reconcile backoff: a lookup at once, then after pollSeconds, doubling up to 30 s;
//! a lookup held by the frozen terminal is answered the moment it thaws. The
//! probe monitor keeps the link `up` throughout (TCP and TLS still succeed), so
//! nothing but the backoff schedules the lookups.
//!
//!   cargo run --release --example bench_reconcile -- --poll 1 --trials 10 --hold-max 10
//!   cargo run --release --example bench_reconcile -- --poll 10 --trials 10 --hold-max 10
#[path = "bench_common/mod.rs"]
mod bench_common;

use std::time::{Duration, Instant};

use bench_common::*;
use hyper::{Method, StatusCode};
use serde_json::{Value, json};

const SIM_NAME: &str = "instorepaymentapi.globalpayments.es";
const FINAL: [&str; 4] = ["approved", "declined", "cancelled", "failed"];

#[tokio::main]
async fn main() {
    let poll: f64 = arg("--poll", 1.0);
    let trials: usize = arg("--trials", 10);
    let hold_max: f64 = arg("--hold-max", 10.0);
    // The gateway wants pollSeconds < timeStop: 1.5 s, or 1.5 x pollSeconds above 1 s.
    let time_stop: f64 = arg("--time-stop", (poll * 1.5).max(1.5));
    assert!(trials <= 50 && hold_max <= 60.0, "bounded");
    let budget = Budget::new(Duration::from_secs(
        (trials as u64) * (hold_max as u64 + time_stop as u64 + 50) + 60,
    ));
    let world = World::new(&bench_base());
    let sim = Proc::start(
        &[
            "sim",
            "--listen",
            "127.0.0.1:0",
            "--certs",
            &world.certs().display().to_string(),
            "--card-time",
            "0.5",
        ],
        &world.path("sim.log"),
    );
    let config = json!({
        "port": "0", "url": "localhost", "mode": "F", "SSL": "True",
        "terminalIp": sim.addr.to_string(), "deviceId": DEVICE,
        "staticIptimeOut": 2, "timeStop": time_stop, "pollSeconds": poll, "loopsBefore": 3, "retries": 600,
        "certsDir": world.certs(), "journal": world.path("reconcile.db"),
    });
    let cfg = world.path("config-reconcile.json");
    std::fs::write(&cfg, serde_json::to_vec_pretty(&config).unwrap()).unwrap();
    let gw = world.gateway(&cfg);
    let tls = world.client_tls();
    println!(
        "reconcile bench: pollSeconds {poll}, timeStop {time_stop} s, probe defaults, {trials} trials, hang held 0..{hold_max} s after the POS heard unknown"
    );
    let mut samples = Vec::new();
    for i in 0..trials {
        budget.check("trials");
        let id = format!("REC-{poll}-{i}-{}", std::process::id());
        let hold =
            Duration::from_secs_f64(hold_max * i as f64 / trials.max(2).saturating_sub(1) as f64);
        // A fresh keep-alive per sale: the POS call runs in its own task.
        let mut pos = KeepAlive::connect(gw.addr, tls.clone(), "localhost").await;
        let body = sale(&id);
        let sale_task = tokio::spawn(async move {
            pos.call_within(
                Method::POST,
                "/v1/sale",
                Some(body),
                Duration::from_secs_f64(time_stop + 10.0),
            )
            .await
        });
        // Fresh connections where a wait came before: the servers close idle ones.
        let mut admin = KeepAlive::connect(sim.addr, tls.clone(), SIM_NAME).await;
        let mut at_terminal = false;
        for _ in 0..250 {
            let (_, cur) = admin
                .call(Method::GET, "/v1/transactions/current", None)
                .await;
            let cur: Value = serde_json::from_slice(&cur).unwrap_or(Value::Null);
            if cur["transactionId"] == id.as_str() {
                at_terminal = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(at_terminal, "{id} never reached the terminal");
        let (st, _) = admin
            .call(
                Method::POST,
                "/sim/faults",
                Some(serde_json::to_vec(&json!({"hang": true})).unwrap()),
            )
            .await;
        assert_eq!(st, StatusCode::OK);
        let (st, body) = sale_task.await.expect("sale task");
        assert_eq!(
            st,
            StatusCode::GATEWAY_TIMEOUT,
            "{}",
            String::from_utf8_lossy(&body)
        );
        tokio::time::sleep(hold).await;
        let mut admin = KeepAlive::connect(sim.addr, tls.clone(), SIM_NAME).await;
        let mut api = KeepAlive::connect(gw.addr, tls.clone(), "localhost").await;
        let (st, _) = admin
            .call(
                Method::POST,
                "/sim/faults",
                Some(serde_json::to_vec(&json!({})).unwrap()),
            )
            .await;
        assert_eq!(st, StatusCode::OK);
        let thawed = Instant::now();
        let fin = loop {
            let (_, r) = api
                .call(Method::GET, &format!("/v1/transactions/{id}"), None)
                .await;
            let r: Value = serde_json::from_slice(&r).unwrap_or(Value::Null);
            if FINAL.contains(&r["status"].as_str().unwrap_or("")) {
                break r;
            }
            assert!(
                thawed.elapsed() < Duration::from_secs(45),
                "{id} not reconciled 45 s after the thaw: {r}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        let took = thawed.elapsed();
        assert_eq!(fin["status"], "approved", "{fin}");
        println!(
            "trial {i}: hang held {:.1} s after unknown; reconciled ({}) {:.0} ms after the thaw",
            hold.as_secs_f64(),
            fin["status"],
            ms(took)
        );
        samples.push(took);
    }
    samples.sort();
    let med = median_f64(&samples.iter().map(|d| ms(*d)).collect::<Vec<_>>());
    println!(
        "SUMMARY reconcile pollSeconds {poll} (timeStop {time_stop} s): thaw -> final visible median {med:.0} ms, min {:.0} ms, max {:.0} ms (n={}, hang held 0..{hold_max} s)",
        ms(samples[0]),
        ms(samples[samples.len() - 1]),
        samples.len()
    );
    drop(gw);
    drop(sim);
}
