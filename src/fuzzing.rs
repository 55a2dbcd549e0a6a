//! Fuzz entry points: arbitrary bytes into the parsers that face the outside, which must
//! never panic and never turn input into a server error. The cargo-fuzz targets in
//! `fuzz/` (nightly) and the property tests in `tests/fuzz.rs` (stable, bounded, part of
//! `cargo test`) call the same functions.

use std::time::Duration;

use hyper::header::{HeaderMap, HeaderValue};
use hyper::{Method, StatusCode};

use crate::api::guard::{self, Access};
use crate::api::validate::{parse_payment, parse_resolution};
use crate::config::{self, Overrides};
use crate::terminal::client::{Lookup, TerminalError};
use crate::terminal::wire::{CancelAnswer, Current, ErrorBody, PaymentRequest, TxnKind, TxnResult};
use crate::transport::mqtt::wire::MqttResponse;
use crate::txn::classify;

/// A POS request as the API sees it: `data[0]` picks the call, the next bytes up to a
/// NUL are header values (Host, Origin, Content-Type, Authorization, by turns), the rest
/// is the body. Returns the status the gate and the validator answer with (200 standing
/// for "admitted": it would go to the journal and the terminal).
pub fn pos_request(data: &[u8]) -> StatusCode {
    let (pick, rest) = data.split_first().unwrap_or((&0, &[]));
    let (head, body) = match rest.iter().position(|b| *b == 0) {
        Some(i) => (&rest[..i], &rest[i + 1..]),
        None => (&[][..], rest),
    };
    let paths = [
        "/v1/sale",
        "/v1/refund",
        "/v1/void",
        "/v1/transactions/A-1/resolve",
        "/v1/transactions/A-1/cancel",
        "/metrics",
    ];
    let path = paths[usize::from(*pick) % paths.len()];
    let mut headers = HeaderMap::new();
    let names = ["host", "origin", "content-type", "authorization"];
    for (i, value) in head.split(|b| *b == b'\n').enumerate().take(8) {
        if let Ok(value) = HeaderValue::from_bytes(value) {
            headers.insert(names[i % names.len()], value);
        }
    }
    let access = Access {
        api_key: Some("fuzz-key".into()),
        refund_key: Some("fuzz-manager".into()),
        cors_origins: vec!["https://pos.example.com".into()],
        host_names: vec!["till.shop.lan".into()],
        scheme: "https",
        ..Access::default()
    };
    if let Err(refusal) = guard::check(&access, &Method::POST, path, &headers) {
        return refusal.into_response().status();
    }
    let parsed = match path {
        "/v1/transactions/A-1/resolve" => parse_resolution(body).map(drop),
        "/v1/transactions/A-1/cancel" | "/metrics" => Ok(()),
        _ => {
            let kind = TxnKind::parse(&path[4..]).unwrap_or(TxnKind::Sale);
            parse_payment(kind, body).map(drop)
        }
    };
    match parsed {
        Ok(()) => StatusCode::OK,
        Err(_) => StatusCode::BAD_REQUEST,
    }
}

/// A terminal's (or the MQTT fallback's) answer, read as every kind of answer and each
/// classified against a request as the supervisor would.
pub fn terminal_answer(data: &[u8]) {
    let req = PaymentRequest {
        device_id: "LANE-1".into(),
        transaction_id: "T-1".into(),
        payment_app: "comercia".into(),
        amount: 1000,
        currency_code: "EUR".into(),
        other_data: serde_json::Value::Null,
        original_transaction_id: None,
    };
    for kind in [TxnKind::Sale, TxnKind::Refund, TxnKind::Void] {
        if let Ok(r) = serde_json::from_slice::<TxnResult>(data) {
            let _ = classify::check_answer(kind, &req, &r);
            let _ = classify::start_answer(kind, &req, Ok(r.clone()));
            let found = Ok(Lookup::Found(r));
            let _ = classify::lookup_answer(kind, &req, found, Duration::from_secs(1));
        }
    }
    if let Ok(current) = serde_json::from_slice::<Current>(data) {
        let _ = classify::current_answer(&req.transaction_id, Ok(current));
    }
    if let Ok(err) = serde_json::from_slice::<ErrorBody>(data) {
        let rejected = TerminalError::Rejected {
            status: 409,
            code: err.error.code,
            message: err.error.message,
        };
        let _ = classify::start_answer(TxnKind::Sale, &req, Err(rejected));
    }
    let _ = serde_json::from_slice::<CancelAnswer>(data);
    let _ = serde_json::from_slice::<MqttResponse>(data);
    comercia_answer(&req, data);
}

/// The `comercia-pos` profile's answers: read, mapped to a result and cross-checked as
/// its transport does; a card number never leaves the mapping with more than the first
/// six and last four digits.
fn comercia_answer(req: &PaymentRequest, data: &[u8]) {
    use crate::terminal::comercia::mapping;
    if let Ok(answer) = serde_json::from_slice::<mapping::Answer>(data) {
        let _ = (answer.meaning(), answer.message());
        for kind in [TxnKind::Sale, TxnKind::Refund] {
            let r = mapping::result(
                kind,
                req,
                &answer,
                crate::terminal::wire::TxnStatus::Approved,
            );
            let _ = classify::check_answer(kind, req, &r);
            if let Some(pan) = &r.masked_pan {
                let digits = pan.chars().filter(char::is_ascii_digit).count();
                assert!(digits <= 10, "a card number kept with {digits} digits");
            }
        }
    }
    if let Ok(mut value) = serde_json::from_slice::<serde_json::Value>(data) {
        mapping::mask_card_numbers(&mut value);
        let _ = mapping::cents(&value);
    }
}

/// A configuration file (and, from the same bytes, environment values) through the
/// loader and its validation pass.
pub fn config_text(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let _ = config::load_from(Some(&text), &[], &Overrides::default());
    let env = [("ECRLINK_TERMINALS".to_string(), text.to_string())];
    let _ = config::load_from(Some("{}"), &env, &Overrides::default());
}
