//! The `comercia-pos` profile behind the [`Transport`] trait. A start call is the
//! payment (or refund) request, answered at once, followed by status polls every
//! `pollSeconds` until the verdict or the deadline: to the supervisor it looks like the
//! InStore profile's held call, so its machine, evidence rules and invariants apply
//! unchanged. The request is sent once; after that only its status is asked.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use super::client::ComerciaClient;
use super::mapping::{self, Answer, Code, PROFILE};
use crate::journal::Stored;
use crate::terminal::wire::{CancelAnswer, Current, PaymentRequest, TxnKind, TxnResult, TxnStatus};
use crate::terminal::{Lookup, TerminalError};
use crate::transport::{BoxFuture, Transport};

/// The journal's record of a transaction by its id: a lookup needs the request it
/// checks the answer against, a refund the original's terminal-side id.
pub type Records = Arc<dyn Fn(String) -> BoxFuture<'static, Option<Stored>> + Send + Sync>;

pub struct Comercia {
    client: ComerciaClient,
    poll: Duration,
    records: Records,
}

impl Comercia {
    pub fn new(client: ComerciaClient, poll: Duration, records: Records) -> Comercia {
        Comercia {
            client,
            poll,
            records,
        }
    }

    fn refused(&self, status: u16, code: &str, message: String) -> TerminalError {
        TerminalError::Rejected {
            status,
            code: code.into(),
            message,
        }
    }

    async fn run(
        &self,
        kind: TxnKind,
        req: &PaymentRequest,
        wait: Duration,
    ) -> Result<TxnResult, TerminalError> {
        let deadline = Instant::now() + wait;
        let cents = req.amount;
        let id = &req.transaction_id;
        let answer = match kind {
            TxnKind::Sale => self.client.payment(id, cents).await?,
            TxnKind::Refund => {
                let original = self.original_id(req).await?;
                self.client.refund(id, &original, cents).await?
            }
            TxnKind::Void => {
                let m = format!("the {PROFILE} terminal {} offers no void", req.device_id);
                return Err(self.refused(400, "invalid_request", m));
            }
        };
        // From here on the request may have been acted on: every failure is "maybe
        // delivered", never "not sent", so nothing can make the supervisor send it again.
        match answer.meaning() {
            // Accepted, or busy: only our order's status tells which.
            Some(Code::InProgress) => {
                let status = self.client.status(id).await.map_err(delivered)?;
                if status.meaning() == Some(Code::NotFound) {
                    let m = format!(
                        "the {PROFILE} terminal {} is busy with another order ({})",
                        req.device_id,
                        answer.message()
                    );
                    return Err(self.refused(409, "terminal_busy", m));
                }
                if let Some(r) = final_result(kind, req, &status) {
                    return Ok(r);
                }
            }
            // The order exists already: it is looked up, never charged again.
            Some(Code::Duplicate) => {
                tracing::warn!(transaction_id = %id, "913 duplicated order: asking its status")
            }
            _ => {
                if let Some(r) = final_result(kind, req, &answer) {
                    return Ok(r);
                }
            }
        }
        self.poll_until(kind, req, deadline).await
    }

    async fn poll_until(
        &self,
        kind: TxnKind,
        req: &PaymentRequest,
        deadline: Instant,
    ) -> Result<TxnResult, TerminalError> {
        let mut last_error = None;
        loop {
            if Instant::now() + self.poll > deadline {
                return Err(last_error.unwrap_or_else(|| {
                    TerminalError::Protocol(format!(
                        "no verdict from the {PROFILE} terminal in time"
                    ))
                }));
            }
            tokio::time::sleep(self.poll).await;
            match self.client.status(&req.transaction_id).await {
                Ok(answer) => match answer.meaning() {
                    Some(Code::InProgress) => {}
                    Some(Code::NotFound) => {
                        let m = format!(
                            "status of {} answered 602 after the order was accepted",
                            req.transaction_id
                        );
                        last_error = Some(TerminalError::Protocol(m));
                    }
                    _ => match final_result(kind, req, &answer) {
                        Some(r) => return Ok(r),
                        None => last_error = Some(TerminalError::Protocol(answer.message())),
                    },
                },
                Err(e) => last_error = Some(delivered(e)),
            }
        }
    }

    /// The original's terminal-side id, from its journaled receipt.
    async fn original_id(&self, req: &PaymentRequest) -> Result<String, TerminalError> {
        let original = req.original_transaction_id.clone().unwrap_or_default();
        let stored = (self.records)(original.clone()).await;
        let id = stored.and_then(|s| s.result.receipt.as_ref().and_then(mapping::terminal_id));
        id.ok_or_else(|| {
            let m = format!(
                "original transaction {original} has no terminal-side id in the journal: \
                 the {PROFILE} terminal refunds only sales it ran"
            );
            self.refused(400, "invalid_request", m)
        })
    }
}

/// An error of a call made after the request went out: it can no longer prove that
/// nothing was sent, whatever it says.
fn delivered(e: TerminalError) -> TerminalError {
    match e {
        TerminalError::NotDelivered(c) => TerminalError::NoAnswer(c),
        TerminalError::Rejected {
            status,
            code,
            message,
        } => TerminalError::Protocol(format!("status call answered {status} {code}: {message}")),
        other => other,
    }
}

/// A final verdict in `answer`, as ecrlink's result; `None` while it is not final.
fn final_result(kind: TxnKind, req: &PaymentRequest, answer: &Answer) -> Option<TxnResult> {
    let status = match answer.meaning()? {
        Code::Approved => TxnStatus::Approved,
        Code::Final(status) => status,
        _ => return None,
    };
    Some(mapping::result(kind, req, answer, status))
}

impl Transport for Comercia {
    fn name(&self) -> &'static str {
        "direct"
    }

    fn start<'a>(
        &'a self,
        kind: TxnKind,
        request: &'a PaymentRequest,
        wait: Duration,
    ) -> BoxFuture<'a, Result<TxnResult, TerminalError>> {
        Box::pin(self.run(kind, request, wait))
    }

    fn warm(&self) -> BoxFuture<'_, ()> {
        Box::pin(async {
            let _ = self.client.terminal().warm().await;
        })
    }

    /// From `last`: in progress names its order; anything final means idle.
    fn current(&self) -> BoxFuture<'_, Result<Current, TerminalError>> {
        Box::pin(async {
            let last = self.client.last().await?;
            Ok(match (last.meaning(), last.order_id) {
                (Some(Code::InProgress), Some(transaction_id)) => Current::InProgress {
                    transaction_id,
                    stage: None,
                },
                _ => Current::Idle,
            })
        })
    }

    fn lookup<'a>(
        &'a self,
        transaction_id: &'a str,
    ) -> BoxFuture<'a, Result<Lookup, TerminalError>> {
        Box::pin(async move {
            let answer = self.client.status(transaction_id).await?;
            let stored = (self.records)(transaction_id.to_string()).await;
            let Some(stored) = stored else {
                let m = format!(
                    "{transaction_id} is not in the journal: nothing to check the answer against"
                );
                return Err(TerminalError::Protocol(m));
            };
            match answer.meaning() {
                Some(Code::NotFound) => Ok(Lookup::NotFound),
                Some(Code::InProgress) => Ok(Lookup::Found(TxnResult::pending(
                    &stored.request,
                    stored.kind,
                    stored.result.started_at.clone(),
                ))),
                _ => match final_result(stored.kind, &stored.request, &answer) {
                    Some(r) => Ok(Lookup::Found(r)),
                    None => Err(TerminalError::Protocol(format!(
                        "status: {}",
                        answer.message()
                    ))),
                },
            }
        })
    }

    fn cancel<'a>(
        &'a self,
        transaction_id: &'a str,
    ) -> BoxFuture<'a, Result<CancelAnswer, TerminalError>> {
        Box::pin(async move {
            let m = format!(
                "the {PROFILE} terminal {} offers no cancel ({transaction_id})",
                self.client.device_id()
            );
            Err(self.refused(422, "unsupported_by_terminal", m))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::client::ClientError;

    #[test]
    fn after_the_request_went_out_no_error_can_say_not_sent() {
        let addr = "127.0.0.1:1".parse().unwrap();
        let refused = TerminalError::NotDelivered(ClientError::Unreachable {
            addr,
            reason: "refused".into(),
        });
        assert!(refused.not_delivered());
        assert!(!delivered(refused).not_delivered());
        let busy = TerminalError::Rejected {
            status: 409,
            code: "terminal_busy".into(),
            message: String::new(),
        };
        let after = delivered(busy);
        assert!(
            matches!(after, TerminalError::Protocol(_)),
            "a refusal after sending is no refusal: {after:?}"
        );
    }
}
