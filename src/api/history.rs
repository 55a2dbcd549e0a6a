//! The recent past of each terminal's link for the status page: one sample per probe
//! round (ICMP round-trip time and state) over the last minutes, kept in memory only.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::constants::{RTT_HISTORY_SAMPLES, RTT_HISTORY_SPAN};
use crate::probe::Health;

#[derive(Clone, Copy, Debug, PartialEq)]
struct Sample {
    at_ms: u64,
    rtt_ms: Option<f64>,
    state: &'static str,
}

/// One terminal's samples, oldest first.
#[derive(Debug, Default)]
pub struct LinkHistory {
    samples: Mutex<VecDeque<Sample>>,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

impl LinkHistory {
    fn record(&self, at_ms: u64, health: &Health) {
        let mut samples = self.samples.lock().unwrap_or_else(|p| p.into_inner());
        samples.push_back(Sample {
            at_ms,
            rtt_ms: health.last_icmp_rtt_ms,
            state: health.state.as_str(),
        });
        let oldest = at_ms.saturating_sub(RTT_HISTORY_SPAN.as_millis() as u64);
        while samples.len() > RTT_HISTORY_SAMPLES
            || samples.front().is_some_and(|s| s.at_ms < oldest)
        {
            samples.pop_front();
        }
    }

    /// `[{"at": unix ms, "rttMs": number|null, "state"}]`, oldest first.
    pub fn to_json(&self) -> Value {
        let samples = self.samples.lock().unwrap_or_else(|p| p.into_inner());
        Value::Array(
            samples
                .iter()
                .map(|s| json!({"at": s.at_ms, "rttMs": s.rtt_ms, "state": s.state}))
                .collect(),
        )
    }

    /// Records every health the probe monitor publishes until it stops or `shutdown`.
    pub async fn follow(&self, mut health: watch::Receiver<Health>, shutdown: CancellationToken) {
        loop {
            let current = health.borrow_and_update().clone();
            self.record(now_ms(), &current);
            tokio::select! {
                changed = health.changed() => if changed.is_err() { return },
                _ = shutdown.cancelled() => return,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn old_samples_fall_out_by_age_and_by_count() {
        let h = LinkHistory::default();
        let mut health = Health::initial("D", "127.0.0.1:1".parse().unwrap());
        health.last_icmp_rtt_ms = Some(1.5);
        let span = RTT_HISTORY_SPAN.as_millis() as u64;
        h.record(1_000, &health);
        h.record(1_000 + span + 1, &health);
        let kept = h.to_json();
        assert_eq!(
            kept.as_array().unwrap().len(),
            1,
            "older than the span: {kept}"
        );
        assert_eq!(kept[0]["rttMs"], 1.5);
        for i in 0..(RTT_HISTORY_SAMPLES as u64 + 10) {
            h.record(2_000 + span + i, &health);
        }
        assert_eq!(h.to_json().as_array().unwrap().len(), RTT_HISTORY_SAMPLES);
    }
}
