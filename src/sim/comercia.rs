//! The simulated terminal's `comercia-pos` side: the payment app's own REST API
//! (`/v1/transactions/payment|refund|status|last`, `/v1/reporting/details`) on top of
//! the same payment code as the InStore routes, so outcomes by amount, idempotency and
//! the fault knobs are the same. A payment is answered at once with `1001`; its verdict
//! comes from `status`. `/sim/*` works as on the InStore side.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use hyper::body::Incoming;
use hyper::{Method, Request, StatusCode};
use serde_json::{Value, json};

use super::routes::{self, AnswerFault};
use super::state::Record;
use super::{Sim, lock};
use crate::constants::{COMERCIA_DEFAULT_SOURCE, COMERCIA_SOURCE_HEADER, MAX_BODY_BYTES};
use crate::http::server::{DropConnection, HandlerResult};
use crate::http::{body_error_response, json, read_body, segments};
use crate::terminal::comercia::mapping::{cents, euros};
use crate::terminal::wire::{PaymentRequest, TxnKind, TxnStatus};

pub(super) async fn handle(sim: Arc<Sim>, req: Request<Incoming>) -> HandlerResult {
    let path = req.uri().path().to_string();
    let method = req.method().clone();
    let segs = segments(&path);
    if segs.first() == Some(&"sim") {
        return Ok(routes::admin(&sim, method, &segs, req).await);
    }
    lock(&sim.state).requests += 1;
    routes::wait_while_hanging(&sim).await;
    let source = req
        .headers()
        .get(COMERCIA_SOURCE_HEADER)
        .and_then(|v| v.to_str().ok());
    if source != Some(COMERCIA_DEFAULT_SOURCE) {
        return Ok(answer(None, 1010, "X-SOURCE header missing or not valid"));
    }
    let body = match method {
        Method::POST => match read_body(req, MAX_BODY_BYTES).await {
            Ok(b) => b,
            Err(e) => return Ok(body_error_response(&e)),
        },
        _ => Bytes::new(),
    };
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let text = |key: &str| body.get(key).and_then(Value::as_str).map(str::to_string);
    match (method, segs.as_slice()) {
        (Method::POST, ["v1", "transactions", "payment"]) => {
            start(&sim, TxnKind::Sale, text("orderId"), &body, None)
        }
        (Method::POST, ["v1", "transactions", "refund"]) => {
            let original = text("transactionId").unwrap_or_default();
            let original = original_order(&sim, &original).unwrap_or(original);
            start(
                &sim,
                TxnKind::Refund,
                text("orderId"),
                &body,
                Some(original),
            )
        }
        (Method::POST, ["v1", "transactions", "status"]) => {
            status(&sim, &text("orderId").unwrap_or_default())
        }
        (Method::GET, ["v1", "transactions", "last"]) => {
            let state = lock(&sim.state);
            Ok(match state.records().last() {
                Some(record) => json(StatusCode::OK, &verdict(&sim, record)),
                None => answer(None, 602, "no transaction yet"),
            })
        }
        (Method::GET, ["v1", "reporting", "details"]) => Ok(report(&sim)),
        _ => Ok(json(
            StatusCode::NOT_FOUND,
            &json!({"resultCode": 404, "resultMessage": format!("no such call: {path}")}),
        )),
    }
}

fn answer(order_id: Option<&str>, code: i64, message: &str) -> hyper::Response<crate::http::Body> {
    json(
        StatusCode::OK,
        &json!({"orderId": order_id, "resultCode": code, "resultMessage": message}),
    )
}

/// A payment or refund: admitted as on the InStore side, answered at once.
fn start(
    sim: &Arc<Sim>,
    kind: TxnKind,
    order_id: Option<String>,
    body: &Value,
    original: Option<String>,
) -> HandlerResult {
    let (Some(id), Some(amount)) = (
        order_id.filter(|o| !o.is_empty()),
        body.get("amount").and_then(cents),
    ) else {
        return Ok(answer(
            None,
            1,
            "orderId and amount (decimal euros) are required",
        ));
    };
    if lock(&sim.state).get(&id).is_some() {
        *lock(&sim.state).starts.entry(id.clone()).or_default() += 1;
        return Ok(answer(Some(&id), 913, "Duplicated OrderID"));
    }
    let request = PaymentRequest {
        device_id: sim.opts.device_id.clone(),
        transaction_id: id.clone(),
        payment_app: "comercia-pos".into(),
        amount,
        currency_code: "EUR".into(),
        other_data: Value::Null,
        original_transaction_id: original,
    };
    if routes::admit(sim, kind, request).is_err() {
        // Busy with another order (the only refusal a new orderId can meet).
        return Ok(answer(Some(&id), 1001, "operation in progress"));
    }
    match routes::take_answer_fault(sim) {
        AnswerFault::Drop => Err(DropConnection),
        AnswerFault::Error(status) => Ok(json(
            StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            &json!({"resultMessage": "the terminal could not complete the request"}),
        )),
        AnswerFault::Wrong => {
            // Armed for this order's `status`: its verdict is told as the one before it.
            *lock(&sim.wrong_status_of) = Some(id.clone());
            Ok(answer(Some(&id), 1001, "operation in progress"))
        }
        AnswerFault::None => Ok(answer(Some(&id), 1001, "operation in progress")),
    }
}

fn status(sim: &Sim, id: &str) -> HandlerResult {
    if routes::take_ignored_poll(sim) {
        return Err(DropConnection);
    }
    let (error_now, late) = {
        let mut faults = lock(&sim.faults);
        let error_now = faults.lookup_errors > 0;
        faults.lookup_errors = faults.lookup_errors.saturating_sub(1);
        (error_now, Duration::from_millis(faults.late_record_ms))
    };
    let mut state = lock(&sim.state);
    *state.lookups.entry(id.to_string()).or_default() += 1;
    if error_now {
        let body = json!({"resultMessage": "the terminal's transaction store is not available"});
        return Ok(json(StatusCode::SERVICE_UNAVAILABLE, &body));
    }
    let final_now = state.get(id).is_some_and(|r| r.result.status.is_final());
    let wrong = final_now && {
        let mut armed = lock(&sim.wrong_status_of);
        armed.take_if(|of| of == id).is_some()
    };
    if wrong {
        *state.wrong_answers.entry(id.to_string()).or_default() += 1;
        let other = state.previous(id).map(|r| verdict(sim, r));
        let other =
            other.unwrap_or_else(|| json!({"orderId": format!("{id}-OTHER"), "resultCode": 190}));
        tracing::info!(order_id = %id, answered = %other["orderId"], "fault: status of another order");
        return Ok(json(StatusCode::OK, &other));
    }
    Ok(match state.get(id) {
        Some(record) if state.written(id, late) => json(StatusCode::OK, &verdict(sim, record)),
        _ => answer(Some(id), 602, "order not found"),
    })
}

/// A record as `status` tells it: the code by outcome, and a ticket once final.
fn verdict(sim: &Sim, record: &Record) -> Value {
    let r = &record.result;
    let (code, message) = match (r.status, r.result_code.as_deref()) {
        (TxnStatus::InProgress | TxnStatus::Unknown, _) => (1001, "operation in progress"),
        (TxnStatus::Approved, _) => (0, "Aprobada"),
        (TxnStatus::Declined, _) => (190, "Denegada"),
        (TxnStatus::Cancelled, Some("cancelled_by_ecr")) => (16, "Cancelled"),
        (TxnStatus::Cancelled, _) => (9915, "Cancelled by the cardholder"),
        (TxnStatus::Failed, _) => (10000, "Timeout: card not read"),
    };
    let mut v = json!({"orderId": r.transaction_id, "resultCode": code, "resultMessage": message});
    if r.status.is_final() {
        v["ticket"] = ticket(sim, record);
    }
    v
}

fn ticket(sim: &Sim, record: &Record) -> Value {
    let r = &record.result;
    let (date, time) = r.started_at.split_once('T').unwrap_or((&r.started_at, ""));
    json!({
        "Authorization": r.authorization_code.clone().unwrap_or_default(),
        "CardNumber": r.masked_pan.clone().unwrap_or_default(),
        "CardType": r.card_brand.clone().unwrap_or_default(),
        "Amount": euros(r.amount),
        "Date": date, "Time": time.get(..8).unwrap_or(time),
        "Id": terminal_id(&r.transaction_id),
        "TerminalId": sim.opts.device_id,
        "Type": match r.kind { TxnKind::Refund => "Refund", _ => "Payment" },
    })
}

/// The terminal's own id of an order, deterministic so a restarted terminal keeps it.
fn terminal_id(order_id: &str) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, order_id.as_bytes());
    let n = digest.as_ref()[..8]
        .iter()
        .fold(0u64, |n, b| n << 8 | u64::from(*b));
    format!("{:012}", n % 1_000_000_000_000)
}

fn original_order(sim: &Sim, terminal_side: &str) -> Option<String> {
    let state = lock(&sim.state);
    let found = state
        .records()
        .iter()
        .find(|r| terminal_id(&r.result.transaction_id) == terminal_side);
    found.map(|r| r.result.transaction_id.clone())
}

fn report(sim: &Sim) -> hyper::Response<crate::http::Body> {
    let state = lock(&sim.state);
    let of = |kind: TxnKind| -> Vec<Value> {
        let records = state
            .records()
            .iter()
            .filter(|r| r.result.kind == kind && r.result.status.is_final());
        records.map(|r| ticket(sim, r)).collect()
    };
    let body = json!({"resultCode": 0, "resultMessage": "OK", "payments": of(TxnKind::Sale), "refunds": of(TxnKind::Refund)});
    json(StatusCode::OK, &body)
}
