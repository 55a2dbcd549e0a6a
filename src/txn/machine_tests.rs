//! The machine's invariants, checked over every state shape and every event.

use super::*;
use crate::terminal::wire::{TxnKind, TxnResult, TxnStatus};

pub(super) const H: Duration = Duration::from_secs(5);

pub(super) fn result(status: TxnStatus) -> TxnResult {
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
        receipt: None,
    }
}

pub(crate) fn settings(transports: usize) -> Settings {
    Settings {
        loops_before: 3,
        max_reconcile_attempts: 10,
        transports,
        start_at: 0,
        not_found_horizon: H,
        never_arrived_after: Duration::ZERO,
        other_addresses: false,
    }
}

pub(super) fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

pub(super) fn not_found(at: u64) -> Event {
    Event::LookedUpNotFound { at: secs(at) }
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
        Event::StartMaybeDelivered {
            reason: "reset".into(),
        },
        Event::AnswerMismatch {
            call: Call::Start,
            detail: "transactionId".into(),
        },
        Event::AnswerMismatch {
            call: Call::Lookup,
            detail: "amount".into(),
        },
        Event::PollDue,
        Event::PollInProgress,
        Event::PollIdle,
        Event::PollFailed {
            reason: "timeout".into(),
        },
        not_found(0),
        not_found(3),
        not_found(100),
        Event::LookupFailed {
            reason: "timeout".into(),
        },
        Event::LookupDue,
        Event::Deadline,
        Event::ReconcileDue,
        Event::LinkDown,
        Event::LinkUp,
        Event::AnsweredOver(0),
        Event::AnsweredOver(1),
        Event::RouteAvailable(0),
        Event::RouteAvailable(1),
        Event::DeliveryWindowOver,
    ];
    for st in TxnStatus::ALL {
        events.push(Event::StartAnswered(result(st)));
        events.push(Event::LookedUp(result(st)));
        events.push(Event::OperatorResolved {
            status: st,
            reason: "receipt seen".into(),
        });
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
            for (transports, active, switched) in
                [(1, 0, false), (2, 0, false), (2, 1, true), (2, 1, false)]
            {
                for (resent, delivery) in [
                    (false, Delivery::default()),
                    (true, Delivery::default()),
                    (
                        false,
                        Delivery {
                            awaiting: Some((FailCode::Unreachable, "refused".into())),
                            window_over: false,
                            tls_failure: None,
                        },
                    ),
                    (
                        true,
                        Delivery {
                            awaiting: None,
                            window_over: true,
                            tls_failure: Some("unknown CA".into()),
                        },
                    ),
                ] {
                    for missed in [0, 2] {
                        for reconcile_attempts in [0, 10] {
                            for evidence in [
                                Evidence::default(),
                                Evidence {
                                    first_not_found: Some(secs(1)),
                                    absence_check: false,
                                },
                                Evidence {
                                    first_not_found: Some(secs(1)),
                                    absence_check: true,
                                },
                            ] {
                                out.push(Machine {
                                    phase,
                                    start_outstanding,
                                    missed,
                                    active,
                                    switched,
                                    resent,
                                    delivery: delivery.clone(),
                                    reconcile_attempts,
                                    evidence,
                                    settings: settings(transports),
                                });
                            }
                        }
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
            if m.phase == Phase::Done {
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
            // The transport in use is always one that exists.
            assert!(after.active < after.settings.transports, "{ctx}");
            // An answer about something else never decides anything.
            if matches!(ev, Event::AnswerMismatch { .. }) {
                assert_eq!(finishes, 0, "{ctx}");
            }
            // Only the terminal's answer, a refusal, a failure to send or an operator
            // after timeStop ends a transaction.
            for a in &actions {
                match a {
                    // Never an invented outcome: a terminal verdict is always final.
                    Action::Finish(Outcome::Terminal(r)) => {
                        assert!(r.status.is_final(), "{ctx}");
                        assert!(
                            matches!(ev, Event::StartAnswered(_) | Event::LookedUp(_)),
                            "{ctx}"
                        );
                    }
                    // "Never arrived" only once the start call is over, after a second
                    // `not_found` the horizon after the first, and an idle `current`.
                    Action::Finish(Outcome::NeverArrived) => {
                        assert!(!m.start_outstanding, "{ctx}");
                        assert!(m.evidence.absence_check, "{ctx}");
                        assert_eq!(ev, Event::PollIdle, "{ctx}");
                    }
                    // Failed only for a start not delivered: at once when no other route
                    // can appear, else when the window (or timeStop) ends without one.
                    Action::Finish(Outcome::NotDelivered { .. }) => {
                        let waited = m.delivery.awaiting.is_some()
                            && matches!(ev, Event::DeliveryWindowOver | Event::Deadline);
                        assert!(
                            matches!(ev, Event::StartNotDelivered { .. }) || waited,
                            "{ctx}"
                        )
                    }
                    Action::Finish(Outcome::Rejected { .. }) => {
                        assert!(matches!(ev, Event::StartRejected { .. }), "{ctx}")
                    }
                    Action::Finish(Outcome::Resolved { status, .. }) => {
                        assert!(status.is_final(), "{ctx}");
                        assert!(
                            matches!(m.phase, Phase::Reconciling | Phase::Abandoned),
                            "{ctx}"
                        );
                    }
                    // A switch goes somewhere else that exists, and the machine is there.
                    Action::SwitchTo { to, .. } => {
                        assert_ne!(*to, m.active, "{ctx}");
                        assert_eq!(after.active, *to, "{ctx}");
                    }
                    // Sent again only when it was never delivered and a route appeared.
                    Action::Resend => {
                        assert!(matches!(ev, Event::RouteAvailable(_)), "{ctx}");
                        assert!(m.delivery.awaiting.is_some(), "{ctx}");
                        assert!(after.resent && after.start_outstanding, "{ctx}");
                        assert_eq!(m.phase, Phase::Waiting, "{ctx}");
                    }
                    Action::MarkUnknown => {
                        assert_eq!(m.phase, Phase::Waiting, "{ctx}");
                        assert_eq!(after.phase, Phase::Reconciling, "{ctx}");
                    }
                    Action::GiveUp => {
                        assert_eq!(after.phase, Phase::Abandoned, "{ctx}");
                        assert_ne!(m.phase, Phase::Abandoned, "{ctx}");
                    }
                    _ => {}
                }
            }
            // A loss-driven switch happens once per transaction.
            if m.switched {
                let loss_switch = actions.iter().any(|a| {
                    matches!(a, Action::SwitchTo { why, .. }
                        if *why == "direct link down" || *why == "status calls unanswered")
                });
                assert!(!loss_switch, "{ctx}");
            }
            // Waiting for a route, nothing is asked: nothing was delivered.
            if after.delivery.awaiting.is_some() {
                assert!(!actions.contains(&Action::Poll), "{ctx}");
                assert!(!actions.contains(&Action::Resend), "{ctx}");
            }
            // Polls happen while the POS waits, or to check that nothing is running.
            if actions.contains(&Action::Poll) {
                assert!(
                    after.phase == Phase::Waiting || after.evidence.absence_check,
                    "{ctx}"
                );
            }
        }
    }
}
