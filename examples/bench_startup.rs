//! Footprint of `ecrlink serve`: size of the release binary, time from spawn to the
//! `listening on` line (the moment a POS can connect), and resident memory once idle
//! (VmRSS from /proc/PID/status, read after the gateway has sat idle for a moment).
//!
//! One unmeasured start first creates the journal and warms the page cache; the
//! measured starts reuse that journal, as a real restart does. A simulator runs
//! throughout so the gateway has a terminal to find.
//!
//! cargo build --release && cargo run --release --example bench_startup -- \
//!     [--starts 10] [--idle-ms 1000]

#[path = "bench_common/mod.rs"]
mod bench_common;

use std::time::Duration;

use bench_common::*;

fn main() {
    let starts: usize = arg("--starts", 10);
    let idle = Duration::from_millis(arg("--idle-ms", 1000));
    let budget = Budget::new(Duration::from_secs(arg("--budget-secs", 120)));

    let bin = ecrlink_bin();
    let size = std::fs::metadata(&bin).expect("binary").len();
    let size_mb = size as f64 / 1_000_000.0;
    println!(
        "binary {} : {size} bytes ({size_mb:.2} MB, {:.2} MiB)",
        bin.display(),
        size as f64 / 1_048_576.0
    );

    let world = World::new(&bench_base());
    let sim = world.sim();
    let config = world.gateway_config(sim.addr, "journal.db");
    drop(world.gateway(&config));

    let mut ready_ms = Vec::new();
    let mut rss_mb = Vec::new();
    for i in 1..=starts {
        budget.check("starts");
        let gateway = world.gateway(&config);
        let ready = ms(gateway.ready_after);
        std::thread::sleep(idle);
        let rss = gateway.rss_kib().expect("VmRSS") as f64 / 1024.0;
        println!("  start {i}: ready after {ready:.1} ms, idle RSS {rss:.1} MiB");
        ready_ms.push(ready);
        rss_mb.push(rss);
    }
    let ready = median_f64(&ready_ms);
    let rss = median_f64(&rss_mb);
    let verdict = |ok: bool| if ok { "met" } else { "MISSED" };
    println!(
        "SUMMARY release binary: {size_mb:.2} MB ({size} bytes); target <= 12 MB: {}",
        verdict(size_mb <= 12.0)
    );
    println!(
        "SUMMARY serve time to ready: median {ready:.1} ms of {starts} starts (min {:.1}, max {:.1}); target <= 100 ms: {}",
        ready_ms.iter().cloned().fold(f64::INFINITY, f64::min),
        ready_ms.iter().cloned().fold(0.0, f64::max),
        verdict(ready <= 100.0)
    );
    println!(
        "SUMMARY serve idle RSS: median {rss:.1} MiB after {} ms idle; target <= 15 MB: {}",
        idle.as_millis(),
        verdict(rss * 1.048_576 <= 15.0)
    );
}
