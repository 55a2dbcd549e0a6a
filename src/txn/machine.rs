//! The supervision algorithm as a pure state machine: `next(state, event)` returns
//! the new state and the actions for the driver to carry out. No I/O, no clocks;
//! the driver (`supervisor`) turns timers and terminal answers into events, and
//! stamps the events that need a time with the time since the transaction started.
//!
//! The seed's algorithm: hold the start request open; poll "is a payment in
//! progress?" every `pollSeconds`; "idle" → look the outcome up; `loopsBefore`
//! unanswered polls → switch transport; `timeStop` → the POS hears `unknown` and a
//! reconciler keeps asking until the terminal tells the truth. ecrlink adds: a lost
//! answer is looked up at once, a `LinkDown` from the probe monitor switches without
//! waiting for missed polls, and nothing but the terminal's verdict about *this*
//! transaction (or an operator) ends it — "never arrived" needs evidence (`Evidence`).

use std::time::Duration;

use super::events;
pub use super::machine_delivery::{Delivery, Routes, route_for};
use crate::terminal::wire::{TxnResult, TxnStatus};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Before `timeStop`: the POS is waiting for the answer.
    Waiting,
    /// After `timeStop`: the POS was told `unknown`; we keep asking the terminal.
    Reconciling,
    /// Reconciliation attempts exhausted: the terminal is freed, the transaction stays
    /// `unknown` and is asked about at a slow pace until the truth or an operator settles it.
    Abandoned,
    /// A final outcome is known and journaled.
    Done,
}

impl Phase {
    fn live(self) -> bool {
        self != Phase::Done
    }

    /// After `timeStop`: the POS has heard `unknown`.
    fn after_deadline(self) -> bool {
        matches!(self, Phase::Reconciling | Phase::Abandoned)
    }
}

/// Why a transaction ended without the terminal's own verdict.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FailCode {
    /// TLS verification of the terminal failed: nothing was sent.
    TlsError,
    /// Connection refused or timed out: nothing was sent.
    Unreachable,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    /// The terminal's final answer about this transaction.
    Terminal(TxnResult),
    /// The request never left: it cannot have been charged.
    NotDelivered { code: FailCode, reason: String },
    /// The terminal refused to start it before any processing (busy, conflicting id,
    /// invalid request).
    Rejected { code: String, message: String },
    /// The start call is over and the terminal, asked twice some seconds apart and
    /// once more whether anything is running, has no record of it.
    NeverArrived,
    /// An operator settled a transaction that stayed `unknown`.
    Resolved { status: TxnStatus, reason: String },
}

/// Which call an answer belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Call {
    Start,
    Lookup,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Event {
    /// The start call answered with a result for this transaction.
    StartAnswered(TxnResult),
    StartNotDelivered {
        code: FailCode,
        reason: String,
    },
    /// An explicit refusal before processing (`classify::is_refusal`).
    StartRejected {
        code: String,
        message: String,
    },
    /// Anything else: the start may have been delivered; only a lookup can tell.
    StartMaybeDelivered {
        reason: String,
    },
    /// An answer that does not match the request (another transaction, amount, …).
    AnswerMismatch {
        call: Call,
        detail: String,
    },
    PollDue,
    /// The terminal says our payment is in progress.
    PollInProgress,
    /// The terminal says no payment, or another one, is in progress.
    PollIdle,
    PollFailed {
        reason: String,
    },
    LookedUp(TxnResult),
    /// The terminal answered `not_found`; `at` is the time since the supervisor started.
    LookedUpNotFound {
        at: Duration,
    },
    LookupFailed {
        reason: String,
    },
    /// A lookup the machine scheduled (`LookupIn`) is due.
    LookupDue,
    /// `timeStop` has passed.
    Deadline,
    ReconcileDue,
    /// The probe monitor says the direct link is down.
    LinkDown,
    /// The probe monitor says the direct link is back.
    LinkUp,
    /// A reconciliation lookup was answered over transport `0` (not the active one).
    AnsweredOver(usize),
    /// A start that was not delivered can go over transport `to` now.
    RouteAvailable(usize),
    /// The start's delivery window (`staticIptimeOut`) has ended.
    DeliveryWindowOver,
    /// An operator settles an `unknown` transaction.
    OperatorResolved {
        status: TxnStatus,
        reason: String,
    },
}

#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    /// Ask the terminal whether a payment is in progress.
    Poll,
    /// Ask the terminal for our transaction's record.
    Lookup,
    /// Send `LookupDue` after this long.
    LookupIn(Duration),
    /// Journal the final outcome, then answer every waiter, release the terminal.
    Finish(Outcome),
    /// Journal `unknown` and answer the POS with it.
    MarkUnknown,
    /// Move this transaction, and the terminal's new work, to transport `to` (journaled).
    SwitchTo { to: usize, why: &'static str },
    /// Send the start again on the active transport (only when it was never delivered).
    Resend,
    /// Watch the routes and send `RouteAvailable` when one is usable (`machine_delivery`).
    AwaitRoute,
    /// Wait, then send `ReconcileDue`; the number is the attempt (0 = at once).
    ScheduleReconcile(u32),
    /// Wait the slow pace of an abandoned transaction, then send `ReconcileDue`.
    ScheduleSlowReconcile,
    /// Attempts spent: journal it and free the terminal; the transaction stays `unknown`.
    GiveUp,
    /// Journal an event that changes nothing else.
    Note(&'static str, String),
}

/// What has been seen towards "the terminal never got it": a first `not_found` (at
/// this time), and whether a second one came late enough that the next `current`
/// answer decides.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Evidence {
    pub first_not_found: Option<Duration>,
    pub absence_check: bool,
}

/// The numbers a machine is built with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Settings {
    pub loops_before: u32,
    pub max_reconcile_attempts: u32,
    /// How many transports the terminal has (1 direct, 2 with the fallback).
    pub transports: usize,
    /// The transport this transaction starts on.
    pub start_at: usize,
    /// `notFoundHorizonSeconds`: the least time between the two `not_found` lookups.
    pub not_found_horizon: Duration,
    /// "Never arrived" is not concluded before this time (a request may still sit on
    /// the MQTT broker for a resumed transaction).
    pub never_arrived_after: Duration,
    /// The probe monitor may move the terminal to an address mDNS announced.
    pub other_addresses: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Machine {
    pub phase: Phase,
    /// The start call is still open and may yet answer.
    pub start_outstanding: bool,
    /// Unanswered status calls in a row.
    pub missed: u32,
    /// The transport this transaction uses now.
    pub active: usize,
    /// A switch for a failed link happened (one per transaction).
    pub switched: bool,
    /// The start was sent again after it could not be delivered.
    pub resent: bool,
    pub delivery: Delivery,
    pub reconcile_attempts: u32,
    pub evidence: Evidence,
    pub settings: Settings,
}

impl Machine {
    /// A new transaction whose start request is about to be sent.
    pub fn new(mut settings: Settings) -> Machine {
        settings.loops_before = settings.loops_before.max(1);
        settings.max_reconcile_attempts = settings.max_reconcile_attempts.max(1);
        settings.transports = settings.transports.max(1);
        settings.start_at = settings.start_at.min(settings.transports - 1);
        Machine {
            phase: Phase::Waiting,
            start_outstanding: true,
            missed: 0,
            active: settings.start_at,
            switched: false,
            resent: false,
            delivery: Delivery::default(),
            reconcile_attempts: 0,
            evidence: Evidence::default(),
            settings,
        }
    }

    /// A transaction found unfinished in the journal at start-up: nobody waits for
    /// it and its start call is gone, so it goes straight to reconciliation.
    pub fn recovering(settings: Settings) -> Machine {
        Machine {
            phase: Phase::Reconciling,
            start_outstanding: false,
            ..Machine::new(settings)
        }
    }

    /// The first actions of a machine in its initial phase.
    pub fn initial_actions(&self) -> Vec<Action> {
        match self.phase {
            Phase::Reconciling => vec![Action::ScheduleReconcile(0)],
            _ => Vec::new(),
        }
    }

    fn other(&self) -> Option<usize> {
        (self.settings.transports > 1).then(|| usize::from(self.active == 0))
    }

    pub(super) fn finish(&mut self, outcome: Outcome) -> Vec<Action> {
        self.phase = Phase::Done;
        self.start_outstanding = false;
        vec![Action::Finish(outcome)]
    }

    /// Ask over the link in use now: a poll while the POS waits, else a lookup.
    fn ask_now(&self) -> Action {
        if self.phase == Phase::Waiting {
            Action::Poll
        } else {
            Action::Lookup
        }
    }

    /// The one switch for a failed link, if there is somewhere to go.
    fn switch_for_failure(&mut self, why: &'static str) -> Option<Action> {
        let to = self.other().filter(|_| !self.switched)?;
        self.switched = true;
        self.active = to;
        self.missed = 0;
        Some(Action::SwitchTo { to, why })
    }

    /// One more unanswered call; the `loopsBefore`-th in a row switches transport.
    fn missed_call(&mut self, reason: String) -> Vec<Action> {
        self.missed += 1;
        let mut actions = vec![Action::Note(events::POLL_MISSED, reason)];
        if self.missed >= self.settings.loops_before
            && let Some(switch) = self.switch_for_failure("status calls unanswered")
        {
            actions.push(switch);
            // Ask over the new link now rather than at the next tick.
            if self.phase == Phase::Waiting {
                actions.push(Action::Poll);
            }
        }
        actions
    }

    /// Next reconciliation, or give up (and go slow) when the attempts are spent.
    fn retry_reconcile(&mut self) -> Vec<Action> {
        match self.phase {
            Phase::Waiting | Phase::Done => Vec::new(),
            Phase::Abandoned => vec![Action::ScheduleSlowReconcile],
            Phase::Reconciling
                if self.reconcile_attempts >= self.settings.max_reconcile_attempts =>
            {
                self.phase = Phase::Abandoned;
                vec![Action::GiveUp, Action::ScheduleSlowReconcile]
            }
            Phase::Reconciling => vec![Action::ScheduleReconcile(self.reconcile_attempts)],
        }
    }

    /// A `not_found` counts towards "never arrived" only once the start call is over;
    /// it takes two, `notFoundHorizonSeconds` apart, then an idle `current`.
    fn not_found(&mut self, at: Duration) -> Vec<Action> {
        if self.start_outstanding {
            // The start may simply not have been read yet; its own answer decides.
            return self.retry_reconcile();
        }
        let s = &self.settings;
        let Some(first) = self.evidence.first_not_found else {
            self.evidence.first_not_found = Some(at);
            return vec![
                Action::Note(
                    events::NOT_FOUND,
                    format!(
                        "the terminal has no record yet; asking again in {:.1} s",
                        s.not_found_horizon.as_secs_f64()
                    ),
                ),
                Action::LookupIn(
                    s.not_found_horizon
                        .max(s.never_arrived_after.saturating_sub(at)),
                ),
            ];
        };
        let ready = (first + s.not_found_horizon).max(s.never_arrived_after);
        if at >= ready {
            self.evidence.absence_check = true;
            vec![Action::Poll]
        } else {
            vec![Action::LookupIn(ready - at)]
        }
    }

    /// A record (or a running payment) of ours was seen: "never arrived" starts over.
    pub(super) fn seen(&mut self) {
        self.evidence = Evidence::default();
    }
}

/// The transition function.
pub fn next(mut m: Machine, event: Event) -> (Machine, Vec<Action>) {
    use Event as E;
    use Phase as P;
    if !m.phase.live() {
        return (m, Vec::new());
    }
    if m.ignores_while_awaiting(&event) {
        return (m, Vec::new());
    }
    let actions = match (m.phase, event) {
        // Answers to the start call count in every live phase: a late answer is
        // still the truth.
        (_, E::StartAnswered(r)) => {
            m.start_outstanding = false;
            m.seen();
            if r.status.is_final() {
                m.finish(Outcome::Terminal(r))
            } else {
                vec![Action::Lookup]
            }
        }
        (_, E::StartRejected { code, message }) => m.finish(Outcome::Rejected { code, message }),
        (_, E::StartNotDelivered { code, reason }) => m.not_delivered(code, reason),
        (_, E::RouteAvailable(to)) => m.route_available(to),
        (_, E::DeliveryWindowOver) => m.delivery_window_over(),
        (_, E::StartMaybeDelivered { reason }) => {
            m.start_outstanding = false;
            let mut actions = vec![Action::Note(events::ANSWER_LOST, reason)];
            if m.phase == P::Waiting {
                actions.push(Action::Lookup);
            }
            actions
        }
        (_, E::AnswerMismatch { call, detail }) => {
            let mut actions = vec![Action::Note(events::ANSWER_MISMATCH, detail)];
            match call {
                Call::Start => {
                    m.start_outstanding = false;
                    actions.push(Action::Lookup);
                }
                Call::Lookup => actions.extend(m.retry_reconcile()),
            }
            actions
        }

        (P::Waiting, E::PollDue) => vec![Action::Poll],
        (_, E::PollDue) => Vec::new(),
        (phase, E::PollInProgress) => {
            m.missed = 0;
            let checking = m.evidence.absence_check;
            m.seen();
            if checking && phase.after_deadline() {
                m.retry_reconcile()
            } else {
                Vec::new()
            }
        }
        (_, E::PollIdle) if m.evidence.absence_check && !m.start_outstanding => {
            m.finish(Outcome::NeverArrived)
        }
        (P::Waiting, E::PollIdle) => {
            m.missed = 0;
            vec![Action::Lookup]
        }
        (_, E::PollIdle) => Vec::new(),
        (P::Waiting, E::PollFailed { reason }) => m.missed_call(reason),
        (_, E::PollFailed { .. }) if m.evidence.absence_check => m.retry_reconcile(),
        (_, E::PollFailed { .. }) => Vec::new(),

        (_, E::LookedUp(r)) => {
            m.missed = 0;
            m.seen();
            if r.status.is_final() {
                m.finish(Outcome::Terminal(r))
            } else {
                m.retry_reconcile()
            }
        }
        (_, E::LookedUpNotFound { at }) => {
            m.missed = 0;
            m.not_found(at)
        }
        (P::Waiting, E::LookupFailed { reason }) => m.missed_call(reason),
        (_, E::LookupFailed { reason }) => {
            let mut actions = m.missed_call(reason);
            actions.extend(m.retry_reconcile());
            actions
        }
        (_, E::LookupDue) => vec![Action::Lookup],

        // Never past `timeStop`, and never `unknown`: the start was not delivered.
        (P::Waiting, E::Deadline) if m.awaiting_route() => m.delivery_window_over(),
        (P::Waiting, E::Deadline) => {
            m.phase = P::Reconciling;
            m.reconcile_attempts = 0;
            vec![Action::MarkUnknown, Action::ScheduleReconcile(0)]
        }
        (_, E::Deadline) => Vec::new(),
        (P::Waiting, E::ReconcileDue) => Vec::new(),
        (P::Reconciling, E::ReconcileDue) => {
            m.reconcile_attempts += 1;
            vec![Action::Lookup]
        }
        (_, E::ReconcileDue) => vec![Action::Lookup],

        (_, E::LinkDown) if m.active == 0 => match m.switch_for_failure("direct link down") {
            Some(switch) => vec![switch, m.ask_now()],
            None => vec![Action::Note(
                events::LINK_DOWN,
                "no fallback transport: keep trying the direct link".into(),
            )],
        },
        (_, E::LinkDown) => Vec::new(),
        (_, E::LinkUp) => vec![m.ask_now()],
        (_, E::AnsweredOver(to)) if to != m.active && to < m.settings.transports => {
            m.active = to;
            vec![Action::SwitchTo {
                to,
                why: "answered a reconciliation lookup",
            }]
        }
        (_, E::AnsweredOver(_)) => Vec::new(),

        (phase, E::OperatorResolved { status, reason })
            if phase.after_deadline() && status.is_final() =>
        {
            m.finish(Outcome::Resolved { status, reason })
        }
        (_, E::OperatorResolved { .. }) => Vec::new(),
    };
    (m, actions)
}

#[cfg(test)]
#[path = "machine_tests.rs"]
pub(super) mod tests;

#[cfg(test)]
#[path = "machine_scenarios.rs"]
mod scenarios;
