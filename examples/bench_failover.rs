//! Benchmark (issue 11): failover without waiting, on the namespace LAN of
//! `tests/common/lan.rs` (root, nftables, iproute2, mosquitto).
//!
//!   cargo build --release --bin ecrlink && cargo run --release --example bench_failover
//!
//! (scripts/bench-failover.sh runs it after bench_detection.) Two measurements, each
//! over `BENCH_FAILOVER_TRIALS` trials (default 10):
//! - idle cut → `mqtt` active: the terminal's HTTPS port silently dropped (nftables in
//!   its namespace; MQTT keeps flowing) while no sale runs, at spread phases of the 1 s
//!   probe round; the time until `/v1/terminals/{deviceId}` shows `activeTransport`
//!   `mqtt` (polled every 20 ms), then one sale's time (card time 0.3 s), then restore
//!   and the time back to `direct`. Gateway defaults (probe, pollSeconds 10).
//! - stale `terminalIp` → first sale approved: a new gateway (its own namespace, mDNS
//!   browse on) configured with an address nobody holds; the terminal announces itself
//!   by mDNS at its real address; the first sale is sent as soon as the gateway listens.
#[path = "../tests/common/mod.rs"]
mod common;

use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use common::broker::Broker;
use common::lan::{self, Fault, Host};
use common::*;
use serde_json::{Value, json};

async fn view(c: &Client) -> Value {
    c.get(&format!("/v1/terminals/{DEVICE}")).await.1
}

async fn until(c: &Client, since: Instant, ok: impl Fn(&Value) -> bool) -> Duration {
    loop {
        if ok(&view(c).await) {
            return since.elapsed();
        }
        assert!(
            since.elapsed() < Duration::from_secs(30),
            "no change within 30 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn stats(v: &[Duration]) -> String {
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
}

async fn idle_cut(trials: usize) {
    let w = World::new();
    let terminal = Host::new();
    let broker = Broker::start_on(&w, terminal.peer_ip.into()).await;
    let url = broker.url();
    let sim = terminal.sim(&w, &w.certs(), &["--card-time", "0.3", "--mqtt", &url]);
    let config = w.gateway_config(
        sim.addr,
        json!({"startTecnology": "mqtt", "fallback": {"mqtt": {"url": url}},
               "staticIptimeOut": 5, "pollSeconds": 10, "timeStop": 60}),
    );
    let gw = w.gateway(&config);
    let c = w.gateway_client(gw.addr);
    let ready = |t: &Value| {
        t["state"] == "up"
            && t["activeTransport"] == "direct"
            && t["transports"][0]["terminalPresence"] == "online"
    };
    until(&c, Instant::now(), ready).await;
    let (mut switch, mut sales, mut back) = (Vec::new(), Vec::new(), Vec::new());
    for trial in 0..trials {
        let phase = Duration::from_millis(1500 + (trial as u64 * 379) % 1000);
        tokio::time::sleep(phase).await;
        let at = Instant::now();
        terminal.fault(Fault::DropTcp(sim.addr.port()));
        let s = until(&c, at, |t| t["activeTransport"] == "mqtt").await;
        let t0 = Instant::now();
        let (_, r) = c
            .post("/v1/sale", &sale(&format!("BF-{trial}"), 1000))
            .await;
        let sale_time = t0.elapsed();
        assert_eq!(
            (r["status"].as_str(), r["transport"].as_str()),
            (Some("approved"), Some("mqtt")),
            "{r}"
        );
        tokio::time::sleep(Duration::from_millis((trial as u64 * 613) % 1000)).await;
        let cleared = Instant::now();
        terminal.clear_faults();
        let b = until(&c, cleared, ready).await;
        println!(
            "BENCH failover trial {trial}: idle cut -> mqtt active {:.0} ms, sale over mqtt {:.0} ms, restore -> direct {:.0} ms",
            s.as_secs_f64() * 1e3,
            sale_time.as_secs_f64() * 1e3,
            b.as_secs_f64() * 1e3
        );
        switch.push(s);
        sales.push(sale_time);
        back.push(b);
    }
    println!(
        "SUMMARY failover idle cut -> mqtt active: {}",
        stats(&switch)
    );
    println!(
        "SUMMARY failover next sale over mqtt (card 300 ms): {}",
        stats(&sales)
    );
    println!(
        "SUMMARY failover restore -> direct active: {}",
        stats(&back)
    );
}

async fn stale_ip(trials: usize) {
    let w = World::new();
    let gw_host = Host::new();
    let terminal = Host::linked_to(&gw_host);
    let port = 3000;
    let listen: SocketAddr = format!("0.0.0.0:{port}").parse().unwrap();
    let _sim = terminal.sim_at(&w, &w.certs(), listen, &["--card-time", "0", "--mdns"]);
    let [a, b, c3, _] = terminal.ip.octets();
    let stale = Ipv4Addr::new(a, b, c3, 99);
    let mut times = Vec::new();
    for trial in 0..trials {
        let mut config = w.gateway_config(
            SocketAddr::new(stale.into(), port),
            json!({"url": gw_host.ip.to_string(), "staticIptimeOut": 5, "pollSeconds": 1,
                   "mdns": {"enabled": true, "interfaces": [terminal.peer_ifname]}}),
        );
        config["journal"] = json!(w.path(&format!("stale-{trial}.db")));
        let cfg = w.path(&format!("stale-{trial}.json"));
        std::fs::write(&cfg, serde_json::to_vec(&config).unwrap()).unwrap();
        let gw = gw_host.ecrlink(
            &["serve".into(), "--config".into(), cfg.display().to_string()],
            &w.path(&format!("gw-stale-{trial}.log")),
        );
        let c = w.gateway_client(gw.addr);
        let t0 = Instant::now();
        let (_, r) = c
            .post("/v1/sale", &sale(&format!("STALE-{trial}"), 1000))
            .await;
        let took = t0.elapsed();
        assert_eq!(r["status"], "approved", "{r}");
        println!(
            "BENCH failover trial {trial}: stale terminalIp -> first sale approved {:.0} ms",
            took.as_secs_f64() * 1e3
        );
        times.push(took);
        drop(gw);
    }
    println!(
        "SUMMARY failover stale terminalIp -> first sale approved: {}",
        stats(&times)
    );
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    lan::require();
    let trials: usize = std::env::var("BENCH_FAILOVER_TRIALS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10)
        .clamp(1, 50);
    idle_cut(trials).await;
    stale_ip(trials).await;
    println!("SUMMARY failover baseline: vendor 30000 ms (3 unanswered 10-s polls)");
}
