//! Transactions: admission (exactly once per `transactionId`, one at a time per
//! terminal), the supervision state machine and its driver, and recovery at start.

pub mod machine;
pub mod supervisor;

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{mpsc, oneshot, watch};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::journal::{Begin, Journal, JournalError, Stored};
use crate::probe::Health;
use crate::terminal::TerminalError;
use crate::terminal::wire::{
    CancelAnswer, PaymentRequest, TxnKind, TxnResult, TxnStatus, now_rfc3339,
};
use crate::transport::Transport;
use machine::Machine;
use supervisor::{CancelCall, Supervisor};

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
    #[error("the journal is not available, nothing was sent: {0}")]
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
    cancels: mpsc::Sender<CancelCall>,
}

/// Every transaction of the gateway goes through here.
pub struct Payments {
    journal: Journal,
    timing: Timing,
    terminals: HashMap<String, TerminalLink>,
    /// Serialises the check-then-insert of admission.
    admission: tokio::sync::Mutex<()>,
    in_flight: Mutex<HashMap<String, InFlight>>,
    /// Terminal → the transaction occupying it.
    busy: Mutex<HashMap<String, String>>,
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
        Arc::new(Payments {
            journal,
            timing,
            terminals: terminals
                .into_iter()
                .map(|t| (t.device_id.clone(), t))
                .collect(),
            admission: tokio::sync::Mutex::new(()),
            in_flight: Mutex::new(HashMap::new()),
            busy: Mutex::new(HashMap::new()),
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

    pub fn has_device(&self, device_id: &str) -> bool {
        self.terminals.contains_key(device_id)
    }

    /// The name of the transport new work for `device_id` starts on (`direct`, `mqtt`).
    pub fn active_transport(&self, device_id: &str) -> Option<&'static str> {
        let link = self.terminals.get(device_id)?;
        let i = link.active.load(Ordering::Relaxed);
        link.transports.get(i).map(|t| t.name())
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

    /// The transaction occupying a terminal, if any.
    pub fn busy_with(&self, device_id: &str) -> Option<String> {
        lock(&self.busy).get(device_id).cloned()
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
        if !self.terminals.contains_key(&request.device_id) {
            return Err(SubmitError::UnknownDevice(request.device_id));
        }
        let fingerprint = request.fingerprint(kind);
        let id = request.transaction_id.clone();
        let _admission = self.admission.lock().await;
        if let Some(flight) = lock(&self.in_flight).get(&id) {
            return if flight.fingerprint == fingerprint {
                Ok(Admission::Joined(flight.results.clone()))
            } else {
                Err(SubmitError::Conflict(id))
            };
        }
        if let Some(stored) = self.journal.get(&id).await? {
            return if stored.fingerprint == fingerprint {
                Ok(Admission::Replay(stored.result))
            } else {
                Err(SubmitError::Conflict(id))
            };
        }
        // A transaction whose final result is already published no longer holds the
        // terminal, even if its task has not yet cleared the slot: a POS that has seen
        // the result may start the next sale at once.
        let busy = self.busy_with(&request.device_id).filter(|busy_with| {
            lock(&self.in_flight)
                .get(busy_with)
                .is_none_or(|f| !f.results.borrow().status.is_final())
        });
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
        // Committed before a byte goes to the terminal.
        match self.journal.begin(kind, &request, &result).await? {
            Begin::Created => {}
            Begin::Existing(stored) => {
                // Another gateway process shares the journal; never run it twice.
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
        // New work starts where the link stands now (direct unless a switch left it on
        // the fallback and the direct link has not been seen healthy since).
        let start_at = active
            .load(Ordering::Relaxed)
            .min(transports.len().saturating_sub(1));
        let (publish, results) = watch::channel(stored.result.clone());
        let (cancel_tx, cancels) = mpsc::channel(4);
        lock(&self.in_flight).insert(
            id.clone(),
            InFlight {
                fingerprint: stored.fingerprint.clone(),
                results: results.clone(),
                cancels: cancel_tx,
            },
        );
        lock(&self.busy).insert(device.clone(), id.clone());
        let mut timing = self.timing.clone();
        if let Some(poll) = link.and_then(|t| t.poll) {
            timing.poll = poll;
        }
        let has_fallback = transports.len() > 1;
        // `has_fallback` means "another transport to switch to", whichever it starts on.
        let machine = if recovering {
            Machine::recovering(timing.loops_before, timing.retries, has_fallback)
        } else {
            Machine::new(timing.loops_before, timing.retries, has_fallback)
        };
        let supervisor = Supervisor {
            journal: self.journal.clone(),
            transports,
            active,
            start_at,
            timing,
            kind: stored.kind,
            request: stored.request,
            result: stored.result,
            machine,
            publish,
            cancels,
            send_start: !recovering,
            health,
        };
        let this = self.clone();
        let shutdown = self.shutdown.clone();
        self.tracker.spawn(async move {
            supervisor.run(shutdown).await;
            lock(&this.in_flight).remove(&id);
            let mut busy = lock(&this.busy);
            if busy.get(&device) == Some(&id) {
                busy.remove(&device);
            }
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

    /// Asks the terminal to abort a transaction in flight (before authorisation).
    pub async fn cancel(&self, transaction_id: &str) -> Result<CancelAnswer, CancelError> {
        let sender = lock(&self.in_flight)
            .get(transaction_id)
            .map(|f| f.cancels.clone());
        let Some(sender) = sender else {
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
        sender.send(reply).await.map_err(|_| CancelError::Ended)?;
        Ok(answer.await.map_err(|_| CancelError::Ended)??)
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
