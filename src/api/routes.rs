//! Request routing and the handlers of the integrator API.

use std::sync::Arc;
use std::time::Duration;

use hyper::body::Incoming;
use hyper::header::AUTHORIZATION;
use hyper::{Method, Request, Response, StatusCode};
use serde_json::json;

use super::validate::{check_transaction_id, parse_payment, parse_resolution};
use super::{Api, ApiError, Metrics};
use crate::constants::MAX_BODY_BYTES;
use crate::http::error;
use crate::http::{Body, BodyError, json, read_body, segments, with_type};
use crate::terminal::wire::{TxnKind, TxnResult, TxnStatus, Version};
use crate::txn::supervisor::ResolveRefused;
use crate::txn::{Admission, CancelError, ResolveError, SubmitError, wait_result};

const OPENAPI: &str = include_str!("openapi.json");
const STATUS_PAGE: &str = include_str!("status.html");

/// How much longer than `timeStop` the first caller waits for its supervisor to
/// journal `unknown`, so the journal says `unknown` before the POS hears it.
const UNKNOWN_GRACE: Duration = Duration::from_secs(2);

pub(super) async fn handle(api: Arc<Api>, req: Request<Incoming>) -> Response<Body> {
    Metrics::bump(&api.metrics.http_requests);
    let resp = match route(&api, req).await {
        Ok(resp) => resp,
        Err(e) => e.into_response(),
    };
    if resp.status().is_client_error() || resp.status().is_server_error() {
        Metrics::bump(&api.metrics.http_errors);
    }
    resp
}

async fn route(api: &Arc<Api>, req: Request<Incoming>) -> Result<Response<Body>, ApiError> {
    let path = req.uri().path().to_string();
    let segs = segments(&path);
    let method = req.method().clone();
    if segs.first() == Some(&"v1") && segs.get(1) != Some(&"getVersion") {
        authorize(api, &req)?;
    }
    match (segs.as_slice(), &method) {
        ([], &Method::GET) => Ok(with_type(
            StatusCode::OK,
            "text/html; charset=utf-8",
            STATUS_PAGE.as_bytes().to_vec(),
        )),
        (["openapi.json"], &Method::GET) => Ok(with_type(
            StatusCode::OK,
            "application/json",
            OPENAPI.as_bytes().to_vec(),
        )),
        (["metrics"], &Method::GET) => super::metrics::render(api).await,
        (["healthz"], &Method::GET) => Ok(healthz(api).await),
        (["v1", "getVersion"], &Method::GET) => Ok(json(
            StatusCode::OK,
            &Version {
                version: env!("CARGO_PKG_VERSION").to_string(),
            },
        )),
        (["v1", kind], &Method::POST) if TxnKind::parse(kind).is_some() => {
            let kind = TxnKind::parse(kind).unwrap_or(TxnKind::Sale);
            payment(api, kind, req).await
        }
        (["v1", "transactions"], &Method::GET) => {
            let limit = query_limit(req.uri().query())?;
            let recent = api
                .payments
                .journal()
                .recent(limit)
                .await
                .map_err(|e| ApiError::Unavailable(e.to_string()))?;
            Ok(json(StatusCode::OK, &recent))
        }
        (["v1", "transactions", id], &Method::GET) => {
            check_id(id)?;
            match api.payments.get(id).await {
                Ok(Some(result)) => Ok(json(StatusCode::OK, &result)),
                Ok(None) => Err(ApiError::NotFound(format!("transaction {id} is not known"))),
                Err(e) => Err(ApiError::Unavailable(e.to_string())),
            }
        }
        (["v1", "transactions", id, "events"], &Method::GET) => {
            check_id(id)?;
            let events = api
                .payments
                .journal()
                .events(id)
                .await
                .map_err(|e| ApiError::Unavailable(e.to_string()))?;
            if events.is_empty() {
                return Err(ApiError::NotFound(format!("transaction {id} is not known")));
            }
            Ok(json(StatusCode::OK, &events))
        }
        (["v1", "transactions", id, "cancel"], &Method::POST) => {
            check_id(id)?;
            match api.payments.cancel(id).await {
                Ok(answer) => Ok(json(StatusCode::OK, &answer)),
                Err(CancelError::NotFound(_)) => {
                    Err(ApiError::NotFound(format!("transaction {id} is not known")))
                }
                Err(CancelError::Journal(e)) => Err(ApiError::Unavailable(e.to_string())),
                Err(e) => Err(ApiError::Terminal(e.to_string())),
            }
        }
        (["v1", "transactions", id, "resolve"], &Method::POST) => {
            check_id(id)?;
            resolve(api, id, req).await
        }
        (["v1", "terminals"], &Method::GET) => {
            let all: Vec<_> = api
                .terminals
                .iter()
                .map(|t| terminal_json(api, t))
                .collect();
            Ok(json(StatusCode::OK, &all))
        }
        (["v1", "terminals", device], &Method::GET) => {
            match api.terminals.iter().find(|t| t.device_id == *device) {
                Some(t) => Ok(json(StatusCode::OK, &terminal_json(api, t))),
                None => Err(unknown_device(api, device)),
            }
        }
        ([], _)
        | (["openapi.json"], _)
        | (["metrics"], _)
        | (["healthz"], _)
        | (["v1", "getVersion"], _) => Err(ApiError::MethodNotAllowed("GET")),
        (["v1", "sale" | "refund" | "void"], _) => Err(ApiError::MethodNotAllowed("POST")),
        (["v1", "transactions", _, "cancel" | "resolve"], _) => {
            Err(ApiError::MethodNotAllowed("POST"))
        }
        (["v1", "transactions", ..] | ["v1", "terminals", ..], _) => {
            Err(ApiError::MethodNotAllowed("GET"))
        }
        _ => Err(ApiError::NotFound(format!(
            "no such path: {path} (see /openapi.json)"
        ))),
    }
}

fn authorize(api: &Api, req: &Request<Incoming>) -> Result<(), ApiError> {
    let Some(key) = &api.api_key else {
        return Ok(());
    };
    let given = req
        .headers()
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    // Digests are compared, not the keys, so the time taken says nothing about
    // how much of a guess was right.
    let digest = |s: &str| ring::digest::digest(&ring::digest::SHA256, s.as_bytes());
    match given {
        Some(given) if digest(given).as_ref() == digest(key).as_ref() => Ok(()),
        _ => Err(ApiError::Unauthorized),
    }
}

fn check_id(id: &str) -> Result<(), ApiError> {
    check_transaction_id(id)
        .map_err(|why| ApiError::InvalidRequest(format!("transactionId: {why}")))
}

fn query_limit(query: Option<&str>) -> Result<usize, ApiError> {
    let Some(q) = query else { return Ok(100) };
    for pair in q.split('&') {
        if let Some(v) = pair.strip_prefix("limit=") {
            return match v.parse::<usize>() {
                Ok(n) if (1..=1000).contains(&n) => Ok(n),
                _ => Err(ApiError::InvalidRequest(format!(
                    "limit: must be a whole number from 1 to 1000, got {v:?}"
                ))),
            };
        }
    }
    Ok(100)
}

async fn read_api_body(req: Request<Incoming>) -> Result<bytes::Bytes, ApiError> {
    read_body(req, MAX_BODY_BYTES).await.map_err(|e| match e {
        BodyError::TooLarge { .. } => ApiError::PayloadTooLarge(e.to_string()),
        BodyError::Timeout => ApiError::RequestTimeout(e.to_string()),
        BodyError::Read(_) => ApiError::InvalidRequest(e.to_string()),
    })
}

/// `200` while the journal can commit, `503` with the reason when it cannot.
async fn healthz(api: &Api) -> Response<Body> {
    match api.payments.journal().check_writable().await {
        Ok(()) => json(
            StatusCode::OK,
            &json!({"status": "ok", "journal": "writable"}),
        ),
        Err(e) => error(
            StatusCode::SERVICE_UNAVAILABLE,
            "journal_unavailable",
            format!("the journal cannot be written: {e}"),
        ),
    }
}

async fn resolve(
    api: &Arc<Api>,
    id: &str,
    req: Request<Incoming>,
) -> Result<Response<Body>, ApiError> {
    let body = read_api_body(req).await?;
    let (status, reason) = parse_resolution(&body).map_err(ApiError::InvalidRequest)?;
    match api.payments.resolve(id, status, reason).await {
        Ok(result) => Ok(json(StatusCode::OK, &result)),
        Err(ResolveError::NotFound(_)) => {
            Err(ApiError::NotFound(format!("transaction {id} is not known")))
        }
        Err(ResolveError::Refused(e @ ResolveRefused::NotUnknown(_))) => {
            Err(ApiError::InvalidState(e.to_string()))
        }
        Err(e @ (ResolveError::Refused(ResolveRefused::NotDurable) | ResolveError::Journal(_))) => {
            Err(ApiError::Unavailable(e.to_string()))
        }
        Err(e @ ResolveError::Ended) => Err(ApiError::InvalidState(e.to_string())),
    }
}

async fn payment(
    api: &Arc<Api>,
    kind: TxnKind,
    req: Request<Incoming>,
) -> Result<Response<Body>, ApiError> {
    let body = read_api_body(req).await?;
    let request = parse_payment(kind, &body).map_err(ApiError::InvalidRequest)?;
    let time_stop = api.payments.timing().time_stop;
    let result = match api.payments.submit(kind, request).await {
        Ok(Admission::Started(results)) => {
            Metrics::bump(&api.metrics.payments_started);
            wait_result(results, time_stop + UNKNOWN_GRACE, true).await
        }
        Ok(Admission::Joined(results)) => {
            Metrics::bump(&api.metrics.payments_replayed);
            wait_result(results, time_stop, false).await
        }
        Ok(Admission::Replay(result)) => {
            Metrics::bump(&api.metrics.payments_replayed);
            result
        }
        Err(SubmitError::UnknownDevice(d)) => return Err(unknown_device(api, &d)),
        Err(e @ SubmitError::Conflict(_)) => {
            return Err(ApiError::TransactionConflict(e.to_string()));
        }
        Err(e @ SubmitError::Busy { .. }) => return Err(ApiError::TerminalBusy(e.to_string())),
        Err(SubmitError::InvalidOriginal(rule)) => return Err(ApiError::InvalidOriginal(rule)),
        Err(SubmitError::Journal(e)) => {
            return Err(ApiError::Unavailable(format!(
                "the journal cannot be written, so nothing was sent to the terminal: {e}"
            )));
        }
    };
    Ok(result_response(result))
}

/// The answer to the POS for a transaction's result: the same for the first call
/// and for every repeat, so a retrying POS sees exactly what it would have seen.
pub(super) fn result_response(mut r: TxnResult) -> Response<Body> {
    let error_status = match (r.status, r.result_code.as_deref()) {
        (TxnStatus::Failed, Some("terminal_tls_error" | "terminal_unreachable")) => {
            Some(StatusCode::BAD_GATEWAY)
        }
        (TxnStatus::Failed, Some("terminal_busy" | "transaction_conflict")) => {
            Some(StatusCode::CONFLICT)
        }
        _ => None,
    };
    if let Some(status) = error_status {
        let code = r.result_code.clone().unwrap_or_default();
        let message = r.result_message.clone().unwrap_or_default();
        return ApiError::Transaction {
            status,
            code,
            message,
            transaction: Box::new(r),
        }
        .into_response();
    }
    if r.status.is_final() {
        return json(StatusCode::OK, &r);
    }
    // Not final in time: the POS hears `unknown`, never a guess.
    r.status = TxnStatus::Unknown;
    json(StatusCode::GATEWAY_TIMEOUT, &r)
}

/// 404 `unknown_device`, naming the terminals that are configured.
fn unknown_device(api: &Api, device: &str) -> ApiError {
    let ids: Vec<&str> = api.terminals.iter().map(|t| t.device_id.as_str()).collect();
    ApiError::UnknownDevice(format!(
        "no terminal with deviceId {device} is configured; configured: {}",
        ids.join(", ")
    ))
}

fn terminal_json(api: &Api, t: &super::TerminalInfo) -> serde_json::Value {
    let mut view = serde_json::to_value(&*t.health.borrow()).unwrap_or_else(|_| json!({}));
    view["activeTransport"] = json!(
        api.payments
            .active_transport(&t.device_id)
            .unwrap_or("direct")
    );
    if let Some((since, _)) = api.payments.active_since(&t.device_id) {
        view["activeSince"] = json!(since);
    }
    view["transports"] = json!(api.payments.transport_details(&t.device_id));
    view["busyWith"] = json!(api.payments.busy_with(&t.device_id));
    view
}
