use super::*;
use crate::terminal::wire::{TxnKind, TxnResult, TxnStatus};

fn result(status: TxnStatus) -> TxnResult {
    TxnResult {
        transaction_id: "T1".into(),
        device_id: "D1".into(),
        kind: TxnKind::Sale,
        status,
        amount: 1000,
        currency_code: "EUR".into(),
        authorization_code: None,
        masked_pan: None,
        card_brand: None,
        result_code: None,
        result_message: None,
        started_at: "2026-01-01T00:00:00Z".into(),
        finished_at: None,
        transport: None,
    }
}

fn all_events() -> Vec<Event> {
    let mut events = vec![
        Event::StartNotDelivered {
            code: FailCode::Unreachable,
            reason: "refused".into(),
        },
        Event::StartRejected {
            code: "terminal_busy".into(),
            message: "busy".into(),
        },
        Event::StartLost {
            reason: "reset".into(),
        },
        Event::PollDue,
        Event::PollInProgress,
        Event::PollIdle,
        Event::PollFailed {
            reason: "timeout".into(),
        },
        Event::LookedUpNotFound,
        Event::LookupFailed {
            reason: "timeout".into(),
        },
        Event::Deadline,
        Event::ReconcileDue,
        Event::LinkDown,
    ];
    for st in TxnStatus::ALL {
        events.push(Event::StartAnswered(result(st)));
        events.push(Event::LookedUp(result(st)));
    }
    events
}

/// Every machine shape worth distinguishing.
fn all_machines() -> Vec<Machine> {
    let mut out = Vec::new();
    for phase in [
        Phase::Waiting,
        Phase::Reconciling,
        Phase::Abandoned,
        Phase::Done,
    ] {
        for start_outstanding in [false, true] {
            for (has_fallback, on_fallback) in [(false, false), (true, false), (true, true)] {
                for missed in [0, 2] {
                    for reconcile_attempts in [0, 3] {
                        out.push(Machine {
                            phase,
                            start_outstanding,
                            missed,
                            on_fallback,
                            has_fallback,
                            loops_before: 3,
                            reconcile_attempts,
                            max_reconcile_attempts: 3,
                        });
                    }
                }
            }
        }
    }
    out
}

/// Properties that must hold for every state and every event.
#[test]
fn exhaustive_invariants() {
    for m in all_machines() {
        for ev in all_events() {
            let (after, actions) = next(m.clone(), ev.clone());
            let ctx = format!("{m:?} + {ev:?} -> {after:?} {actions:?}");
            // Ended machines never act again.
            if matches!(m.phase, Phase::Done | Phase::Abandoned) {
                assert!(actions.is_empty(), "{ctx}");
                assert_eq!(after, m, "{ctx}");
            }
            // A finish happens exactly when the machine becomes Done.
            let finishes = actions
                .iter()
                .filter(|a| matches!(a, Action::Finish(_)))
                .count();
            assert_eq!(
                finishes == 1,
                after.phase == Phase::Done && m.phase != Phase::Done,
                "{ctx}"
            );
            assert!(finishes <= 1, "{ctx}");
            for a in &actions {
                match a {
                    // Never an invented outcome: a terminal verdict is always final.
                    Action::Finish(Outcome::Terminal(r)) => assert!(r.status.is_final(), "{ctx}"),
                    // "Never arrived" only once the start call can no longer answer.
                    Action::Finish(Outcome::NeverArrived) => assert!(!m.start_outstanding, "{ctx}"),
                    // Only one switch, only if there is somewhere to switch to.
                    Action::SwitchToFallback => {
                        assert!(
                            m.has_fallback && !m.on_fallback && after.on_fallback,
                            "{ctx}"
                        )
                    }
                    // A resend only for a start that never left.
                    Action::Resend => {
                        assert!(matches!(ev, Event::StartNotDelivered { .. }), "{ctx}")
                    }
                    Action::MarkUnknown => {
                        assert_eq!(m.phase, Phase::Waiting, "{ctx}");
                        assert_eq!(after.phase, Phase::Reconciling, "{ctx}");
                    }
                    _ => {}
                }
            }
            // Time only moves forward through the phases.
            let rank = |p: Phase| match p {
                Phase::Waiting => 0,
                Phase::Reconciling => 1,
                Phase::Abandoned | Phase::Done => 2,
            };
            assert!(rank(after.phase) >= rank(m.phase), "{ctx}");
            // Polling belongs to the waiting phase only.
            if actions.contains(&Action::Poll) {
                assert_eq!(m.phase, Phase::Waiting, "{ctx}");
            }
        }
    }
}

fn run(mut m: Machine, events: impl IntoIterator<Item = Event>) -> (Machine, Vec<Action>) {
    let mut all = Vec::new();
    for ev in events {
        let (after, actions) = next(m, ev);
        m = after;
        all.extend(actions);
    }
    (m, all)
}

#[test]
fn happy_path_finishes_with_the_terminal_answer() {
    let m = Machine::new(3, 10, false);
    let (m, actions) = run(
        m,
        [
            Event::PollDue,
            Event::PollInProgress,
            Event::StartAnswered(result(TxnStatus::Approved)),
        ],
    );
    assert_eq!(m.phase, Phase::Done);
    assert_eq!(
        actions,
        vec![
            Action::Poll,
            Action::Finish(Outcome::Terminal(result(TxnStatus::Approved)))
        ]
    );
}

#[test]
fn lost_answer_is_looked_up_at_once() {
    let (m, actions) = run(
        Machine::new(3, 10, false),
        [
            Event::StartLost {
                reason: "reset".into(),
            },
            Event::LookedUp(result(TxnStatus::Declined)),
        ],
    );
    assert_eq!(m.phase, Phase::Done);
    assert!(actions.contains(&Action::Lookup));
    assert!(actions.contains(&Action::Finish(Outcome::Terminal(result(
        TxnStatus::Declined
    )))));
}

#[test]
fn idle_terminal_leads_to_lookup_and_not_found_while_start_open_waits() {
    let (m, actions) = run(
        Machine::new(3, 10, false),
        [Event::PollIdle, Event::LookedUpNotFound],
    );
    assert_eq!(m.phase, Phase::Waiting);
    assert_eq!(actions, vec![Action::Lookup]);
    let (m, actions) = run(
        m,
        [
            Event::StartLost {
                reason: "eof".into(),
            },
            Event::LookedUpNotFound,
        ],
    );
    assert_eq!(m.phase, Phase::Done);
    assert!(actions.contains(&Action::Finish(Outcome::NeverArrived)));
}

#[test]
fn loops_before_missed_polls_switch_once_when_a_fallback_exists() {
    let miss = || Event::PollFailed {
        reason: "timeout".into(),
    };
    let (m, actions) = run(Machine::new(3, 10, true), [miss(), miss()]);
    assert!(!actions.contains(&Action::SwitchToFallback));
    let (m, actions) = run(m, [miss()]);
    assert!(actions.contains(&Action::SwitchToFallback));
    assert!(m.on_fallback);
    let (_, actions) = run(m, [miss(), miss(), miss(), miss()]);
    assert!(!actions.contains(&Action::SwitchToFallback));
}

#[test]
fn without_fallback_missed_polls_keep_waiting() {
    let miss = || Event::PollFailed {
        reason: "timeout".into(),
    };
    let (m, actions) = run(Machine::new(2, 10, false), [miss(), miss(), miss()]);
    assert_eq!(m.phase, Phase::Waiting);
    assert!(!actions.contains(&Action::SwitchToFallback));
}

#[test]
fn link_down_switches_without_waiting_for_missed_polls() {
    let (m, actions) = run(Machine::new(3, 10, true), [Event::LinkDown]);
    assert!(m.on_fallback);
    assert_eq!(actions, vec![Action::SwitchToFallback, Action::Poll]);
    let (m, actions) = run(
        Machine::new(3, 10, true),
        [Event::Deadline, Event::LinkDown],
    );
    assert!(m.on_fallback);
    assert_eq!(actions.last(), Some(&Action::Lookup));
}

#[test]
fn not_delivered_fails_or_resends_on_the_fallback() {
    let nd = || Event::StartNotDelivered {
        code: FailCode::TlsError,
        reason: "unknown issuer".into(),
    };
    let (m, actions) = run(Machine::new(3, 10, false), [nd()]);
    assert_eq!(m.phase, Phase::Done);
    assert!(matches!(
        actions[0],
        Action::Finish(Outcome::NotDelivered {
            code: FailCode::TlsError,
            ..
        })
    ));
    let (m, actions) = run(Machine::new(3, 10, true), [nd()]);
    assert_eq!(m.phase, Phase::Waiting);
    assert_eq!(actions, vec![Action::SwitchToFallback, Action::Resend]);
    let (m, _) = run(m, [nd()]);
    assert_eq!(m.phase, Phase::Done);
}

#[test]
fn deadline_gives_unknown_then_reconciles_to_the_truth() {
    let (m, actions) = run(Machine::new(3, 10, false), [Event::Deadline]);
    assert_eq!(m.phase, Phase::Reconciling);
    assert_eq!(
        actions,
        vec![Action::MarkUnknown, Action::ScheduleReconcile(0)]
    );
    let (m, actions) = run(
        m,
        [
            Event::ReconcileDue,
            Event::LookupFailed {
                reason: "refused".into(),
            },
            Event::ReconcileDue,
            Event::LookedUp(result(TxnStatus::InProgress)),
            Event::ReconcileDue,
            Event::LookedUp(result(TxnStatus::Approved)),
        ],
    );
    assert_eq!(m.phase, Phase::Done);
    assert!(actions.contains(&Action::ScheduleReconcile(1)));
    assert!(actions.contains(&Action::ScheduleReconcile(2)));
    assert_eq!(
        actions.last(),
        Some(&Action::Finish(Outcome::Terminal(result(
            TxnStatus::Approved
        ))))
    );
}

#[test]
fn unknown_is_never_turned_into_a_decline() {
    // However long the terminal stays silent, the machine gives up rather than guess.
    let mut m = Machine::new(3, 5, false);
    let mut actions = Vec::new();
    for ev in [Event::Deadline].into_iter().chain((0..20).flat_map(|_| {
        [
            Event::ReconcileDue,
            Event::LookupFailed { reason: "x".into() },
        ]
    })) {
        let (after, acts) = next(m, ev);
        m = after;
        actions.extend(acts);
    }
    assert_eq!(m.phase, Phase::Abandoned);
    assert!(actions.contains(&Action::GiveUp));
    assert!(!actions.iter().any(|a| matches!(a, Action::Finish(_))));
}

#[test]
fn recovery_starts_reconciling_at_once() {
    let m = Machine::recovering(3, 10, false);
    assert_eq!(m.initial_actions(), vec![Action::ScheduleReconcile(0)]);
    let (m, actions) = run(m, [Event::ReconcileDue, Event::LookedUpNotFound]);
    assert_eq!(actions[0], Action::Lookup);
    assert_eq!(m.phase, Phase::Done);
    assert!(actions.contains(&Action::Finish(Outcome::NeverArrived)));
}

#[test]
fn a_late_start_answer_after_unknown_still_counts() {
    let (m, actions) = run(
        Machine::new(3, 10, false),
        [
            Event::Deadline,
            Event::StartAnswered(result(TxnStatus::Approved)),
        ],
    );
    assert_eq!(m.phase, Phase::Done);
    assert_eq!(
        actions.last(),
        Some(&Action::Finish(Outcome::Terminal(result(
            TxnStatus::Approved
        ))))
    );
}
