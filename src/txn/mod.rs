//! Transactions: admission (exactly once per `transactionId`, one at a time per
//! terminal, refunds and voids checked against their original), the supervision
//! state machine and its driver, operator resolution, and recovery at start.

mod admission;
mod calls;
pub mod classify;
pub mod machine;
mod machine_delivery;
mod operator;
pub mod originals;
mod record;
pub mod route;
pub mod router;
pub mod supervisor;

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::journal::{Journal, JournalError};
use crate::probe::Health;
use crate::terminal::TerminalError;
use crate::terminal::wire::{TxnResult, TxnStatus};
use crate::transport::Transport;
use supervisor::{Control, ResolveRefused};

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
    pub const NOT_DELIVERED: &str = "not_delivered";
    pub const RESOLVED_BY_OPERATOR: &str = "resolved_by_operator";
}

/// What the supervisors count for `/metrics`.
#[derive(Debug, Default)]
pub struct Counters {
    /// Answers that did not match their request and were not adopted.
    pub answer_mismatches: AtomicU64,
    /// Transactions settled by an operator.
    pub resolved_by_operator: AtomicU64,
    /// Final results journaled, by `device_id`, kind and status.
    pub finals: crate::histogram::LabelledCounter,
    /// Final results that were reconciliations (after `unknown` or a restart), by
    /// `device_id` and status.
    pub reconciled: crate::histogram::LabelledCounter,
    /// Transport switches made by supervisors, by `device_id` and the transport moved to.
    pub transport_switches: crate::histogram::LabelledCounter,
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
    /// Where new work starts: the terminal's router (or a sale's switch) moves it to the
    /// fallback, the router moves it back when the direct link is healthy.
    pub active: Arc<route::ActiveRoute>,
    /// This terminal's `pollSeconds`, when it differs from [`Timing::poll`].
    pub poll: Option<Duration>,
    /// `staticIptimeOut`: how long a start that was not delivered may wait for a route.
    pub delivery_window: Duration,
    /// The probe monitor may move the terminal to an address announced by mDNS.
    pub other_addresses: bool,
}

impl TerminalLink {
    pub fn new(device_id: impl Into<String>, transports: Vec<Arc<dyn Transport>>) -> TerminalLink {
        TerminalLink {
            device_id: device_id.into(),
            transports,
            health: None,
            active: Arc::default(),
            poll: None,
            delivery_window: crate::constants::DEFAULT_DELIVERY_WINDOW,
            other_addresses: false,
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

    /// Fires when the gateway stops: long-lived answers (event streams) end then.
    pub fn shutdown_token(&self) -> &CancellationToken {
        &self.shutdown
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
        let i = link.active.get();
        link.transports.get(i).map(|t| t.name())
    }

    /// When new work for `device_id` last moved, and how many moves since start-up.
    pub fn active_since(&self, device_id: &str) -> Option<(String, u64)> {
        let link = self.terminals.get(device_id)?;
        Some((link.active.since(), link.active.switches()))
    }

    /// The transport new work for `device_id` starts on.
    fn transport_for(&self, device_id: &str) -> Option<Arc<dyn Transport>> {
        let link = self.terminals.get(device_id)?;
        let i = link.active.get();
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
