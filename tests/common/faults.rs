//! Helpers for the fault scenarios of issue 8 ("never invent an outcome"): setting the
//! simulator's knobs, reading a transaction's end state from the gateway and from the
//! journal file, and a front for the terminal that swallows start calls.
//!
//! Declared by the tests that use it with `#[path = "common/faults.rs"] mod faults;`
//! next to `mod common;`, so `tests/common/mod.rs` stays as it is. Not every test uses
//! every helper.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use ecrlink::http::client::HttpClient;
use ecrlink::http::server::DropConnection;
use ecrlink::http::{read_body, with_type};
use ecrlink::{pki, tls};
use hyper::{Method, StatusCode};
use serde_json::Value;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::common::{Client, World, eventually};

pub const FINAL: [&str; 4] = ["approved", "declined", "cancelled", "failed"];

pub async fn faults_now(terminal: &Client) -> Value {
    let (st, body) = terminal.get("/sim/faults").await;
    assert_eq!(st, StatusCode::OK, "{body}");
    body
}

/// Waits until the gateway's `GET /v1/transactions/{id}` is final, and returns it.
pub async fn final_result(c: &Client, id: &str, within: Duration) -> Value {
    eventually(within, &format!("{id} final at the gateway"), || {
        let c = c.clone();
        let id = id.to_string();
        async move {
            let (_, r) = c.get(&format!("/v1/transactions/{id}")).await;
            FINAL
                .contains(&r["status"].as_str().unwrap_or(""))
                .then_some(r)
        }
    })
    .await
}

/// The journaled events of one transaction, as (event, detail).
pub async fn events(c: &Client, id: &str) -> Vec<(String, String)> {
    let (st, events) = c.get(&format!("/v1/transactions/{id}/events")).await;
    assert_eq!(st, StatusCode::OK, "{events}");
    events
        .as_array()
        .expect("events array")
        .iter()
        .map(|e| {
            (
                e["event"].as_str().unwrap_or_default().to_string(),
                e["detail"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

pub async fn event_names(c: &Client, id: &str) -> Vec<String> {
    events(c, id).await.into_iter().map(|(e, _)| e).collect()
}

/// What the journal file itself holds for `id` (status column and result object),
/// read with SQLite beside the running gateway (WAL allows it).
pub fn journal_row(journal: &Path, id: &str) -> Option<(String, Value)> {
    let conn =
        rusqlite::Connection::open_with_flags(journal, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .expect("open the journal read-only");
    conn.busy_timeout(Duration::from_secs(5)).unwrap();
    let row: Option<(String, String)> = conn
        .query_row(
            "SELECT status, result FROM transactions WHERE transaction_id = ?1",
            [id],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .ok();
    row.map(|(status, result)| {
        (
            status,
            serde_json::from_str(&result).expect("journaled result is JSON"),
        )
    })
}

/// The terminal's own record of `id` (`None` when it has none).
pub async fn terminal_record(terminal: &Client, id: &str) -> Option<Value> {
    let (_, all) = terminal.get("/v1/transactions").await;
    all.as_array()
        .expect("the terminal's record is a list")
        .iter()
        .find(|r| r["transactionId"] == id)
        .cloned()
}

pub fn count(stats: &Value, table: &str, id: &str) -> u64 {
    stats[table][id].as_u64().unwrap_or(0)
}

/// A stand-in for the terminal's REST listener in front of the simulator: it holds the
/// terminal's certificate, so the gateway's TLS checks pass, and forwards every call
/// to the simulator — except the first `swallow` start calls, which it reads in full
/// and then closes without an answer and without forwarding. To the gateway that is a
/// connection lost after the request was written ("maybe delivered"); in truth the
/// terminal never got it.
pub struct SwallowingFront {
    pub addr: SocketAddr,
    swallowed: Arc<AtomicU32>,
    shutdown: CancellationToken,
}

impl SwallowingFront {
    pub async fn start(world: &World, sim: SocketAddr, swallow: u32) -> SwallowingFront {
        let server_tls = tls::server_config(
            &world.certs().join(pki::TERMINAL_CERT),
            &world.certs().join(pki::TERMINAL_KEY),
        )
        .expect("terminal certificate");
        let client_tls = tls::client_config(&world.certs().join(pki::CA_CERT), None).unwrap();
        let upstream = HttpClient::https(
            sim,
            client_tls,
            tls::terminal_server_name(),
            Duration::from_secs(5),
        );
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let swallowed = Arc::new(AtomicU32::new(0));
        let budget = Arc::new(AtomicU32::new(swallow));
        let shutdown = CancellationToken::new();
        let counter = swallowed.clone();
        let handler = move |req: hyper::Request<hyper::body::Incoming>, _peer| {
            let upstream = upstream.clone();
            let budget = budget.clone();
            let counter = counter.clone();
            async move {
                let method = req.method().clone();
                let path = req.uri().path().to_string();
                let body = read_body(req, 64 * 1024)
                    .await
                    .map_err(|_| DropConnection)?;
                let is_start = method == Method::POST
                    && ["/v1/sale", "/v1/refund", "/v1/void"].contains(&path.as_str());
                if is_start
                    && budget
                        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                        .is_ok()
                {
                    counter.fetch_add(1, Ordering::SeqCst);
                    return Err(DropConnection);
                }
                let body = (method == Method::POST).then(|| body.to_vec());
                match upstream
                    .request(method, &path, body, Duration::from_secs(60))
                    .await
                {
                    Ok((status, bytes)) => {
                        Ok(with_type(status, "application/json", bytes.to_vec()))
                    }
                    Err(_) => Err(DropConnection),
                }
            }
        };
        tokio::spawn(ecrlink::http::server::serve(
            listener,
            Some(server_tls),
            handler,
            shutdown.clone(),
        ));
        SwallowingFront {
            addr,
            swallowed,
            shutdown,
        }
    }

    /// Start calls swallowed so far.
    pub fn swallowed(&self) -> u32 {
        self.swallowed.load(Ordering::SeqCst)
    }
}

impl Drop for SwallowingFront {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}
