//! Kept-alive connections to the terminal (issue 13): reused while fresh, and a request
//! on a reused connection counts as "not sent" only when no byte of it was written —
//! otherwise it is "maybe delivered" and never silently sent again.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use ecrlink::http::client::{HttpClient, Pool};
use hyper::{Method, StatusCode};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// What the scripted HTTP/1.1 server does after reading the n-th request (1-based)
/// of the whole run.
#[derive(Clone, Copy)]
enum Script {
    /// Answers every request, keeping the connection open.
    Answer,
    /// Reads the given request and closes without answering.
    DropRequest(usize),
    /// Answers, then closes the connection after each answer.
    CloseAfterAnswer,
}

struct Server {
    addr: SocketAddr,
    connections: Arc<AtomicUsize>,
    requests: Arc<AtomicUsize>,
}

async fn server(script: Script) -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let connections = Arc::new(AtomicUsize::new(0));
    let requests = Arc::new(AtomicUsize::new(0));
    let (c, r) = (connections.clone(), requests.clone());
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            c.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(serve(stream, script, r.clone()));
        }
    });
    Server {
        addr,
        connections,
        requests,
    }
}

async fn serve(mut stream: TcpStream, script: Script, requests: Arc<AtomicUsize>) {
    let mut buf = Vec::new();
    loop {
        // Read one request head (the client sends GETs without a body).
        while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
            let mut chunk = [0u8; 1024];
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
        let end = buf.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
        buf.drain(..end);
        let n = requests.fetch_add(1, Ordering::SeqCst) + 1;
        if matches!(script, Script::DropRequest(k) if k == n) {
            return;
        }
        let answer = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";
        if stream.write_all(answer).await.is_err() {
            return;
        }
        if matches!(script, Script::CloseAfterAnswer) {
            let _ = stream.shutdown().await;
            return;
        }
    }
}

fn client(addr: SocketAddr, pool: &Arc<Pool>) -> HttpClient {
    HttpClient::plain(addr, Duration::from_secs(2)).with_pool(pool.clone())
}

async fn get(c: &HttpClient) -> Result<StatusCode, ecrlink::http::client::ClientError> {
    c.request(Method::GET, "/v1/getVersion", None, Duration::from_secs(2))
        .await
        .map(|(status, _)| status)
}

#[tokio::test]
async fn one_connection_carries_sequential_calls() {
    let s = server(Script::Answer).await;
    let pool = Arc::new(Pool::default());
    for _ in 0..5 {
        assert_eq!(get(&client(s.addr, &pool)).await.unwrap(), StatusCode::OK);
    }
    assert_eq!(s.requests.load(Ordering::SeqCst), 5);
    assert_eq!(s.connections.load(Ordering::SeqCst), 1);
    // Without a pool every call has a connection of its own.
    let plain = HttpClient::plain(s.addr, Duration::from_secs(2));
    get(&plain).await.unwrap();
    assert_eq!(s.connections.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn a_warmed_connection_is_the_one_the_call_uses() {
    let s = server(Script::Answer).await;
    let pool = Arc::new(Pool::default());
    client(s.addr, &pool).warm().await.unwrap();
    // Warm again: the idle connection is enough.
    client(s.addr, &pool).warm().await.unwrap();
    get(&client(s.addr, &pool)).await.unwrap();
    assert_eq!(
        s.requests.load(Ordering::SeqCst),
        1,
        "warming sends nothing"
    );
    assert_eq!(
        s.connections.load(Ordering::SeqCst),
        1,
        "the call went on the warmed connection"
    );
}

#[tokio::test]
async fn a_request_lost_on_a_reused_connection_is_maybe_delivered_and_not_resent() {
    let s = server(Script::DropRequest(2)).await;
    let pool = Arc::new(Pool::default());
    get(&client(s.addr, &pool)).await.unwrap();
    let err = get(&client(s.addr, &pool)).await.unwrap_err();
    assert!(err.maybe_delivered(), "{err}");
    assert_eq!(
        s.requests.load(Ordering::SeqCst),
        2,
        "the server read it: it must not be sent again"
    );
    assert_eq!(s.connections.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_connection_the_server_closed_is_not_reused() {
    let s = server(Script::CloseAfterAnswer).await;
    let pool = Arc::new(Pool::default());
    for _ in 0..3 {
        assert_eq!(get(&client(s.addr, &pool)).await.unwrap(), StatusCode::OK);
    }
    assert_eq!(s.requests.load(Ordering::SeqCst), 3, "each sent once");
    assert_eq!(s.connections.load(Ordering::SeqCst), 3);
}
