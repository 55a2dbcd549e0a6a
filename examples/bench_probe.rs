//! Issue 4, the cost of probing: CPU of the process and packets per second of N probe
//! monitors (`ecrlink::probe::spawn`, the gateway's own code, default 1 s interval,
//! down after 3 / up after 2) all watching one simulator on 127.0.0.1, for N = 0
//! (idle baseline), 1 and 100.
//!
//! Runs inside a network namespace of its own (it re-executes itself under
//! `unshare --net`, so it needs root; otherwise it prints SKIPPED), so the kernel's
//! per-namespace counters in `/proc/net/snmp` count only this benchmark's traffic:
//! `Icmp OutEchos` (echo requests sent), `Tcp ActiveOpens` (connects started) and
//! `Ip OutRequests` (every IP packet sent in the namespace, by the monitors and by the
//! simulator; on loopback each is also received once). CPU is the time on a CPU of this
//! process's threads from `/proc/self/task/*/schedstat` (the monitors; cross-checked
//! with `/proc/self/stat`), the simulator's is reported apart. ICMP: one shared `Icmp::open()` socket, as root.
//!
//!   cargo run --release --example bench_probe -- --secs 20 --counts 0,1,100
#[path = "bench_common/mod.rs"]
mod bench_common;

use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bench_common::*;
use ecrlink::probe::icmp::Icmp;
use ecrlink::probe::{self, Hysteresis, ProbeSettings};
use ecrlink::terminal::{TerminalAddress, TerminalClient};
use tokio_util::sync::CancellationToken;

const INNER: &str = "BENCH_PROBE_IN_NETNS";

fn main() {
    if std::env::var_os(INNER).is_none() {
        let uid0 = std::fs::read_to_string("/proc/self/status")
            .ok()
            .and_then(|s| {
                s.lines()
                    .find(|l| l.starts_with("Uid:"))
                    .map(|l| l.split_whitespace().nth(2) == Some("0"))
            })
            .unwrap_or(false);
        if !uid0 {
            println!(
                "SKIPPED bench_probe: needs root for its own network namespace (unshare --net)"
            );
            return;
        }
        // The same program again, in a fresh network namespace with only `lo` (up).
        let exe = std::env::current_exe().expect("current exe");
        let status = Command::new("unshare")
            .arg("--net")
            .arg("--")
            .arg("sh")
            .arg("-c")
            .arg("ip link set lo up && exec \"$0\" \"$@\"")
            .arg(exe)
            .args(std::env::args().skip(1))
            .env(INNER, "1")
            .status()
            .expect("unshare");
        std::process::exit(status.code().unwrap_or(1));
    }
    tokio::runtime::Runtime::new()
        .expect("runtime")
        .block_on(run());
}

/// (Icmp OutEchos, Tcp ActiveOpens, Ip OutRequests) of this network namespace.
fn snmp() -> (u64, u64, u64) {
    let text = std::fs::read_to_string("/proc/net/snmp").expect("/proc/net/snmp");
    let field = |proto: &str, name: &str| -> u64 {
        let mut rows = text.lines().filter(|l| l.starts_with(&format!("{proto}:")));
        let head: Vec<&str> = rows.next().unwrap().split_whitespace().collect();
        let vals: Vec<&str> = rows.next().unwrap().split_whitespace().collect();
        let i = head.iter().position(|h| *h == name).unwrap();
        vals[i].parse().unwrap()
    };
    (
        field("Icmp", "OutEchos"),
        field("Tcp", "ActiveOpens"),
        field("Ip", "OutRequests"),
    )
}

/// CPU time of a process: the sum over its threads of the time on a CPU from
/// `/proc/PID/task/*/schedstat` (nanoseconds, user+sys; `/proc/PID/stat`'s utime+stime
/// count 10-ms ticks, too coarse for one monitor). Threads that ended between two
/// readings are missed; the monitors run on the runtime's long-lived workers.
fn cpu(pid: &str) -> Duration {
    let mut ns = 0u64;
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).expect("task dir") {
        let path = task.expect("task").path().join("schedstat");
        if let Ok(text) = std::fs::read_to_string(path) {
            ns += text
                .split_whitespace()
                .next()
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0);
        }
    }
    Duration::from_nanos(ns)
}

/// user+sys from `/proc/PID/stat` (ticks), as a cross-check over the whole process.
fn cpu_ticks(pid: &str) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("stat");
    // The command name may contain spaces: count fields after the closing parenthesis.
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap();
    let hz: u64 = Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(100);
    Duration::from_secs_f64(ticks as f64 / hz as f64)
}

async fn run() {
    let secs: u64 = arg("--secs", 20);
    let counts: String = arg("--counts", "0,1,100".to_string());
    let counts: Vec<usize> = counts
        .split(',')
        .map(|c| c.parse().expect("--counts"))
        .collect();
    assert!(secs <= 120 && counts.iter().all(|&n| n <= 500), "bounded");
    let world = World::new(&bench_base());
    let sim = world.sim();
    let sim_pid = sim.child.id().to_string();
    assert!(sim.addr.ip().is_loopback());
    let tls = world.client_tls();
    let icmp = Arc::new(Icmp::open());
    assert!(
        icmp.available_for(sim.addr.ip()),
        "ICMP socket did not open (root is needed)"
    );
    println!(
        "probe bench in its own network namespace; simulator {} (pid {sim_pid}); {secs} s per count; interval 1000 ms, TLS every 10 rounds",
        sim.addr
    );
    for &n in &counts {
        let shutdown = CancellationToken::new();
        let mut watchers = Vec::new();
        let mut handles = Vec::new();
        for i in 0..n {
            let client = TerminalClient::new(
                TerminalAddress::new(sim.addr),
                tls.clone(),
                Duration::from_secs(2),
            );
            let (rx, handle) = probe::spawn(
                format!("BENCH-{i:04}"),
                client,
                icmp.clone(),
                ProbeSettings {
                    interval: Duration::from_millis(1000),
                    timeout: ecrlink::constants::DEFAULT_PROBE_TIMEOUT,
                    confirm: ecrlink::constants::DEFAULT_PROBE_CONFIRM,
                    connect_timeout: Duration::from_secs(2),
                    hysteresis: Hysteresis::default(),
                },
                None,
                shutdown.clone(),
            );
            watchers.push(rx);
            handles.push(handle);
        }
        // Let the first round (with its TLS check and the monitors' start-up) pass.
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let (e0, t0, p0) = snmp();
        let (c0, s0, k0) = (cpu("self"), cpu(&sim_pid), cpu_ticks("self"));
        let started = Instant::now();
        tokio::time::sleep(Duration::from_secs(secs)).await;
        let wall = started.elapsed().as_secs_f64();
        let (e1, t1, p1) = snmp();
        let (c1, s1, k1) = (cpu("self"), cpu(&sim_pid), cpu_ticks("self"));
        let up = watchers
            .iter()
            .filter(|w| w.borrow().state == probe::LinkState::Up)
            .count();
        shutdown.cancel();
        for h in handles {
            let _ = tokio::time::timeout(Duration::from_secs(5), h).await;
        }
        let pct = |d: Duration| d.as_secs_f64() / wall * 100.0;
        let per = |x: f64| if n > 0 { x / n as f64 } else { 0.0 };
        let echos = (e1 - e0) as f64 / wall;
        let opens = (t1 - t0) as f64 / wall;
        let pkts = (p1 - p0) as f64 / wall;
        println!(
            "N={n}: {up}/{n} up; monitors' process CPU {:.3} % of one core ({:.4} % per terminal; /proc/self/stat ticks say {:.2} %); simulator CPU {:.3} %",
            pct(c1 - c0),
            per(pct(c1 - c0)),
            pct(k1 - k0),
            pct(s1 - s0)
        );
        println!(
            "N={n}: ICMP echo requests {echos:.1}/s, TCP connects {opens:.1}/s, IP packets sent (both ends) {pkts:.1}/s; per terminal {:.2} echo/s, {:.2} connect/s, {:.1} packets/s",
            per(echos),
            per(opens),
            per(pkts)
        );
        println!(
            "SUMMARY probe N={n}: CPU {:.3} % of one core (per terminal {:.4} %), sim CPU {:.3} %, packets {pkts:.1}/s (per terminal {:.1}/s), echo {echos:.1}/s, tcp connect {opens:.1}/s, over {wall:.1} s",
            pct(c1 - c0),
            per(pct(c1 - c0)),
            pct(s1 - s0),
            per(pkts)
        );
    }
}
