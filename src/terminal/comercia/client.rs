//! HTTPS calls of the `comercia-pos` API. Every call carries `X-SOURCE`; the answer's
//! `resultCode` is read whatever the HTTP status, because the payment app reports its
//! own refusals (`1010`) in the body.

use std::time::Duration;

use hyper::header::{HeaderName, HeaderValue};
use hyper::{Method, StatusCode};
use serde_json::{Value, json};

use super::mapping::{Answer, Code, PROFILE, euros};
use crate::constants::COMERCIA_SOURCE_HEADER;
use crate::terminal::{TerminalClient, TerminalError};

#[derive(Clone)]
pub struct ComerciaClient {
    /// Address, pool, TLS (the lane's own CA) and server name.
    terminal: TerminalClient,
    source: HeaderValue,
    device_id: String,
    call_timeout: Duration,
}

impl std::fmt::Debug for ComerciaClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ComerciaClient")
            .field("device_id", &self.device_id)
            .finish()
    }
}

impl ComerciaClient {
    pub fn new(
        terminal: TerminalClient,
        source: &str,
        device_id: &str,
        call_timeout: Duration,
    ) -> ComerciaClient {
        ComerciaClient {
            terminal,
            source: HeaderValue::from_str(source).unwrap_or(HeaderValue::from_static("")),
            device_id: device_id.to_string(),
            call_timeout,
        }
    }

    pub fn terminal(&self) -> &TerminalClient {
        &self.terminal
    }

    pub fn device_id(&self) -> &str {
        &self.device_id
    }

    /// `POST /v1/transactions/payment`: answered at once (`1001` when accepted), so it
    /// has the short calls' deadline; a late answer is "maybe delivered" and looked up.
    pub async fn payment(&self, order_id: &str, cents: u64) -> Result<Answer, TerminalError> {
        let body = json!({"orderId": order_id, "amount": euros(cents), "description": format!("ecrlink {order_id}")});
        self.answer(
            Method::POST,
            "/v1/transactions/payment",
            Some(body),
            self.call_timeout,
        )
        .await
    }

    /// `POST /v1/transactions/refund` of the original's terminal-side `transaction_id`.
    pub async fn refund(
        &self,
        order_id: &str,
        original: &str,
        cents: u64,
    ) -> Result<Answer, TerminalError> {
        let body = json!({"transactionId": original, "amount": euros(cents), "orderId": order_id});
        self.answer(
            Method::POST,
            "/v1/transactions/refund",
            Some(body),
            self.call_timeout,
        )
        .await
    }

    /// `POST /v1/transactions/status`.
    pub async fn status(&self, order_id: &str) -> Result<Answer, TerminalError> {
        let body = json!({"orderId": order_id});
        self.answer(
            Method::POST,
            "/v1/transactions/status",
            Some(body),
            self.call_timeout,
        )
        .await
    }

    /// `GET /v1/transactions/last`.
    pub async fn last(&self) -> Result<Answer, TerminalError> {
        self.answer(
            Method::GET,
            "/v1/transactions/last",
            None,
            self.call_timeout,
        )
        .await
    }

    /// `GET /v1/reporting/details`, passed through as the terminal wrote it.
    pub async fn report(&self) -> Result<Value, TerminalError> {
        let (status, body) = self
            .call(
                Method::GET,
                "/v1/reporting/details",
                None,
                self.call_timeout,
            )
            .await?;
        let mut value: Value = serde_json::from_slice(&body)
            .map_err(|e| TerminalError::Protocol(format!("/v1/reporting/details: {e}")))?;
        super::mapping::mask_card_numbers(&mut value);
        self.check_source(&value)?;
        match status {
            StatusCode::OK => Ok(value),
            s => Err(TerminalError::Protocol(format!(
                "/v1/reporting/details answered {s}"
            ))),
        }
    }

    async fn answer(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
        wait: Duration,
    ) -> Result<Answer, TerminalError> {
        let (status, bytes) = self.call(method, path, body, wait).await?;
        let value: Value = serde_json::from_slice(&bytes)
            .map_err(|e| TerminalError::Protocol(format!("{path}: status {status}: {e}")))?;
        self.check_source(&value)?;
        let answer: Answer = serde_json::from_value(value)
            .map_err(|e| TerminalError::Protocol(format!("{path}: {e}")))?;
        match (status, answer.meaning()) {
            (StatusCode::OK, Some(_)) => Ok(answer),
            (_, None) => Err(TerminalError::Protocol(format!(
                "{path}: answer without a resultCode"
            ))),
            (s, Some(_)) => Err(TerminalError::Protocol(format!(
                "{path}: status {s}, resultCode {}: {}",
                answer.result_code,
                answer.message()
            ))),
        }
    }

    /// `1010`: the terminal refused the `X-SOURCE` header before doing anything. A
    /// configuration error of this lane, reported as a refusal (nothing started).
    fn check_source(&self, value: &Value) -> Result<(), TerminalError> {
        let answer: Answer = serde_json::from_value(value.clone()).unwrap_or_default();
        if answer.meaning() != Some(Code::SourceRejected) {
            return Ok(());
        }
        Err(TerminalError::Rejected {
            status: 400,
            code: "invalid_request".into(),
            message: format!(
                "configuration error: the {PROFILE} terminal {} refused the X-SOURCE header \
                 {:?} (resultCode 1010: {}); set this terminal's \"source\" to the value its \
                 payment app expects",
                self.device_id,
                self.source.to_str().unwrap_or(""),
                answer.message()
            ),
        })
    }

    async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
        wait: Duration,
    ) -> Result<(StatusCode, bytes::Bytes), TerminalError> {
        let body = body.map(|b| serde_json::to_vec(&b).unwrap_or_default());
        self.terminal
            .http()
            .with_header(
                HeaderName::from_static(COMERCIA_SOURCE_HEADER),
                self.source.clone(),
            )
            .request(method, path, body, wait)
            .await
            .map_err(TerminalError::from_client)
    }
}
