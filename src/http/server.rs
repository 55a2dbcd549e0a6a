//! The accept loop both servers (the gateway's API and the simulator) run: TLS
//! handshake with a deadline, HTTP/1.1 with a header-read deadline, a cap on
//! concurrent connections, and a drain with a bounded grace period on shutdown.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::Body;
use super::limits::{Limits, TooManyConnections};
use crate::constants::{
    SERVER_HEADER_READ_TIMEOUT, SERVER_MAX_CONNECTIONS, SERVER_TLS_HANDSHAKE_TIMEOUT,
    SHUTDOWN_GRACE,
};
use hyper::StatusCode;

/// A handler's way to close the connection without answering (the simulator uses it
/// to model a lost response).
#[derive(Debug, thiserror::Error)]
#[error("connection dropped on purpose")]
pub struct DropConnection;

/// What a handler returns: a response, or a deliberately dropped connection.
pub type HandlerResult = Result<Response<Body>, DropConnection>;

/// Serves HTTP/1.1 on `listener` (over TLS when `tls` is given) until `shutdown` fires,
/// then lets in-flight requests finish for at most [`SHUTDOWN_GRACE`].
pub async fn serve<H, F>(
    listener: TcpListener,
    tls: Option<Arc<rustls::ServerConfig>>,
    handler: H,
    shutdown: CancellationToken,
) where
    H: Fn(Request<Incoming>, SocketAddr) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = HandlerResult> + Send + 'static,
{
    serve_limited(listener, tls, handler, None, shutdown).await
}

/// [`serve`], with per-client connection limits when `limits` is given: a connection over
/// its IP's limit is answered `503 too_many_connections` and closed.
pub async fn serve_limited<H, F>(
    listener: TcpListener,
    tls: Option<Arc<rustls::ServerConfig>>,
    handler: H,
    limits: Option<Arc<Limits>>,
    shutdown: CancellationToken,
) where
    H: Fn(Request<Incoming>, SocketAddr) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = HandlerResult> + Send + 'static,
{
    let acceptor = tls.map(TlsAcceptor::from);
    let slots = Arc::new(Semaphore::new(SERVER_MAX_CONNECTIONS));
    let tracker = TaskTracker::new();
    loop {
        let permit = tokio::select! {
            _ = shutdown.cancelled() => break,
            permit = slots.clone().acquire_owned() => match permit {
                Ok(p) => p,
                Err(_) => break,
            },
        };
        let (stream, peer) = tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let slot = match limits.as_ref().map(|l| l.connect(peer.ip())) {
            Some(Err(too_many)) => {
                tracker.spawn(refuse(stream, acceptor.clone(), too_many, permit));
                continue;
            }
            Some(Ok(slot)) => slot,
            None => None,
        };
        let handler = handler.clone();
        let acceptor = acceptor.clone();
        let shutdown = shutdown.clone();
        // Spawned before the handshake so a slow client never stalls the accept loop.
        tracker.spawn(async move {
            let _permit = permit;
            let _slot = slot;
            match acceptor {
                None => serve_connection(stream, peer, handler, shutdown).await,
                Some(acceptor) => {
                    match tokio::time::timeout(
                        SERVER_TLS_HANDSHAKE_TIMEOUT,
                        acceptor.accept(stream),
                    )
                    .await
                    {
                        Ok(Ok(tls)) => serve_connection(tls, peer, handler, shutdown).await,
                        Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
                        Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                    }
                }
            }
        });
    }
    drop(listener);
    tracker.close();
    if tokio::time::timeout(SHUTDOWN_GRACE, tracker.wait())
        .await
        .is_err()
    {
        tracing::warn!("shutdown grace period over; dropping open connections");
    }
}

/// Answers every request of an over-limit connection with 503 and closes it; the TLS
/// handshake has the usual deadline, the answer the header-read one.
async fn refuse(
    stream: tokio::net::TcpStream,
    acceptor: Option<TlsAcceptor>,
    why: TooManyConnections,
    permit: tokio::sync::OwnedSemaphorePermit,
) {
    let _permit = permit;
    let handler = move |_req: Request<Incoming>, _peer: SocketAddr| async move {
        let mut resp = super::error(
            StatusCode::SERVICE_UNAVAILABLE,
            "too_many_connections",
            why.to_string(),
        );
        resp.headers_mut().insert(
            hyper::header::CONNECTION,
            hyper::header::HeaderValue::from_static("close"),
        );
        Ok::<_, DropConnection>(resp)
    };
    let peer = stream
        .peer_addr()
        .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)));
    let once = CancellationToken::new();
    let work = async {
        match acceptor {
            None => serve_connection(stream, peer, handler, once.clone()).await,
            Some(acceptor) => {
                if let Ok(tls) = acceptor.accept(stream).await {
                    serve_connection(tls, peer, handler, once.clone()).await;
                }
            }
        }
    };
    let _ = tokio::time::timeout(
        SERVER_TLS_HANDSHAKE_TIMEOUT + SERVER_HEADER_READ_TIMEOUT,
        work,
    )
    .await;
}

async fn serve_connection<S, H, F>(
    stream: S,
    peer: SocketAddr,
    handler: H,
    shutdown: CancellationToken,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    H: Fn(Request<Incoming>, SocketAddr) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = HandlerResult> + Send + 'static,
{
    let service = service_fn(move |req| {
        let fut = handler(req, peer);
        async move { fut.await.map_err(Box::new) }
    });
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(SERVER_HEADER_READ_TIMEOUT)
        .keep_alive(true);
    let conn = builder.serve_connection(TokioIo::new(stream), service);
    tokio::pin!(conn);
    let result = tokio::select! {
        r = conn.as_mut() => r,
        _ = shutdown.cancelled() => {
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    };
    if let Err(e) = result {
        tracing::debug!(%peer, error = %e, "connection ended with an error");
    }
}
