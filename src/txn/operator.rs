//! What the API asks of a transaction after admission: its state, a cancel at the
//! terminal, and an operator's resolution of one that stayed `unknown`.

use std::sync::atomic::Ordering;

use tokio::sync::{mpsc, oneshot};

use super::supervisor::{Control, ResolveRefused};
use super::{CancelError, Payments, ResolveError, events, lock};
use crate::journal::JournalError;
use crate::terminal::wire::{CancelAnswer, TxnResult, TxnStatus, now_rfc3339};

impl Payments {
    /// The latest known state of a transaction: live if in flight, else journaled.
    pub async fn get(&self, transaction_id: &str) -> Result<Option<TxnResult>, JournalError> {
        if let Some(flight) = lock(&self.in_flight).get(transaction_id) {
            return Ok(Some(flight.results.borrow().clone()));
        }
        Ok(self.journal.get(transaction_id).await?.map(|s| s.result))
    }

    fn controls(&self, transaction_id: &str) -> Option<mpsc::Sender<Control>> {
        lock(&self.in_flight)
            .get(transaction_id)
            .map(|f| f.controls.clone())
    }

    /// Asks the terminal to abort a transaction in flight (before authorisation).
    pub async fn cancel(&self, transaction_id: &str) -> Result<CancelAnswer, CancelError> {
        let Some(sender) = self.controls(transaction_id) else {
            return match self.journal.get(transaction_id).await? {
                Some(stored) => Ok(CancelAnswer {
                    transaction_id: transaction_id.to_string(),
                    cancelled: false,
                    message: format!("already final: {}", stored.result.status.as_str()),
                }),
                None => Err(CancelError::NotFound(transaction_id.to_string())),
            };
        };
        let (reply, answer) = oneshot::channel();
        sender
            .send(Control::Cancel(reply))
            .await
            .map_err(|_| CancelError::Ended)?;
        Ok(answer.await.map_err(|_| CancelError::Ended)??)
    }

    /// An operator settles a transaction that stayed `unknown` (journaled as
    /// `resolved_by_operator` with the reason).
    pub async fn resolve(
        &self,
        transaction_id: &str,
        status: TxnStatus,
        reason: String,
    ) -> Result<TxnResult, ResolveError> {
        if let Some(sender) = self.controls(transaction_id) {
            let (reply, answer) = oneshot::channel();
            sender
                .send(Control::Resolve {
                    status,
                    reason,
                    reply,
                })
                .await
                .map_err(|_| ResolveError::Ended)?;
            return Ok(answer.await.map_err(|_| ResolveError::Ended)??);
        }
        // Not supervised (its terminal is no longer configured): settle it in the journal.
        let _originals = self.originals.lock().await;
        let stored = self
            .journal
            .get(transaction_id)
            .await?
            .ok_or_else(|| ResolveError::NotFound(transaction_id.to_string()))?;
        let mut r = stored.result;
        if r.status != TxnStatus::Unknown {
            return Err(ResolveRefused::NotUnknown(r.status.as_str()).into());
        }
        r.status = status;
        r.result_code = Some(events::RESOLVED_BY_OPERATOR.into());
        r.result_message = Some(format!("settled by an operator: {reason}"));
        r.finished_at = Some(now_rfc3339());
        self.journal
            .update(&r, events::RESOLVED_BY_OPERATOR, Some(reason))
            .await?;
        self.counters
            .resolved_by_operator
            .fetch_add(1, Ordering::Relaxed);
        Ok(r)
    }
}
