//! Where a terminal's new work starts: one decision per terminal, shared by every sale.
//! [`decide`] is the pure policy (the router task in `router.rs` feeds it the probe
//! monitor's link state and the fallback's usability); [`ActiveRoute`] is the shared
//! state it moves, with the moment of the last switch and a switch count.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use crate::probe::LinkState;
use crate::terminal::wire::now_rfc3339;

/// The index of the direct transport; the fallback, when configured, is the next one.
pub const DIRECT: usize = 0;
pub const FALLBACK: usize = 1;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    Stay,
    /// The direct link is down and the fallback usable: move new work there now,
    /// before any sale burns a connect timeout on the dead link.
    ToFallback,
    /// On the fallback while the probe no longer says `down`: go back once the
    /// terminal's payment app answers directly (the router checks it).
    TryFailback,
}

/// The policy: `active` is where new work starts, `transports` how many the terminal
/// has, `link` the probe monitor's verdict on the direct link, `fallback_usable` whether
/// the fallback would deliver now (broker connected, terminal presence `online`).
pub fn decide(
    active: usize,
    transports: usize,
    link: LinkState,
    fallback_usable: bool,
) -> Decision {
    if transports <= FALLBACK {
        return Decision::Stay;
    }
    match (active, link) {
        (DIRECT, LinkState::Down) if fallback_usable => Decision::ToFallback,
        (DIRECT, _) => Decision::Stay,
        (_, LinkState::Up | LinkState::Degraded) => Decision::TryFailback,
        _ => Decision::Stay,
    }
}

/// A terminal's active transport, shared by its router, its sales and the API.
#[derive(Debug)]
pub struct ActiveRoute {
    index: AtomicUsize,
    since: Mutex<String>,
    switches: AtomicU64,
}

impl Default for ActiveRoute {
    fn default() -> Self {
        ActiveRoute {
            index: AtomicUsize::new(DIRECT),
            since: Mutex::new(now_rfc3339()),
            switches: AtomicU64::new(0),
        }
    }
}

impl ActiveRoute {
    pub fn get(&self) -> usize {
        self.index.load(Ordering::Relaxed)
    }

    /// Moves new work to `to`; returns the previous index when it changed.
    pub fn switch(&self, to: usize) -> Option<usize> {
        let mut since = self.since.lock().unwrap_or_else(|e| e.into_inner());
        let from = self.index.swap(to, Ordering::Relaxed);
        if from == to {
            return None;
        }
        *since = now_rfc3339();
        self.switches.fetch_add(1, Ordering::Relaxed);
        Some(from)
    }

    /// When new work last moved (start-up when it never did), RFC 3339.
    pub fn since(&self) -> String {
        self.since.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Switches since start-up, both ways.
    pub fn switches(&self) -> u64 {
        self.switches.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use LinkState::*;

    #[test]
    fn down_with_a_usable_fallback_moves_at_once() {
        assert_eq!(decide(DIRECT, 2, Down, true), Decision::ToFallback);
        // Nowhere better to go: stay, the sale's own supervisor handles what follows.
        assert_eq!(decide(DIRECT, 2, Down, false), Decision::Stay);
        assert_eq!(decide(DIRECT, 1, Down, true), Decision::Stay);
        for link in [Unknown, Up, Degraded] {
            assert_eq!(decide(DIRECT, 2, link, true), Decision::Stay, "{link:?}");
        }
    }

    #[test]
    fn failback_only_once_the_probe_no_longer_says_down() {
        assert_eq!(decide(FALLBACK, 2, Up, true), Decision::TryFailback);
        assert_eq!(decide(FALLBACK, 2, Degraded, false), Decision::TryFailback);
        assert_eq!(decide(FALLBACK, 2, Down, true), Decision::Stay);
        assert_eq!(decide(FALLBACK, 2, Unknown, true), Decision::Stay);
    }

    #[test]
    fn a_switch_counts_and_dates_only_real_moves() {
        let route = ActiveRoute::default();
        assert_eq!(route.switch(DIRECT), None);
        assert_eq!(route.switches(), 0);
        assert_eq!(route.switch(FALLBACK), Some(DIRECT));
        assert_eq!(route.switch(FALLBACK), None);
        assert_eq!(route.switch(DIRECT), Some(FALLBACK));
        assert_eq!((route.get(), route.switches()), (DIRECT, 2));
        assert!(route.since().ends_with('Z') || route.since().contains('+'));
    }
}
