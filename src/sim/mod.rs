//! The terminal simulator ("dummy mode"): the terminal protocol of DESIGN.md over
//! HTTPS, card outcomes chosen by amount, and fault knobs for the tests. It is a
//! separate command; `serve` never exposes any of it.

mod card;
mod comercia;
mod fleet;
mod mqtt;
mod routes;
pub mod state;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::constants::DEFAULT_DEVICE_ID;
pub use fleet::{Fleet, FleetError, FleetOptions, nth_device_id};
pub use mqtt::SimMqtt;
use state::SimState;
pub use state::StateError;

/// Scripted misbehaviour, set by `ecrlink sim` flags or `POST /sim/faults`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
pub struct Faults {
    /// The next N payments complete, but their answer is dropped (connection closed).
    pub drop_responses: u32,
    /// Answer no protocol request over HTTPS until cleared (a frozen REST listener); the
    /// MQTT side, if any, keeps answering.
    pub hang: bool,
    /// The next N status calls (`current` and lookups) get no answer.
    pub ignore_polls: u32,
    /// Exit the process right after recording the next payment's outcome, before
    /// answering (the terminal approved, then died).
    pub crash_after_outcome: bool,
    /// Every payment stays at the card (in progress) after its card time until this is
    /// cleared: a test that must act mid-payment holds it instead of racing a clock.
    /// A cancel still ends a held payment.
    pub hold_payments: bool,
    /// HTTP status (0 = off): the next payment completes and is recorded, then its
    /// start call is answered with this status and an error body. One-shot.
    pub error_after_charge: u16,
    /// The next payment completes, then its start call is answered with the record of
    /// the transaction the simulator ran before it. One-shot.
    pub wrong_answer: bool,
    /// Milliseconds (0 = off): a lookup of a transaction answers 404 `not_found` until
    /// this long after its payment request arrived. Stays until cleared.
    pub late_record_ms: u64,
    /// The next N lookups answer 503 with an error body.
    pub lookup_errors: u32,
}

impl Faults {
    /// Why these knobs cannot be set, if they cannot.
    pub fn check(&self) -> Result<(), String> {
        let status = self.error_after_charge;
        if status != 0 && !(200..=599).contains(&status) {
            return Err(format!(
                "errorAfterCharge must be 0 (off) or an HTTP status 200-599, got {status}"
            ));
        }
        Ok(())
    }
}

#[derive(Clone, Debug)]
pub struct SimOptions {
    pub device_id: String,
    pub card_time: Duration,
    pub state_file: Option<PathBuf>,
    pub faults: Faults,
    pub version: String,
    /// Also serve the protocol over MQTT through this broker.
    pub mqtt: Option<SimMqtt>,
    /// The terminal protocol served over HTTPS.
    pub profile: SimProfile,
}

/// `ecrlink sim --profile`: the InStore protocol or the payment app's own API.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum SimProfile {
    #[default]
    Instore,
    ComerciaPos,
}

impl Default for SimOptions {
    fn default() -> Self {
        SimOptions {
            device_id: DEFAULT_DEVICE_ID.to_string(),
            card_time: Duration::from_secs(2),
            state_file: None,
            faults: Faults::default(),
            version: format!("ecrlink-sim {}", env!("CARGO_PKG_VERSION")),
            mqtt: None,
            profile: SimProfile::Instore,
        }
    }
}

/// Shared by every connection of one simulator.
pub(crate) struct Sim {
    opts: SimOptions,
    state: Mutex<SimState>,
    faults: Mutex<Faults>,
    /// The `comercia-pos` order whose next final status is told as another order's:
    /// `wrongAnswer` fired at its payment call and waits for its own status, so a
    /// straggling status call about an earlier order cannot take it.
    wrong_status_of: Mutex<Option<String>>,
    /// Wakes hanging requests and held payments when the faults change (`hang` or
    /// `holdPayments` cleared).
    unhang: Notify,
}

/// A simulator ready to serve: build it, then [`Simulator::run`] it on a bound listener.
pub struct Simulator {
    sim: Arc<Sim>,
}

impl Simulator {
    /// Opens the state file (if any) and prepares the simulator.
    pub fn new(opts: SimOptions) -> Result<Simulator, StateError> {
        let state = SimState::open(opts.state_file.clone())?;
        let faults = opts.faults.clone();
        Ok(Simulator {
            sim: Arc::new(Sim {
                opts,
                state: Mutex::new(state),
                faults: Mutex::new(faults),
                wrong_status_of: Mutex::new(None),
                unhang: Notify::new(),
            }),
        })
    }

    /// Serves the terminal protocol on `listener` until `shutdown` fires.
    pub async fn run(
        self,
        listener: TcpListener,
        tls: Arc<rustls::ServerConfig>,
        shutdown: CancellationToken,
    ) {
        let sim = self.sim;
        let mqtt_side = sim
            .opts
            .mqtt
            .clone()
            .map(|settings| tokio::spawn(mqtt::run(sim.clone(), settings, shutdown.clone())));
        match sim.opts.profile {
            SimProfile::Instore => {
                let handler = move |req, _peer: SocketAddr| routes::handle(sim.clone(), req);
                crate::http::server::serve(listener, Some(tls), handler, shutdown).await;
            }
            SimProfile::ComerciaPos => {
                let handler = move |req, _peer: SocketAddr| comercia::handle(sim.clone(), req);
                crate::http::server::serve(listener, Some(tls), handler, shutdown).await;
            }
        }
        if let Some(task) = mqtt_side {
            let _ = task.await;
        }
    }
}

/// Recovers a poisoned lock: the simulator's state stays usable after a panicking
/// request, which is what a test double should do.
pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}
