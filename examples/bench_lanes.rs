//! A store of 100 lanes: one gateway (release binary) serving 100 simulated terminals
//! (`ecrlink sim --devices 100 --card-time 0`, one process, ports P … P+99).
//!
//! Busy: rounds of one sale on every lane at once (100 concurrent `POST /v1/sale`, each
//! lane's POS on its own keep-alive connection), then the same 100 sales straight to
//! the simulators at once (one keep-alive connection per simulator), alternating, so
//! both see the same machine. Every sale must come back `200 approved`. Per run: p50 and
//! p99 of each side, their difference (what the gateway adds), and sales/s through the
//! gateway (100 per round over the round's wall time).
//!
//! Idle: after every lane's probe monitor says `up`, the gateway's CPU (utime + stime
//! from /proc/PID/stat) over `--idle-secs` and its RSS; busy: its CPU over the busy phase
//! and its RSS after it.
//!
//! cargo build --release && cargo run --release --example bench_lanes -- \
//!     [--lanes 100] [--runs 5] [--rounds 10] [--idle-secs 10] [--journal-dir /dev/shm]

#[path = "bench_common/mod.rs"]
mod bench_common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bench_common::*;
use hyper::{Method, StatusCode};
use serde_json::{Value, json};

const TERMINAL_NAME: &str = "instorepaymentapi.globalpayments.es";
/// `/proc/PID/stat` counts CPU time in USER_HZ ticks, 100 per second on Linux.
const TICKS_PER_SEC: f64 = 100.0;

fn lane_id(lane: usize) -> String {
    format!("LANE-{:03}", lane + 1)
}

fn sale(lane: usize, id: &str) -> Vec<u8> {
    let v = json!({"deviceId": lane_id(lane), "transactionId": id, "paymentApp": "comercia",
                   "amount": 1000, "currencyCode": "EUR", "otherData": {"printReceipt": 0}});
    serde_json::to_vec(&v).unwrap()
}

/// CPU seconds (user + system) the process has used so far.
fn cpu_secs(proc: &Proc) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{}/stat", proc.child.id())).unwrap();
    // Fields after the command name (which may hold spaces) start at field 3.
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = fields[11].parse::<f64>().unwrap() + fields[12].parse::<f64>().unwrap();
    ticks / TICKS_PER_SEC
}

/// One sale on every connection at once; each latency, and the round's wall time.
async fn burst(
    conns: Vec<KeepAlive>,
    ids: Vec<String>,
) -> (Vec<KeepAlive>, Vec<Duration>, Duration) {
    let started = Instant::now();
    let tasks: Vec<_> = (conns.into_iter().zip(ids).enumerate())
        .map(|(lane, (mut conn, id))| {
            tokio::spawn(async move {
                let t = Instant::now();
                let (status, body) = conn
                    .call_within(
                        Method::POST,
                        "/v1/sale",
                        Some(sale(lane, &id)),
                        Duration::from_secs(30),
                    )
                    .await;
                let took = t.elapsed();
                let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                assert_eq!(status, StatusCode::OK, "lane {lane}: {v}");
                assert_eq!(v["status"], "approved", "lane {lane}: {v}");
                (conn, took)
            })
        })
        .collect();
    let (mut conns, mut took) = (Vec::new(), Vec::new());
    for task in tasks {
        let (conn, t) = task.await.expect("sale task");
        conns.push(conn);
        took.push(t);
    }
    (conns, took, started.elapsed())
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let lanes: usize = arg("--lanes", 100);
    let runs: usize = arg("--runs", 5);
    let rounds: usize = arg("--rounds", 10);
    let idle_secs: u64 = arg("--idle-secs", 10);
    // Where the journal goes; `/dev/shm` (tmpfs, fsync free) shows what the fsyncs cost.
    let journal_dir: String = arg("--journal-dir", String::new());
    let budget = Budget::new(Duration::from_secs(arg("--budget-secs", 600)));

    let world = World::new(&bench_base());
    let certs = world.certs().display().to_string();
    let sims = Proc::start(
        &[
            "sim",
            "--listen",
            "127.0.0.1:0",
            "--certs",
            &certs,
            "--card-time",
            "0",
            "--devices",
            &lanes.to_string(),
            "--device-id",
            "LANE-001",
        ],
        &world.path("sims.log"),
    );
    let sim_addr = |lane: usize| SocketAddr::new(sims.addr.ip(), sims.addr.port() + lane as u16);
    let journal = match journal_dir.as_str() {
        "" => world.path("journal.db"),
        dir => tempfile::tempdir_in(dir).unwrap().keep().join("journal.db"),
    };
    let terminals: Vec<Value> = (0..lanes)
        .map(|lane| json!({"deviceId": lane_id(lane), "terminalIp": sim_addr(lane).to_string()}))
        .collect();
    let config = json!({
        "port": "0", "url": "localhost", "mode": "F", "SSL": "True", "terminals": terminals,
        "staticIptimeOut": 2, "timeStop": 20, "pollSeconds": 1, "loopsBefore": 3,
        "certsDir": world.certs(), "journal": journal,
    });
    let config_path = world.path("config-lanes.json");
    std::fs::write(&config_path, serde_json::to_vec_pretty(&config).unwrap()).unwrap();
    let gateway = world.gateway(&config_path);
    let tls = world.client_tls();
    println!(
        "gateway {} -> {lanes} simulators at {} … {}",
        gateway.addr,
        sim_addr(0),
        sim_addr(lanes - 1)
    );

    // Idle, with every lane's probes running.
    let mut pos = KeepAlive::connect(gateway.addr, tls.clone(), "localhost").await;
    let wait_up = Instant::now();
    loop {
        budget.check("waiting for every lane to be up");
        let (_, body) = pos.call(Method::GET, "/v1/terminals", None).await;
        let list: Value = serde_json::from_slice(&body).unwrap();
        let up = list
            .as_array()
            .unwrap()
            .iter()
            .filter(|t| t["state"] == "up")
            .count();
        if up == lanes {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    println!(
        "every lane up after {:.1} s",
        wait_up.elapsed().as_secs_f64()
    );
    let cpu0 = cpu_secs(&gateway);
    let t0 = Instant::now();
    tokio::time::sleep(Duration::from_secs(idle_secs)).await;
    let idle_cpu = (cpu_secs(&gateway) - cpu0) / t0.elapsed().as_secs_f64() * 100.0;
    let idle_rss = gateway.rss_kib().unwrap_or(0) as f64 / 1024.0;
    println!(
        "idle: gateway CPU {idle_cpu:.1} % of one core, RSS {idle_rss:.1} MiB ({lanes} lanes probed every 1 s)"
    );

    // Busy.
    let mut gw_conns = Vec::new();
    let mut sim_conns = Vec::new();
    for lane in 0..lanes {
        gw_conns.push(KeepAlive::connect(gateway.addr, tls.clone(), "localhost").await);
        sim_conns.push(KeepAlive::connect(sim_addr(lane), tls.clone(), TERMINAL_NAME).await);
    }
    // One unmeasured round each: connections, journal pages, terminal clients warm.
    let ids = |tag: &str| (0..lanes).map(|l| format!("{tag}-{l}")).collect::<Vec<_>>();
    (gw_conns, _, _) = burst(gw_conns, ids("warm-gw")).await;
    (sim_conns, _, _) = burst(sim_conns, ids("warm-sim")).await;

    let cpu0 = cpu_secs(&gateway);
    let busy_start = Instant::now();
    let (mut p50s, mut p99s, mut added50, mut added99, mut rates) =
        (vec![], vec![], vec![], vec![], vec![]);
    println!("{runs} runs x {rounds} rounds x {lanes} concurrent sales (gateway, then direct)");
    println!("run   gateway p50/p99 ms   direct p50/p99 ms   added p50/p99 ms   sales/s");
    for run in 0..runs {
        let (mut gw_all, mut sim_all, mut gw_wall) = (Vec::new(), Vec::new(), Duration::ZERO);
        for round in 0..rounds {
            budget.check("busy rounds");
            let (c, took, wall) = burst(gw_conns, ids(&format!("r{run}-{round}-gw"))).await;
            (gw_conns, gw_wall) = (c, gw_wall + wall);
            gw_all.extend(took);
            let (c, took, _) = burst(sim_conns, ids(&format!("r{run}-{round}-sim"))).await;
            sim_conns = c;
            sim_all.extend(took);
        }
        let (g50, g99) = summarize(&mut gw_all);
        let (s50, s99) = summarize(&mut sim_all);
        let rate = (rounds * lanes) as f64 / gw_wall.as_secs_f64();
        println!(
            "{:>3}   {g50:>7.2} / {g99:>7.2}   {s50:>7.2} / {s99:>7.2}   {:>+7.2} / {:>+7.2}   {rate:>7.0}",
            run + 1,
            g50 - s50,
            g99 - s99
        );
        p50s.push(g50);
        p99s.push(g99);
        added50.push(g50 - s50);
        added99.push(g99 - s99);
        rates.push(rate);
    }
    let busy_cpu = (cpu_secs(&gateway) - cpu0) / busy_start.elapsed().as_secs_f64() * 100.0;
    let busy_rss = gateway.rss_kib().unwrap_or(0) as f64 / 1024.0;
    println!(
        "busy: gateway CPU {busy_cpu:.0} % of one core (gateway and direct rounds together), RSS {busy_rss:.1} MiB"
    );
    println!(
        "SUMMARY lanes {lanes}: every sale approved ({} through the gateway); median of {runs} runs: \
         gateway p50 {:.2} ms p99 {:.2} ms, added p50 {:+.2} ms p99 {:+.2} ms, {:.0} sales/s; \
         idle CPU {idle_cpu:.1} % RSS {idle_rss:.1} MiB; busy CPU {busy_cpu:.0} % RSS {busy_rss:.1} MiB",
        runs * rounds * lanes,
        median_f64(&p50s),
        median_f64(&p99s),
        median_f64(&added50),
        median_f64(&added99),
        median_f64(&rates)
    );
}
