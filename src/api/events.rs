//! `GET /v1/transactions/{id}/events` as Server-Sent Events: the journaled history
//! first (or what follows `Last-Event-ID`), then each state change once it is
//! committed, and the final result as the last event, after which the stream ends.
//! Only committed events are shown (durable before visible): the stream re-reads the
//! transaction's events after each journal commit that wrote to it.

use std::sync::Arc;

use hyper::Response;
use serde_json::json;
use tokio::sync::broadcast;
use tokio::sync::broadcast::error::RecvError;
use tokio_util::sync::CancellationToken;

use super::{Api, ApiError};
use crate::constants::{SSE_HEARTBEAT, SSE_RETRY};
use crate::http::Body;
use crate::http::sse::{self, Gone, SseSender};
use crate::journal::{Changed, Event, Journal};
use crate::terminal::wire::TxnResult;
use crate::txn::events;

/// The journal events after which a transaction has its final result.
const FINAL_EVENTS: &[&str] = &[
    events::FINAL,
    events::RECONCILED,
    events::RESOLVED_BY_OPERATOR,
];

fn is_final(e: &Event) -> bool {
    FINAL_EVENTS.contains(&e.event.as_str())
}

/// The stream for transaction `id`, resuming after event `after` when given.
pub(super) async fn stream(
    api: &Arc<Api>,
    id: &str,
    after: Option<i64>,
) -> Result<Response<Body>, ApiError> {
    let journal = api.payments.journal().clone();
    // Subscribed before the first read, so a commit between the two is not missed.
    let changes = journal.changes();
    // The first read flushes queued events: a late subscriber gets everything so far.
    let history = journal
        .events(id)
        .await
        .map_err(|e| ApiError::Unavailable(e.to_string()))?;
    if history.is_empty() {
        return Err(ApiError::NotFound(format!("transaction {id} is not known")));
    }
    let (resp, tx) = sse::stream(SSE_HEARTBEAT, SSE_RETRY);
    let live = Live {
        journal,
        id: id.to_string(),
        changes,
        tx,
        shutdown: api.payments.shutdown_token().clone(),
    };
    // Ends with the final event, when the client leaves, or at shutdown.
    tokio::spawn(live.run(history, after.unwrap_or(0)));
    Ok(resp)
}

struct Live {
    journal: Journal,
    id: String,
    changes: broadcast::Receiver<Changed>,
    tx: SseSender,
    shutdown: CancellationToken,
}

impl Live {
    async fn run(mut self, mut events: Vec<Event>, mut last: i64) -> Result<(), Gone> {
        loop {
            let from = last;
            for e in events.iter().filter(|e| e.seq > from) {
                let result = match is_final(e) {
                    true => self.result().await,
                    false => None,
                };
                self.tx.send(frame(&self.id, e, result)).await?;
                last = e.seq;
                if is_final(e) {
                    return Ok(());
                }
            }
            // Resumed after the final event: nothing more will come.
            if events.iter().any(is_final) {
                return Ok(());
            }
            let (changes, shutdown, id) = (&mut self.changes, &self.shutdown, &self.id);
            let more = self
                .tx
                .wait_beating(async {
                    loop {
                        tokio::select! {
                            changed = changes.recv() => match changed {
                                Ok(ids) if ids.contains(id) => return true,
                                Ok(_) => {}
                                // Fell behind: some of the missed commits may be ours.
                                Err(RecvError::Lagged(_)) => return true,
                                Err(RecvError::Closed) => return false,
                            },
                            _ = shutdown.cancelled() => return false,
                        }
                    }
                })
                .await?;
            if !more {
                return Ok(());
            }
            match self.journal.committed_events(&self.id).await {
                Ok(now) => events = now,
                Err(e) => tracing::warn!(error = %e, "event stream: journal read failed"),
            }
        }
    }

    async fn result(&self) -> Option<TxnResult> {
        match self.journal.get(&self.id).await {
            Ok(stored) => stored.map(|s| s.result),
            Err(e) => {
                tracing::warn!(error = %e, "event stream: result not read");
                None
            }
        }
    }
}

/// The SSE frame of one journal event. The event name is the journal's, except a
/// terminal stage, which is named as the terminal names it (`waiting_for_card`, `pin`…).
fn frame(id: &str, e: &Event, result: Option<TxnResult>) -> bytes::Bytes {
    let name = match (e.event.as_str(), &e.detail) {
        (events::STAGE, Some(stage)) => stage.as_str(),
        (name, _) => name,
    };
    let mut data = json!({
        "transactionId": id,
        "event": e.event,
        "at": e.at,
        "detail": e.detail,
    });
    if e.event == events::STAGE {
        data["stage"] = json!(name);
    }
    if let Some(r) = result {
        data["result"] = json!(r);
    }
    sse::event(Some(e.seq), name, &data.to_string())
}
