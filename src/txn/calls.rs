//! The terminal calls of one transaction, each spawned beside the supervisor's loop
//! so that no slow or hung terminal holds up its deadline, link events or other
//! answers. Every answer is classified (`classify`) before it becomes an event.

use super::classify;
use super::events;
use super::machine::{Event, Phase};
use super::supervisor::{CancelCall, Completed, Driver};
use crate::terminal::TerminalError;
use crate::terminal::wire::CancelAnswer;

impl Driver {
    pub(super) fn spawn_start(&mut self) {
        let transport = self.transport();
        self.start_address = self
            .route_health
            .as_ref()
            .map(|h| h.borrow().address.clone());
        let on = self.sup.machine.active;
        if self.tried.len() <= on {
            self.tried.resize(on + 1, false);
        }
        self.tried[on] = true;
        let request = self.sup.request.clone();
        let kind = self.sup.kind;
        // The start call stays open as long as the POS may wait; a later answer is
        // found by lookup.
        let wait = self.sup.timing.time_stop;
        self.calls.spawn(async move {
            let answer = transport.start(kind, &request, wait).await;
            Completed {
                event: classify::start_answer(kind, &request, answer),
                note: None,
                status_call: false,
                answered_via: None,
            }
        });
    }

    pub(super) fn spawn_poll(&mut self) {
        if self.status_call_in_flight {
            return;
        }
        self.status_call_in_flight = true;
        let transport = self.transport();
        let id = self.sup.request.transaction_id.clone();
        self.calls.spawn(async move {
            let (event, note) = classify::current_answer(&id, transport.current().await);
            Completed {
                event,
                note,
                status_call: true,
                answered_via: None,
            }
        });
    }

    pub(super) fn spawn_lookup(&mut self) {
        if self.status_call_in_flight {
            self.lookup_wanted = true;
            return;
        }
        self.status_call_in_flight = true;
        let active = self.sup.machine.active;
        let count = self.sup.transports.len();
        // After `timeStop` any path that answers will do: a lookup only reads the
        // terminal's record, so asking the other transport too is safe, and the truth
        // arrives as soon as either link is back.
        let order: Vec<usize> = if self.sup.machine.phase == Phase::Waiting {
            vec![active]
        } else {
            std::iter::once(active)
                .chain((0..count).filter(|&i| i != active))
                .collect()
        };
        let transports = self.sup.transports.clone();
        let request = self.sup.request.clone();
        let kind = self.sup.kind;
        let started = self.started;
        self.calls.spawn(async move {
            let mut first_failure = None;
            for i in order {
                let Some(transport) = transports.get(i) else {
                    continue;
                };
                match transport.lookup(&request.transaction_id).await {
                    Ok(lookup) => {
                        return Completed {
                            event: classify::lookup_answer(
                                kind,
                                &request,
                                Ok(lookup),
                                started.elapsed(),
                            ),
                            note: None,
                            status_call: true,
                            answered_via: (i != active).then_some(i),
                        };
                    }
                    // The first (active) transport's failure is the one reported.
                    Err(e) => {
                        first_failure.get_or_insert(e);
                    }
                }
            }
            let event = match first_failure {
                Some(e) => classify::lookup_answer(kind, &request, Err(e), started.elapsed()),
                None => Event::LookupFailed {
                    reason: "no transport configured".into(),
                },
            };
            Completed {
                event,
                note: None,
                status_call: true,
                answered_via: None,
            }
        });
    }

    /// Sends the cancel beside the loop: a hung terminal's cancel never stops the
    /// deadline, link events or the start answer from being handled.
    pub(super) async fn spawn_cancel(&mut self, reply: CancelCall) {
        self.note(events::CANCEL_REQUESTED, String::new()).await;
        let transport = self.transport();
        let id = self.sup.request.transaction_id.clone();
        self.cancel_calls.spawn(async move {
            let answer = transport.cancel(&id).await;
            (reply, answer)
        });
    }

    pub(super) async fn cancel_answered(
        &mut self,
        reply: CancelCall,
        answer: Result<CancelAnswer, TerminalError>,
    ) {
        let detail = match &answer {
            Ok(a) => format!("cancelled={} {}", a.cancelled, a.message),
            Err(e) => format!("no answer: {e}"),
        };
        self.note(events::CANCEL_ANSWER, detail).await;
        let _ = reply.send(answer);
    }
}
