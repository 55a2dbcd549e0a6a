//! HTTPS client for one terminal's REST server: dial the configured IP, verify the
//! fixed name against the private CA, speak the protocol of DESIGN.md.

use std::net::SocketAddr;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use hyper::{Method, StatusCode};
use serde::de::DeserializeOwned;

use super::wire::{CancelAnswer, Current, ErrorBody, PaymentRequest, TxnKind, TxnResult, Version};
use crate::constants::TERMINAL_SHORT_CALL_TIMEOUT;
use crate::http::client::{ClientError, HttpClient, Pool};
use crate::tls::terminal_server_name;

/// How a terminal call failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum TerminalError {
    /// Nothing reached the terminal (refused, unreachable, TLS verification failed).
    #[error(transparent)]
    NotDelivered(ClientError),
    /// The request may have reached the terminal but no answer came back.
    #[error(transparent)]
    NoAnswer(ClientError),
    /// The terminal answered with an error of its own.
    #[error("terminal answered {status}: {code}: {message}")]
    Rejected {
        status: u16,
        code: String,
        message: String,
    },
    /// The terminal answered something we cannot read.
    #[error("unreadable answer from the terminal: {0}")]
    Protocol(String),
}

impl TerminalError {
    /// True when the terminal cannot have acted on the request.
    pub fn not_delivered(&self) -> bool {
        matches!(self, TerminalError::NotDelivered(_))
    }

    /// True when the terminal did not answer at all (a missed poll).
    pub fn is_silence(&self) -> bool {
        matches!(
            self,
            TerminalError::NotDelivered(_) | TerminalError::NoAnswer(_)
        )
    }

    /// The terminal's explicit "no such transaction": a 404 with the `not_found` code.
    /// A bare 404 (a proxy, a wrong path) proves nothing.
    pub fn is_not_found(&self) -> bool {
        matches!(self, TerminalError::Rejected { status: 404, code, .. } if code == "not_found")
    }

    pub fn from_client(err: ClientError) -> TerminalError {
        if err.maybe_delivered() {
            TerminalError::NoAnswer(err)
        } else {
            TerminalError::NotDelivered(err)
        }
    }
}

/// What the terminal knows of one transaction id.
#[derive(Debug, Clone, PartialEq)]
pub enum Lookup {
    Found(TxnResult),
    NotFound,
}

/// Where a terminal's address came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AddressSource {
    Config,
    Mdns,
}

impl AddressSource {
    pub fn as_str(self) -> &'static str {
        match self {
            AddressSource::Config => "config",
            AddressSource::Mdns => "mdns",
        }
    }
}

/// A terminal's address in use, shared by its transport and its probe monitor: mDNS
/// may move it when the configured IP stops answering.
#[derive(Debug)]
pub struct TerminalAddress {
    current: RwLock<(SocketAddr, AddressSource)>,
    configured: SocketAddr,
}

impl TerminalAddress {
    pub fn new(configured: SocketAddr) -> Arc<TerminalAddress> {
        Arc::new(TerminalAddress {
            current: RwLock::new((configured, AddressSource::Config)),
            configured,
        })
    }

    pub fn get(&self) -> (SocketAddr, AddressSource) {
        *self.current.read().unwrap_or_else(|p| p.into_inner())
    }

    pub fn configured(&self) -> SocketAddr {
        self.configured
    }

    pub fn set(&self, addr: SocketAddr, source: AddressSource) {
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = (addr, source);
    }
}

#[derive(Clone)]
pub struct TerminalClient {
    address: Arc<TerminalAddress>,
    /// Kept-alive verified connections to the terminal, shared by every call.
    pool: Arc<Pool>,
    tls: Arc<rustls::ClientConfig>,
    /// The name the terminal's certificate must carry (the fixed InStore name unless
    /// the lane's profile names another).
    server_name: rustls::pki_types::ServerName<'static>,
    connect_timeout: Duration,
    /// Deadline of the short calls (status, lookup, cancel, version).
    call_timeout: Duration,
}

impl TerminalClient {
    pub fn new(
        address: Arc<TerminalAddress>,
        tls: Arc<rustls::ClientConfig>,
        connect_timeout: Duration,
    ) -> TerminalClient {
        TerminalClient {
            address,
            pool: Arc::new(Pool::default()),
            tls,
            server_name: terminal_server_name(),
            connect_timeout,
            call_timeout: TERMINAL_SHORT_CALL_TIMEOUT,
        }
    }

    /// Verifies the terminal's certificate for `name` instead of the fixed InStore name.
    pub fn with_server_name(mut self, name: rustls::pki_types::ServerName<'static>) -> Self {
        self.server_name = name;
        self
    }

    /// A client for the address in use now (it may move between calls), on the pool.
    pub fn http(&self) -> HttpClient {
        self.http_to(self.address.get().0)
            .with_pool(self.pool.clone())
    }

    /// Opens a verified connection ahead of the next call if none is idle (the gateway
    /// does this while the journal commits a new sale, so the handshake is already
    /// done when the start call may go). Nothing is sent.
    pub async fn warm(&self) -> Result<(), TerminalError> {
        self.http()
            .warm()
            .await
            .map_err(TerminalError::NotDelivered)
    }

    /// A client for `addr` with this terminal's TLS policy (used to try a candidate
    /// address before adopting it).
    pub fn http_to(&self, addr: SocketAddr) -> HttpClient {
        HttpClient::https(
            addr,
            self.tls.clone(),
            self.server_name.clone(),
            self.connect_timeout,
        )
    }

    pub fn with_call_timeout(mut self, call_timeout: Duration) -> TerminalClient {
        self.call_timeout = call_timeout;
        self
    }

    pub fn address(&self) -> &Arc<TerminalAddress> {
        &self.address
    }

    pub async fn version(&self) -> Result<Version, TerminalError> {
        self.call(Method::GET, "/v1/getVersion", None, self.call_timeout)
            .await
    }

    /// Starts a payment and holds the call open until the terminal's final answer or
    /// `wait` runs out.
    pub async fn start(
        &self,
        kind: TxnKind,
        req: &PaymentRequest,
        wait: Duration,
    ) -> Result<TxnResult, TerminalError> {
        let body = serde_json::to_vec(req).map_err(|e| TerminalError::Protocol(e.to_string()))?;
        let path = format!("/v1/{}", kind.as_str());
        self.call(Method::POST, &path, Some(body), wait).await
    }

    pub async fn current(&self) -> Result<Current, TerminalError> {
        self.call(
            Method::GET,
            "/v1/transactions/current",
            None,
            self.call_timeout,
        )
        .await
    }

    pub async fn lookup(&self, transaction_id: &str) -> Result<Lookup, TerminalError> {
        let path = format!("/v1/transactions/{transaction_id}");
        match self.call(Method::GET, &path, None, self.call_timeout).await {
            Ok(result) => Ok(Lookup::Found(result)),
            Err(e) if e.is_not_found() => Ok(Lookup::NotFound),
            Err(e) => Err(e),
        }
    }

    pub async fn cancel(&self, transaction_id: &str) -> Result<CancelAnswer, TerminalError> {
        let path = format!("/v1/transactions/{transaction_id}/cancel");
        self.call(Method::POST, &path, Some(b"{}".to_vec()), self.call_timeout)
            .await
    }

    async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
        wait: Duration,
    ) -> Result<T, TerminalError> {
        let (status, bytes) = self
            .http()
            .request(method, path, body, wait)
            .await
            .map_err(TerminalError::from_client)?;
        if status == StatusCode::OK {
            return serde_json::from_slice(&bytes)
                .map_err(|e| TerminalError::Protocol(format!("{path}: {e}")));
        }
        match serde_json::from_slice::<ErrorBody>(&bytes) {
            Ok(err) => Err(TerminalError::Rejected {
                status: status.as_u16(),
                code: err.error.code,
                message: err.error.message,
            }),
            Err(_) => Err(TerminalError::Protocol(format!(
                "{path}: status {status} without an error body"
            ))),
        }
    }
}
