//! What a terminal's answer means, decided before anything believes it: every answer
//! to a start call is an explicit refusal, a verdict about *this* transaction, or
//! "maybe delivered"; every result is checked against the request it answers. Pure
//! functions; the supervisor turns their verdicts into state-machine events.

use std::fmt;
use std::time::Duration;

use super::machine::{Call, Event, FailCode};
use crate::http::client::ClientError;
use crate::terminal::wire::{Current, PaymentRequest, TxnKind, TxnResult};
use crate::terminal::{Lookup, TerminalError};

/// The refusals the protocol defines before any processing: only these prove that
/// the terminal did not start the payment.
pub fn is_refusal(status: u16, code: &str) -> bool {
    matches!(
        (status, code),
        (409, "terminal_busy") | (409, "transaction_conflict") | (400, "invalid_request")
    )
}

/// The fields in which a result differs from the request it claims to answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mismatch(pub Vec<String>);

impl fmt::Display for Mismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "answer differs from the request in {}",
            self.0.join(", ")
        )
    }
}

/// Checks `transactionId`, `type`, `amount`, `currencyCode` and, when the answer names
/// one, `deviceId`.
pub fn check_answer(kind: TxnKind, req: &PaymentRequest, r: &TxnResult) -> Result<(), Mismatch> {
    let mut diffs = Vec::new();
    let mut differ = |field: &str, got: String, sent: String| {
        if got != sent {
            diffs.push(format!("{field} ({got:?}, sent {sent:?})"));
        }
    };
    differ(
        "transactionId",
        r.transaction_id.clone(),
        req.transaction_id.clone(),
    );
    differ("type", r.kind.as_str().into(), kind.as_str().into());
    differ("amount", r.amount.to_string(), req.amount.to_string());
    differ(
        "currencyCode",
        r.currency_code.clone(),
        req.currency_code.clone(),
    );
    if !r.device_id.is_empty() {
        differ("deviceId", r.device_id.clone(), req.device_id.clone());
    }
    if diffs.is_empty() {
        Ok(())
    } else {
        Err(Mismatch(diffs))
    }
}

/// The event for an answer to the start call.
pub fn start_answer(
    kind: TxnKind,
    req: &PaymentRequest,
    answer: Result<TxnResult, TerminalError>,
) -> Event {
    match answer {
        Ok(r) => match check_answer(kind, req, &r) {
            Ok(()) => Event::StartAnswered(r),
            Err(m) => Event::AnswerMismatch {
                call: Call::Start,
                detail: format!("start answer: {m}"),
            },
        },
        Err(TerminalError::NotDelivered(e)) => Event::StartNotDelivered {
            code: match e {
                ClientError::Tls { .. } => FailCode::TlsError,
                _ => FailCode::Unreachable,
            },
            reason: e.to_string(),
        },
        Err(TerminalError::Rejected {
            status,
            code,
            message,
        }) if is_refusal(status, &code) => Event::StartRejected { code, message },
        Err(e) => Event::StartMaybeDelivered {
            reason: e.to_string(),
        },
    }
}

/// The event for an answer to a lookup made `at` after the supervisor started.
pub fn lookup_answer(
    kind: TxnKind,
    req: &PaymentRequest,
    answer: Result<Lookup, TerminalError>,
    at: Duration,
) -> Event {
    match answer {
        Ok(Lookup::Found(r)) => match check_answer(kind, req, &r) {
            Ok(()) => Event::LookedUp(r),
            Err(m) => Event::AnswerMismatch {
                call: Call::Lookup,
                detail: format!("lookup answer: {m}"),
            },
        },
        Ok(Lookup::NotFound) => Event::LookedUpNotFound { at },
        Err(e) => Event::LookupFailed {
            reason: e.to_string(),
        },
    }
}

/// The event for an answer to "is a payment in progress?", and what to journal.
pub fn current_answer(
    transaction_id: &str,
    answer: Result<Current, TerminalError>,
) -> (Event, Option<(&'static str, String)>) {
    use super::events::{POLLED, STAGE};
    match answer {
        Ok(Current::InProgress {
            transaction_id: running,
            stage,
        }) if running == transaction_id => (
            Event::PollInProgress,
            Some((STAGE, stage.unwrap_or_else(|| "in_progress".into()))),
        ),
        Ok(Current::InProgress {
            transaction_id: running,
            ..
        }) => (
            Event::PollIdle,
            Some((POLLED, format!("terminal busy with {running}"))),
        ),
        Ok(Current::Idle) => (Event::PollIdle, Some((POLLED, "idle".into()))),
        Err(e) => (
            Event::PollFailed {
                reason: e.to_string(),
            },
            None,
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::terminal::wire::{TxnStatus, now_rfc3339};

    fn request() -> PaymentRequest {
        serde_json::from_value(serde_json::json!({
            "deviceId": "D1", "transactionId": "T1", "paymentApp": "comercia",
            "amount": 1000, "currencyCode": "EUR"
        }))
        .unwrap()
    }

    fn approved() -> TxnResult {
        let mut r = TxnResult::pending(&request(), TxnKind::Sale, now_rfc3339());
        r.status = TxnStatus::Approved;
        r
    }

    fn rejected(status: u16, code: &str) -> TerminalError {
        TerminalError::Rejected {
            status,
            code: code.into(),
            message: "m".into(),
        }
    }

    fn no_answer() -> ClientError {
        ClientError::NoAnswer {
            addr: "127.0.0.1:1".parse().unwrap(),
            reason: "reset".into(),
        }
    }

    #[test]
    fn only_the_protocols_refusals_mean_not_started() {
        let req = request();
        for (status, code) in [
            (409, "terminal_busy"),
            (409, "transaction_conflict"),
            (400, "invalid_request"),
        ] {
            let ev = start_answer(TxnKind::Sale, &req, Err(rejected(status, code)));
            assert!(
                matches!(ev, Event::StartRejected { .. }),
                "{status} {code}: {ev:?}"
            );
        }
        // Any other status or code, even an error body, may follow a charge.
        for (status, code) in [
            (500, "internal_error"),
            (503, "unavailable"),
            (404, "not_found"),
            (401, "unauthorized"),
            (409, "something_else"),
            (400, "terminal_busy"),
            (200, "invalid_request"),
        ] {
            let ev = start_answer(TxnKind::Sale, &req, Err(rejected(status, code)));
            assert!(
                matches!(ev, Event::StartMaybeDelivered { .. }),
                "{status} {code}: {ev:?}"
            );
        }
        for e in [
            TerminalError::Protocol("status 500 without an error body".into()),
            TerminalError::Protocol("EOF while parsing".into()),
            TerminalError::NoAnswer(no_answer()),
        ] {
            let ev = start_answer(TxnKind::Sale, &req, Err(e));
            assert!(matches!(ev, Event::StartMaybeDelivered { .. }), "{ev:?}");
        }
    }

    #[test]
    fn failures_before_sending_are_not_delivered_with_their_reason() {
        let addr = "127.0.0.1:1".parse().unwrap();
        let tls = TerminalError::NotDelivered(ClientError::Tls {
            addr,
            reason: "unknown issuer".into(),
        });
        let refused = TerminalError::NotDelivered(ClientError::Unreachable {
            addr,
            reason: "refused".into(),
        });
        let req = request();
        assert!(matches!(
            start_answer(TxnKind::Sale, &req, Err(tls)),
            Event::StartNotDelivered {
                code: FailCode::TlsError,
                ..
            }
        ));
        assert!(matches!(
            start_answer(TxnKind::Sale, &req, Err(refused)),
            Event::StartNotDelivered {
                code: FailCode::Unreachable,
                ..
            }
        ));
    }

    #[test]
    fn a_matching_result_is_believed() {
        let req = request();
        // One answer, compared with itself: two `approved()` could differ in `startedAt`.
        let answer = approved();
        assert_eq!(
            start_answer(TxnKind::Sale, &req, Ok(answer.clone())),
            Event::StartAnswered(answer)
        );
        let mut no_device = approved();
        no_device.device_id.clear();
        assert!(check_answer(TxnKind::Sale, &req, &no_device).is_ok());
    }

    #[test]
    fn every_differing_field_is_named_and_never_adopted() {
        let req = request();
        type Change = Box<dyn Fn(&mut TxnResult)>;
        let cases: Vec<(&str, Change)> = vec![
            (
                "transactionId",
                Box::new(|r| r.transaction_id = "T0".into()),
            ),
            ("type", Box::new(|r| r.kind = TxnKind::Refund)),
            ("amount", Box::new(|r| r.amount = 999)),
            ("currencyCode", Box::new(|r| r.currency_code = "USD".into())),
            ("deviceId", Box::new(|r| r.device_id = "D2".into())),
        ];
        for (field, change) in &cases {
            let mut r = approved();
            change(&mut r);
            let m = check_answer(TxnKind::Sale, &req, &r).unwrap_err();
            assert_eq!(m.0.len(), 1, "{m}");
            assert!(m.0[0].starts_with(field), "{m}");
            for ev in [
                start_answer(TxnKind::Sale, &req, Ok(r.clone())),
                lookup_answer(
                    TxnKind::Sale,
                    &req,
                    Ok(Lookup::Found(r.clone())),
                    Duration::ZERO,
                ),
            ] {
                assert!(
                    matches!(&ev, Event::AnswerMismatch { detail, .. } if detail.contains(field)),
                    "{ev:?}"
                );
            }
        }
        let mut all = approved();
        for (_, change) in &cases {
            change(&mut all);
        }
        assert_eq!(
            check_answer(TxnKind::Sale, &req, &all).unwrap_err().0.len(),
            5
        );
    }

    #[test]
    fn lookups_and_polls_are_classified() {
        let req = request();
        let at = Duration::from_secs(3);
        assert_eq!(
            lookup_answer(TxnKind::Sale, &req, Ok(Lookup::NotFound), at),
            Event::LookedUpNotFound { at }
        );
        assert!(matches!(
            lookup_answer(TxnKind::Sale, &req, Err(rejected(503, "busy")), at),
            Event::LookupFailed { .. }
        ));
        let ours = Current::InProgress {
            transaction_id: "T1".into(),
            stage: Some("pin".into()),
        };
        let theirs = Current::InProgress {
            transaction_id: "T0".into(),
            stage: None,
        };
        assert_eq!(current_answer("T1", Ok(ours)).0, Event::PollInProgress);
        assert_eq!(current_answer("T1", Ok(theirs)).0, Event::PollIdle);
        assert_eq!(current_answer("T1", Ok(Current::Idle)).0, Event::PollIdle);
    }
}
