//! The router of one terminal: the only task that moves its new work between the direct
//! link and the fallback while no sale asks for it. It wakes on every verdict of the
//! probe monitor (and every `probeIntervalMs`, for the fallback's usability and the
//! failback check), asks [`route::decide`] and journals each switch as a terminal event.
//! Sales already running stay where they are; their own supervisors still switch them.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::events;
use super::route::{self, ActiveRoute, DIRECT, Decision, FALLBACK};
use crate::journal::Journal;
use crate::probe::Health;
use crate::transport::Transport;

pub struct Router {
    pub device_id: String,
    pub transports: Vec<Arc<dyn Transport>>,
    pub health: watch::Receiver<Health>,
    pub route: Arc<ActiveRoute>,
    pub journal: Journal,
    pub interval: Duration,
}

impl Router {
    pub async fn run(mut self, shutdown: CancellationToken) {
        let mut monitor_alive = true;
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                changed = self.health.changed(), if monitor_alive => monitor_alive = changed.is_ok(),
                _ = tokio::time::sleep(self.interval) => {}
            }
            let link = self.health.borrow_and_update().state;
            let usable = self.transports.get(FALLBACK).is_some_and(|t| t.usable());
            match route::decide(self.route.get(), self.transports.len(), link, usable) {
                Decision::Stay => {}
                Decision::ToFallback => self.switch(FALLBACK, "direct link down").await,
                // A frozen payment app still passes TCP and TLS probes: ask it.
                Decision::TryFailback => {
                    if self.transports[DIRECT].current().await.is_ok() {
                        self.switch(DIRECT, "direct link healthy again (failback)")
                            .await;
                    }
                }
            }
        }
    }

    async fn switch(&self, to: usize, why: &str) {
        let Some(from) = self.route.switch(to) else {
            return;
        };
        record_switch(
            &self.journal,
            &self.device_id,
            &self.transports,
            from,
            to,
            why,
        )
        .await;
    }
}

/// Logs and journals a move of a terminal's new work (the router's or a sale's).
pub async fn record_switch(
    journal: &Journal,
    device_id: &str,
    transports: &[Arc<dyn Transport>],
    from: usize,
    to: usize,
    why: &str,
) {
    let name = |i: usize| transports.get(i).map_or("?", |t| t.name());
    tracing::warn!(%device_id, from = name(from), to = name(to), why, "terminal's new work moves");
    let detail = format!("{} -> {} ({why})", name(from), name(to));
    if let Err(e) = journal
        .terminal_event(device_id, events::TRANSPORT_SWITCH, Some(detail))
        .await
    {
        tracing::warn!(%device_id, error = %e, "terminal event not journaled");
    }
}
