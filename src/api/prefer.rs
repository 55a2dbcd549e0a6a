//! `Prefer: respond-async` (RFC 7240) on `POST /v1/sale|refund|void`: for a POS that
//! cannot hold a request for a minute, a started (or joined) transaction is answered
//! `202 Accepted` at once with where to follow it; the result is then read at
//! `GET /v1/transactions/{id}` or streamed from its events URL.

use hyper::header::{HeaderMap, HeaderValue, LOCATION};
use hyper::{Response, StatusCode};
use serde_json::json;

use crate::http::{Body, json};

const PREFER: &str = "prefer";

/// Whether the request asks for an asynchronous answer.
pub(super) fn respond_async(headers: &HeaderMap) -> bool {
    headers
        .get_all(PREFER)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|p| {
            p.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .eq_ignore_ascii_case("respond-async")
        })
}

/// `202` with the transaction's URL (also as `Location`) and its events URL.
pub(super) fn accepted(transaction_id: &str) -> Response<Body> {
    let url = format!("/v1/transactions/{transaction_id}");
    let events = format!("{url}/events");
    let mut resp = json(
        StatusCode::ACCEPTED,
        &json!({
            "transactionId": transaction_id,
            "status": "in_progress",
            "transactionUrl": url,
            "eventsUrl": events,
        }),
    );
    let headers = resp.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&url) {
        headers.insert(LOCATION, v);
    }
    headers.insert(
        "preference-applied",
        HeaderValue::from_static("respond-async"),
    );
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn respond_async_is_found_among_other_preferences() {
        let mut h = HeaderMap::new();
        assert!(!respond_async(&h));
        h.insert(
            PREFER,
            HeaderValue::from_static("return=minimal, Respond-Async; wait=5"),
        );
        assert!(respond_async(&h));
        h.insert(PREFER, HeaderValue::from_static("respond-asyncx"));
        assert!(!respond_async(&h));
    }
}
