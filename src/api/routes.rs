//! Request routing and the handlers of the integrator API.

use std::sync::Arc;
use std::time::Duration;

use hyper::body::Incoming;
use hyper::header::CONTENT_TYPE;
use hyper::{Request, Response, StatusCode};
use serde_json::json;
use tracing::Instrument;

use super::validate::{check_transaction_id, parse_payment, parse_resolution};
use super::{Api, ApiError, Metrics, paths, request_id};
use crate::constants::MAX_BODY_BYTES;
use crate::http::error;
use crate::http::{Body, BodyError, drain_body, json, read_body, segments, with_type};
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
    let request_id = request_id::of(&req);
    let method = super::observe::method_label(req.method());
    let template =
        paths::find(&segments(req.uri().path())).map_or("unmatched", |m| m.route.template);
    let span = tracing::info_span!(
        "request",
        request_id = %request_id,
        transaction_id = tracing::field::Empty,
        device_id = tracing::field::Empty
    );
    let mut resp = match super::access::admit(&api, req) {
        Ok((req, origin)) => {
            let mut resp = match route(&api, req).instrument(span).await {
                Ok(resp) => resp,
                Err(e) => e.into_response(),
            };
            if let Some(origin) = origin {
                super::guard::allow_origin(&mut resp, &origin);
            }
            resp
        }
        Err(resp) => resp,
    };
    super::guard::vary_origin(&api.access, &mut resp);
    resp.headers_mut()
        .insert(request_id::HEADER, request_id::header_value(&request_id));
    api.metrics
        .observed
        .http
        .bump(&[template, method, resp.status().as_str()]);
    if resp.status().is_client_error() || resp.status().is_server_error() {
        Metrics::bump(&api.metrics.http_errors);
    }
    resp
}

async fn route(api: &Arc<Api>, req: Request<Incoming>) -> Result<Response<Body>, ApiError> {
    let path = req.uri().path().to_string();
    let segs = segments(&path);
    let Some(matched) = paths::find(&segs) else {
        drain_body(req).await;
        return Err(ApiError::NotFound(format!(
            "no such path: {path} (see /openapi.json)"
        )));
    };
    if !matched.allows(req.method().as_str()) {
        drain_body(req).await;
        return Err(ApiError::MethodNotAllowed(matched.allow()));
    }
    let param = matched.params.first().copied().unwrap_or_default();
    if matched.route.template.contains("{transactionId}") {
        tracing::Span::current().record("transaction_id", param);
    }
    match matched.route.template {
        paths::STATUS_PAGE => Ok(with_type(
            StatusCode::OK,
            "text/html; charset=utf-8",
            STATUS_PAGE.as_bytes().to_vec(),
        )),
        paths::OPENAPI => Ok(with_type(
            StatusCode::OK,
            "application/json",
            OPENAPI.as_bytes().to_vec(),
        )),
        paths::METRICS => super::metrics::render(api).await,
        paths::HEALTHZ => Ok(healthz(api).await),
        paths::VERSION => Ok(json(
            StatusCode::OK,
            &Version {
                version: env!("CARGO_PKG_VERSION").to_string(),
            },
        )),
        paths::SALE => payment(api, TxnKind::Sale, req).await,
        paths::REFUND => payment(api, TxnKind::Refund, req).await,
        paths::VOID => payment(api, TxnKind::Void, req).await,
        paths::TRANSACTIONS => {
            let limit = query_limit(req.uri().query())?;
            let journal = api.payments.journal();
            let recent = match super::recent::status_filter(req.uri().query())? {
                Some(status) => journal.recent_with_status(limit, status).await,
                None => journal.recent(limit).await,
            }
            .map_err(|e| ApiError::Unavailable(e.to_string()))?;
            Ok(json(StatusCode::OK, &recent))
        }
        paths::TRANSACTION => {
            let id = param;
            check_id(id)?;
            match api.payments.get(id).await {
                Ok(Some(result)) => Ok(json(StatusCode::OK, &result)),
                Ok(None) => Err(ApiError::NotFound(format!("transaction {id} is not known"))),
                Err(e) => Err(ApiError::Unavailable(e.to_string())),
            }
        }
        paths::EVENTS => {
            let id = param;
            check_id(id)?;
            if crate::http::sse::wants_event_stream(req.headers()) {
                let after = crate::http::sse::last_event_id(req.headers());
                return super::events::stream(api, id, after).await;
            }
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
        paths::CANCEL => {
            let id = param;
            drain_body(req).await;
            check_id(id)?;
            super::profile::check_cancel(api, id).await?;
            match api.payments.cancel(id).await {
                Ok(answer) => Ok(json(StatusCode::OK, &answer)),
                Err(CancelError::NotFound(_)) => {
                    Err(ApiError::NotFound(format!("transaction {id} is not known")))
                }
                Err(CancelError::Journal(e)) => Err(ApiError::Unavailable(e.to_string())),
                Err(e) => Err(ApiError::Terminal(e.to_string())),
            }
        }
        paths::RESOLVE => {
            let id = param.to_string();
            let body = read_api_body(req).await?;
            check_id(&id)?;
            resolve(api, &id, &body).await
        }
        paths::TERMINALS => {
            let all: Vec<_> = api
                .terminals
                .iter()
                .map(|t| terminal_json(api, t))
                .collect();
            Ok(json(StatusCode::OK, &all))
        }
        paths::REPORT => {
            let report = super::profile::report(api, param).await;
            report.unwrap_or_else(|| Err(unknown_device(api, param)))
        }
        paths::TERMINAL => match api.terminals.iter().find(|t| t.device_id == param) {
            Some(t) => Ok(json(StatusCode::OK, &terminal_json(api, t))),
            None => Err(unknown_device(api, param)),
        },
        other => Err(ApiError::NotFound(format!(
            "no handler for {other} (see /openapi.json)"
        ))),
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

/// Reads a JSON body: the whole of it first (so an early answer is never lost to a
/// reset), then `415` when the client declared another media type.
async fn read_api_body(req: Request<Incoming>) -> Result<bytes::Bytes, ApiError> {
    let declared = req.headers().get(CONTENT_TYPE).cloned();
    let body = read_body(req, MAX_BODY_BYTES).await.map_err(|e| match e {
        BodyError::TooLarge { .. } => ApiError::PayloadTooLarge(e.to_string()),
        BodyError::Timeout => ApiError::RequestTimeout(e.to_string()),
        BodyError::Read(_) => ApiError::InvalidRequest(e.to_string()),
    })?;
    if let Some(declared) = declared
        && !is_json_media_type(declared.to_str().unwrap_or(""))
    {
        return Err(ApiError::UnsupportedMediaType(format!(
            "the body must be JSON (Content-Type: application/json), got {:?}",
            declared.to_str().unwrap_or("(not text)")
        )));
    }
    Ok(body)
}

/// `application/json` or any `+json` type, parameters (charset) ignored.
fn is_json_media_type(value: &str) -> bool {
    let essence = value
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
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

async fn resolve(api: &Arc<Api>, id: &str, body: &[u8]) -> Result<Response<Body>, ApiError> {
    let (status, reason) = parse_resolution(body).map_err(ApiError::InvalidRequest)?;
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
    let received = std::time::Instant::now();
    let respond_async = super::prefer::respond_async(req.headers());
    let body = read_api_body(req).await?;
    let request = parse_payment(kind, &body).map_err(ApiError::InvalidRequest)?;
    super::profile::check_payment(api, kind, &request)?;
    let span = tracing::Span::current();
    span.record("transaction_id", request.transaction_id.as_str());
    span.record("device_id", request.device_id.as_str());
    let id = request.transaction_id.clone();
    let time_stop = api.payments.timing().time_stop;
    let result = match api.payments.submit(kind, request).await {
        Ok(Admission::Started(_)) if respond_async => {
            Metrics::bump(&api.metrics.payments_started);
            return Ok(super::prefer::accepted(&id));
        }
        Ok(Admission::Joined(_)) if respond_async => {
            Metrics::bump(&api.metrics.payments_replayed);
            return Ok(super::prefer::accepted(&id));
        }
        Ok(Admission::Started(results)) => {
            Metrics::bump(&api.metrics.payments_started);
            let result = wait_result(results, time_stop + UNKNOWN_GRACE, true).await;
            api.metrics.observed.payment(kind, received.elapsed());
            result
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
    view["profile"] = json!(if t.comercia.is_some() {
        "comercia-pos"
    } else {
        "instore"
    });
    let link = api
        .terminals
        .iter()
        .position(|x| x.device_id == t.device_id);
    if let Some(link) = link.and_then(|i| api.links.get(i)) {
        view["linkHistory"] = link.to_json();
    }
    view
}
