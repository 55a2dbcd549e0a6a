//! The integrator REST API that `serve` offers the POS: the terminal's calls plus
//! what only a gateway knows (journal, terminal health, metrics, OpenAPI).

mod access;
pub mod client_auth;
mod error;
mod events;
pub mod guard;
mod history;
mod metrics;
mod metrics_ops;
mod observe;
pub mod paths;
mod prefer;
mod profile;
mod recent;
mod request_id;
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
    /// A `comercia-pos` terminal's API (its report; voids, cancels and currencies it refuses).
    pub comercia: Option<crate::terminal::comercia::ComerciaClient>,
}

#[derive(Default)]
pub struct Metrics {
    pub http_requests: AtomicU64,
    pub http_errors: AtomicU64,
    pub payments_started: AtomicU64,
    pub payments_replayed: AtomicU64,
    pub observed: observe::Observed,
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
    /// Keys, origins and host names (`guard`): who may call what.
    pub access: guard::Access,
    pub metrics: Metrics,
    pub started: Instant,
    /// Per terminal (same order as `terminals`): the last minutes of probe rounds.
    pub links: Vec<Arc<history::LinkHistory>>,
    pub refused: access::Refused,
    /// Per-client limits beyond loopback (connections, transaction starts).
    pub limits: Arc<crate::http::limits::Limits>,
    /// Each certificate of `certsDir` and its end of validity (`/metrics`).
    pub cert_expiry: Vec<crate::pki::checks::Expiry>,
}

impl Api {
    pub fn new(
        payments: Arc<Payments>,
        terminals: Vec<TerminalInfo>,
        access: guard::Access,
    ) -> Api {
        let links = terminals.iter().map(|_| Arc::default()).collect();
        Api {
            payments,
            links,
            terminals,
            access,
            metrics: Metrics::default(),
            started: Instant::now(),
            refused: Default::default(),
            cert_expiry: Vec::new(),
            limits: crate::http::limits::Limits::new(crate::http::limits::LimitSettings {
                connections_per_ip: crate::constants::DEFAULT_MAX_CONNECTIONS_PER_IP,
                starts_per_second: crate::constants::DEFAULT_STARTS_PER_SECOND_PER_IP,
            }),
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
    let limits = Some(api.limits.clone());
    let handler = move |mut req: hyper::Request<hyper::body::Incoming>, peer: SocketAddr| {
        let api = api.clone();
        req.extensions_mut().insert(access::Peer(peer));
        async move { Ok(routes::handle(api, req).await) }
    };
    crate::http::server::serve_limited(listener, tls, handler, limits, shutdown).await;
}
