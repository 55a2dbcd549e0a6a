//! The async driver of one transaction: it turns timers, link states, operator
//! requests and terminal answers into state-machine events and carries out the
//! machine's actions. The calls themselves are in `calls`, the journal writes in
//! `record`; every decision is the machine's.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinSet;
use tokio::time::{Instant, MissedTickBehavior};
use tokio_util::sync::CancellationToken;

use super::machine::{Action, Event, Machine, Phase, Routes, next, route_for};
use super::{Counters, Timing, events};
use crate::constants::{ABANDONED_RECONCILE_INTERVAL, RECONCILE_MAX_BACKOFF, ROUTE_CHECK_INTERVAL};
use crate::journal::Journal;
use crate::probe::{Health, LinkState};
use crate::terminal::TerminalError;
use crate::terminal::wire::{CancelAnswer, PaymentRequest, TxnKind, TxnResult, TxnStatus};
use crate::transport::Transport;

/// A request to cancel, answered on the oneshot.
pub type CancelCall = oneshot::Sender<Result<CancelAnswer, TerminalError>>;

/// Why an operator's resolution was not taken.
#[derive(Debug, thiserror::Error)]
pub enum ResolveRefused {
    #[error("transaction is {0}, not unknown: only an unknown transaction can be resolved")]
    NotUnknown(&'static str),
    #[error("the resolution could not be journaled; try again")]
    NotDurable,
}

/// What the API asks of a running transaction.
pub enum Control {
    Cancel(CancelCall),
    Resolve {
        status: TxnStatus,
        reason: String,
        reply: oneshot::Sender<Result<TxnResult, ResolveRefused>>,
    },
}

/// The finished call of a spawned terminal request, with an optional journal note.
pub(super) struct Completed {
    pub event: Event,
    pub note: Option<(&'static str, String)>,
    pub status_call: bool,
    /// The transport that answered, when it is not the one the call was made on.
    pub answered_via: Option<usize>,
}

pub struct Supervisor {
    /// `staticIptimeOut`: how long a start that was not delivered may wait for a route.
    pub delivery_window: std::time::Duration,
    pub journal: Journal,
    pub transports: Vec<Arc<dyn Transport>>,
    /// The terminal's shared "where new work goes" index; switches update it.
    pub active: Arc<super::route::ActiveRoute>,
    pub timing: Timing,
    pub kind: TxnKind,
    pub request: PaymentRequest,
    pub result: TxnResult,
    pub machine: Machine,
    pub publish: watch::Sender<TxnResult>,
    pub controls: mpsc::Receiver<Control>,
    /// Whether a start call is to be sent (false when recovering).
    pub send_start: bool,
    /// The terminal's link health from the probe monitor, if one runs.
    pub health: Option<watch::Receiver<Health>>,
    pub counters: Arc<Counters>,
    /// Frees the terminal for new sales while this transaction is still asked about.
    pub release: Option<Box<dyn FnOnce() + Send + Sync>>,
}

pub(super) struct Driver {
    pub sup: Supervisor,
    pub started: Instant,
    /// `timeStop` for this transaction.
    pub deadline: Instant,
    pub calls: JoinSet<Completed>,
    pub cancel_calls: JoinSet<(CancelCall, Result<CancelAnswer, TerminalError>)>,
    pub status_call_in_flight: bool,
    pub lookup_wanted: bool,
    pub reconcile_at: Option<Instant>,
    pub lookup_at: Option<Instant>,
    pub last_note: Option<(&'static str, String)>,
    pub shutdown: CancellationToken,
    /// While a start waits for a route: when to look at the routes next.
    pub route_check_at: Option<Instant>,
    /// The end of the delivery window: `staticIptimeOut` after the start first failed
    /// to be delivered (never past `timeStop`, which ends the wait too).
    pub window_at: Option<Instant>,
    /// The probe monitor's view, for the routes (address moves, link state).
    pub route_health: Option<watch::Receiver<Health>>,
    /// The terminal's address the last start was sent to.
    pub start_address: Option<String>,
    /// Which transports this transaction's start was sent on.
    pub tried: Vec<bool>,
}

impl Supervisor {
    /// Drives the transaction until it is final, or the gateway shuts down (then the
    /// journal keeps it for the next start).
    pub async fn run(mut self, shutdown: CancellationToken) -> TxnResult {
        let started = Instant::now();
        let timing = self.timing.clone();
        let route_health = self.health.clone();
        let mut health = self.health.take();
        let mut d = Driver {
            sup: self,
            started,
            deadline: started + timing.time_stop,
            calls: JoinSet::new(),
            cancel_calls: JoinSet::new(),
            status_call_in_flight: false,
            lookup_wanted: false,
            reconcile_at: None,
            lookup_at: None,
            last_note: None,
            shutdown: shutdown.clone(),
            route_check_at: None,
            window_at: None,
            route_health,
            start_address: None,
            tried: Vec::new(),
        };
        let deadline = tokio::time::sleep_until(d.deadline);
        tokio::pin!(deadline);
        let mut ticker = tokio::time::interval_at(started + timing.poll, timing.poll);
        ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut link = health.as_ref().map(|h| h.borrow().state);
        if d.sup.send_start {
            d.spawn_start();
            d.note_sent().await;
        }
        for action in d.sup.machine.initial_actions() {
            d.apply(action).await;
        }
        while d.sup.machine.phase != Phase::Done {
            let waiting = d.sup.machine.phase == Phase::Waiting;
            let (reconcile_at, lookup_at) = (d.reconcile_at, d.lookup_at);
            let (route_at, window_at) = (d.route_check_at, d.window_at);
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
                            d.step(Event::AnsweredOver(via)).await;
                        }
                        done.event
                    }
                    Err(_) => continue,
                },
                Some(Ok((reply, answer))) = d.cancel_calls.join_next() => {
                    d.cancel_answered(reply, answer).await;
                    continue;
                }
                Some(control) = d.sup.controls.recv() => match control {
                    Control::Cancel(reply) => {
                        d.spawn_cancel(reply).await;
                        continue;
                    }
                    Control::Resolve { status, reason, reply } => {
                        d.resolve(status, reason, reply).await;
                        continue;
                    }
                },
                _ = sleep_until_opt(route_at), if route_at.is_some() => match d.usable_route() {
                    Some(to) => {
                        d.route_check_at = None;
                        Event::RouteAvailable(to)
                    }
                    None => {
                        d.route_check_at = Some(Instant::now() + ROUTE_CHECK_INTERVAL);
                        continue;
                    }
                },
                _ = sleep_until_opt(window_at), if window_at.is_some() => {
                    d.window_at = None;
                    Event::DeliveryWindowOver
                }
                _ = &mut deadline, if waiting => Event::Deadline,
                _ = ticker.tick(), if waiting => Event::PollDue,
                _ = sleep_until_opt(reconcile_at), if reconcile_at.is_some() => {
                    d.reconcile_at = None;
                    Event::ReconcileDue
                }
                _ = sleep_until_opt(lookup_at), if lookup_at.is_some() => {
                    d.lookup_at = None;
                    Event::LookupDue
                }
                state = next_link_state(&mut health) => {
                    match (link.replace(state), state) {
                        (Some(LinkState::Down), LinkState::Down) => continue,
                        // The probe monitor saw the link die: act now, not after
                        // `loopsBefore` missed polls.
                        (_, LinkState::Down) => Event::LinkDown,
                        // Back from down: ask at once instead of at the next tick.
                        (Some(LinkState::Down), _) => Event::LinkUp,
                        _ => continue,
                    }
                }
            };
            d.step(event).await;
        }
        // A cancel that made the terminal end the payment usually loses the race to
        // the start answer: its caller still hears the terminal's answer.
        while !shutdown.is_cancelled()
            && let Some(Ok((reply, answer))) = d.cancel_calls.join_next().await
        {
            d.cancel_answered(reply, answer).await;
        }
        d.sup.result
    }
}

impl Driver {
    /// Feeds one event to the machine and carries out what it decides.
    pub(super) async fn step(&mut self, event: Event) {
        if let Event::AnswerMismatch { detail, .. } = &event {
            self.sup
                .counters
                .answer_mismatches
                .fetch_add(1, Ordering::Relaxed);
            tracing::warn!(
                transaction_id = %self.sup.request.transaction_id,
                %detail,
                "terminal answer does not match the request; not adopted"
            );
        }
        let (machine, actions) = next(self.sup.machine.clone(), event);
        self.sup.machine = machine;
        for action in actions {
            self.apply(action).await;
        }
        if self.lookup_wanted && !self.status_call_in_flight {
            self.lookup_wanted = false;
            self.spawn_lookup();
        }
    }

    async fn apply(&mut self, action: Action) {
        match action {
            Action::Poll => self.spawn_poll(),
            Action::Lookup => self.spawn_lookup(),
            Action::LookupIn(after) => self.lookup_at = Some(Instant::now() + after),
            Action::AwaitRoute => {
                let now = Instant::now();
                self.route_check_at = Some(now);
                if self.window_at.is_none() {
                    self.window_at = Some(now + self.sup.delivery_window);
                }
            }
            Action::Resend => {
                self.spawn_start();
                self.note_sent().await;
            }
            Action::Finish(outcome) => self.finish(outcome).await,
            Action::MarkUnknown => self.mark_unknown().await,
            Action::SwitchTo { to, why } => self.switch_to(to, why).await,
            Action::ScheduleReconcile(attempt) => {
                self.reconcile_at =
                    Some(Instant::now() + reconcile_delay(self.sup.timing.poll, attempt));
            }
            Action::ScheduleSlowReconcile => {
                self.reconcile_at = Some(Instant::now() + ABANDONED_RECONCILE_INTERVAL);
            }
            Action::GiveUp => {
                tracing::error!(
                    transaction_id = %self.sup.request.transaction_id,
                    "reconciliation attempts exhausted: the terminal is freed, the transaction \
                     stays unknown and is asked about every {} s (POST .../resolve settles it)",
                    ABANDONED_RECONCILE_INTERVAL.as_secs()
                );
                self.note(
                    events::GAVE_UP,
                    format!("after {} attempts", self.sup.timing.retries),
                )
                .await;
                if let Some(release) = self.sup.release.take() {
                    release();
                }
            }
            Action::Note(name, detail) => self.note(name, detail).await,
        }
    }

    /// The route a start that was not delivered can take now (`machine::route_for`).
    fn usable_route(&self) -> Option<usize> {
        let health = self.route_health.as_ref().map(|h| h.borrow().clone());
        let routes = Routes {
            fallback_usable: self.sup.transports.get(1).is_some_and(|t| t.usable()),
            address_moved: health
                .as_ref()
                .zip(self.start_address.as_ref())
                .is_some_and(|(h, sent_to)| h.address != *sent_to),
            direct_not_down: health.is_none_or(|h| h.state != LinkState::Down),
            other_untried: self.sup.transports.len() > 1
                && !self
                    .tried
                    .get(1 - self.sup.machine.active.min(1))
                    .copied()
                    .unwrap_or(false),
        };
        route_for(self.sup.machine.active, self.sup.transports.len(), routes)
    }

    /// The transport the machine has this transaction on.
    pub(super) fn transport(&self) -> Arc<dyn Transport> {
        let i = self
            .sup
            .machine
            .active
            .min(self.sup.transports.len().saturating_sub(1));
        self.sup.transports[i].clone()
    }

    /// Moves the terminal's new work to transport `to` too; journaled and shown live.
    async fn switch_to(&mut self, to: usize, why: &str) {
        let Some(name) = self.sup.transports.get(to).map(|t| t.name()) else {
            return;
        };
        let from = self.sup.result.transport.clone().unwrap_or_default();
        if let Some(before) = self.sup.active.switch(to) {
            let (journal, device) = (&self.sup.journal, &self.sup.request.device_id);
            let why = format!("{why}, during {}", self.sup.request.transaction_id);
            super::router::record_switch(journal, device, &self.sup.transports, before, to, &why)
                .await;
        }
        self.sup.result.transport = Some(name.to_string());
        self.sup
            .counters
            .transport_switches
            .bump(&[self.sup.request.device_id.as_str(), name]);
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

    async fn resolve(
        &mut self,
        status: TxnStatus,
        reason: String,
        reply: oneshot::Sender<Result<TxnResult, ResolveRefused>>,
    ) {
        // Only after `timeStop` (or for a transaction resumed at start-up) is nobody
        // waiting for the terminal's own answer any more.
        if self.sup.machine.phase == Phase::Waiting {
            let status = self.sup.result.status.as_str();
            let _ = reply.send(Err(ResolveRefused::NotUnknown(status)));
            return;
        }
        self.step(Event::OperatorResolved { status, reason }).await;
        let answer = if self.sup.result.status.is_final() {
            Ok(self.sup.result.clone())
        } else {
            Err(ResolveRefused::NotDurable)
        };
        let _ = reply.send(answer);
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

/// 0 → at once; then the poll interval, doubling up to [`RECONCILE_MAX_BACKOFF`].
pub fn reconcile_delay(poll: std::time::Duration, attempt: u32) -> std::time::Duration {
    if attempt == 0 {
        return std::time::Duration::ZERO;
    }
    let factor = 1u32 << (attempt - 1).min(16);
    poll.saturating_mul(factor).min(RECONCILE_MAX_BACKOFF)
}
