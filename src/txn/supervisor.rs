//! The async driver of one transaction: it feeds the state machine with timers and
//! terminal answers and carries out its actions (calls, journal writes, answers).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinSet;
use tokio::time::{Instant, MissedTickBehavior};
use tokio_util::sync::CancellationToken;

use super::machine::{Action, Event, FailCode, Machine, Outcome, Phase, next};
use super::{Timing, events};
use crate::constants::MQTT_QUEUED_REQUEST_HORIZON;
use crate::http::client::ClientError;
use crate::journal::Journal;
use crate::probe::{Health, LinkState};
use crate::terminal::wire::{
    CancelAnswer, Current, PaymentRequest, TxnKind, TxnResult, TxnStatus, now_rfc3339,
};
use crate::terminal::{Lookup, TerminalError};
use crate::transport::Transport;

/// The slowest pace of background reconciliation.
pub const RECONCILE_MAX_BACKOFF: Duration = Duration::from_secs(30);

/// A request to cancel, answered on the oneshot.
pub type CancelCall = oneshot::Sender<Result<CancelAnswer, TerminalError>>;

/// The finished call of a spawned terminal request, with an optional journal note.
struct Completed {
    event: Event,
    note: Option<(&'static str, String)>,
    status_call: bool,
    /// The transport that answered, when it is not the one the call was made on.
    answered_via: Option<usize>,
}

pub struct Supervisor {
    pub journal: Journal,
    pub transports: Vec<Arc<dyn Transport>>,
    /// The terminal's shared "where new work goes" index; switches update it.
    pub active: Arc<AtomicUsize>,
    /// The transport this transaction starts on.
    pub start_at: usize,
    pub timing: Timing,
    pub kind: TxnKind,
    pub request: PaymentRequest,
    pub result: TxnResult,
    pub machine: Machine,
    pub publish: watch::Sender<TxnResult>,
    pub cancels: mpsc::Receiver<CancelCall>,
    /// Whether a start call is to be sent (false when recovering).
    pub send_start: bool,
    /// The terminal's link health from the probe monitor, if one runs.
    pub health: Option<watch::Receiver<Health>>,
}

struct Driver {
    sup: Supervisor,
    /// Before this instant a lookup's "not found" is not taken as final (see `run`).
    not_found_final_at: Option<Instant>,
    active: usize,
    calls: JoinSet<Completed>,
    status_call_in_flight: bool,
    lookup_wanted: bool,
    reconcile_at: Option<Instant>,
    last_note: Option<(&'static str, String)>,
}

impl Supervisor {
    /// Drives the transaction until it is final (or reconciliation is abandoned, or
    /// the gateway shuts down, in which case the journal keeps it for the next start).
    pub async fn run(self, shutdown: CancellationToken) -> TxnResult {
        let timing = self.timing.clone();
        let start_at = self.start_at;
        // A transaction resumed after a restart may have left a start request queued on
        // the broker for an offline terminal; until that request has expired, "not
        // found" does not prove it will never run.
        let not_found_final_at = (!self.send_start && self.transports.len() > 1)
            .then(|| queued_request_horizon(&self.result.started_at))
            .flatten();
        let mut d = Driver {
            not_found_final_at,
            sup: self,
            active: start_at,
            calls: JoinSet::new(),
            status_call_in_flight: false,
            lookup_wanted: false,
            reconcile_at: None,
            last_note: None,
        };
        let started = Instant::now();
        let deadline = tokio::time::sleep_until(started + timing.time_stop);
        tokio::pin!(deadline);
        let mut ticker = tokio::time::interval_at(started + timing.poll, timing.poll);
        ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);

        let mut health = d.sup.health.take();
        let mut link = health.as_ref().map(|h| h.borrow().state);
        if d.sup.send_start {
            d.spawn_start();
            d.note_sent().await;
        }
        for action in d.sup.machine.initial_actions() {
            d.apply(action).await;
        }
        loop {
            if matches!(d.sup.machine.phase, Phase::Done | Phase::Abandoned) {
                break;
            }
            let waiting = d.sup.machine.phase == Phase::Waiting;
            let reconcile_at = d.reconcile_at;
            let event = tokio::select! {
                biased;
                _ = shutdown.cancelled() => break,
                Some(joined) = d.calls.join_next() => match joined {
                    Ok(done) => {
                        if done.status_call {
                            d.status_call_in_flight = false;
                        }
                        if let Some((name, detail)) = done.note {
                            d.note(name, detail).await;
                        }
                        if let Some(via) = done.answered_via {
                            d.switch_to(via, "answered a reconciliation lookup").await;
                        }
                        done.event
                    }
                    Err(_) => continue,
                },
                Some(reply) = d.sup.cancels.recv() => {
                    d.cancel(reply).await;
                    continue;
                }
                _ = &mut deadline, if waiting => Event::Deadline,
                _ = ticker.tick(), if waiting => Event::PollDue,
                _ = sleep_until_opt(reconcile_at), if reconcile_at.is_some() => {
                    d.reconcile_at = None;
                    Event::ReconcileDue
                }
                state = next_link_state(&mut health) => {
                    let was = link.replace(state);
                    match (was, state) {
                        (Some(LinkState::Down), LinkState::Down) => continue,
                        // The probe monitor saw the link die: act now, not after
                        // `loopsBefore` missed polls.
                        (_, LinkState::Down) => Event::LinkDown,
                        // Back from down: ask at once instead of at the next tick.
                        (Some(LinkState::Down), _) if waiting => Event::PollDue,
                        (Some(LinkState::Down), _) => {
                            d.reconcile_at = Some(Instant::now());
                            continue;
                        }
                        _ => continue,
                    }
                }
            };
            let event = d.hold_not_found(event).await;
            let (machine, actions) = next(d.sup.machine.clone(), event);
            d.sup.machine = machine;
            for action in actions {
                d.apply(action).await;
            }
            if d.lookup_wanted && !d.status_call_in_flight {
                d.lookup_wanted = false;
                d.spawn_lookup();
            }
        }
        d.sup.result
    }
}

/// The next link state the probe monitor publishes; never resolves without one.
async fn next_link_state(health: &mut Option<watch::Receiver<Health>>) -> LinkState {
    if let Some(rx) = health {
        if rx.changed().await.is_ok() {
            return rx.borrow_and_update().state;
        }
        *health = None;
    }
    std::future::pending().await
}

async fn sleep_until_opt(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

impl Driver {
    /// Turns "not found" into a failed lookup (retried later) while a request for this
    /// transaction may still be waiting on the broker.
    async fn hold_not_found(&mut self, event: Event) -> Event {
        match (event, self.not_found_final_at) {
            (Event::LookedUpNotFound, Some(at)) if Instant::now() < at => {
                let reason = "not found yet, but a start request may still be queued on the \
                              MQTT broker until it expires"
                    .to_string();
                self.note(events::POLLED, reason.clone()).await;
                Event::LookupFailed { reason }
            }
            (event, _) => event,
        }
    }

    fn transport(&self) -> Arc<dyn Transport> {
        self.sup.transports[self.active.min(self.sup.transports.len() - 1)].clone()
    }

    fn spawn_start(&mut self) {
        let transport = self.transport();
        let request = self.sup.request.clone();
        let kind = self.sup.kind;
        // The start call stays open as long as the POS may wait; a later answer is
        // found by lookup.
        let wait = self.sup.timing.time_stop;
        self.calls.spawn(async move {
            let event = match transport.start(kind, &request, wait).await {
                Ok(result) => Event::StartAnswered(result),
                Err(TerminalError::NotDelivered(e)) => Event::StartNotDelivered {
                    code: match e {
                        ClientError::Tls { .. } => FailCode::TlsError,
                        _ => FailCode::Unreachable,
                    },
                    reason: e.to_string(),
                },
                Err(TerminalError::Rejected { code, message, .. }) => {
                    Event::StartRejected { code, message }
                }
                Err(e @ (TerminalError::NoAnswer(_) | TerminalError::Protocol(_))) => {
                    Event::StartLost {
                        reason: e.to_string(),
                    }
                }
            };
            Completed {
                event,
                note: None,
                status_call: false,
                answered_via: None,
            }
        });
    }

    fn spawn_poll(&mut self) {
        if self.status_call_in_flight {
            return;
        }
        self.status_call_in_flight = true;
        let transport = self.transport();
        let id = self.sup.request.transaction_id.clone();
        self.calls.spawn(async move {
            let (event, note) = match transport.current().await {
                Ok(Current::InProgress {
                    transaction_id,
                    stage,
                }) if transaction_id == id => (
                    Event::PollInProgress,
                    Some((events::STAGE, stage.unwrap_or_else(|| "in_progress".into()))),
                ),
                Ok(Current::InProgress { transaction_id, .. }) => (
                    Event::PollIdle,
                    Some((
                        events::POLLED,
                        format!("terminal busy with {transaction_id}"),
                    )),
                ),
                Ok(Current::Idle) => (Event::PollIdle, Some((events::POLLED, "idle".into()))),
                Err(e) => (
                    Event::PollFailed {
                        reason: e.to_string(),
                    },
                    None,
                ),
            };
            Completed {
                event,
                note,
                status_call: true,
                answered_via: None,
            }
        });
    }

    fn spawn_lookup(&mut self) {
        if self.status_call_in_flight {
            self.lookup_wanted = true;
            return;
        }
        self.status_call_in_flight = true;
        // While reconciling, any path that answers will do: a lookup only reads the
        // terminal's record, so asking the other transport too is safe, and the truth
        // arrives as soon as either link is back.
        let order: Vec<usize> = if self.sup.machine.phase == Phase::Reconciling {
            std::iter::once(self.active)
                .chain((0..self.sup.transports.len()).filter(|&i| i != self.active))
                .collect()
        } else {
            vec![self.active]
        };
        let transports = self.sup.transports.clone();
        let active = self.active;
        let id = self.sup.request.transaction_id.clone();
        self.calls.spawn(async move {
            let mut event = None;
            let mut answered_via = None;
            for i in order {
                let Some(transport) = transports.get(i) else {
                    continue;
                };
                match transport.lookup(&id).await {
                    Ok(lookup) => {
                        event = Some(match lookup {
                            Lookup::Found(result) => Event::LookedUp(result),
                            Lookup::NotFound => Event::LookedUpNotFound,
                        });
                        answered_via = (i != active).then_some(i);
                        break;
                    }
                    Err(e) => {
                        // The first (active) transport's failure is the one reported.
                        if event.is_none() {
                            event = Some(Event::LookupFailed {
                                reason: e.to_string(),
                            });
                        }
                    }
                }
            }
            Completed {
                event: event.unwrap_or(Event::LookupFailed {
                    reason: "no transport configured".into(),
                }),
                note: None,
                status_call: true,
                answered_via,
            }
        });
    }

    /// Moves this transaction (and the terminal's new work) to transport `to`; journaled.
    async fn switch_to(&mut self, to: usize, why: &str) {
        if to == self.active || to >= self.sup.transports.len() {
            return;
        }
        let from = self.transport().name();
        self.active = to;
        self.sup.active.store(to, Ordering::Relaxed);
        let name = self.transport().name();
        self.sup.result.transport = Some(name.to_string());
        tracing::warn!(
            transaction_id = %self.sup.request.transaction_id,
            from, to = name, why, "transport switch"
        );
        self.record(
            events::TRANSPORT_SWITCH,
            Some(format!("{from} -> {name} ({why})")),
        )
        .await;
        // Live readers (GET /v1/transactions/{id}) see the switch at once.
        self.sup.publish.send_replace(self.sup.result.clone());
    }

    async fn apply(&mut self, action: Action) {
        match action {
            Action::Poll => self.spawn_poll(),
            Action::Lookup => self.spawn_lookup(),
            Action::Resend => {
                self.spawn_start();
                self.note_sent().await;
            }
            Action::Finish(outcome) => self.finish(outcome).await,
            Action::MarkUnknown => {
                self.sup.result.status = TxnStatus::Unknown;
                self.sup.result.result_code = Some("unknown".into());
                self.sup.result.result_message = Some(
                    "no final answer from the terminal within timeStop; ecrlink keeps asking and \
                     GET /v1/transactions/{id} will show the outcome"
                        .into(),
                );
                self.record(events::UNKNOWN, None).await;
                self.sup.publish.send_replace(self.sup.result.clone());
            }
            // The machine switches once; from the transport the transaction started on
            // to the other one. A sale that started on the fallback (the direct link was
            // down a moment ago) thus still gets the direct link if the broker fails it.
            Action::SwitchToFallback => {
                let to = usize::from(self.active == 0);
                let why = format!("{} link failed", self.transport().name());
                self.switch_to(to, &why).await
            }
            Action::ScheduleReconcile(attempt) => {
                self.reconcile_at =
                    Some(Instant::now() + reconcile_delay(self.sup.timing.poll, attempt));
            }
            Action::GiveUp => {
                tracing::error!(
                    transaction_id = %self.sup.request.transaction_id,
                    "reconciliation attempts exhausted; the transaction stays unknown until the next start"
                );
                self.note(
                    events::GAVE_UP,
                    format!("after {} attempts", self.sup.timing.retries),
                )
                .await;
            }
            Action::Note(name, detail) => self.note(name, detail).await,
        }
    }

    /// Journals that the start request is on its way (the request itself was
    /// committed before, at admission).
    async fn note_sent(&mut self) {
        let via = self.transport().name().to_string();
        self.note(events::SENT, format!("via {via}")).await;
    }

    async fn finish(&mut self, outcome: Outcome) {
        // After `unknown`, or for a transaction resumed at start-up, the outcome is a
        // reconciliation: the journal says so.
        let event = if self.sup.result.status == TxnStatus::Unknown || !self.sup.send_start {
            events::RECONCILED
        } else {
            events::FINAL
        };
        let transport = self.transport().name().to_string();
        let r = &mut self.sup.result;
        match outcome {
            Outcome::Terminal(answer) => {
                let started_at = r.started_at.clone();
                *r = answer;
                // The gateway's record keeps its own start time if the terminal omits one.
                if r.started_at.is_empty() {
                    r.started_at = started_at;
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
        }
        r.transport = Some(transport);
        if r.finished_at.is_none() {
            r.finished_at = Some(now_rfc3339());
        }
        tracing::info!(
            transaction_id = %r.transaction_id,
            status = r.status.as_str(),
            result_code = r.result_code.as_deref().unwrap_or(""),
            "transaction final"
        );
        self.record(event, None).await;
        self.sup.publish.send_replace(self.sup.result.clone());
    }

    async fn cancel(&mut self, reply: CancelCall) {
        let id = self.sup.request.transaction_id.clone();
        self.note(events::CANCEL_REQUESTED, String::new()).await;
        let answer = self.transport().cancel(&id).await;
        let detail = match &answer {
            Ok(a) => format!("cancelled={} {}", a.cancelled, a.message),
            Err(e) => format!("no answer: {e}"),
        };
        self.note(events::CANCEL_ANSWER, detail).await;
        let _ = reply.send(answer);
    }

    /// Journals the current result with `event`. A failed write is retried: the
    /// journal is the only memory that survives a crash.
    async fn record(&self, event: &'static str, detail: Option<String>) {
        let mut delay = Duration::from_millis(50);
        for attempt in 1..=5 {
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
    async fn note(&mut self, name: &'static str, detail: String) {
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

/// When every start request a transaction that began at `started_at` (RFC 3339) may
/// have left on the broker has expired, as an `Instant`; `None` if already past or
/// unreadable.
fn queued_request_horizon(started_at: &str) -> Option<Instant> {
    let started =
        time::OffsetDateTime::parse(started_at, &time::format_description::well_known::Rfc3339)
            .ok()?;
    let elapsed = time::OffsetDateTime::now_utc() - started;
    let elapsed = Duration::try_from(elapsed).unwrap_or(Duration::ZERO);
    MQTT_QUEUED_REQUEST_HORIZON
        .checked_sub(elapsed)
        .map(|left| Instant::now() + left)
}

/// 0 → at once; then the poll interval, doubling up to [`RECONCILE_MAX_BACKOFF`].
pub fn reconcile_delay(poll: Duration, attempt: u32) -> Duration {
    if attempt == 0 {
        return Duration::ZERO;
    }
    let factor = 1u32 << (attempt - 1).min(16);
    poll.saturating_mul(factor).min(RECONCILE_MAX_BACKOFF)
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
        let fresh = queued_request_horizon(&fmt(now)).expect("just started");
        let left = fresh - Instant::now();
        assert!(
            left > MQTT_QUEUED_REQUEST_HORIZON - Duration::from_secs(5),
            "{left:?}"
        );
        let older = queued_request_horizon(&fmt(now - Duration::from_secs(100))).unwrap();
        assert!(older - Instant::now() < Duration::from_secs(61));
        assert!(queued_request_horizon(&fmt(now - Duration::from_secs(600))).is_none());
        assert!(queued_request_horizon("yesterday").is_none());
    }
}
