//! Server-Sent Events (the WHATWG `text/event-stream` format): a response whose body
//! is fed by a task through a bounded channel, event and comment framing, and the
//! request headers that matter (`Accept`, `Last-Event-ID`). The body ends when the
//! task drops its [`SseSender`]; a client that goes away makes the next send fail.

use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::Frame;
use hyper::header::{ACCEPT, CACHE_CONTROL, CONTENT_TYPE, HeaderMap, HeaderValue};
use hyper::{Response, StatusCode};
use tokio::sync::mpsc;

use super::Body;

/// Frames queued for a slow reader before the producer waits.
const QUEUE: usize = 32;

/// Whether the client asked for an event stream (`Accept: text/event-stream`).
pub fn wants_event_stream(headers: &HeaderMap) -> bool {
    headers
        .get_all(ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.split(';').next().unwrap_or("").trim() == "text/event-stream")
}

/// The `Last-Event-ID` a reconnecting client sends, when it is one of our ids.
pub fn last_event_id(headers: &HeaderMap) -> Option<i64> {
    headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok())
}

/// One event: `id`, `event` and the `data` lines (a newline in `data` starts a new
/// `data:` line, as the format requires).
pub fn event(id: Option<i64>, name: &str, data: &str) -> Bytes {
    let mut out = String::with_capacity(data.len() + name.len() + 32);
    if let Some(id) = id {
        out.push_str(&format!("id: {id}\n"));
    }
    out.push_str(&format!("event: {}\n", one_line(name)));
    for line in data.split('\n') {
        out.push_str("data: ");
        out.push_str(line.trim_end_matches('\r'));
        out.push('\n');
    }
    out.push('\n');
    Bytes::from(out)
}

/// A comment line: ignored by clients, but traffic for idle proxies.
pub fn comment(text: &str) -> Bytes {
    Bytes::from(format!(": {}\n\n", one_line(text)))
}

fn one_line(s: &str) -> String {
    s.replace(['\r', '\n'], " ")
}

/// The producer's end of a stream.
pub struct SseSender {
    tx: mpsc::Sender<Bytes>,
    heartbeat: Duration,
}

/// The client is gone: stop producing.
#[derive(Debug)]
pub struct Gone;

impl SseSender {
    pub async fn send(&self, frame: Bytes) -> Result<(), Gone> {
        self.tx.send(frame).await.map_err(|_| Gone)
    }

    /// Waits for `next`; while it takes longer than the heartbeat, sends a comment
    /// each time the heartbeat is over. `Err(Gone)` when the client left meanwhile.
    pub async fn wait_beating<F: std::future::Future>(&self, next: F) -> Result<F::Output, Gone> {
        tokio::pin!(next);
        loop {
            tokio::select! {
                out = &mut next => return Ok(out),
                _ = tokio::time::sleep(self.heartbeat) => self.send(comment("heartbeat")).await?,
                _ = self.tx.closed() => return Err(Gone),
            }
        }
    }
}

/// A `200 text/event-stream` response and the sender that feeds it. The first frame
/// proposes a reconnection delay of `retry`.
pub fn stream(heartbeat: Duration, retry: Duration) -> (Response<Body>, SseSender) {
    let (tx, rx) = mpsc::channel(QUEUE);
    let _ = tx.try_send(Bytes::from(format!("retry: {}\n\n", retry.as_millis())));
    let mut resp = Response::new(ChannelBody { rx }.boxed_unsync());
    *resp.status_mut() = StatusCode::OK;
    let headers = resp.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    // nginx buffers responses unless told not to; a buffered stream shows nothing live.
    headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
    (resp, SseSender { tx, heartbeat })
}

struct ChannelBody {
    rx: mpsc::Receiver<Bytes>,
}

impl hyper::body::Body for ChannelBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.rx.poll_recv(cx).map(|f| f.map(|b| Ok(Frame::data(b))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_framing_splits_data_lines_and_keeps_names_on_one_line() {
        let e = event(Some(7), "pin\nx", "{\"a\":1}\nsecond");
        assert_eq!(
            &e[..],
            b"id: 7\nevent: pin x\ndata: {\"a\":1}\ndata: second\n\n"
        );
        assert_eq!(&comment("hi")[..], b": hi\n\n");
    }

    #[test]
    fn accept_and_last_event_id_are_read() {
        let mut h = HeaderMap::new();
        assert!(!wants_event_stream(&h));
        h.insert(
            ACCEPT,
            HeaderValue::from_static("application/json, text/event-stream;q=0.9"),
        );
        assert!(wants_event_stream(&h));
        h.insert("last-event-id", HeaderValue::from_static(" 42 "));
        assert_eq!(last_event_id(&h), Some(42));
        h.insert("last-event-id", HeaderValue::from_static("x"));
        assert_eq!(last_event_id(&h), None);
    }

    #[tokio::test(start_paused = true)]
    async fn an_idle_stream_gets_heartbeats_and_a_gone_client_stops_it() {
        let (resp, tx) = stream(Duration::from_secs(15), Duration::from_secs(2));
        let mut body = resp.into_body();
        let producer = tokio::spawn(async move {
            tx.wait_beating(tokio::time::sleep(Duration::from_secs(40)))
                .await
                .map(|_| ())
        });
        let mut frames = Vec::new();
        for _ in 0..3 {
            let f = body.frame().await.unwrap().unwrap();
            frames.push(f.into_data().unwrap());
        }
        assert_eq!(&frames[0][..], b"retry: 2000\n\n");
        assert_eq!(&frames[1][..], b": heartbeat\n\n");
        assert_eq!(&frames[2][..], b": heartbeat\n\n");
        drop(body);
        assert!(
            producer.await.unwrap().is_err(),
            "a gone client ends the wait"
        );
    }
}
