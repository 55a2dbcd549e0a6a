//! Request handling of the simulated terminal.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use hyper::body::Incoming;
use hyper::{Method, Request, StatusCode};
use serde_json::json;
use tokio::sync::{Notify, watch};

use super::state::{Record, Running, card_outcome, check_original};
use super::{Faults, Sim, lock};
use crate::constants::MAX_BODY_BYTES;
use crate::http::server::{DropConnection, HandlerResult};
use crate::http::{Body, body_error_response, error, json, read_body, segments};
use crate::terminal::wire::{
    CancelAnswer, Current, PaymentRequest, TxnKind, TxnResult, TxnStatus, Version, now_rfc3339,
};

pub(super) async fn handle(sim: Arc<Sim>, req: Request<Incoming>) -> HandlerResult {
    let path = req.uri().path().to_string();
    let method = req.method().clone();
    let segs = segments(&path);
    if segs.first() == Some(&"sim") {
        return Ok(admin(&sim, method, &segs, req).await);
    }
    lock(&sim.state).requests += 1;
    // `hang` freezes the HTTPS side only: the MQTT side stays up, like a terminal whose
    // REST listener died while its broker connection lives on.
    wait_while_hanging(&sim).await;
    let body = if method == Method::POST {
        match read_body(req, MAX_BODY_BYTES).await {
            Ok(b) => b,
            Err(e) => return Ok(body_error_response(&e)),
        }
    } else {
        Bytes::new()
    };
    protocol(sim, method, &path, body).await
}

/// One call of the terminal protocol, whichever transport carried it: the HTTPS
/// listener and the MQTT side both end here, so a `transactionId` arriving over
/// both is one payment.
pub(super) async fn protocol(
    sim: Arc<Sim>,
    method: Method,
    path: &str,
    body: Bytes,
) -> HandlerResult {
    let segs = segments(path);
    match (method, segs.as_slice()) {
        (Method::GET, ["v1", "getVersion"]) => Ok(json(
            StatusCode::OK,
            &Version {
                version: sim.opts.version.clone(),
            },
        )),
        (Method::POST, ["v1", kind]) if TxnKind::parse(kind).is_some() => {
            let kind = TxnKind::parse(kind).unwrap_or(TxnKind::Sale);
            start(sim, kind, body).await
        }
        (Method::GET, ["v1", "transactions"]) => {
            let all: Vec<TxnResult> = lock(&sim.state)
                .records()
                .iter()
                .map(|r| r.result.clone())
                .collect();
            Ok(json(StatusCode::OK, &all))
        }
        (Method::GET, ["v1", "transactions", "current"]) => {
            if take_ignored_poll(&sim) {
                return Err(DropConnection);
            }
            let state = lock(&sim.state);
            let current = match &state.current {
                Some(id) => Current::InProgress {
                    transaction_id: id.clone(),
                    stage: state.stage.clone(),
                },
                None => Current::Idle,
            };
            Ok(json(StatusCode::OK, &current))
        }
        (Method::GET, ["v1", "transactions", id]) => {
            if take_ignored_poll(&sim) {
                return Err(DropConnection);
            }
            Ok(lookup(&sim, id))
        }
        (Method::POST, ["v1", "transactions", id, "cancel"]) => Ok(cancel(&sim, id)),
        (_, ["v1", ..]) => Ok(error(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no such call: {path}"),
        )),
        _ => Ok(error(StatusCode::NOT_FOUND, "not_found", "not found")),
    }
}

pub(super) async fn wait_while_hanging(sim: &Sim) {
    loop {
        let woken = sim.unhang.notified();
        if !lock(&sim.faults).hang {
            return;
        }
        woken.await;
    }
}

/// `GET /v1/transactions/{id}`, with the `lookupErrors` and `lateRecordMs` faults.
fn lookup(sim: &Sim, id: &str) -> hyper::Response<Body> {
    let (error_now, late) = {
        let mut faults = lock(&sim.faults);
        let error_now = faults.lookup_errors > 0;
        faults.lookup_errors = faults.lookup_errors.saturating_sub(1);
        (error_now, Duration::from_millis(faults.late_record_ms))
    };
    let mut state = lock(&sim.state);
    *state.lookups.entry(id.to_string()).or_default() += 1;
    if error_now {
        tracing::info!(transaction_id = %id, "fault: lookup answered 503");
        return error(
            StatusCode::SERVICE_UNAVAILABLE,
            "service_unavailable",
            "the terminal's transaction store is not available",
        );
    }
    match state.get(id) {
        Some(record) if state.written(id, late) => json(StatusCode::OK, &record.result),
        _ => error(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("transaction {id} is not known to this terminal"),
        ),
    }
}

/// `holdPayments`: the card stays in the reader until the fault is cleared.
pub(super) fn take_ignored_poll(sim: &Sim) -> bool {
    let mut faults = lock(&sim.faults);
    if faults.ignore_polls > 0 {
        faults.ignore_polls -= 1;
        return true;
    }
    false
}

async fn start(sim: Arc<Sim>, kind: TxnKind, body: Bytes) -> HandlerResult {
    let request = match parse_request(kind, &body) {
        Ok(r) => r,
        Err(msg) => return Ok(error(StatusCode::BAD_REQUEST, "invalid_request", msg)),
    };
    if request.device_id != sim.opts.device_id {
        return Ok(error(
            StatusCode::NOT_FOUND,
            "unknown_device",
            format!(
                "this terminal is {}, not {}",
                sim.opts.device_id, request.device_id
            ),
        ));
    }
    let id = request.transaction_id.clone();
    let mut done = match admit(&sim, kind, request) {
        Ok(rx) => rx,
        Err(resp) => return Ok(resp),
    };
    let result = loop {
        if let Some(result) = done.borrow_and_update().clone() {
            break result;
        }
        if done.changed().await.is_err() {
            // The payment task ended without a result only if the process is going down.
            return Err(DropConnection);
        }
    };
    // A frozen payment app does not deliver an answer it was holding either.
    wait_while_hanging(&sim).await;
    match take_answer_fault(&sim) {
        AnswerFault::None => Ok(json(StatusCode::OK, &result)),
        AnswerFault::Drop => {
            tracing::info!(transaction_id = %id, "fault: dropping the answer");
            Err(DropConnection)
        }
        AnswerFault::Error(status) => {
            tracing::info!(transaction_id = %id, status, "fault: error answer after the charge");
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            Ok(error(
                status,
                error_code_after_charge(status),
                "the terminal could not complete the request",
            ))
        }
        AnswerFault::Wrong => {
            let mut state = lock(&sim.state);
            *state.wrong_answers.entry(id.clone()).or_default() += 1;
            let other = state
                .previous(&id)
                .map(|r| r.result.clone())
                .unwrap_or_else(|| phantom_record(&result));
            drop(state);
            tracing::info!(transaction_id = %id, answered = %other.transaction_id, "fault: answering with another transaction's record");
            Ok(json(StatusCode::OK, &other))
        }
    }
}

/// How the answer to a completed start call is spoilt, if it is. One fault per
/// answer, in this order; the others stay armed for the next payment.
pub(super) enum AnswerFault {
    None,
    Drop,
    Error(u16),
    Wrong,
}

pub(super) fn take_answer_fault(sim: &Sim) -> AnswerFault {
    let mut faults = lock(&sim.faults);
    if faults.drop_responses > 0 {
        faults.drop_responses -= 1;
        AnswerFault::Drop
    } else if faults.error_after_charge != 0 {
        AnswerFault::Error(std::mem::take(&mut faults.error_after_charge))
    } else if faults.wrong_answer {
        faults.wrong_answer = false;
        AnswerFault::Wrong
    } else {
        AnswerFault::None
    }
}

/// An error code that fits `status` but is never one of the protocol's refusals
/// (`invalid_request`, `terminal_busy`, `transaction_conflict`): the payment did run.
fn error_code_after_charge(status: StatusCode) -> &'static str {
    match status.as_u16() {
        400 => "bad_request",
        401 => "unauthorized",
        403 => "forbidden",
        404 => "not_found",
        409 => "conflict",
        500..=599 => "internal_error",
        _ => "error",
    }
}

/// The "other" record when the simulator has run nothing before: a decline of a
/// transaction nobody asked for.
fn phantom_record(result: &TxnResult) -> TxnResult {
    let mut other = result.clone();
    other.transaction_id = format!("{}-OTHER", result.transaction_id);
    other.status = TxnStatus::Declined;
    other.authorization_code = None;
    other.result_code = Some("05".into());
    other.result_message = Some("declined by the issuer (do not honour)".into());
    other
}

/// Admits a start request: a repeat joins the known transaction, a new one starts a
/// payment if the terminal is free. Answers early (as a response) otherwise.
pub(super) fn admit(
    sim: &Arc<Sim>,
    kind: TxnKind,
    request: PaymentRequest,
) -> Result<watch::Receiver<Option<TxnResult>>, hyper::Response<Body>> {
    let fingerprint = request.fingerprint(kind);
    let id = request.transaction_id.clone();
    let mut state = lock(&sim.state);
    *state.starts.entry(id.clone()).or_default() += 1;
    tracing::info!(transaction_id = %id, kind = kind.as_str(), "start request");
    if let Some(known) = state.get(&id) {
        if known.fingerprint != fingerprint {
            return Err(error(
                StatusCode::CONFLICT,
                "transaction_conflict",
                format!("transaction {id} was already started with a different body"),
            ));
        }
        if known.result.status.is_final() {
            return Ok(watch::channel(Some(known.result.clone())).1);
        }
        if let Some(running) = state.running.get(&id) {
            return Ok(running.done.clone());
        }
    }
    if let Some(busy) = &state.current {
        return Err(error(
            StatusCode::CONFLICT,
            "terminal_busy",
            format!("the terminal is busy with transaction {busy}"),
        ));
    }
    state.arrived.entry(id.clone()).or_insert_with(Instant::now);
    let mut result = TxnResult::pending(&request, kind, now_rfc3339());
    if let Some(reason) = check_original(&state, kind, &request) {
        result.status = TxnStatus::Declined;
        result.result_code = Some("invalid_original".into());
        result.result_message = Some(reason);
        result.finished_at = Some(now_rfc3339());
        state.insert(Record {
            fingerprint,
            request,
            result: result.clone(),
        });
        persist_or_log(&state);
        return Ok(watch::channel(Some(result)).1);
    }
    let (tx, rx) = watch::channel(None);
    let cancel = Arc::new(Notify::new());
    state.insert(Record {
        fingerprint,
        request: request.clone(),
        result,
    });
    state.current = Some(id.clone());
    state.stage = Some(crate::constants::SIM_STAGES[0].0.into());
    state.running.insert(
        id,
        Running {
            done: rx.clone(),
            cancel: cancel.clone(),
        },
    );
    persist_or_log(&state);
    drop(state);
    // The payment runs on its own task: like a real terminal, it carries on whether
    // or not the caller is still connected.
    tokio::spawn(run_payment(sim.clone(), kind, request, cancel, tx));
    Ok(rx)
}

async fn run_payment(
    sim: Arc<Sim>,
    kind: TxnKind,
    request: PaymentRequest,
    cancel: Arc<Notify>,
    tx: watch::Sender<Option<TxnResult>>,
) {
    let id = request.transaction_id.clone();
    let cancelled = tokio::select! {
        _ = super::card::run_card(&sim, &id) => false,
        _ = cancel.notified() => true,
    };
    let mut state = lock(&sim.state);
    let Some(record) = state.get(&id) else { return };
    let pending = record.result.clone();
    let result = if cancelled {
        let mut r = pending;
        r.status = TxnStatus::Cancelled;
        r.result_code = Some("cancelled_by_ecr".into());
        r.result_message = Some("cancelled at the cash register's request".into());
        r.finished_at = Some(now_rfc3339());
        r
    } else {
        card_outcome(kind, &request, pending)
    };
    state.set_result(result.clone());
    state.current = None;
    state.stage = None;
    state.running.remove(&id);
    persist_or_log(&state);
    drop(state);
    if lock(&sim.faults).crash_after_outcome {
        tracing::warn!(transaction_id = %id, "fault: terminal crashes after recording the outcome");
        std::process::exit(3);
    }
    let _ = tx.send(Some(result));
}

fn cancel(sim: &Sim, id: &str) -> hyper::Response<Body> {
    let state = lock(&sim.state);
    let Some(record) = state.get(id) else {
        return error(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("transaction {id} is not known to this terminal"),
        );
    };
    let answer = match state.running.get(id) {
        Some(running) => {
            running.cancel.notify_one();
            CancelAnswer {
                transaction_id: id.to_string(),
                cancelled: true,
                message: "cancelled before authorisation".into(),
            }
        }
        None => CancelAnswer {
            transaction_id: id.to_string(),
            cancelled: false,
            message: format!("already final: {}", record.result.status.as_str()),
        },
    };
    json(StatusCode::OK, &answer)
}

fn persist_or_log(state: &super::state::SimState) {
    if let Err(e) = state.persist() {
        tracing::error!(error = %e, "state file not written");
    }
}

/// The simulator accepts what the gateway sends and checks only what it needs.
fn parse_request(kind: TxnKind, body: &Bytes) -> Result<PaymentRequest, String> {
    let req: PaymentRequest =
        serde_json::from_slice(body).map_err(|e| format!("invalid request body: {e}"))?;
    if req.transaction_id.is_empty() {
        return Err("transactionId must not be empty".into());
    }
    if kind.needs_original() && req.original_transaction_id.is_none() {
        return Err(format!("{} needs originalTransactionId", kind.as_str()));
    }
    Ok(req)
}

/// `/sim/faults` (GET, POST) and `/sim/stats`: the test's handle on the simulator.
pub(super) async fn admin(
    sim: &Sim,
    method: Method,
    segs: &[&str],
    req: Request<Incoming>,
) -> hyper::Response<Body> {
    match (method, segs) {
        (Method::GET, ["sim", "faults"]) => json(StatusCode::OK, &*lock(&sim.faults)),
        (Method::POST, ["sim", "faults"]) => {
            let body = match read_body(req, MAX_BODY_BYTES).await {
                Ok(b) => b,
                Err(e) => return body_error_response(&e),
            };
            match serde_json::from_slice::<Faults>(&body)
                .map_err(|e| e.to_string())
                .and_then(|f| f.check().map(|()| f))
            {
                Ok(faults) => {
                    *lock(&sim.faults) = faults.clone();
                    // A new set replaces what is armed too: the comercia wrong status.
                    *lock(&sim.wrong_status_of) = None;
                    sim.unhang.notify_waiters();
                    json(StatusCode::OK, &faults)
                }
                Err(e) => error(StatusCode::BAD_REQUEST, "invalid_request", e),
            }
        }
        (Method::GET, ["sim", "stats"]) => {
            let state = lock(&sim.state);
            json(
                StatusCode::OK,
                &json!({
                    "requests": state.requests,
                    "startRequests": state.starts,
                    "lookupRequests": state.lookups,
                    "wrongAnswers": state.wrong_answers,
                    "transactions": state.records().len(),
                }),
            )
        }
        _ => error(StatusCode::NOT_FOUND, "not_found", "no such simulator call"),
    }
}
