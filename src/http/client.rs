//! An HTTPS client that dials an address and verifies a fixed server name, one request
//! per connection or, with a [`Pool`], on kept-alive connections. It tells apart
//! failures before the request left (nothing can have happened on the other side) from
//! failures after (anything may have): on a reused connection a failed request counts
//! as "not sent" only when hyper hands the request back unwritten.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper::header::{CONTENT_TYPE, HOST, HeaderValue};
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use crate::constants::{KEEPALIVE_IDLE_MAX, KEEPALIVE_MAX_IDLE_CONNECTIONS};
use crate::tls::describe_handshake_error;

type Sender = SendRequest<Full<Bytes>>;

/// Verified connections kept open after a request, for the next one to the same address.
/// Only a connection idle for less than [`KEEPALIVE_IDLE_MAX`] is reused, well before a
/// server would close it, so a reused request rarely meets a closing connection.
#[derive(Default)]
pub struct Pool {
    idle: Mutex<Vec<(SocketAddr, Sender, Instant)>>,
}

impl Pool {
    fn take(&self, addr: SocketAddr) -> Option<Sender> {
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        idle.retain(|(_, s, since)| !s.is_closed() && since.elapsed() < KEEPALIVE_IDLE_MAX);
        // A connection not ready (a fresh one before its first request) is still
        // tried: hyper hands the request back unwritten if it cannot take it.
        let i = idle.iter().rposition(|(a, _, _)| *a == addr)?;
        Some(idle.swap_remove(i).1)
    }

    fn put(&self, addr: SocketAddr, sender: Sender) {
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        if idle.len() < KEEPALIVE_MAX_IDLE_CONNECTIONS {
            idle.push((addr, sender, Instant::now()));
        }
    }

    /// Whether a connection to `addr` is ready for the next request.
    pub fn has_idle(&self, addr: SocketAddr) -> bool {
        let idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        idle.iter().any(|(a, s, since)| {
            *a == addr && !s.is_closed() && since.elapsed() < KEEPALIVE_IDLE_MAX
        })
    }
}

/// How one request on one connection went.
enum Exchange {
    Answered(StatusCode, Bytes),
    /// hyper handed the request back: not a byte of it was written.
    NotSent(Request<Full<Bytes>>),
    Failed(String),
}

/// Why a call failed, split by whether the request may have been delivered.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ClientError {
    /// TCP connect refused, unreachable or timed out: nothing was sent.
    #[error("cannot connect to {addr}: {reason}")]
    Unreachable { addr: SocketAddr, reason: String },
    /// The server's certificate failed verification: nothing was sent.
    #[error("TLS verification of {addr} failed: {reason}")]
    Tls { addr: SocketAddr, reason: String },
    /// The request may have reached the server, but no complete answer came back.
    #[error("no answer from {addr}: {reason}")]
    NoAnswer { addr: SocketAddr, reason: String },
}

impl ClientError {
    /// True when the other side may have received the request.
    pub fn maybe_delivered(&self) -> bool {
        matches!(self, ClientError::NoAnswer { .. })
    }
}

/// The address to dial, how to verify it and the deadline for connect + handshake.
#[derive(Clone)]
pub struct HttpClient {
    addr: SocketAddr,
    tls: Option<(TlsConnector, ServerName<'static>)>,
    host_header: HeaderValue,
    connect_timeout: Duration,
    pool: Option<Arc<Pool>>,
    /// Headers every request carries (a protocol's own, like `X-SOURCE`).
    extra_headers: Vec<(hyper::header::HeaderName, HeaderValue)>,
    /// `Authorization: Bearer …` sent with every request (a gateway's API key).
    bearer: Option<HeaderValue>,
}

impl HttpClient {
    /// HTTPS to `addr`, verifying the certificate for `server_name` with `tls`.
    pub fn https(
        addr: SocketAddr,
        tls: Arc<rustls::ClientConfig>,
        server_name: ServerName<'static>,
        connect_timeout: Duration,
    ) -> HttpClient {
        let host = match &server_name {
            ServerName::DnsName(name) => format!("{}:{}", name.as_ref(), addr.port()),
            _ => addr.to_string(),
        };
        HttpClient {
            addr,
            tls: Some((TlsConnector::from(tls), server_name)),
            host_header: HeaderValue::from_str(&host)
                .unwrap_or_else(|_| HeaderValue::from_static("localhost")),
            connect_timeout,
            pool: None,
            extra_headers: Vec::new(),
            bearer: None,
        }
    }

    /// Sends `Authorization: Bearer KEY` with every request.
    pub fn with_bearer(mut self, key: &str) -> HttpClient {
        self.bearer = HeaderValue::from_str(&format!("Bearer {key}"))
            .ok()
            .map(|mut v| {
                v.set_sensitive(true);
                v
            });
        self
    }

    /// Keeps connections open in `pool` after a request and reuses them.
    pub fn with_pool(mut self, pool: Arc<Pool>) -> HttpClient {
        self.pool = Some(pool);
        self
    }

    /// Sends `name: value` with every request.
    pub fn with_header(
        mut self,
        name: hyper::header::HeaderName,
        value: HeaderValue,
    ) -> HttpClient {
        self.extra_headers.push((name, value));
        self
    }

    /// Plain HTTP (only for a gateway run with `"SSL": "False"`).
    pub fn plain(addr: SocketAddr, connect_timeout: Duration) -> HttpClient {
        HttpClient {
            addr,
            tls: None,
            host_header: HeaderValue::from_str(&addr.to_string())
                .unwrap_or_else(|_| HeaderValue::from_static("localhost")),
            connect_timeout,
            pool: None,
            extra_headers: Vec::new(),
            bearer: None,
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Connects and completes the TLS handshake without sending a request; returns
    /// the server's certificate. The probe monitor checks the terminal with it.
    pub async fn handshake(&self) -> Result<Option<CertificateDer<'static>>, ClientError> {
        let stream = self.connect().await?;
        Ok(match stream {
            Connected::Plain(_) => None,
            Connected::Tls(tls) => tls
                .get_ref()
                .1
                .peer_certificates()
                .and_then(|chain| chain.first())
                .map(|c| c.clone().into_owned()),
        })
    }

    /// Opens a verified connection into the pool if none is idle there, so the next
    /// request finds the handshake done (a no-op without a pool).
    pub async fn warm(&self) -> Result<(), ClientError> {
        let Some(pool) = &self.pool else {
            return Ok(());
        };
        if pool.has_idle(self.addr) {
            return Ok(());
        }
        let sender = self.open().await?;
        pool.put(self.addr, sender);
        Ok(())
    }

    /// Sends one request and reads the whole answer within `response_timeout`.
    pub async fn request(
        &self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
        response_timeout: Duration,
    ) -> Result<(StatusCode, Bytes), ClientError> {
        let mut req = Request::builder()
            .method(method)
            .uri(path)
            .header(HOST, self.host_header.clone());
        for (name, value) in &self.extra_headers {
            req = req.header(name, value);
        }
        if body.is_some() {
            req = req.header(CONTENT_TYPE, "application/json");
        }
        if let Some(bearer) = &self.bearer {
            req = req.header(hyper::header::AUTHORIZATION, bearer.clone());
        }
        let mut req = req
            .body(Full::new(Bytes::from(body.unwrap_or_default())))
            .map_err(|e| self.no_answer(format!("bad request: {e}")))?;
        let timed_out = || {
            self.no_answer(format!(
                "timed out after {:.1}s",
                response_timeout.as_secs_f64()
            ))
        };
        if let Some(mut sender) = self.pool.as_ref().and_then(|p| p.take(self.addr)) {
            match tokio::time::timeout(response_timeout, exchange(&mut sender, req)).await {
                Ok(Exchange::Answered(status, bytes)) => {
                    self.keep(sender).await;
                    return Ok((status, bytes));
                }
                // The kept connection had closed under us: the request is back, unwritten,
                // and goes on a fresh connection.
                Ok(Exchange::NotSent(back)) => req = back,
                Ok(Exchange::Failed(reason)) => return Err(self.no_answer(reason)),
                Err(_) => return Err(timed_out()),
            }
        }
        let mut sender = self.open().await?;
        match tokio::time::timeout(response_timeout, exchange(&mut sender, req)).await {
            Ok(Exchange::Answered(status, bytes)) => {
                self.keep(sender).await;
                Ok((status, bytes))
            }
            Ok(Exchange::NotSent(_)) => Err(ClientError::Unreachable {
                addr: self.addr,
                reason: "the connection closed before the request was written".into(),
            }),
            Ok(Exchange::Failed(reason)) => Err(self.no_answer(reason)),
            Err(_) => Err(timed_out()),
        }
    }

    fn no_answer(&self, reason: String) -> ClientError {
        ClientError::NoAnswer {
            addr: self.addr,
            reason,
        }
    }

    /// A verified connection with its HTTP/1.1 driver running; nothing written yet.
    async fn open(&self) -> Result<Sender, ClientError> {
        let stream: Box<dyn Stream> = match self.connect().await? {
            Connected::Plain(tcp) => Box::new(tcp),
            Connected::Tls(tls) => tls,
        };
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| ClientError::Unreachable {
                addr: self.addr,
                reason: format!("HTTP/1.1 handshake: {e}"),
            })?;
        // Runs until the connection closes: when the server closes it, or when the last
        // sender for it is dropped (not pooled, or dropped from the pool).
        tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok(sender)
    }

    /// Puts a connection that answered back in the pool once it can take another request.
    async fn keep(&self, mut sender: Sender) {
        let Some(pool) = &self.pool else { return };
        let ready = tokio::time::timeout(KEEPALIVE_READY_WAIT, sender.ready()).await;
        if matches!(ready, Ok(Ok(()))) {
            pool.put(self.addr, sender);
        }
    }

    /// TCP connect plus, for HTTPS, the verified handshake, within `connect_timeout`.
    async fn connect(&self) -> Result<Connected, ClientError> {
        let connecting = async {
            let tcp =
                TcpStream::connect(self.addr)
                    .await
                    .map_err(|e| ClientError::Unreachable {
                        addr: self.addr,
                        reason: e.to_string(),
                    })?;
            let _ = tcp.set_nodelay(true);
            match &self.tls {
                None => Ok(Connected::Plain(tcp)),
                Some((connector, name)) => connector
                    .connect(name.clone(), tcp)
                    .await
                    .map(|s| Connected::Tls(Box::new(s)))
                    .map_err(|e| ClientError::Tls {
                        addr: self.addr,
                        reason: describe_handshake_error(&e),
                    }),
            }
        };
        match tokio::time::timeout(self.connect_timeout, connecting).await {
            Ok(result) => result,
            Err(_) => Err(ClientError::Unreachable {
                addr: self.addr,
                reason: format!(
                    "connect and TLS handshake took longer than {:.1}s",
                    self.connect_timeout.as_secs_f64()
                ),
            }),
        }
    }
}

/// How long a connection that just answered may take to be ready for the next request
/// before it is dropped instead of pooled (a `Connection: close` answer never is).
const KEEPALIVE_READY_WAIT: Duration = Duration::from_millis(50);

/// Sends `req` on `sender` and reads the whole answer.
async fn exchange(sender: &mut Sender, req: Request<Full<Bytes>>) -> Exchange {
    let resp = match sender.try_send_request(req).await {
        Ok(resp) => resp,
        Err(mut e) => {
            return match e.take_message() {
                Some(req) => Exchange::NotSent(req),
                None => Exchange::Failed(e.into_error().to_string()),
            };
        }
    };
    let status = resp.status();
    match resp.into_body().collect().await {
        Ok(body) => Exchange::Answered(status, body.to_bytes()),
        Err(e) => Exchange::Failed(e.to_string()),
    }
}

/// A connected stream, before any request was written.
enum Connected {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
}

trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}
