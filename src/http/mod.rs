//! Small HTTP pieces shared by the integrator API, the simulator and the clients:
//! the connection loop with deadlines, JSON responses, bounded body reads.

pub mod client;
pub mod limits;
pub mod server;
pub mod sse;

use bytes::Bytes;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{CONTENT_LENGTH, CONTENT_TYPE, HeaderValue};
use hyper::{Request, Response, StatusCode};
use serde::Serialize;

use crate::constants::SERVER_BODY_READ_TIMEOUT;
use crate::terminal::wire::{ErrorBody, ErrorDetail, TxnResult};

/// A response body: complete in memory (`full`), or a stream such as Server-Sent Events.
pub type Body = UnsyncBoxBody<Bytes, std::convert::Infallible>;

/// A body that is complete in memory.
pub fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into()).boxed_unsync()
}

/// Serialises `value` as the response body.
pub fn json<T: Serialize>(status: StatusCode, value: &T) -> Response<Body> {
    match serde_json::to_vec(value) {
        Ok(bytes) => with_type(status, "application/json", bytes),
        Err(_) => with_type(
            StatusCode::INTERNAL_SERVER_ERROR,
            "application/json",
            br#"{"error":{"code":"internal","message":"response could not be encoded"}}"#.to_vec(),
        ),
    }
}

/// The `{ "error": { code, message } }` body with `status`.
pub fn error(status: StatusCode, code: &str, message: impl Into<String>) -> Response<Body> {
    error_with(status, code, message, None)
}

/// An error body that also carries the transaction it concerns.
pub fn error_with(
    status: StatusCode,
    code: &str,
    message: impl Into<String>,
    transaction: Option<TxnResult>,
) -> Response<Body> {
    json(
        status,
        &ErrorBody {
            error: ErrorDetail {
                code: code.to_string(),
                message: message.into(),
                transaction: transaction.map(Box::new),
            },
        },
    )
}

pub fn with_type(status: StatusCode, content_type: &'static str, body: Vec<u8>) -> Response<Body> {
    let mut resp = Response::new(full(body));
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    resp
}

/// Why a request body could not be read.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    #[error("request body is larger than {limit} bytes")]
    TooLarge { limit: usize },
    #[error("request body was not received in time")]
    Timeout,
    #[error("request body could not be read: {0}")]
    Read(String),
}

/// Oversized bodies up to this size are read and dropped before the 413 is sent.
const DRAIN_LIMIT: usize = 1024 * 1024;

/// Reads the whole body, refusing more than `limit` bytes (early, from
/// `Content-Length`, when the client announces it) and bodies that trickle in.
pub async fn read_body(req: Request<Incoming>, limit: usize) -> Result<Bytes, BodyError> {
    let announced = req
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if announced.is_some_and(|n| n > limit as u64) {
        // Read (and drop) a moderately oversized body before answering: closing on a
        // client that is still sending makes its kernel reset the connection, and the
        // client would never see the 413.
        if announced.is_some_and(|n| n <= DRAIN_LIMIT as u64) {
            let drain = Limited::new(req.into_body(), DRAIN_LIMIT).collect();
            let _ = tokio::time::timeout(SERVER_BODY_READ_TIMEOUT, drain).await;
        }
        return Err(BodyError::TooLarge { limit });
    }
    let limited = Limited::new(req.into_body(), limit);
    match tokio::time::timeout(SERVER_BODY_READ_TIMEOUT, limited.collect()).await {
        Err(_) => Err(BodyError::Timeout),
        Ok(Ok(collected)) => Ok(collected.to_bytes()),
        Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => {
            Err(BodyError::TooLarge { limit })
        }
        Ok(Err(e)) => Err(BodyError::Read(e.to_string())),
    }
}

/// Reads and drops what is left of a request body (at most [`DRAIN_LIMIT`], for at most
/// the body-read deadline) before an early answer: a client still sending when the
/// connection closes gets a reset and never sees the answer.
pub async fn drain_body(req: Request<Incoming>) {
    let drain = Limited::new(req.into_body(), DRAIN_LIMIT).collect();
    let _ = tokio::time::timeout(SERVER_BODY_READ_TIMEOUT, drain).await;
}

/// The standard answer to a body that could not be read.
pub fn body_error_response(err: &BodyError) -> Response<Body> {
    match err {
        BodyError::TooLarge { .. } => error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            err.to_string(),
        ),
        BodyError::Timeout => error(
            StatusCode::REQUEST_TIMEOUT,
            "request_timeout",
            err.to_string(),
        ),
        BodyError::Read(_) => error(StatusCode::BAD_REQUEST, "invalid_request", err.to_string()),
    }
}

/// Splits a request path into its non-empty segments.
pub fn segments(path: &str) -> Vec<&str> {
    path.split('/').filter(|s| !s.is_empty()).collect()
}
