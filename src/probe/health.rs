//! Link state with hysteresis, as a pure tracker fed one probe round at a time.
//! The service (TCP, and TLS when checked) decides up/down; ICMP alone can only
//! degrade a link, since a terminal that drops pings may still take payments.

use serde::Serialize;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LinkState {
    /// No round finished yet.
    Unknown,
    Up,
    /// The payment service answers but ICMP does not.
    Degraded,
    Down,
}

impl LinkState {
    pub fn as_str(self) -> &'static str {
        match self {
            LinkState::Unknown => "unknown",
            LinkState::Up => "up",
            LinkState::Degraded => "degraded",
            LinkState::Down => "down",
        }
    }
}

/// The default number of failed rounds in a row before `down` (or `degraded`).
pub const DEFAULT_DOWN_AFTER: u32 = 3;
/// The default number of good rounds in a row before a link counts as back.
pub const DEFAULT_UP_AFTER: u32 = 2;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Hysteresis {
    pub down_after: u32,
    pub up_after: u32,
}

impl Default for Hysteresis {
    fn default() -> Self {
        Hysteresis {
            down_after: DEFAULT_DOWN_AFTER,
            up_after: DEFAULT_UP_AFTER,
        }
    }
}

/// What one probe round found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Round {
    /// TCP connect (and the TLS handshake, on rounds that check it) succeeded.
    pub service: bool,
    /// An echo reply came back; `None` when ICMP is not available to us.
    pub icmp: Option<bool>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Tracker {
    pub state: Option<LinkState>,
    service_ok: u32,
    service_fail: u32,
    icmp_ok: u32,
    icmp_fail: u32,
}

impl Tracker {
    pub fn state(&self) -> LinkState {
        self.state.unwrap_or(LinkState::Unknown)
    }

    /// The last round disagreed with the state and the hysteresis has not decided yet:
    /// the monitor confirms with quick re-probes (`probeConfirmMs` apart) instead of
    /// waiting whole rounds, as BFD's detect time is a multiple of a short interval.
    /// ICMP alone never asks for confirmation: it can only degrade a link.
    pub fn pending(&self) -> bool {
        match self.state() {
            LinkState::Unknown => false,
            LinkState::Down => self.service_ok > 0,
            LinkState::Up | LinkState::Degraded => self.service_fail > 0,
        }
    }

    /// Feeds one round; returns the new state when it changed.
    pub fn observe(&mut self, round: Round, h: Hysteresis) -> Option<LinkState> {
        bump(round.service, &mut self.service_ok, &mut self.service_fail);
        if let Some(icmp) = round.icmp {
            bump(icmp, &mut self.icmp_ok, &mut self.icmp_fail);
        } else {
            self.icmp_fail = 0;
        }
        let icmp_failing = self.icmp_fail >= h.down_after;
        let next = match self.state() {
            // The first round speaks for itself: nothing to smooth yet.
            LinkState::Unknown if !round.service => LinkState::Down,
            LinkState::Unknown if round.icmp == Some(false) => LinkState::Degraded,
            LinkState::Unknown => LinkState::Up,
            _ if self.service_fail >= h.down_after => LinkState::Down,
            LinkState::Down if self.service_ok < h.up_after => LinkState::Down,
            LinkState::Down if self.icmp_fail > 0 => LinkState::Degraded,
            LinkState::Down => LinkState::Up,
            LinkState::Up if icmp_failing => LinkState::Degraded,
            LinkState::Up => LinkState::Up,
            LinkState::Degraded if round.icmp.is_none() || self.icmp_ok >= h.up_after => {
                LinkState::Up
            }
            LinkState::Degraded => LinkState::Degraded,
        };
        let changed = self.state != Some(next);
        self.state = Some(next);
        changed.then_some(next)
    }
}

fn bump(ok: bool, ok_streak: &mut u32, fail_streak: &mut u32) {
    if ok {
        *ok_streak = ok_streak.saturating_add(1);
        *fail_streak = 0;
    } else {
        *fail_streak = fail_streak.saturating_add(1);
        *ok_streak = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: Hysteresis = Hysteresis {
        down_after: 3,
        up_after: 2,
    };

    fn feed(t: &mut Tracker, rounds: &[(bool, Option<bool>)]) -> Vec<LinkState> {
        rounds
            .iter()
            .map(|&(service, icmp)| {
                t.observe(Round { service, icmp }, H);
                t.state()
            })
            .collect()
    }

    #[test]
    fn down_after_three_failed_rounds_up_after_two_good() {
        let mut t = Tracker::default();
        let states = feed(
            &mut t,
            &[
                (true, Some(true)),
                (false, Some(false)),
                (false, Some(false)),
                (false, Some(false)),
                (true, Some(true)),
                (true, Some(true)),
            ],
        );
        use LinkState::*;
        assert_eq!(states, vec![Up, Up, Up, Down, Down, Up]);
    }

    #[test]
    fn icmp_only_loss_degrades_but_never_downs() {
        let mut t = Tracker::default();
        let mut rounds = vec![(true, Some(true))];
        rounds.extend(std::iter::repeat_n((true, Some(false)), 20));
        let states = feed(&mut t, &rounds);
        assert!(!states.contains(&LinkState::Down));
        assert_eq!(*states.last().unwrap(), LinkState::Degraded);
        let states = feed(&mut t, &[(true, Some(true)), (true, Some(true))]);
        assert_eq!(states, vec![LinkState::Degraded, LinkState::Up]);
    }

    #[test]
    fn without_icmp_the_service_alone_decides() {
        let mut t = Tracker::default();
        let states = feed(
            &mut t,
            &[
                (true, None),
                (true, None),
                (false, None),
                (false, None),
                (false, None),
            ],
        );
        assert_eq!(
            states,
            vec![
                LinkState::Up,
                LinkState::Up,
                LinkState::Up,
                LinkState::Up,
                LinkState::Down
            ]
        );
    }

    #[test]
    fn isolated_failures_do_not_flap() {
        // Two failed rounds in a row at most, as random loss produces: never down.
        let mut t = Tracker::default();
        let pattern = [
            true, false, false, true, false, true, true, false, false, true,
        ];
        let rounds: Vec<_> = pattern
            .iter()
            .cycle()
            .take(200)
            .map(|&ok| (ok, Some(ok)))
            .collect();
        let states = feed(&mut t, &rounds);
        assert!(states.iter().all(|s| *s == LinkState::Up), "{states:?}");
    }

    #[test]
    fn a_disagreeing_round_asks_for_confirmation_until_decided() {
        let mut t = Tracker::default();
        let mut pending = Vec::new();
        for &(service, icmp) in &[
            (true, Some(true)),
            (false, Some(false)),
            (false, Some(false)),
            (false, Some(false)),
            (true, Some(true)),
            (true, Some(true)),
            (true, Some(false)),
        ] {
            t.observe(Round { service, icmp }, H);
            pending.push(t.pending());
        }
        // Up; 1st and 2nd failure pending; down decided; 1st good pending; up; ICMP-only
        // loss never asks for quick re-probes.
        assert_eq!(pending, vec![false, true, true, false, true, false, false]);
        let mut t = Tracker::default();
        t.observe(
            Round {
                service: true,
                icmp: None,
            },
            H,
        );
        t.observe(
            Round {
                service: false,
                icmp: None,
            },
            H,
        );
        assert!(t.pending());
        t.observe(
            Round {
                service: true,
                icmp: None,
            },
            H,
        );
        assert!(!t.pending(), "a good round ends the suspicion");
        assert_eq!(t.state(), LinkState::Up);
    }

    #[test]
    fn first_round_decides_from_unknown() {
        let mut t = Tracker::default();
        assert_eq!(t.state(), LinkState::Unknown);
        assert_eq!(
            t.observe(
                Round {
                    service: false,
                    icmp: Some(true)
                },
                H
            ),
            Some(LinkState::Down)
        );
        let mut t = Tracker::default();
        assert_eq!(
            t.observe(
                Round {
                    service: true,
                    icmp: Some(false)
                },
                H
            ),
            Some(LinkState::Degraded)
        );
    }
}
