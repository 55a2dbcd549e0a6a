//! The card part of a simulated payment: the stages a real terminal reports while the
//! customer taps, types the PIN and the issuer authorises, spread over the card time
//! ([`SIM_STAGES`]), and the `holdPayments` fault, which keeps the payment at the PIN
//! pad until released.

use super::{Sim, lock};
use crate::constants::SIM_STAGES;

/// Runs the card time of payment `id`, publishing each stage on the simulator's state
/// (read by `GET /v1/transactions/current`, over HTTPS and MQTT alike).
pub(super) async fn run_card(sim: &Sim, id: &str) {
    let card_time = sim.opts.card_time;
    // At card time 0 the answer comes without a trip through the timer wheel
    // (whose millisecond ticks would otherwise be what a benchmark measures).
    if card_time.is_zero() {
        wait_while_held(sim).await;
        return;
    }
    for (i, (stage, share)) in SIM_STAGES.iter().enumerate() {
        set_stage(sim, id, stage);
        tokio::time::sleep(card_time.mul_f64(*share)).await;
        // Held after the PIN stage, before authorisation starts.
        if i == 1 {
            wait_while_held(sim).await;
        }
    }
}

fn set_stage(sim: &Sim, id: &str, stage: &str) {
    let mut state = lock(&sim.state);
    if state.current.as_deref() == Some(id) {
        tracing::debug!(transaction_id = %id, stage, "card stage");
        state.stage = Some(stage.to_string());
    }
}

async fn wait_while_held(sim: &Sim) {
    loop {
        let woken = sim.unhang.notified();
        if !lock(&sim.faults).hold_payments {
            return;
        }
        woken.await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// The stage a payment is at `elapsed` into `card_time` (no hold): for documentation
    /// and tests of the split.
    fn stage_at(elapsed: Duration, card_time: Duration) -> &'static str {
        let mut end = Duration::ZERO;
        for (stage, share) in SIM_STAGES {
            end += card_time.mul_f64(share);
            if elapsed < end {
                return stage;
            }
        }
        SIM_STAGES[SIM_STAGES.len() - 1].0
    }

    #[test]
    fn stages_follow_each_other_over_the_card_time() {
        let card = Duration::from_secs(10);
        assert_eq!(stage_at(Duration::ZERO, card), "waiting_for_card");
        assert_eq!(stage_at(Duration::from_secs(5), card), "pin");
        assert_eq!(stage_at(Duration::from_secs(9), card), "authorising");
        let total: f64 = SIM_STAGES.iter().map(|(_, s)| s).sum();
        assert!((total - 1.0).abs() < 1e-9, "shares add up to the card time");
    }
}
