//! A one-request-per-connection HTTPS client that dials an address and verifies a
//! fixed server name. It tells apart failures before the request left (nothing can
//! have happened on the other side) from failures after (anything may have).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::header::{CONTENT_TYPE, HOST, HeaderValue};
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use crate::tls::describe_handshake_error;

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
        }
    }

    /// Plain HTTP (only for a gateway run with `"SSL": "False"`).
    pub fn plain(addr: SocketAddr, connect_timeout: Duration) -> HttpClient {
        HttpClient {
            addr,
            tls: None,
            host_header: HeaderValue::from_str(&addr.to_string())
                .unwrap_or_else(|_| HeaderValue::from_static("localhost")),
            connect_timeout,
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

    /// Sends one request and reads the whole answer within `response_timeout`.
    pub async fn request(
        &self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
        response_timeout: Duration,
    ) -> Result<(StatusCode, Bytes), ClientError> {
        let stream: Box<dyn Stream> = match self.connect().await? {
            Connected::Plain(tcp) => Box::new(tcp),
            Connected::Tls(tls) => tls,
        };
        let no_answer = |reason: String| ClientError::NoAnswer {
            addr: self.addr,
            reason,
        };
        let exchange = async {
            let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
                .await
                .map_err(|e| no_answer(e.to_string()))?;
            let driver = tokio::spawn(async move {
                let _ = conn.await;
            });
            let mut req = Request::builder()
                .method(method)
                .uri(path)
                .header(HOST, self.host_header.clone());
            if body.is_some() {
                req = req.header(CONTENT_TYPE, "application/json");
            }
            let req = req
                .body(Full::new(Bytes::from(body.unwrap_or_default())))
                .map_err(|e| no_answer(format!("bad request: {e}")))?;
            let result = async {
                let resp = sender
                    .send_request(req)
                    .await
                    .map_err(|e| no_answer(e.to_string()))?;
                let status = resp.status();
                let bytes = resp
                    .into_body()
                    .collect()
                    .await
                    .map_err(|e| no_answer(e.to_string()))?
                    .to_bytes();
                Ok((status, bytes))
            }
            .await;
            driver.abort();
            result
        };
        match tokio::time::timeout(response_timeout, exchange).await {
            Ok(result) => result,
            Err(_) => Err(no_answer(format!(
                "timed out after {:.1}s",
                response_timeout.as_secs_f64()
            ))),
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

/// A connected stream, before any request was written.
enum Connected {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
}

trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}
