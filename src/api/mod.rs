//! The integrator REST API that `serve` offers the POS: the terminal's calls plus
//! what only a gateway knows (journal, terminal health, metrics, OpenAPI).

mod error;
mod events;
mod history;
mod metrics;
mod prefer;
mod recent;
mod routes;
pub mod validate;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::probe::Health;
use crate::txn::Payments;
pub use error::ApiError;

/// A configured terminal as the API shows it: its live link health.
#[derive(Clone, Debug)]
pub struct TerminalInfo {
    pub device_id: String,
    pub health: watch::Receiver<Health>,
}

#[derive(Default)]
pub struct Metrics {
    pub http_requests: AtomicU64,
    pub http_errors: AtomicU64,
    pub payments_started: AtomicU64,
    pub payments_replayed: AtomicU64,
}

impl Metrics {
    pub(crate) fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

/// Everything a request handler needs.
pub struct Api {
    pub payments: Arc<Payments>,
    pub terminals: Vec<TerminalInfo>,
    /// When set, `/v1/*` calls (but `getVersion`) need `Authorization: Bearer KEY`.
    pub api_key: Option<String>,
    pub metrics: Metrics,
    pub started: Instant,
    /// Per terminal (same order as `terminals`): the last minutes of probe rounds.
    pub links: Vec<Arc<history::LinkHistory>>,
}

impl Api {
    pub fn new(
        payments: Arc<Payments>,
        terminals: Vec<TerminalInfo>,
        api_key: Option<String>,
    ) -> Api {
        let links = terminals.iter().map(|_| Arc::default()).collect();
        Api {
            payments,
            links,
            terminals,
            api_key,
            metrics: Metrics::default(),
            started: Instant::now(),
        }
    }
}

/// Serves the API on `listener` (HTTPS when `tls` is given) until `shutdown` fires.
pub async fn run(
    listener: TcpListener,
    tls: Option<Arc<rustls::ServerConfig>>,
    api: Arc<Api>,
    shutdown: CancellationToken,
) {
    for (terminal, link) in api.terminals.iter().zip(&api.links) {
        let (link, health, stop) = (link.clone(), terminal.health.clone(), shutdown.clone());
        // Ends with the probe monitor or at shutdown.
        tokio::spawn(async move { link.follow(health, stop).await });
    }
    let handler = move |req, _peer: SocketAddr| {
        let api = api.clone();
        async move { Ok(routes::handle(api, req).await) }
    };
    crate::http::server::serve(listener, tls, handler, shutdown).await;
}
