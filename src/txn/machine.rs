//! The supervision algorithm as a pure state machine: `next(state, event)` returns
//! the new state and the actions for the driver to carry out. No I/O, no clocks;
//! the driver (`supervisor`) turns timers and terminal answers into events.
//!
//! The seed's algorithm: hold the start request open; poll "is a payment in
//! progress?" every `pollSeconds`; "idle" → look the outcome up; `loopsBefore`
//! unanswered polls → switch transport; `timeStop` → the POS hears `unknown` and a
//! reconciler keeps asking until the terminal tells the truth. ecrlink adds: a lost
//! answer is looked up at once, and a `LinkDown` from the probe monitor switches
//! without waiting for missed polls.

use crate::terminal::wire::TxnResult;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Before `timeStop`: the POS is waiting for the answer.
    Waiting,
    /// After `timeStop`: the POS was told `unknown`; we keep asking the terminal.
    Reconciling,
    /// Reconciliation attempts exhausted: stays `unknown` until the next start-up.
    Abandoned,
    /// A final outcome is known and journaled.
    Done,
}

/// Why a transaction ended without the terminal's own verdict.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FailCode {
    /// TLS verification of the terminal failed: nothing was sent.
    TlsError,
    /// Connection refused or timed out: nothing was sent.
    Unreachable,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    /// The terminal's final answer.
    Terminal(TxnResult),
    /// The request never left: it cannot have been charged.
    NotDelivered { code: FailCode, reason: String },
    /// The terminal refused to start it (busy, conflicting id, bad request).
    Rejected { code: String, message: String },
    /// The request may have left, but the terminal has no record of it.
    NeverArrived,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Event {
    StartAnswered(TxnResult),
    StartNotDelivered {
        code: FailCode,
        reason: String,
    },
    StartRejected {
        code: String,
        message: String,
    },
    /// The start call may have been delivered but its answer was lost.
    StartLost {
        reason: String,
    },
    PollDue,
    /// The terminal says our payment is in progress.
    PollInProgress,
    /// The terminal says no payment (or another one) is in progress.
    PollIdle,
    PollFailed {
        reason: String,
    },
    LookedUp(TxnResult),
    LookedUpNotFound,
    LookupFailed {
        reason: String,
    },
    /// `timeStop` has passed.
    Deadline,
    ReconcileDue,
    /// The probe monitor says the active link is down.
    LinkDown,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    /// Ask the terminal whether a payment is in progress.
    Poll,
    /// Ask the terminal for our transaction's record.
    Lookup,
    /// Journal the final outcome, answer every waiter, release the terminal.
    Finish(Outcome),
    /// Journal `unknown` and answer the POS with it.
    MarkUnknown,
    /// Move to the fallback transport (journaled).
    SwitchToFallback,
    /// Send the start again on the new transport (only when it was never delivered).
    Resend,
    /// Wait, then send `ReconcileDue`; the number is the attempt (0 = at once).
    ScheduleReconcile(u32),
    /// Stop reconciling; the transaction stays `unknown`.
    GiveUp,
    /// Journal an event that changes nothing else.
    Note(&'static str, String),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Machine {
    pub phase: Phase,
    /// The start call is still open and may yet answer.
    pub start_outstanding: bool,
    /// Unanswered status calls in a row.
    pub missed: u32,
    pub on_fallback: bool,
    pub has_fallback: bool,
    pub loops_before: u32,
    pub reconcile_attempts: u32,
    pub max_reconcile_attempts: u32,
}

impl Machine {
    /// A new transaction whose start request is about to be sent.
    pub fn new(loops_before: u32, max_reconcile_attempts: u32, has_fallback: bool) -> Machine {
        Machine {
            phase: Phase::Waiting,
            start_outstanding: true,
            missed: 0,
            on_fallback: false,
            has_fallback,
            loops_before: loops_before.max(1),
            reconcile_attempts: 0,
            max_reconcile_attempts: max_reconcile_attempts.max(1),
        }
    }

    /// A transaction found unfinished in the journal at start-up: nobody waits for
    /// it and its start call is gone, so it goes straight to reconciliation.
    pub fn recovering(
        loops_before: u32,
        max_reconcile_attempts: u32,
        has_fallback: bool,
    ) -> Machine {
        Machine {
            phase: Phase::Reconciling,
            start_outstanding: false,
            ..Machine::new(loops_before, max_reconcile_attempts, has_fallback)
        }
    }

    /// The first actions of a machine in its initial phase.
    pub fn initial_actions(&self) -> Vec<Action> {
        match self.phase {
            Phase::Reconciling => vec![Action::ScheduleReconcile(0)],
            _ => Vec::new(),
        }
    }

    fn finish(&mut self, outcome: Outcome) -> Vec<Action> {
        self.phase = Phase::Done;
        self.start_outstanding = false;
        vec![Action::Finish(outcome)]
    }

    /// One more unanswered call; the `loopsBefore`-th in a row switches transport.
    fn missed_call(&mut self, reason: String) -> Vec<Action> {
        self.missed += 1;
        let mut actions = vec![Action::Note("poll_missed", reason)];
        if self.missed >= self.loops_before && self.has_fallback && !self.on_fallback {
            self.on_fallback = true;
            self.missed = 0;
            actions.push(Action::SwitchToFallback);
            // Ask over the new link now rather than at the next tick.
            if self.phase == Phase::Waiting {
                actions.push(Action::Poll);
            }
        }
        actions
    }

    fn switch_now(&mut self) -> Vec<Action> {
        if self.has_fallback && !self.on_fallback {
            self.on_fallback = true;
            self.missed = 0;
            // Ask over the new link now rather than at the next tick.
            let ask = if self.phase == Phase::Waiting {
                Action::Poll
            } else {
                Action::Lookup
            };
            vec![Action::SwitchToFallback, ask]
        } else {
            vec![Action::Note(
                "link_down",
                "no fallback transport: keep trying the direct link".into(),
            )]
        }
    }

    /// Next reconciliation, or give up when the attempts are spent.
    fn retry_reconcile(&mut self) -> Vec<Action> {
        if self.reconcile_attempts >= self.max_reconcile_attempts {
            self.phase = Phase::Abandoned;
            vec![Action::GiveUp]
        } else {
            vec![Action::ScheduleReconcile(self.reconcile_attempts)]
        }
    }
}

/// The transition function.
pub fn next(mut m: Machine, event: Event) -> (Machine, Vec<Action>) {
    use Event as E;
    use Phase as P;
    let actions = match (m.phase, event) {
        (P::Done | P::Abandoned, _) => Vec::new(),

        // Answers to the start call count in both live phases: a late answer is
        // still the truth.
        (P::Waiting | P::Reconciling, E::StartAnswered(r)) => {
            m.start_outstanding = false;
            if r.status.is_final() {
                m.finish(Outcome::Terminal(r))
            } else {
                vec![Action::Lookup]
            }
        }
        (P::Waiting | P::Reconciling, E::StartRejected { code, message }) => {
            m.finish(Outcome::Rejected { code, message })
        }
        (P::Waiting, E::StartNotDelivered { .. }) if m.has_fallback && !m.on_fallback => {
            m.on_fallback = true;
            vec![Action::SwitchToFallback, Action::Resend]
        }
        (P::Waiting | P::Reconciling, E::StartNotDelivered { code, reason }) => {
            m.finish(Outcome::NotDelivered { code, reason })
        }
        (P::Waiting, E::StartLost { reason }) => {
            m.start_outstanding = false;
            vec![Action::Note("answer_lost", reason), Action::Lookup]
        }
        (P::Reconciling, E::StartLost { reason }) => {
            m.start_outstanding = false;
            vec![Action::Note("answer_lost", reason)]
        }

        (P::Waiting, E::PollDue) => vec![Action::Poll],
        (P::Waiting, E::PollInProgress) => {
            m.missed = 0;
            Vec::new()
        }
        (P::Waiting, E::PollIdle) => {
            m.missed = 0;
            vec![Action::Lookup]
        }
        (P::Waiting, E::PollFailed { reason } | E::LookupFailed { reason }) => {
            m.missed_call(reason)
        }
        (P::Waiting, E::LookedUp(r)) => {
            m.missed = 0;
            if r.status.is_final() {
                m.finish(Outcome::Terminal(r))
            } else {
                Vec::new()
            }
        }
        (P::Waiting, E::LookedUpNotFound) => {
            m.missed = 0;
            if m.start_outstanding {
                // The start may simply not have been read yet; its own answer decides.
                Vec::new()
            } else {
                m.finish(Outcome::NeverArrived)
            }
        }
        (P::Waiting, E::Deadline) => {
            m.phase = P::Reconciling;
            m.reconcile_attempts = 0;
            vec![Action::MarkUnknown, Action::ScheduleReconcile(0)]
        }
        (P::Waiting | P::Reconciling, E::LinkDown) => m.switch_now(),
        (P::Waiting, E::ReconcileDue) => Vec::new(),

        (P::Reconciling, E::ReconcileDue) => {
            m.reconcile_attempts += 1;
            vec![Action::Lookup]
        }
        (P::Reconciling, E::LookedUp(r)) => {
            if r.status.is_final() {
                m.finish(Outcome::Terminal(r))
            } else {
                m.retry_reconcile()
            }
        }
        (P::Reconciling, E::LookedUpNotFound) => {
            if m.start_outstanding {
                m.retry_reconcile()
            } else {
                m.finish(Outcome::NeverArrived)
            }
        }
        (P::Reconciling, E::LookupFailed { reason }) => {
            let mut actions = m.missed_call(reason);
            actions.extend(m.retry_reconcile());
            actions
        }
        (P::Reconciling, E::PollDue | E::PollInProgress | E::PollIdle | E::Deadline) => Vec::new(),
        (P::Reconciling, E::PollFailed { .. }) => Vec::new(),
    };
    (m, actions)
}

#[cfg(test)]
#[path = "machine_tests.rs"]
mod tests;
