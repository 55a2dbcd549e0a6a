//! Benchmark (issue 4): fault detection time of the probe monitor on a namespace LAN
//! (veth, nftables faults). Needs root; without it, it fails saying why.
//!
//!   cargo build --release --bin ecrlink && BENCH_DETECTION_TRIALS=10 cargo run --release --example bench_detection
//!
//! (scripts/bench.sh runs it.) It shares the integration tests' harness (`tests/common`).
//!
//! With the gateway's default probe settings (probeIntervalMs
//! 1000, down after 3 failed rounds, up after 2 good ones), the time from a fault in the
//! terminal's namespace to `down` on `/v1/terminals/{deviceId}` (drop-all, and
//! `reject with tcp reset` on the terminal's port), and from clearing it to `up`.
//! `/v1/terminals/{deviceId}` is polled every 20 ms; each fault and each restore lands
//! at a different phase of the 1 s probe round. The seed notices a dead terminal after 3 unanswered
//! 10-s polls: 30 s. BENCH_DETECTION_TRIALS sets the trials per fault (default 10).
#[path = "../tests/common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use common::lan::{self, Fault, Host};
use common::*;
use hyper::StatusCode;
use serde_json::{Value, json};

async fn health(c: &Client) -> Value {
    let (st, h) = c.get(&format!("/v1/terminals/{DEVICE}")).await;
    assert_eq!(st, StatusCode::OK);
    h
}

async fn wait_state(c: &Client, state: &str, within: Duration) {
    eventually(within, &format!("terminal {state}"), || async {
        (health(c).await["state"] == state).then_some(())
    })
    .await;
}

struct Store {
    w: World,
    terminal: Host,
    _sim: Proc,
    gw: Proc,
}

fn store(sim_args: &[&str], extra: Value) -> Store {
    let w = World::new();
    let terminal = Host::new();
    let sim = terminal.sim(&w, &w.certs(), sim_args);
    let gw = w.gateway(&w.gateway_config(sim.addr, extra));
    Store {
        w,
        terminal,
        _sim: sim,
        gw,
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    lan::require();
    let trials: usize = std::env::var("BENCH_DETECTION_TRIALS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10)
        .clamp(1, 50);
    // Only the test harness's fast transaction timings; the probe keys stay at their
    // defaults (no probeIntervalMs / probeDownAfter / probeUpAfter in the config).
    let s = store(&["--card-time", "0"], json!({}));
    let c = s.w.gateway_client(s.gw.addr);
    let (_, terminals) = c.get("/v1/terminals").await;
    println!("BENCH detection: gateway terminals {terminals}");
    wait_state(&c, "up", Duration::from_secs(15)).await;

    /// Polls every ~20 ms until `state`; the time from `since` to the first poll that
    /// shows it (bounded: 20 s).
    async fn until_state(c: &Client, state: &str, since: Instant) -> Duration {
        loop {
            if health(c).await["state"] == state {
                return since.elapsed();
            }
            assert!(
                since.elapsed() < Duration::from_secs(20),
                "no {state} within 20 s"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    let port = s._sim.addr.port();
    type MakeFault = fn(u16) -> Fault;
    let faults: [(&str, MakeFault); 2] = [
        ("drop-all", |_| Fault::DropAll),
        ("tcp-reset", Fault::ResetTcp),
    ];
    let mut down: Vec<Vec<Duration>> = vec![Vec::new(), Vec::new()];
    let mut up: Vec<Vec<Duration>> = vec![Vec::new(), Vec::new()];
    let budget = Instant::now() + Duration::from_secs(30 * trials as u64 + 60);
    for trial in 0..trials {
        for (k, (name, fault)) in faults.iter().enumerate() {
            assert!(Instant::now() < budget, "time budget exceeded");
            // Spread the fault over the phase of the 1 s probe round, and let the
            // tracker see a few good rounds after the last `up`.
            let phase = Duration::from_millis(1500 + ((trial * 2 + k) as u64 * 379) % 1000);
            tokio::time::sleep(phase).await;
            assert_eq!(health(&c).await["state"], "up");
            let at = Instant::now();
            s.terminal.fault(fault(port));
            let d = until_state(&c, "down", at).await;
            // The restore also lands at a spread phase: right after the round that
            // said `down` it would always be one and the same point of the schedule.
            let phase = Duration::from_millis(((trial * 2 + k) as u64 * 613) % 1000);
            tokio::time::sleep(phase).await;
            let cleared = Instant::now();
            s.terminal.clear_faults();
            let u = until_state(&c, "up", cleared).await;
            println!(
                "BENCH detection trial {trial} {name}: down after {:.0} ms, up after {:.0} ms",
                d.as_secs_f64() * 1e3,
                u.as_secs_f64() * 1e3
            );
            down[k].push(d);
            up[k].push(u);
        }
    }
    let stats = |v: &[Duration]| {
        let mut v = v.to_vec();
        v.sort();
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        let n = v.len();
        let median = if n % 2 == 1 {
            ms(v[n / 2])
        } else {
            (ms(v[n / 2 - 1]) + ms(v[n / 2])) / 2.0
        };
        format!(
            "median {median:.0} ms, min {:.0} ms, max {:.0} ms (n={n})",
            ms(v[0]),
            ms(v[n - 1])
        )
    };
    let all_up: Vec<Duration> = up.concat();
    println!(
        "SUMMARY detection fault->down drop-all: {}",
        stats(&down[0])
    );
    println!(
        "SUMMARY detection fault->down tcp-reset: {}",
        stats(&down[1])
    );
    println!(
        "SUMMARY detection restore->up after drop-all: {}",
        stats(&up[0])
    );
    println!(
        "SUMMARY detection restore->up after tcp-reset: {}",
        stats(&up[1])
    );
    println!("SUMMARY detection restore->up all: {}", stats(&all_up));
    println!(
        "SUMMARY detection seed baseline: 30000 ms (3 unanswered 10-s polls); drop-all median is {:.1}x faster",
        30_000.0 / {
            let mut v = down[0].clone();
            v.sort();
            v[v.len() / 2].as_secs_f64() * 1e3
        }
    );
}
