//! The journal writes of one transaction. A final result is published — to the POS,
//! to repeats, to `GET /v1/transactions/{id}` — only after its write committed; when
//! the journal cannot be written, the write is retried until it can, and meanwhile
//! the POS hears nothing but `unknown` at `timeStop`.

use tokio::time::Instant;

use super::events;
use super::machine::{FailCode, Outcome};
use super::supervisor::Driver;
use crate::constants::{JOURNAL_RETRY_FIRST, JOURNAL_RETRY_MAX};
use crate::terminal::wire::{TxnStatus, now_rfc3339};

/// How many times a non-final state change (`unknown`, a switch) is tried before
/// the supervisor goes on without it; the final result is tried until it lands.
const STATE_WRITE_TRIES: u32 = 3;

const UNKNOWN_MESSAGE: &str = "no final answer from the terminal within timeStop; ecrlink keeps \
                               asking and GET /v1/transactions/{id} will show the outcome";

impl Driver {
    /// Journals that the start request is on its way (the request itself was
    /// committed before, at admission).
    pub(super) async fn note_sent(&mut self) {
        let via = self.transport().name().to_string();
        self.note(events::SENT, format!("via {via}")).await;
    }

    pub(super) async fn mark_unknown(&mut self) {
        self.sup.result.status = TxnStatus::Unknown;
        self.sup.result.result_code = Some("unknown".into());
        self.sup.result.result_message = Some(UNKNOWN_MESSAGE.into());
        self.record(events::UNKNOWN, None).await;
        // `unknown` invents nothing, so the POS hears it even if the journal is down.
        self.sup.publish.send_replace(self.sup.result.clone());
    }

    pub(super) async fn finish(&mut self, outcome: Outcome) {
        // After `unknown`, or for a transaction resumed at start-up, the outcome is a
        // reconciliation: the journal says so.
        let event = match &outcome {
            Outcome::Resolved { .. } => events::RESOLVED_BY_OPERATOR,
            _ if self.sup.result.status == TxnStatus::Unknown || !self.sup.send_start => {
                events::RECONCILED
            }
            _ => events::FINAL,
        };
        let detail = match &outcome {
            Outcome::Resolved { reason, .. } => Some(reason.clone()),
            _ => None,
        };
        let mut r = self.sup.result.clone();
        let transport = self.transport().name().to_string();
        match outcome {
            Outcome::Terminal(answer) => {
                let started_at = r.started_at.clone();
                r = answer;
                // The gateway's record keeps its own start time if the terminal omits one.
                if r.started_at.is_empty() {
                    r.started_at = started_at;
                }
                if r.device_id.is_empty() {
                    r.device_id = self.sup.request.device_id.clone();
                }
            }
            Outcome::NotDelivered { code, reason } => {
                r.status = TxnStatus::Failed;
                r.result_code = Some(
                    match code {
                        FailCode::TlsError => "terminal_tls_error",
                        FailCode::Unreachable => "terminal_unreachable",
                    }
                    .into(),
                );
                r.result_message = Some(format!("{reason}; nothing was sent, nothing was charged"));
            }
            Outcome::Rejected { code, message } => {
                r.status = TxnStatus::Failed;
                r.result_code = Some(code);
                r.result_message = Some(format!("the terminal refused the request: {message}"));
            }
            Outcome::NeverArrived => {
                r.status = TxnStatus::Failed;
                r.result_code = Some("not_received".into());
                r.result_message = Some(
                    "the terminal has no record of this transaction; nothing was charged".into(),
                );
            }
            Outcome::Resolved { status, reason } => {
                r.status = status;
                r.result_code = Some(events::RESOLVED_BY_OPERATOR.into());
                r.result_message = Some(format!("settled by an operator: {reason}"));
            }
        }
        r.transport = Some(transport);
        if r.finished_at.is_none() {
            r.finished_at = Some(now_rfc3339());
        }
        if !self.persist_final(&r, event, detail).await {
            return;
        }
        tracing::info!(
            transaction_id = %r.transaction_id,
            status = r.status.as_str(),
            result_code = r.result_code.as_deref().unwrap_or(""),
            "transaction final"
        );
        self.sup.result = r;
        self.sup.publish.send_replace(self.sup.result.clone());
    }

    /// Writes the final result until the journal takes it; false if the gateway shut
    /// down first (the journal still holds the transaction as open, so the next
    /// start asks the terminal again). While it waits, the POS still waiting hears
    /// `unknown` at `timeStop`, never the unwritten result.
    async fn persist_final(
        &mut self,
        r: &crate::terminal::wire::TxnResult,
        event: &'static str,
        detail: Option<String>,
    ) -> bool {
        let mut delay = JOURNAL_RETRY_FIRST;
        let mut attempt = 0u32;
        let mut event = event;
        let shutdown = self.shutdown.clone();
        loop {
            // The POS heard `unknown` meanwhile: the result, when it lands, is a
            // reconciliation.
            if event == events::FINAL && self.sup.result.status == TxnStatus::Unknown {
                event = events::RECONCILED;
            }
            attempt += 1;
            match self.sup.journal.update(r, event, detail.clone()).await {
                Ok(()) => {
                    let c = &self.sup.counters;
                    let (device, status) = (r.device_id.as_str(), r.status.as_str());
                    c.finals.bump(&[device, r.kind.as_str(), status]);
                    if event == events::RECONCILED {
                        c.reconciled.bump(&[device, status]);
                    }
                    return true;
                }
                Err(e) => tracing::error!(
                    attempt,
                    error = %e,
                    transaction_id = %r.transaction_id,
                    "final result not journaled; holding it (and the terminal) until the journal \
                     can be written"
                ),
            }
            let wake = Instant::now() + delay;
            let deadline = self.deadline;
            let unknown_due = self.sup.result.status == TxnStatus::InProgress;
            tokio::select! {
                _ = shutdown.cancelled() => return false,
                _ = tokio::time::sleep_until(wake) => {}
                _ = tokio::time::sleep_until(deadline), if unknown_due && deadline < wake => {
                    self.mark_unknown().await;
                }
            }
            delay = (delay * 2).min(JOURNAL_RETRY_MAX);
        }
    }

    /// Journals the current result with `event`, a few tries; the supervisor goes on
    /// without it (the journal keeps the last state it took).
    pub(super) async fn record(&self, event: &'static str, detail: Option<String>) {
        let mut delay = JOURNAL_RETRY_FIRST;
        for attempt in 1..=STATE_WRITE_TRIES {
            match self
                .sup
                .journal
                .update(&self.sup.result, event, detail.clone())
                .await
            {
                Ok(()) => return,
                Err(e) => {
                    tracing::error!(attempt, error = %e, transaction_id = %self.sup.result.transaction_id, "journal write failed");
                    tokio::time::sleep(delay).await;
                    delay *= 2;
                }
            }
        }
    }

    /// Journals an event, skipping an exact repeat of the previous note.
    pub(super) async fn note(&mut self, name: &'static str, detail: String) {
        let note = (name, detail);
        if self.last_note.as_ref() == Some(&note) {
            return;
        }
        let detail = (!note.1.is_empty()).then(|| note.1.clone());
        if let Err(e) = self
            .sup
            .journal
            .event(&self.sup.request.transaction_id, name, detail)
            .await
        {
            tracing::warn!(error = %e, "journal event not written");
        }
        self.last_note = Some(note);
    }
}
