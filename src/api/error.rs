//! The one error type of the integrator API: every failure maps to a status and a
//! `{ "error": { code, message } }` body. Internals never leak.

use hyper::header::{ALLOW, HeaderValue};
use hyper::{Response, StatusCode};

use crate::http::{Body, error, error_with};
use crate::terminal::wire::TxnResult;

#[derive(Debug)]
pub enum ApiError {
    InvalidRequest(String),
    PayloadTooLarge(String),
    RequestTimeout(String),
    Unauthorized,
    NotFound(String),
    UnknownDevice(String),
    /// The path exists; the value is its `Allow` header (RFC 9110 requires it on a 405).
    MethodNotAllowed(String),
    /// A body declared as something other than JSON.
    UnsupportedMediaType(String),
    TransactionConflict(String),
    TerminalBusy(String),
    /// A refund or void breaks a rule about its original (the message names it).
    InvalidOriginal(String),
    /// The call does not apply to the transaction as it stands (resolve of a non-unknown).
    InvalidState(String),
    /// The journal could not be written: nothing was sent to the terminal.
    Unavailable(String),
    /// The terminal refused a call that is not a payment (cancel).
    Terminal(String),
    /// The terminal's protocol does not offer this call (422 `unsupported_by_terminal`).
    Unsupported(String),
    /// A failure tied to a recorded transaction.
    Transaction {
        status: StatusCode,
        code: String,
        message: String,
        transaction: Box<TxnResult>,
    },
}

impl ApiError {
    pub fn into_response(self) -> Response<Body> {
        use ApiError as E;
        let (status, code, message) = match self {
            E::InvalidRequest(m) => (StatusCode::BAD_REQUEST, "invalid_request", m),
            E::PayloadTooLarge(m) => (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large", m),
            E::RequestTimeout(m) => (StatusCode::REQUEST_TIMEOUT, "request_timeout", m),
            E::Unauthorized => (
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "missing or wrong API key (send it as 'Authorization: Bearer KEY')".into(),
            ),
            E::NotFound(m) => (StatusCode::NOT_FOUND, "not_found", m),
            E::UnknownDevice(m) => (StatusCode::NOT_FOUND, "unknown_device", m),
            E::MethodNotAllowed(allowed) => {
                let mut resp = error(
                    StatusCode::METHOD_NOT_ALLOWED,
                    "method_not_allowed",
                    format!("this path accepts {allowed}"),
                );
                if let Ok(value) = HeaderValue::from_str(&allowed) {
                    resp.headers_mut().insert(ALLOW, value);
                }
                return resp;
            }
            E::UnsupportedMediaType(m) => (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                m,
            ),
            E::TransactionConflict(m) => (StatusCode::CONFLICT, "transaction_conflict", m),
            E::TerminalBusy(m) => (StatusCode::CONFLICT, "terminal_busy", m),
            E::InvalidOriginal(m) => (StatusCode::UNPROCESSABLE_ENTITY, "invalid_original", m),
            E::InvalidState(m) => (StatusCode::CONFLICT, "invalid_state", m),
            E::Unavailable(m) => (StatusCode::SERVICE_UNAVAILABLE, "journal_unavailable", m),
            E::Terminal(m) => (StatusCode::BAD_GATEWAY, "terminal_error", m),
            E::Unsupported(m) => (
                StatusCode::UNPROCESSABLE_ENTITY,
                "unsupported_by_terminal",
                m,
            ),
            E::Transaction {
                status,
                code,
                message,
                transaction,
            } => return error_with(status, &code, message, Some(*transaction)),
        };
        error(status, code, message)
    }
}
