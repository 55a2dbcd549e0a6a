//! Journal throughput: per transaction one `Journal::begin` and two `Journal::update`
//! (the writes a sale makes: received, then sent, then the outcome), each its own
//! SQLite transaction in WAL mode with `synchronous=FULL`, so each one waits for an
//! fsync. Sequential, as the gateway serves one sale per terminal at a time.
//!
//! The journal lives on the target folder's disk (or `$BENCH_DIR`), never on tmpfs,
//! so the fsyncs are real.
//!
//! cargo run --release --example bench_journal -- [--runs 5] [--txns 300]

#[path = "bench_common/mod.rs"]
mod bench_common;

use std::time::{Duration, Instant};

use bench_common::*;
use ecrlink::journal::{Begin, Journal};
use ecrlink::terminal::wire::{PaymentRequest, TxnKind, TxnResult, TxnStatus, now_rfc3339};

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let runs: usize = arg("--runs", 5);
    let txns: usize = arg("--txns", 300);
    let budget = Budget::new(Duration::from_secs(arg("--budget-secs", 300)));

    let base = bench_base();
    std::fs::create_dir_all(&base).expect("bench folder");
    let dir = tempfile::Builder::new()
        .prefix("ecrlink-journal-")
        .tempdir_in(&base)
        .expect("temp dir");
    let path = dir.path().join("journal.db");
    let journal = Journal::open(&path).expect("open journal");
    println!(
        "journal {} (WAL, synchronous=FULL); {runs} runs x {txns} transactions of begin + 2 x update",
        path.display()
    );

    let mut rates = Vec::new();
    let mut per_txn = Vec::new();
    let mut n = 0usize;
    for run in 1..=runs {
        let mut samples = Vec::with_capacity(txns);
        let started = Instant::now();
        for _ in 0..txns {
            budget.check("journal run");
            n += 1;
            let t0 = Instant::now();
            one_transaction(&journal, &format!("J-{n}")).await;
            samples.push(t0.elapsed());
        }
        let rate = txns as f64 / started.elapsed().as_secs_f64();
        let (m, p) = summarize(&mut samples);
        println!(
            "  run {run}: {rate:.0} transactions/s; per transaction median {m:.2} ms p99 {p:.2} ms"
        );
        rates.push(rate);
        per_txn.push(m);
    }
    println!(
        "SUMMARY journal: {:.0} transactions/s (begin + 2 updates, 3 fsynced commits each), per transaction median {:.2} ms [medians of {runs} runs]",
        median_f64(&rates),
        median_f64(&per_txn)
    );
}

async fn one_transaction(journal: &Journal, id: &str) {
    let request = PaymentRequest {
        device_id: DEVICE.into(),
        transaction_id: id.into(),
        payment_app: "comercia".into(),
        amount: 1000,
        currency_code: "EUR".into(),
        other_data: serde_json::json!({"printReceipt": 0}),
        original_transaction_id: None,
    };
    let mut result = TxnResult::pending(&request, TxnKind::Sale, now_rfc3339());
    match journal
        .begin(TxnKind::Sale, &request, &result)
        .await
        .expect("begin")
    {
        Begin::Created => {}
        Begin::Existing(_) => panic!("{id} was already journaled"),
    }
    result.transport = Some("direct".into());
    journal
        .update(&result, "sent", None)
        .await
        .expect("update sent");
    result.status = TxnStatus::Approved;
    result.authorization_code = Some("123456".into());
    result.finished_at = Some(now_rfc3339());
    journal
        .update(&result, "outcome", Some("approved".into()))
        .await
        .expect("update outcome");
}
