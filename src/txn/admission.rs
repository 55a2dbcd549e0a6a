//! Admission of a request — replay, join, refusal, or journaled and started — and
//! recovery of every unfinished transaction at start-up; each becomes a supervisor.

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{mpsc, watch};

use super::machine::{Machine, Settings};
use super::supervisor::Supervisor;
use super::{Admission, InFlight, Payments, SubmitError, events, lock, originals};
use crate::constants::MQTT_QUEUED_REQUEST_HORIZON;
use crate::journal::{Begin, JournalError, Stored};
use crate::terminal::wire::{PaymentRequest, TxnKind, TxnResult, now_rfc3339};

impl Payments {
    /// Resumes every unfinished transaction of the journal. Each one holds its
    /// terminal until reconciled, so no new sale starts on a terminal whose last
    /// outcome is not yet known. Returns how many were resumed.
    pub async fn recover(self: &Arc<Self>) -> Result<usize, JournalError> {
        let open = self.journal.open_transactions().await?;
        let n = open.len();
        for stored in open {
            if !self.terminals.contains_key(&stored.request.device_id) {
                tracing::error!(
                    transaction_id = %stored.request.transaction_id,
                    device_id = %stored.request.device_id,
                    "unfinished transaction for a terminal no longer configured; left as is"
                );
                continue;
            }
            tracing::warn!(
                transaction_id = %stored.request.transaction_id,
                status = stored.result.status.as_str(),
                "resuming an unfinished transaction: asking the terminal"
            );
            self.journal
                .event(&stored.request.transaction_id, events::RECOVERING, None)
                .await?;
            let _ = self.launch(stored, true);
        }
        Ok(n)
    }

    /// Admits a request: replays, joins, refuses, or journals and starts it.
    pub async fn submit(
        self: &Arc<Self>,
        kind: TxnKind,
        request: PaymentRequest,
    ) -> Result<Admission, SubmitError> {
        let Some(lane) = self.admission.get(&request.device_id) else {
            return Err(SubmitError::UnknownDevice(request.device_id));
        };
        let fingerprint = request.fingerprint(kind);
        let id = request.transaction_id.clone();
        let _lane = lane.lock().await;
        let _originals = match kind.needs_original() {
            true => Some(self.originals.lock().await),
            false => None,
        };
        if let Some(flight) = lock(&self.in_flight).get(&id) {
            return if flight.fingerprint == fingerprint {
                Ok(Admission::Joined(flight.results.clone()))
            } else {
                Err(SubmitError::Conflict(id))
            };
        }
        let busy = self.busy_with(&request.device_id);
        // A finished transaction is replayed even while its terminal is busy, and a
        // refund or void before its original is checked. A new sale on a free terminal
        // skips this read: `begin` finds a journaled id all the same.
        if (busy.is_some() || kind.needs_original())
            && let Some(stored) = self.journal.get(&id).await?
        {
            return if stored.fingerprint == fingerprint {
                Ok(Admission::Replay(stored.result))
            } else {
                Err(SubmitError::Conflict(id))
            };
        }
        if let Err(rule) = originals::not_itself(&request) {
            return Err(SubmitError::InvalidOriginal(rule));
        }
        if let Some(original_id) = request.original_transaction_id.as_deref()
            && kind.needs_original()
            && let Some(original) = self.journal.get(original_id).await?
        {
            let undoing = self.journal.undoing(original_id).await?;
            originals::check(kind, &request, &original, &undoing)
                .map_err(SubmitError::InvalidOriginal)?;
        }
        if let Some(busy_with) = busy {
            return Err(SubmitError::Busy {
                device: request.device_id,
                busy_with,
            });
        }
        let mut result = TxnResult::pending(&request, kind, now_rfc3339());
        result.transport = self
            .active_transport(&request.device_id)
            .map(str::to_string);
        // Committed before a byte goes to the terminal. The connection to it is opened
        // meanwhile, so the start call usually finds the handshake done; nothing waits
        // for that (a terminal that does not answer costs the sale no extra timeout).
        if let Some(transport) = self.transport_for(&request.device_id) {
            tokio::spawn(async move { transport.warm().await });
        }
        match self.journal.begin(kind, &request, &result).await? {
            Begin::Created => {}
            Begin::Existing(stored) => {
                // Journaled before (or by another gateway process sharing the journal):
                // never run it twice.
                return if stored.fingerprint == fingerprint {
                    Ok(Admission::Replay(stored.result))
                } else {
                    Err(SubmitError::Conflict(id))
                };
            }
        }
        tracing::info!(
            transaction_id = %id,
            kind = kind.as_str(),
            amount = request.amount,
            currency = %request.currency_code,
            "transaction journaled; sending to the terminal"
        );
        let stored = Stored {
            kind,
            fingerprint,
            request,
            result,
        };
        Ok(Admission::Started(self.launch(stored, false)))
    }

    /// Registers the transaction as in flight, occupies its terminal and spawns its
    /// supervisor.
    fn launch(self: &Arc<Self>, stored: Stored, recovering: bool) -> watch::Receiver<TxnResult> {
        let id = stored.request.transaction_id.clone();
        let device = stored.request.device_id.clone();
        let link = self.terminals.get(&device);
        let health = link.and_then(|t| t.health.clone());
        let (transports, active) = link
            .map(|t| (t.transports.clone(), t.active.clone()))
            .unwrap_or_default();
        let (publish, results) = watch::channel(stored.result.clone());
        let (controls_tx, controls) = mpsc::channel(4);
        lock(&self.in_flight).insert(
            id.clone(),
            InFlight {
                fingerprint: stored.fingerprint.clone(),
                results: results.clone(),
                controls: controls_tx,
            },
        );
        lock(&self.busy)
            .entry(device.clone())
            .or_default()
            .insert(id.clone());
        let mut timing = self.timing.clone();
        if let Some(poll) = link.and_then(|t| t.poll) {
            timing.poll = poll;
        }
        let settings = Settings {
            loops_before: timing.loops_before,
            max_reconcile_attempts: timing.retries,
            transports: transports.len(),
            // New work starts where the link stands now (direct unless a switch left it
            // on the fallback and the direct link has not been seen healthy since).
            start_at: active.get(),
            not_found_horizon: timing.not_found_horizon,
            other_addresses: link.is_some_and(|t| t.other_addresses),
            // A transaction resumed after a restart may have left a start request on
            // the broker for an offline terminal; until it has expired, "not found"
            // does not prove it will never run.
            never_arrived_after: if recovering && transports.len() > 1 {
                queued_request_horizon(&stored.result.started_at)
            } else {
                Duration::ZERO
            },
        };
        let machine = if recovering {
            Machine::recovering(settings)
        } else {
            Machine::new(settings)
        };
        let busy = self.busy.clone();
        let (busy_device, busy_id) = (device.clone(), id.clone());
        let free = move || release(&busy, &busy_device, &busy_id);
        let mut result = stored.result;
        if result.transport.is_none() {
            result.transport = transports.get(machine.active).map(|t| t.name().to_string());
        }
        let delivery_window = link.map_or(crate::constants::DEFAULT_DELIVERY_WINDOW, |t| {
            t.delivery_window
        });
        let supervisor = Supervisor {
            delivery_window,
            journal: self.journal.clone(),
            transports,
            active,
            timing,
            kind: stored.kind,
            request: stored.request,
            result,
            machine,
            publish,
            controls,
            send_start: !recovering,
            health,
            counters: self.counters.clone(),
            release: Some(Box::new(free)),
        };
        let this = self.clone();
        let shutdown = self.shutdown.clone();
        self.tracker.spawn(async move {
            let result = supervisor.run(shutdown).await;
            if result.result_code.as_deref() == Some(events::RESOLVED_BY_OPERATOR) {
                this.counters
                    .resolved_by_operator
                    .fetch_add(1, Ordering::Relaxed);
            }
            lock(&this.in_flight).remove(&id);
            release(&this.busy, &device, &id);
        });
        results
    }
}

/// Frees `device` of transaction `id`.
fn release(busy: &Mutex<HashMap<String, BTreeSet<String>>>, device: &str, id: &str) {
    let mut busy = lock(busy);
    if let Some(ids) = busy.get_mut(device) {
        ids.remove(id);
        if ids.is_empty() {
            busy.remove(device);
        }
    }
}

/// How long after its supervisor starts a transaction that began at `started_at`
/// (RFC 3339) may still have a start request waiting on the broker; zero if past or
/// unreadable.
fn queued_request_horizon(started_at: &str) -> Duration {
    let Ok(started) =
        time::OffsetDateTime::parse(started_at, &time::format_description::well_known::Rfc3339)
    else {
        return Duration::ZERO;
    };
    let elapsed = Duration::try_from(time::OffsetDateTime::now_utc() - started).unwrap_or_default();
    MQTT_QUEUED_REQUEST_HORIZON.saturating_sub(elapsed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queued_request_horizon_counts_from_the_start() {
        let now = time::OffsetDateTime::now_utc();
        let fmt = |t: time::OffsetDateTime| {
            t.format(&time::format_description::well_known::Rfc3339)
                .unwrap()
        };
        let fresh = queued_request_horizon(&fmt(now));
        assert!(
            fresh > MQTT_QUEUED_REQUEST_HORIZON - Duration::from_secs(5),
            "{fresh:?}"
        );
        let older = queued_request_horizon(&fmt(now - Duration::from_secs(100)));
        assert!(older < Duration::from_secs(61), "{older:?}");
        assert_eq!(
            queued_request_horizon(&fmt(now - Duration::from_secs(600))),
            Duration::ZERO
        );
        assert_eq!(queued_request_horizon("yesterday"), Duration::ZERO);
    }
}
