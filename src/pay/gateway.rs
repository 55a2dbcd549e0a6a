//! The client side of `ecrlink pay`: requests to a running gateway over verified TLS
//! (the private CA, the URL's host as the name), and a reader of its event streams.

use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, HOST};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use serde_json::Value;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

/// Deadline for connecting (TCP and TLS) to the gateway.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Deadline for a short call (start with `respond-async`, lookup, cancel).
const CALL_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    #[error("bad gateway URL {0:?}: expected https://HOST[:PORT] or http://HOST[:PORT]")]
    Url(String),
    #[error("cannot reach the gateway at {0}: {1}")]
    Connect(String, String),
    #[error("the gateway did not answer in time")]
    Timeout,
    #[error("the connection to the gateway failed: {0}")]
    Http(String),
}

/// Where the gateway is and how to trust it.
#[derive(Clone)]
pub struct Gateway {
    host: String,
    port: u16,
    tls: Option<(TlsConnector, ServerName<'static>)>,
    api_key: Option<String>,
}

impl Gateway {
    /// `url` is `https://HOST[:PORT]` (verified with `tls`) or `http://HOST[:PORT]`.
    pub fn new(
        url: &str,
        tls: Option<Arc<rustls::ClientConfig>>,
        api_key: Option<String>,
    ) -> Result<Gateway, GatewayError> {
        let bad = || GatewayError::Url(url.to_string());
        let (https, rest) = match url.split_once("://") {
            Some(("https", rest)) => (true, rest),
            Some(("http", rest)) => (false, rest),
            _ => return Err(bad()),
        };
        let authority = rest.trim_end_matches('/');
        let (host, port) = match authority.rsplit_once(':') {
            Some((h, p)) if !h.ends_with(']') || h.starts_with('[') => {
                (h.to_string(), p.parse::<u16>().map_err(|_| bad())?)
            }
            _ => (authority.to_string(), if https { 443 } else { 80 }),
        };
        let host = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        if host.is_empty() || host.contains('/') {
            return Err(bad());
        }
        let tls = match (https, tls) {
            (false, _) => None,
            (true, Some(cfg)) => {
                let name = ServerName::try_from(host.clone()).map_err(|_| bad())?;
                Some((TlsConnector::from(cfg), name))
            }
            (true, None) => return Err(bad()),
        };
        Ok(Gateway {
            host,
            port,
            tls,
            api_key,
        })
    }

    /// Sends one request and returns the response head; the body is read by the caller.
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<Vec<u8>>,
    ) -> Result<Response<Incoming>, GatewayError> {
        let mut req = Request::builder()
            .method(method)
            .uri(path)
            .header(HOST, format!("{}:{}", self.host, self.port));
        if let Some(key) = &self.api_key {
            req = req.header(AUTHORIZATION, format!("Bearer {key}"));
        }
        if body.is_some() {
            req = req.header(CONTENT_TYPE, "application/json");
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let req = req
            .body(Full::new(Bytes::from(body.unwrap_or_default())))
            .map_err(|e| GatewayError::Http(e.to_string()))?;
        let mut sender = tokio::time::timeout(CONNECT_TIMEOUT, self.connect())
            .await
            .map_err(|_| self.connect_error("timed out".into()))??;
        tokio::time::timeout(CALL_TIMEOUT, sender.send_request(req))
            .await
            .map_err(|_| GatewayError::Timeout)?
            .map_err(|e| GatewayError::Http(e.to_string()))
    }

    /// A short call whose JSON answer is read whole.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<Vec<u8>>,
    ) -> Result<(StatusCode, Value), GatewayError> {
        let resp = self.send(method, path, headers, body).await?;
        let status = resp.status();
        let bytes = tokio::time::timeout(CALL_TIMEOUT, resp.into_body().collect())
            .await
            .map_err(|_| GatewayError::Timeout)?
            .map_err(|e| GatewayError::Http(e.to_string()))?
            .to_bytes();
        let value = serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()));
        Ok((status, value))
    }

    /// Opens the event stream at `path`, resuming after `last_id` when given.
    pub async fn events(&self, path: &str, last_id: Option<i64>) -> Result<Events, GatewayError> {
        let last = last_id.map(|id| id.to_string());
        let mut headers = vec![(ACCEPT.as_str(), "text/event-stream")];
        if let Some(last) = &last {
            headers.push(("last-event-id", last.as_str()));
        }
        let resp = self.send(Method::GET, path, &headers, None).await?;
        if resp.status() != StatusCode::OK {
            let status = resp.status();
            let body = resp.into_body().collect().await.map(|c| c.to_bytes());
            let text = body.map(|b| String::from_utf8_lossy(&b).into_owned());
            return Err(GatewayError::Http(format!(
                "events: {status} {}",
                text.unwrap_or_default()
            )));
        }
        Ok(Events {
            body: resp.into_body(),
            buf: BytesMut::new(),
        })
    }

    fn connect_error(&self, why: String) -> GatewayError {
        GatewayError::Connect(format!("{}:{}", self.host, self.port), why)
    }

    async fn connect(
        &self,
    ) -> Result<hyper::client::conn::http1::SendRequest<Full<Bytes>>, GatewayError> {
        let tcp = TcpStream::connect((self.host.as_str(), self.port))
            .await
            .map_err(|e| self.connect_error(e.to_string()))?;
        let _ = tcp.set_nodelay(true);
        match &self.tls {
            None => handshake(tcp).await,
            Some((connector, name)) => {
                let tls = connector
                    .connect(name.clone(), tcp)
                    .await
                    .map_err(|e| self.connect_error(crate::tls::describe_handshake_error(&e)))?;
                handshake(tls).await
            }
        }
    }
}

async fn handshake<S>(
    stream: S,
) -> Result<hyper::client::conn::http1::SendRequest<Full<Bytes>>, GatewayError>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| GatewayError::Http(e.to_string()))?;
    // The connection task ends with the response (one request per connection).
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(sender)
}

/// One Server-Sent Event as received.
#[derive(Clone, Debug, PartialEq)]
pub struct SseEvent {
    pub id: Option<i64>,
    pub event: String,
    pub data: String,
}

/// An open event stream.
pub struct Events {
    body: Incoming,
    buf: BytesMut,
}

impl Events {
    /// The next event; `Ok(None)` when the stream ended. Comments are skipped.
    pub async fn next(&mut self) -> Result<Option<SseEvent>, GatewayError> {
        loop {
            if let Some(block) = take_block(&mut self.buf) {
                if let Some(event) = parse_block(&block) {
                    return Ok(Some(event));
                }
                continue;
            }
            match self.body.frame().await {
                None => return Ok(None),
                Some(Err(e)) => return Err(GatewayError::Http(e.to_string())),
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        self.buf.extend_from_slice(&data);
                    }
                }
            }
        }
    }
}

/// Takes one blank-line-terminated block off the front of `buf`.
fn take_block(buf: &mut BytesMut) -> Option<String> {
    let text = std::str::from_utf8(buf).ok()?;
    let normalised = text.replace("\r\n", "\n");
    let end = normalised.find("\n\n")?;
    let block = normalised[..end].to_string();
    let rest = normalised[end + 2..].to_string();
    buf.clear();
    buf.extend_from_slice(rest.as_bytes());
    Some(block)
}

/// An event from a block, `None` for comment-only or `retry:` blocks.
fn parse_block(block: &str) -> Option<SseEvent> {
    let (mut id, mut event, mut data) = (None, None, Vec::new());
    for line in block.lines() {
        let (field, value) = line.split_once(':').unwrap_or((line, ""));
        let value = value.strip_prefix(' ').unwrap_or(value);
        match field {
            "id" => id = value.parse().ok(),
            "event" => event = Some(value.to_string()),
            "data" => data.push(value),
            _ => {}
        }
    }
    if event.is_none() && data.is_empty() {
        return None;
    }
    Some(SseEvent {
        id,
        event: event.unwrap_or_else(|| "message".into()),
        data: data.join("\n"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_are_split_and_parsed_comments_skipped() {
        let mut buf = BytesMut::from(
            &b"retry: 2000\n\n: heartbeat\n\nid: 3\nevent: pin\ndata: {\"a\":1}\n\nid: 4"[..],
        );
        let blocks: Vec<_> = std::iter::from_fn(|| take_block(&mut buf)).collect();
        assert_eq!(blocks.len(), 3);
        assert_eq!(parse_block(&blocks[0]), None);
        assert_eq!(parse_block(&blocks[1]), None);
        assert_eq!(
            parse_block(&blocks[2]),
            Some(SseEvent {
                id: Some(3),
                event: "pin".into(),
                data: "{\"a\":1}".into()
            })
        );
        assert_eq!(&buf[..], b"id: 4", "an unfinished block waits for more");
    }

    #[test]
    fn urls_are_checked() {
        assert!(Gateway::new("http://127.0.0.1:8080", None, None).is_ok());
        assert!(Gateway::new("ftp://x", None, None).is_err());
        assert!(
            Gateway::new("https://localhost:1", None, None).is_err(),
            "https needs a CA"
        );
        assert!(Gateway::new("http://:80", None, None).is_err());
    }
}
