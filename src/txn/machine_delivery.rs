//! A start that could not be delivered (connect or TLS failed before a byte was
//! written) is not the end of the sale: within its delivery window (`staticIptimeOut`
//! from the first failure, never past `timeStop`) it waits for a route and is sent again over the first one
//! that becomes usable — the fallback, or an address the probe monitor moved the
//! terminal to after a verified TLS handshake (mDNS). With no other route configured
//! the failure is answered at once. Pure, like the rest of the machine: the driver
//! reports what it sees of the routes ([`Routes`]) and the end of the window.

use super::events;
use super::machine::{Action, Event, FailCode, Machine, Outcome, Phase};
use super::route::{DIRECT, FALLBACK};

/// Where the start stands on its way to the terminal.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Delivery {
    /// Not delivered, waiting for a route: the failure to report if none appears.
    pub awaiting: Option<(FailCode, String)>,
    /// The delivery window has ended: a failure to deliver is final from now on.
    pub window_over: bool,
    /// A TLS verification failure seen on the way: it is what the POS hears, even if a
    /// later route merely could not connect (the terminal may be an impostor).
    pub tls_failure: Option<String>,
}

/// What the driver sees of the routes while a start waits for one.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Routes {
    /// The fallback would deliver now (broker connected, terminal presence `online`).
    pub fallback_usable: bool,
    /// The probe monitor moved the terminal to another address since the failure,
    /// after a verified TLS handshake there.
    pub address_moved: bool,
    /// The probe monitor does not say the direct link is down.
    pub direct_not_down: bool,
    /// This sale has not tried its other transport yet (cheap: an unusable fallback
    /// refuses at once, and a stale `down` verdict does not rule the direct link out).
    pub other_untried: bool,
}

/// The route a waiting start goes over now, if any: `active` is the transport it
/// failed on. The other transport is tried once at once (as before issue 11); after
/// that the failed path is never retried as it was: the direct link only at a new
/// address (or, after a failure on the fallback, when the probe does not say down),
/// the fallback once usable.
pub fn route_for(active: usize, transports: usize, r: Routes) -> Option<usize> {
    if r.address_moved {
        return Some(DIRECT);
    }
    if transports > FALLBACK && r.other_untried {
        return Some(if active == DIRECT { FALLBACK } else { DIRECT });
    }
    if active != DIRECT && r.direct_not_down {
        return Some(DIRECT);
    }
    (active != FALLBACK && transports > FALLBACK && r.fallback_usable).then_some(FALLBACK)
}

impl Machine {
    /// Another route can appear for this terminal (the fallback, or mDNS moves).
    fn has_other_routes(&self) -> bool {
        self.settings.transports > 1 || self.settings.other_addresses
    }

    /// The outcome when no route delivered: a TLS failure seen on the way wins.
    fn undelivered(&mut self, code: FailCode, reason: String) -> Vec<Action> {
        let (code, reason) = match self.delivery.tls_failure.take() {
            Some(tls) if code != FailCode::TlsError => (FailCode::TlsError, tls),
            _ => (code, reason),
        };
        self.finish(Outcome::NotDelivered { code, reason })
    }

    pub(super) fn not_delivered(&mut self, code: FailCode, reason: String) -> Vec<Action> {
        self.start_outstanding = false;
        if self.phase != Phase::Waiting || self.delivery.window_over || !self.has_other_routes() {
            return self.undelivered(code, reason);
        }
        if code == FailCode::TlsError {
            self.delivery.tls_failure = Some(reason.clone());
        }
        self.delivery.awaiting = Some((code, reason.clone()));
        vec![
            Action::Note(events::NOT_DELIVERED, reason),
            Action::AwaitRoute,
        ]
    }

    pub(super) fn route_available(&mut self, to: usize) -> Vec<Action> {
        if self.phase != Phase::Waiting || to >= self.settings.transports {
            return Vec::new();
        }
        if self.delivery.awaiting.take().is_none() {
            return Vec::new();
        }
        self.resent = true;
        self.start_outstanding = true;
        self.seen();
        let mut actions = Vec::new();
        if to != self.active {
            self.active = to;
            actions.push(Action::SwitchTo {
                to,
                why: "start not delivered",
            });
        }
        actions.push(Action::Resend);
        actions
    }

    /// The window ended (or `timeStop` came first): a waiting start fails now.
    pub(super) fn delivery_window_over(&mut self) -> Vec<Action> {
        self.delivery.window_over = true;
        match self.delivery.awaiting.take() {
            Some((code, reason)) if self.phase == Phase::Waiting => self.undelivered(code, reason),
            _ => Vec::new(),
        }
    }

    pub fn awaiting_route(&self) -> bool {
        self.delivery.awaiting.is_some()
    }

    /// Nothing was delivered: no poll or link news means anything until a route is found.
    pub(super) fn ignores_while_awaiting(&self, event: &Event) -> bool {
        use Event as E;
        self.awaiting_route()
            && matches!(
                event,
                E::PollDue
                    | E::PollFailed { .. }
                    | E::PollIdle
                    | E::LinkDown
                    | E::LinkUp
                    | E::LookedUpNotFound { .. }
                    | E::LookupFailed { .. }
                    | E::LookupDue
            )
    }
}

#[cfg(test)]
mod tests {
    use super::super::machine::next;
    use super::super::machine::tests::settings;
    use super::*;

    fn nd(code: FailCode) -> Event {
        Event::StartNotDelivered {
            code,
            reason: "no route to host".into(),
        }
    }

    #[test]
    fn without_another_route_a_failure_is_answered_at_once() {
        for code in [FailCode::TlsError, FailCode::Unreachable] {
            let (m, actions) = next(Machine::new(settings(1)), nd(code));
            assert_eq!(m.phase, Phase::Done);
            assert!(matches!(
                actions[..],
                [Action::Finish(Outcome::NotDelivered { .. })]
            ));
        }
    }

    #[test]
    fn an_mdns_move_within_the_window_resends_at_the_new_address() {
        let mut s = settings(1);
        s.other_addresses = true;
        let (m, actions) = next(Machine::new(s), nd(FailCode::Unreachable));
        assert_eq!(m.phase, Phase::Waiting);
        assert_eq!(actions.last(), Some(&Action::AwaitRoute));
        // Polls and link news change nothing while nothing was delivered.
        let (m, actions) = next(m, Event::PollDue);
        assert!(actions.is_empty());
        let (m, actions) = next(m, Event::RouteAvailable(DIRECT));
        assert_eq!(actions, vec![Action::Resend]);
        assert!(m.start_outstanding && !m.awaiting_route());
    }

    #[test]
    fn no_route_within_the_window_fails_with_the_original_reason() {
        let (m, _) = next(Machine::new(settings(2)), nd(FailCode::TlsError));
        let (m, actions) = next(m, Event::DeliveryWindowOver);
        assert_eq!(m.phase, Phase::Done);
        assert_eq!(
            actions,
            vec![Action::Finish(Outcome::NotDelivered {
                code: FailCode::TlsError,
                reason: "no route to host".into()
            })]
        );
        // timeStop before the window: still `failed`, never `unknown` (nothing was sent).
        let (m, _) = next(Machine::new(settings(2)), nd(FailCode::Unreachable));
        let (m, actions) = next(m, Event::Deadline);
        assert_eq!(m.phase, Phase::Done);
        assert!(matches!(
            actions[..],
            [Action::Finish(Outcome::NotDelivered { .. })]
        ));
        // After the window a failure is final at once.
        let (m, _) = next(Machine::new(settings(2)), Event::DeliveryWindowOver);
        let (m, _) = next(m, nd(FailCode::Unreachable));
        assert_eq!(m.phase, Phase::Done);
    }

    #[test]
    fn a_tls_failure_is_what_the_pos_hears_after_a_fallback_that_could_not_connect() {
        let tls = Event::StartNotDelivered {
            code: FailCode::TlsError,
            reason: "certificate signed by an unknown CA".into(),
        };
        let (m, _) = next(Machine::new(settings(2)), tls);
        let (m, actions) = next(m, Event::RouteAvailable(FALLBACK));
        assert_eq!(actions.last(), Some(&Action::Resend));
        let (m, _) = next(m, nd(FailCode::Unreachable));
        let (m, actions) = next(m, Event::DeliveryWindowOver);
        assert_eq!(m.phase, Phase::Done);
        assert_eq!(
            actions,
            vec![Action::Finish(Outcome::NotDelivered {
                code: FailCode::TlsError,
                reason: "certificate signed by an unknown CA".into()
            })]
        );
    }

    #[test]
    fn the_failed_path_is_never_retried_as_it_was() {
        let none = Routes::default();
        assert_eq!(route_for(DIRECT, 2, none), None);
        let fallback = Routes {
            fallback_usable: true,
            ..none
        };
        assert_eq!(route_for(DIRECT, 2, fallback), Some(FALLBACK));
        assert_eq!(route_for(DIRECT, 1, fallback), None);
        assert_eq!(route_for(FALLBACK, 2, fallback), None);
        let moved = Routes {
            address_moved: true,
            ..none
        };
        assert_eq!(route_for(DIRECT, 1, moved), Some(DIRECT));
        let direct_ok = Routes {
            direct_not_down: true,
            ..none
        };
        assert_eq!(route_for(DIRECT, 2, direct_ok), None);
        assert_eq!(route_for(FALLBACK, 2, direct_ok), Some(DIRECT));
        let untried = Routes {
            other_untried: true,
            ..none
        };
        assert_eq!(route_for(DIRECT, 2, untried), Some(FALLBACK));
        assert_eq!(route_for(FALLBACK, 2, untried), Some(DIRECT));
        assert_eq!(route_for(DIRECT, 1, untried), None);
    }
}
