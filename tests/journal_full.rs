//! A journal that cannot be written (issue 8, "nothing is published before it is
//! durable"): the journal lives on a small tmpfs that the test fills with a filler
//! file. Before anything was sent → 503 `journal_unavailable` and the terminal gets
//! nothing; mid-sale → no answer that is not durable, repeats answer alike, and the
//! truth once space returns. Mounting needs root: without it the harness lists these
//! tests as ignored with the reason; `.ci/run` runs ignored tests as root.

mod common;
#[path = "common/faults.rs"]
mod faults;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::*;
use faults::*;
use hyper::StatusCode;
use serde_json::{Value, json};

/// A tmpfs of `size` mounted on a fresh folder, unmounted on drop.
struct Tmpfs {
    dir: PathBuf,
}

impl Tmpfs {
    fn mount(dir: PathBuf, size: &str) -> Tmpfs {
        std::fs::create_dir_all(&dir).unwrap();
        let out = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0700"),
                "tmpfs",
            ])
            .arg(&dir)
            .output()
            .expect("run mount(8)");
        assert!(
            out.status.success(),
            "mounting a tmpfs needs root: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Tmpfs { dir }
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let done = Command::new("umount").arg(&self.dir).status();
        if !done.is_ok_and(|s| s.success()) {
            // Something still holds a file there: detach it now, freed when released.
            let _ = Command::new("umount").arg("-l").arg(&self.dir).status();
        }
    }
}

/// Writes `path` until the file system is full and returns how much it took.
fn fill(path: &Path) -> u64 {
    let mut file = std::fs::File::create(path).expect("create the filler");
    let mut written = 0u64;
    for chunk in [1 << 20, 1 << 12, 1] {
        let buf = vec![0xA5u8; chunk];
        while file.write_all(&buf).is_ok() {
            written += chunk as u64;
        }
    }
    let _ = file.sync_all();
    written
}

fn config(w: &World, fs: &Tmpfs, terminal: std::net::SocketAddr, time_stop: f64) -> Value {
    w.gateway_config(
        terminal,
        json!({"pollSeconds": 0.2, "timeStop": time_stop, "journal": fs.dir.join("journal.db")}),
    )
}

async fn healthz(c: &Client) -> (StatusCode, Value) {
    c.get("/healthz").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs root to mount a tmpfs; .ci/run runs ignored tests as root"]
async fn full_journal_before_sending_refuses_and_sends_nothing() {
    let w = World::new();
    let fs = Tmpfs::mount(w.path("journal-fs"), "4m");
    let sim = w.sim(&["--card-time", "0.05"]);
    let terminal = w.terminal_client(sim.addr);
    let gw = w.gateway(&config(&w, &fs, sim.addr, 5.0));
    let c = w.gateway_client(gw.addr);
    let (st, body) = c.post("/v1/sale", &sale("JF-0", 1000)).await;
    assert_eq!(
        (st, body["status"].clone()),
        (StatusCode::OK, json!("approved"))
    );
    let (st, health) = healthz(&c).await;
    assert_eq!(st, StatusCode::OK, "writable journal: {health}");

    let filler = fs.dir.join("filler");
    assert!(fill(&filler) > 0, "the filler took the free space");
    let (st, body) = c.post("/v1/sale", &sale("JF-1", 1000)).await;
    assert_eq!(st, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["error"]["code"], "journal_unavailable", "{body}");
    let stats = sim_stats(&terminal).await;
    assert_eq!(count(&stats, "startRequests", "JF-1"), 0, "{stats}");
    assert_eq!(terminal_record(&terminal, "JF-1").await, None);
    assert_eq!(stats["transactions"], 1, "{stats}");
    let (st, r) = c.get("/v1/transactions/JF-1").await;
    assert_eq!(
        st,
        StatusCode::NOT_FOUND,
        "never journaled, never visible: {r}"
    );
    let (st, health) = healthz(&c).await;
    assert_eq!(st, StatusCode::SERVICE_UNAVAILABLE, "{health}");
    assert!(!health.to_string().is_empty(), "a reason: {health}");

    std::fs::remove_file(&filler).unwrap();
    let (st, body) = c.post("/v1/sale", &sale("JF-2", 1000)).await;
    assert_eq!(st, StatusCode::OK, "space is back: {body}");
    assert_eq!(body["status"], "approved", "{body}");
    eventually(Duration::from_secs(5), "/healthz 200 again", || {
        let c = c.clone();
        async move { (healthz(&c).await.0 == StatusCode::OK).then_some(()) }
    })
    .await;
    let (status, _) = journal_row(&fs.dir.join("journal.db"), "JF-2").unwrap();
    assert_eq!(status, "approved");
}

/// The payment is held at the card (`holdPayments`) while the disk fills, then
/// released: its outcome arrives when nothing can be journaled.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs root to mount a tmpfs; .ci/run runs ignored tests as root"]
async fn full_journal_mid_sale_answers_only_what_is_durable() {
    let w = World::new();
    let fs = Tmpfs::mount(w.path("journal-fs"), "4m");
    let journal = fs.dir.join("journal.db");
    let sim = w.sim(&["--card-time", "0.05", "--hold-payments"]);
    let terminal = w.terminal_client(sim.addr);
    let gw = w.gateway(&config(&w, &fs, sim.addr, 3.0));
    let c = w.gateway_client(gw.addr);
    let pos = {
        let c = c.clone();
        tokio::spawn(async move { c.post("/v1/sale", &sale("JFM-1", 1000)).await })
    };
    wait_at_terminal(&terminal, "JFM-1").await;
    let filler = fs.dir.join("filler");
    assert!(fill(&filler) > 0);
    set_faults(&terminal, json!({})).await;
    eventually(
        Duration::from_secs(5),
        "JFM-1 approved at the terminal",
        || {
            let terminal = terminal.clone();
            async move {
                let r = terminal_record(&terminal, "JFM-1").await?;
                (r["status"] == "approved").then_some(())
            }
        },
    )
    .await;

    let (st, first) = pos.await.unwrap();
    let (row_status, _) = journal_row(&journal, "JFM-1").unwrap();
    assert_ne!(
        row_status, "approved",
        "the result could not have been written"
    );
    assert_eq!(
        (st, first["status"].clone()),
        (StatusCode::GATEWAY_TIMEOUT, json!("unknown")),
        "only `unknown` is durable-safe while the journal is full: {first}"
    );
    let (_, live) = c.get("/v1/transactions/JFM-1").await;
    assert!(
        !FINAL.contains(&live["status"].as_str().unwrap_or("")),
        "a lookup shows no result that is not durable: {live}"
    );
    let (st, repeat) = c.post("/v1/sale", &sale("JFM-1", 1000)).await;
    assert_eq!(
        st,
        StatusCode::GATEWAY_TIMEOUT,
        "a repeat answers alike: {repeat}"
    );
    assert_eq!(repeat["status"], first["status"], "{repeat} vs {first}");
    let (st, health) = healthz(&c).await;
    assert_eq!(st, StatusCode::SERVICE_UNAVAILABLE, "{health}");
    let (st, busy) = c.post("/v1/sale", &sale("JFM-2", 1000)).await;
    assert_ne!(st, StatusCode::OK, "the terminal is still held: {busy}");

    std::fs::remove_file(&filler).unwrap();
    let fin = final_result(&c, "JFM-1", Duration::from_secs(20)).await;
    let truth = terminal_record(&terminal, "JFM-1").await.unwrap();
    assert_eq!(fin["status"], "approved", "{fin}");
    assert_eq!(truth["status"], "approved", "{truth}");
    assert_eq!(fin["authorizationCode"], truth["authorizationCode"]);
    let (row_status, row) = journal_row(&journal, "JFM-1").unwrap();
    assert_eq!(row_status, "approved", "{row}");
    let (st, replay) = c.post("/v1/sale", &sale("JFM-1", 1000)).await;
    assert_eq!(st, StatusCode::OK, "{replay}");
    assert_eq!(replay["status"], "approved", "{replay}");
    let stats = sim_stats(&terminal).await;
    assert_eq!(count(&stats, "startRequests", "JFM-1"), 1, "{stats}");
    assert_eq!(count(&stats, "startRequests", "JFM-2"), 0, "{stats}");
    eventually(Duration::from_secs(5), "/healthz 200 again", || {
        let c = c.clone();
        async move { (healthz(&c).await.0 == StatusCode::OK).then_some(()) }
    })
    .await;
}
