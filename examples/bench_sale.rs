//! End-to-end sale latency: `POST /v1/sale` through the gateway (release binary) to
//! the simulator with `--card-time 0`, so what is left is ecrlink's own cost: request
//! validation, the journal's fsynced writes (begin before the terminal is called, and
//! every state change after), a new verified TLS connection to the terminal, and the
//! answer. The POS side uses one persistent connection; sales run one after another.
//!
//! Baseline in the same go: after every gateway sale, the same kind of sale is sent
//! straight to the simulator on a persistent connection of its own; the difference is
//! what the gateway adds to a sale.
//!
//! cargo build --release && cargo run --release --example bench_sale -- \
//!     [--runs 3] [--sales 100] [--warmup 10]

#[path = "bench_common/mod.rs"]
mod bench_common;

use std::time::{Duration, Instant};

use bench_common::*;
use hyper::{Method, StatusCode};

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let runs: usize = arg("--runs", 3);
    let sales: usize = arg("--sales", 100);
    let warmup: usize = arg("--warmup", 10);
    let budget = Budget::new(Duration::from_secs(arg("--budget-secs", 300)));

    let world = World::new(&bench_base());
    let sim = world.sim();
    let config = world.gateway_config(sim.addr, "journal.db");
    let gateway = world.gateway(&config);
    let tls = world.client_tls();
    let mut pos = KeepAlive::connect(gateway.addr, tls.clone(), "localhost").await;
    // Baseline in the same go: the same sale straight to the simulator.
    let mut direct = KeepAlive::connect(sim.addr, tls, "instorepaymentapi.globalpayments.es").await;
    println!(
        "gateway {} -> simulator {} (--card-time 0), journal {}",
        gateway.addr,
        sim.addr,
        world.path("journal.db").display()
    );

    let stamp = std::process::id();
    let mut n = 0usize;
    for _ in 0..warmup {
        budget.check("warm-up");
        n += 1;
        one_sale(&mut pos, &format!("W-{stamp}-{n}")).await;
        one_sale(&mut direct, &format!("WD-{stamp}-{n}")).await;
    }
    println!(
        "{runs} runs x {sales} sales through the gateway, each followed by one straight to the simulator (baseline), after {warmup} warm-up"
    );
    let mut medians = Vec::new();
    let mut p99s = Vec::new();
    let mut base_medians = Vec::new();
    let mut base_p99s = Vec::new();
    let mut all = Vec::new();
    for run in 1..=runs {
        let mut samples = Vec::with_capacity(sales);
        let mut base = Vec::with_capacity(sales);
        for _ in 0..sales {
            budget.check("sale run");
            n += 1;
            samples.push(one_sale(&mut pos, &format!("B-{stamp}-{n}")).await);
            base.push(one_sale(&mut direct, &format!("D-{stamp}-{n}")).await);
        }
        all.extend_from_slice(&samples);
        let (m, p) = summarize(&mut samples);
        let (bm, bp) = summarize(&mut base);
        println!(
            "  run {run}: gateway median {m:.2} ms p99 {p:.2} ms | simulator direct median {bm:.2} ms p99 {bp:.2} ms"
        );
        medians.push(m);
        p99s.push(p);
        base_medians.push(bm);
        base_p99s.push(bp);
    }
    let (m_all, p_all) = summarize(&mut all);
    let (m, b) = (median_f64(&medians), median_f64(&base_medians));
    println!(
        "SUMMARY sale through the gateway: median {m:.2} ms, p99 {:.2} ms [medians of {runs} runs]; over all {} sales median {m_all:.2} ms p99 {p_all:.2} ms",
        median_f64(&p99s),
        all.len()
    );
    println!(
        "SUMMARY sale straight to the simulator (baseline): median {b:.2} ms, p99 {:.2} ms; gateway adds {:+.2} ms ({:.1}x)",
        median_f64(&base_p99s),
        m - b,
        m / b
    );
    let commits = pos.journal_commits().await;
    drop(pos);
    drop(direct);
    let (events, sales_seen) = journal_writes(&world.path("journal.db"));
    // Start-up writes a commit or two of its own (the health row): counted, so the
    // figure errs high.
    println!(
        "SUMMARY journal commits per sale: {:.2} ({commits} commits from /metrics over {sales_seen} transactions); events per sale: {:.2} (a lazy event rides along with the next commit)",
        commits as f64 / sales_seen.max(1) as f64,
        events as f64 / sales_seen.max(1) as f64,
    );
}

/// Events journaled and transactions journaled, read back from the gateway's journal
/// (WAL allows this reader beside the running gateway).
fn journal_writes(path: &std::path::Path) -> (i64, i64) {
    let conn =
        rusqlite::Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .expect("open journal read-only");
    let count = |sql: &str| -> i64 { conn.query_row(sql, [], |r| r.get(0)).expect(sql) };
    (
        count("SELECT COUNT(*) FROM events"),
        count("SELECT COUNT(*) FROM transactions"),
    )
}

async fn one_sale(pos: &mut KeepAlive, id: &str) -> Duration {
    let start = Instant::now();
    let (status, body) = pos.call(Method::POST, "/v1/sale", Some(sale(id))).await;
    let took = start.elapsed();
    let text = String::from_utf8_lossy(&body);
    assert_eq!(status, StatusCode::OK, "sale {id}: {text}");
    let v: serde_json::Value = serde_json::from_slice(&body).expect("JSON answer");
    assert_eq!(v["status"], "approved", "sale {id}: {text}");
    took
}
