//! A scripted terminal for the paused-time supervision tests: a `Transport` whose
//! answers the test sets, with counters of what it was asked.
#![allow(dead_code)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ecrlink::http::client::ClientError;
use ecrlink::journal::Journal;
use ecrlink::terminal::wire::{
    CancelAnswer, Current, PaymentRequest, TxnKind, TxnResult, TxnStatus, now_rfc3339,
};
use ecrlink::terminal::{Lookup, TerminalError};
use ecrlink::transport::{BoxFuture, Transport};
use ecrlink::txn::{Admission, Payments, TerminalLink, Timing};
use serde_json::json;
use tokio_util::sync::CancellationToken;

pub const DEVICE: &str = "ECRLINK-SIM-0001";
pub const TIME_STOP: Duration = Duration::from_secs(60);
pub const POLL: Duration = Duration::from_secs(10);
pub const NOT_FOUND_HORIZON: Duration = Duration::from_secs(5);

pub fn addr() -> SocketAddr {
    "127.0.0.1:9".parse().unwrap()
}

pub fn silence() -> TerminalError {
    TerminalError::NoAnswer(ClientError::NoAnswer {
        addr: addr(),
        reason: "scripted silence".into(),
    })
}

/// How the scripted terminal behaves.
#[derive(Default)]
pub struct Script {
    pub name: &'static str,
    /// `start` fails at once as "nothing was sent" instead of never answering.
    pub refuse_start: bool,
    /// `start` answers this at once instead of never answering.
    pub start_answer: Option<TxnResult>,
    /// `start` fails with this at once instead of never answering.
    pub start_error: Option<TerminalError>,
    /// `current` answers "idle" instead of nothing.
    pub idle: bool,
    /// What `lookup` answers for any id once set; until then it gets no answer.
    pub truth: Mutex<Option<TxnResult>>,
    /// Per-id records, asked before `truth`.
    pub records: Mutex<HashMap<String, TxnResult>>,
    /// `lookup` of an id without a record answers `not_found` instead of nothing.
    pub not_found: bool,
    /// `cancel` never answers (instead of failing at once).
    pub hang_cancel: bool,
    pub starts: AtomicU32,
    pub lookups: AtomicU32,
    pub polls: AtomicU32,
    pub cancels: AtomicU32,
    pub lookups_answered: AtomicBool,
}

impl Script {
    pub fn record(&self, result: TxnResult) {
        self.records
            .lock()
            .unwrap()
            .insert(result.transaction_id.clone(), result);
    }
}

pub struct Scripted(pub Arc<Script>);

impl Transport for Scripted {
    fn name(&self) -> &'static str {
        if self.0.name.is_empty() {
            "scripted"
        } else {
            self.0.name
        }
    }

    fn start<'a>(
        &'a self,
        _kind: TxnKind,
        _request: &'a PaymentRequest,
        _wait: Duration,
    ) -> BoxFuture<'a, Result<TxnResult, TerminalError>> {
        self.0.starts.fetch_add(1, Ordering::SeqCst);
        let refuse = self.0.refuse_start;
        let answer = self.0.start_answer.clone();
        let error = self.0.start_error.clone();
        Box::pin(async move {
            if let Some(answer) = answer {
                return Ok(answer);
            }
            if let Some(error) = error {
                return Err(error);
            }
            if refuse {
                return Err(TerminalError::NotDelivered(ClientError::Unreachable {
                    addr: addr(),
                    reason: "connection refused".into(),
                }));
            }
            std::future::pending().await
        })
    }

    fn current(&self) -> BoxFuture<'_, Result<Current, TerminalError>> {
        self.0.polls.fetch_add(1, Ordering::SeqCst);
        let idle = self.0.idle;
        Box::pin(async move {
            if idle {
                Ok(Current::Idle)
            } else {
                Err(silence())
            }
        })
    }

    fn lookup<'a>(
        &'a self,
        transaction_id: &'a str,
    ) -> BoxFuture<'a, Result<Lookup, TerminalError>> {
        self.0.lookups.fetch_add(1, Ordering::SeqCst);
        let record = self.0.records.lock().unwrap().get(transaction_id).cloned();
        let truth = record.or_else(|| self.0.truth.lock().unwrap().clone());
        if truth.is_some() {
            self.0.lookups_answered.store(true, Ordering::SeqCst);
        }
        let not_found = self.0.not_found;
        Box::pin(async move {
            match truth {
                Some(t) => Ok(Lookup::Found(t)),
                None if not_found => Ok(Lookup::NotFound),
                None => Err(silence()),
            }
        })
    }

    fn cancel<'a>(
        &'a self,
        _transaction_id: &'a str,
    ) -> BoxFuture<'a, Result<CancelAnswer, TerminalError>> {
        self.0.cancels.fetch_add(1, Ordering::SeqCst);
        let hang = self.0.hang_cancel;
        Box::pin(async move {
            if hang {
                std::future::pending().await
            } else {
                Err(silence())
            }
        })
    }
}

pub fn request(id: &str) -> PaymentRequest {
    serde_json::from_value(json!({
        "deviceId": DEVICE, "transactionId": id, "paymentApp": "comercia",
        "amount": 1000, "currencyCode": "EUR"
    }))
    .unwrap()
}

pub fn timing() -> Timing {
    Timing {
        poll: POLL,
        time_stop: TIME_STOP,
        loops_before: 3,
        retries: 600,
        not_found_horizon: NOT_FOUND_HORIZON,
    }
}

pub fn payments(dir: &tempfile::TempDir, script: &Arc<Script>) -> Arc<Payments> {
    payments_over(dir, &[script])
}

pub fn payments_over(dir: &tempfile::TempDir, scripts: &[&Arc<Script>]) -> Arc<Payments> {
    payments_with(dir, scripts, timing())
}

pub fn payments_with(
    dir: &tempfile::TempDir,
    scripts: &[&Arc<Script>],
    timing: Timing,
) -> Arc<Payments> {
    let journal = Journal::open(&dir.path().join("journal.db")).unwrap();
    Payments::new(
        journal,
        timing,
        vec![TerminalLink::new(
            DEVICE,
            scripts
                .iter()
                .map(|s| Arc::new(Scripted((*s).clone())) as Arc<dyn Transport>)
                .collect(),
        )],
        CancellationToken::new(),
    )
}

pub async fn start(p: &Arc<Payments>, id: &str) -> tokio::sync::watch::Receiver<TxnResult> {
    match p.submit(TxnKind::Sale, request(id)).await.unwrap() {
        Admission::Started(rx) => rx,
        _ => panic!("a new id must start a transaction"),
    }
}

/// This transaction's record as a terminal would answer it.
pub fn with_status(id: &str, status: TxnStatus) -> TxnResult {
    let mut r = TxnResult::pending(&request(id), TxnKind::Sale, now_rfc3339());
    r.status = status;
    r.result_code = Some(
        if status == TxnStatus::Approved {
            "00"
        } else {
            "05"
        }
        .into(),
    );
    r.finished_at = Some(now_rfc3339());
    r
}

pub fn approved(id: &str) -> TxnResult {
    let mut r = with_status(id, TxnStatus::Approved);
    r.authorization_code = Some("654321".into());
    r
}

pub async fn event_names(p: &Payments, id: &str) -> Vec<String> {
    p.journal()
        .events(id)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.event)
        .collect()
}

/// Polls `p.get(id)` under paused time until `done` holds (at most `within`).
pub async fn wait_until(
    p: &Payments,
    id: &str,
    within: Duration,
    done: impl Fn(&TxnResult) -> bool,
) -> TxnResult {
    let waited = tokio::time::timeout(within, async {
        loop {
            let r = p.get(id).await.unwrap().unwrap();
            if done(&r) {
                return r;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await;
    waited.unwrap_or_else(|_| panic!("{id}: condition not reached within {within:?}"))
}
