//! The machine through whole scenarios: the paths a transaction takes.

use super::tests::{H, not_found, result, secs, settings};
use super::*;
use crate::terminal::wire::TxnStatus;

fn run(mut m: Machine, events: impl IntoIterator<Item = Event>) -> (Machine, Vec<Action>) {
    let mut all = Vec::new();
    for ev in events {
        let (next_m, actions) = next(m, ev);
        m = next_m;
        all.extend(actions);
    }
    (m, all)
}

#[test]
fn happy_path_finishes_with_the_terminal_answer() {
    let (m, actions) = run(
        Machine::new(settings(1)),
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
fn maybe_delivered_start_is_looked_up_at_once_and_never_failed() {
    let (m, actions) = run(
        Machine::new(settings(1)),
        [
            Event::StartMaybeDelivered {
                reason: "500 internal_error".into(),
            },
            Event::LookedUp(result(TxnStatus::Approved)),
        ],
    );
    assert_eq!(m.phase, Phase::Done);
    assert!(actions.contains(&Action::Lookup));
    assert!(actions.contains(&Action::Finish(Outcome::Terminal(result(
        TxnStatus::Approved
    )))));
}

#[test]
fn not_found_while_the_start_is_open_waits_for_the_start() {
    let (m, actions) = run(
        Machine::new(settings(1)),
        [
            Event::PollIdle,
            not_found(1),
            not_found(20),
            Event::PollIdle,
        ],
    );
    assert_eq!(m.phase, Phase::Waiting);
    assert_eq!(m.evidence, Evidence::default());
    assert!(!actions.iter().any(|a| matches!(a, Action::Finish(_))));
}

#[test]
fn never_arrived_needs_two_not_found_a_horizon_apart_and_an_idle_terminal() {
    let lost = Event::StartMaybeDelivered {
        reason: "reset".into(),
    };
    // One `not_found` asks again after the horizon; a second one too early asks again
    // when the horizon is over.
    let (m, actions) = run(Machine::new(settings(1)), [lost.clone(), not_found(1)]);
    assert_eq!(actions.last(), Some(&Action::LookupIn(H)));
    let (m, actions) = run(m, [not_found(3)]);
    assert_eq!(actions, vec![Action::LookupIn(secs(3))]);
    // The second, late enough, asks whether anything is running.
    let (m, actions) = run(m, [Event::LookupDue, not_found(6)]);
    assert_eq!(actions, vec![Action::Lookup, Action::Poll]);
    assert!(m.evidence.absence_check);
    // The terminal is running it after all: start over.
    let (m2, actions) = run(m.clone(), [Event::PollInProgress]);
    assert!(actions.is_empty());
    assert_eq!(m2.evidence, Evidence::default());
    // Idle: now it never arrived.
    let (m, actions) = run(m, [Event::PollIdle]);
    assert_eq!(m.phase, Phase::Done);
    assert_eq!(actions, vec![Action::Finish(Outcome::NeverArrived)]);
}

#[test]
fn a_late_record_clears_the_evidence() {
    let (m, actions) = run(
        Machine::new(settings(1)),
        [
            Event::StartMaybeDelivered {
                reason: "reset".into(),
            },
            not_found(1),
            Event::LookedUp(result(TxnStatus::InProgress)),
            not_found(7),
        ],
    );
    assert_eq!(m.evidence.first_not_found, Some(secs(7)));
    assert!(!actions.iter().any(|a| matches!(a, Action::Finish(_))));
}

#[test]
fn a_resumed_transaction_waits_out_the_broker_queue_before_never_arrived() {
    let mut s = settings(2);
    s.never_arrived_after = secs(160);
    let (m, actions) = run(Machine::recovering(s), [Event::ReconcileDue, not_found(0)]);
    assert_eq!(actions.last(), Some(&Action::LookupIn(secs(160))));
    let (m, actions) = run(m, [Event::LookupDue, not_found(100)]);
    assert_eq!(actions.last(), Some(&Action::LookupIn(secs(60))));
    let (m, actions) = run(m, [Event::LookupDue, not_found(160), Event::PollIdle]);
    assert_eq!(m.phase, Phase::Done);
    assert!(actions.contains(&Action::Finish(Outcome::NeverArrived)));
}

#[test]
fn mismatched_answers_are_noted_and_never_adopted() {
    let wrong = Event::AnswerMismatch {
        call: Call::Start,
        detail: "start answer: transactionId (\"T0\", sent \"T1\")".into(),
    };
    let (m, actions) = run(Machine::new(settings(1)), [wrong]);
    assert_eq!(m.phase, Phase::Waiting);
    assert!(!m.start_outstanding);
    assert!(matches!(
        &actions[0],
        Action::Note(events::ANSWER_MISMATCH, _)
    ));
    assert_eq!(actions[1], Action::Lookup);
    let (m, actions) = run(
        m,
        [
            Event::Deadline,
            Event::ReconcileDue,
            Event::AnswerMismatch {
                call: Call::Lookup,
                detail: "amount".into(),
            },
        ],
    );
    assert_eq!(m.phase, Phase::Reconciling);
    assert_eq!(actions.last(), Some(&Action::ScheduleReconcile(1)));
}

#[test]
fn loops_before_missed_polls_switch_once_when_a_fallback_exists() {
    let miss = || Event::PollFailed {
        reason: "timeout".into(),
    };
    let (m, actions) = run(Machine::new(settings(2)), [miss(), miss()]);
    assert!(!actions.iter().any(|a| matches!(a, Action::SwitchTo { .. })));
    let (m, actions) = run(m, [miss()]);
    assert!(actions.contains(&Action::SwitchTo {
        to: 1,
        why: "status calls unanswered"
    }));
    assert_eq!(m.active, 1);
    let (_, actions) = run(m, [miss(), miss(), miss(), Event::LinkDown]);
    assert!(!actions.iter().any(|a| matches!(a, Action::SwitchTo { .. })));
}

#[test]
fn without_fallback_missed_polls_keep_waiting() {
    let miss = || Event::PollFailed {
        reason: "timeout".into(),
    };
    let (m, actions) = run(Machine::new(settings(1)), (0..10).map(|_| miss()));
    assert_eq!(m.phase, Phase::Waiting);
    assert!(!actions.iter().any(|a| matches!(a, Action::SwitchTo { .. })));
}

#[test]
fn link_down_switches_without_waiting_for_missed_polls() {
    let (m, actions) = run(Machine::new(settings(2)), [Event::LinkDown]);
    assert_eq!(m.active, 1);
    assert_eq!(
        actions,
        vec![
            Action::SwitchTo {
                to: 1,
                why: "direct link down"
            },
            Action::Poll
        ]
    );
    let (_, actions) = run(
        Machine::new(settings(2)),
        [Event::Deadline, Event::LinkDown],
    );
    assert_eq!(actions.last(), Some(&Action::Lookup));
    // A sale already on the fallback stays there when the direct link dies.
    let mut on_mqtt = settings(2);
    on_mqtt.start_at = 1;
    let (m, actions) = run(Machine::new(on_mqtt), [Event::LinkDown]);
    assert_eq!((m.active, actions), (1, vec![]));
}

#[test]
fn a_lookup_answered_over_the_other_link_moves_there() {
    let (m, actions) = run(
        Machine::new(settings(2)),
        [Event::Deadline, Event::AnsweredOver(1)],
    );
    assert_eq!(m.active, 1);
    assert_eq!(
        actions.last(),
        Some(&Action::SwitchTo {
            to: 1,
            why: "answered a reconciliation lookup"
        })
    );
}

#[test]
fn not_delivered_fails_or_resends_on_the_fallback_once() {
    let nd = || Event::StartNotDelivered {
        code: FailCode::Unreachable,
        reason: "refused".into(),
    };
    let (m, actions) = run(Machine::new(settings(1)), [nd()]);
    assert_eq!(m.phase, Phase::Done);
    assert_eq!(
        actions,
        vec![Action::Finish(Outcome::NotDelivered {
            code: FailCode::Unreachable,
            reason: "refused".into()
        })]
    );
    let (m, actions) = run(Machine::new(settings(2)), [nd()]);
    assert_eq!(actions.last(), Some(&Action::AwaitRoute));
    let (m, actions) = run(m, [Event::RouteAvailable(1)]);
    assert_eq!(
        actions,
        vec![
            Action::SwitchTo {
                to: 1,
                why: "start not delivered"
            },
            Action::Resend
        ]
    );
    // Not delivered on the fallback either: wait again, within the window only.
    let (m, _) = run(m, [nd(), Event::DeliveryWindowOver]);
    assert_eq!(m.phase, Phase::Done);
}

#[test]
fn deadline_gives_unknown_then_reconciles_to_the_truth() {
    let (m, actions) = run(Machine::new(settings(1)), [Event::Deadline]);
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
                reason: "timeout".into(),
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
fn giving_up_frees_the_terminal_but_keeps_asking_slowly() {
    let mut s = settings(1);
    s.max_reconcile_attempts = 3;
    let fail = || Event::LookupFailed { reason: "x".into() };
    let mut events = vec![Event::Deadline];
    for _ in 0..3 {
        events.extend([Event::ReconcileDue, fail()]);
    }
    let (m, actions) = run(Machine::new(s), events);
    assert_eq!(m.phase, Phase::Abandoned);
    assert!(actions.contains(&Action::GiveUp));
    assert_eq!(actions.last(), Some(&Action::ScheduleSlowReconcile));
    assert!(!actions.iter().any(|a| matches!(a, Action::Finish(_))));
    // Still unknown, still asked about, still decided by the terminal alone.
    let (m, actions) = run(m, [Event::ReconcileDue, fail(), Event::ReconcileDue]);
    assert_eq!(
        actions,
        vec![
            Action::Lookup,
            Action::Note(events::POLL_MISSED, "x".into()),
            Action::ScheduleSlowReconcile,
            Action::Lookup
        ]
    );
    let (m, actions) = run(m, [Event::LookedUp(result(TxnStatus::Declined))]);
    assert_eq!(m.phase, Phase::Done);
    assert_eq!(
        actions,
        vec![Action::Finish(Outcome::Terminal(result(
            TxnStatus::Declined
        )))]
    );
}

#[test]
fn an_operator_settles_only_what_stayed_unknown() {
    let resolve = || Event::OperatorResolved {
        status: TxnStatus::Approved,
        reason: "receipt 4711 seen".into(),
    };
    let (m, actions) = run(Machine::new(settings(1)), [resolve()]);
    assert_eq!((m.phase, actions), (Phase::Waiting, vec![]));
    let (m, actions) = run(m, [Event::Deadline, resolve()]);
    assert_eq!(m.phase, Phase::Done);
    assert_eq!(
        actions.last(),
        Some(&Action::Finish(Outcome::Resolved {
            status: TxnStatus::Approved,
            reason: "receipt 4711 seen".into()
        }))
    );
}

#[test]
fn recovery_starts_reconciling_at_once() {
    let m = Machine::recovering(settings(1));
    assert_eq!(m.initial_actions(), vec![Action::ScheduleReconcile(0)]);
    let (m, actions) = run(m, [Event::ReconcileDue, not_found(0)]);
    assert_eq!(actions[0], Action::Lookup);
    assert_eq!(m.phase, Phase::Reconciling);
    let (m, _) = run(m, [Event::LookupDue, not_found(5), Event::PollIdle]);
    assert_eq!(m.phase, Phase::Done);
}

#[test]
fn a_late_start_answer_after_unknown_still_counts() {
    let (m, actions) = run(
        Machine::new(settings(1)),
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
