//! Transactions: admission (exactly once per `transactionId`, one at a time per
//! terminal, refunds and voids checked against their original), the supervision
//! state machine and its driver, operator resolution, and recovery at start.

mod calls;
pub mod classify;
pub mod machine;
pub mod originals;
mod record;
pub mod supervisor;

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{mpsc, oneshot, watch};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::constants::MQTT_QUEUED_REQUEST_HORIZON;
use crate::journal::{Begin, Journal, JournalError, Stored};
use crate::probe::Health;
use crate::terminal::TerminalError;
use crate::terminal::wire::{
    CancelAnswer, PaymentRequest, TxnKind, TxnResult, TxnStatus, now_rfc3339,
};
use crate::transport::Transport;
use machine::{Machine, Settings};
use supervisor::{Control, ResolveRefused, Supervisor};

/// Names of journal events, so an operator's query and the code agree.
pub mod events {
    pub const STAGE: &str = "stage";
    pub const POLLED: &str = "polled";
    pub const UNKNOWN: &str = "unknown";
    pub const SENT: &str = "sent";
    pub const FINAL: &str = "final";
    pub const RECONCILED: &str = "reconciled";
    pub const TRANSPORT_SWITCH: &str = "transport_switch";
    pub const GAVE_UP: &str = "reconcile_gave_up";
    pub const CANCEL_REQUESTED: &str = "cancel_requested";
    pub const CANCEL_ANSWER: &str = "cancel_answer";
    pub const RECOVERING: &str = "recovering";
    pub const POLL_MISSED: &str = "poll_missed";
    pub const ANSWER_LOST: &str = "answer_lost";
    pub const ANSWER_MISMATCH: &str = "answer_mismatch";
    pub const NOT_FOUND: &str = "not_found";
    pub const LINK_DOWN: &str = "link_down";
    pub const RESOLVED_BY_OPERATOR: &str = "resolved_by_operator";
}

/// What the supervisors count for `/metrics`.
#[derive(Debug, Default)]
pub struct Counters {
    /// Answers that did not match their request and were not adopted.
    pub answer_mismatches: AtomicU64,
    /// Transactions settled by an operator.
    pub resolved_by_operator: AtomicU64,
}

/// The supervision numbers from the configuration.
#[derive(Clone, Debug)]
pub struct Timing {
    /// `pollSeconds`: how often to ask "is the payment in progress?".
    pub poll: Duration,
    /// `timeStop`: the longest the POS waits before hearing `unknown`.
    pub time_stop: Duration,
    /// `loopsBefore`: unanswered polls in a row before switching transport.
    pub loops_before: u32,
    /// `retries`: background reconciliation attempts after `unknown`.
    pub retries: u32,
    /// `notFoundHorizonSeconds`: the least time between the two `not_found` lookups
    /// that "never arrived" needs.
    pub not_found_horizon: Duration,
}

/// How one terminal is reached: the primary transport first, then the fallback.
pub struct TerminalLink {
    pub device_id: String,
    pub transports: Vec<Arc<dyn Transport>>,
    /// The probe monitor's view of the link, when one runs.
    pub health: Option<watch::Receiver<Health>>,
    /// Index into `transports` that new work starts on: a switch moves it to the
    /// fallback, the failback monitor moves it back when the direct link is healthy.
    pub active: Arc<AtomicUsize>,
    /// This terminal's `pollSeconds`, when it differs from [`Timing::poll`].
    pub poll: Option<Duration>,
}

impl TerminalLink {
    pub fn new(device_id: impl Into<String>, transports: Vec<Arc<dyn Transport>>) -> TerminalLink {
        TerminalLink {
            device_id: device_id.into(),
            transports,
            health: None,
            active: Arc::new(AtomicUsize::new(0)),
            poll: None,
        }
    }

    /// Lets the supervisors of this terminal act on the probe monitor's verdicts.
    pub fn with_health(mut self, health: watch::Receiver<Health>) -> TerminalLink {
        self.health = Some(health);
        self
    }
}

/// What admission decided for a request.
pub enum Admission {
    /// This request started a new transaction: wait on it.
    Started(watch::Receiver<TxnResult>),
    /// The same request is already in flight: wait on that one.
    Joined(watch::Receiver<TxnResult>),
    /// The id is known and not in flight: its stored result, replayed.
    Replay(TxnResult),
}

#[derive(Debug, thiserror::Error)]
pub enum SubmitError {
    #[error("no terminal with deviceId {0} is configured")]
    UnknownDevice(String),
    #[error("transaction {0} was already submitted with a different body")]
    Conflict(String),
    #[error("terminal {device} is busy with transaction {busy_with}")]
    Busy { device: String, busy_with: String },
    #[error("{0}")]
    InvalidOriginal(String),
    #[error("the journal is not available, nothing was sent: {0}")]
    Journal(#[from] JournalError),
}

#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    #[error("transaction {0} is not known")]
    NotFound(String),
    #[error(transparent)]
    Refused(#[from] ResolveRefused),
    #[error("the transaction ended while the resolution was on its way")]
    Ended,
    #[error(transparent)]
    Journal(#[from] JournalError),
}

#[derive(Debug, thiserror::Error)]
pub enum CancelError {
    #[error("transaction {0} is not known")]
    NotFound(String),
    #[error("the terminal did not answer the cancel request: {0}")]
    Terminal(#[from] TerminalError),
    #[error("the transaction ended while the cancel was on its way")]
    Ended,
    #[error(transparent)]
    Journal(#[from] JournalError),
}

struct InFlight {
    fingerprint: String,
    results: watch::Receiver<TxnResult>,
    controls: mpsc::Sender<Control>,
}

/// Every transaction of the gateway goes through here.
pub struct Payments {
    journal: Journal,
    timing: Timing,
    terminals: HashMap<String, TerminalLink>,
    /// Per terminal: serialises its check-then-insert of admission, so lanes never wait
    /// on each other (a `transactionId` names one device in its body, and the journal's
    /// begin is atomic besides).
    admission: HashMap<String, tokio::sync::Mutex<()>>,
    /// Held by refunds and voids across lanes while their original is checked and they
    /// are journaled, and by resolutions outside a supervisor.
    originals: tokio::sync::Mutex<()>,
    in_flight: Mutex<HashMap<String, InFlight>>,
    /// Terminal → the transactions that may still be running on it.
    busy: Arc<Mutex<HashMap<String, BTreeSet<String>>>>,
    counters: Arc<Counters>,
    tracker: TaskTracker,
    shutdown: CancellationToken,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Payments {
    pub fn new(
        journal: Journal,
        timing: Timing,
        terminals: Vec<TerminalLink>,
        shutdown: CancellationToken,
    ) -> Arc<Payments> {
        let admission = terminals
            .iter()
            .map(|t| (t.device_id.clone(), tokio::sync::Mutex::new(())))
            .collect();
        Arc::new(Payments {
            journal,
            timing,
            terminals: terminals
                .into_iter()
                .map(|t| (t.device_id.clone(), t))
                .collect(),
            admission,
            originals: tokio::sync::Mutex::new(()),
            in_flight: Mutex::new(HashMap::new()),
            busy: Arc::new(Mutex::new(HashMap::new())),
            counters: Arc::new(Counters::default()),
            tracker: TaskTracker::new(),
            shutdown,
        })
    }

    pub fn journal(&self) -> &Journal {
        &self.journal
    }

    pub fn timing(&self) -> &Timing {
        &self.timing
    }

    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    pub fn has_device(&self, device_id: &str) -> bool {
        self.terminals.contains_key(device_id)
    }

    /// The name of the transport new work for `device_id` starts on (`direct`, `mqtt`).
    pub fn active_transport(&self, device_id: &str) -> Option<&'static str> {
        let link = self.terminals.get(device_id)?;
        let i = link.active.load(Ordering::Relaxed);
        link.transports.get(i).map(|t| t.name())
    }

    /// The transport new work for `device_id` starts on.
    fn transport_for(&self, device_id: &str) -> Option<Arc<dyn Transport>> {
        let link = self.terminals.get(device_id)?;
        let i = link.active.load(Ordering::Relaxed);
        link.transports.get(i).cloned()
    }

    /// What each transport of `device_id` reports about itself (broker, presence).
    pub fn transport_details(&self, device_id: &str) -> Vec<serde_json::Value> {
        self.terminals
            .get(device_id)
            .map(|link| {
                link.transports
                    .iter()
                    .filter_map(|t| t.describe())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// A transaction that may still be running on the terminal, if any. One whose
    /// final result is already published no longer holds it, even if its task has
    /// not yet cleared the slot: a POS that has seen the result may sell again at once.
    pub fn busy_with(&self, device_id: &str) -> Option<String> {
        let busy = lock(&self.busy);
        let in_flight = lock(&self.in_flight);
        busy.get(device_id)?
            .iter()
            .find(|id| {
                in_flight
                    .get(*id)
                    .is_none_or(|f| !f.results.borrow().status.is_final())
            })
            .cloned()
    }

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
        // Committed before a byte goes to the terminal; the connection to it is opened
        // meanwhile, so the start call does not wait for a handshake after the fsync.
        let warm = self.transport_for(&request.device_id);
        let (begun, ()) = tokio::join!(self.journal.begin(kind, &request, &result), async {
            if let Some(t) = &warm {
                t.warm().await;
            }
        });
        match begun? {
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
            start_at: active.load(Ordering::Relaxed),
            not_found_horizon: timing.not_found_horizon,
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
        let supervisor = Supervisor {
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

    /// Waits for every supervisor to stop (after the shutdown token fired).
    pub async fn wait_stopped(&self) {
        self.tracker.close();
        self.tracker.wait().await;
    }
}

/// Waits for a final result, for at most `wait`. The request that started the
/// transaction also stops at `unknown` (its supervisor marks it at `timeStop`); a
/// repeat keeps waiting for the truth for its own `wait`.
pub async fn wait_result(
    mut results: watch::Receiver<TxnResult>,
    wait: Duration,
    stop_at_unknown: bool,
) -> TxnResult {
    let settled =
        |r: &TxnResult| r.status.is_final() || (stop_at_unknown && r.status == TxnStatus::Unknown);
    let waited = tokio::time::timeout(wait, async {
        results.wait_for(settled).await.map(|r| r.clone())
    })
    .await;
    match waited {
        Ok(Ok(r)) => r,
        _ => results.borrow().clone(),
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
