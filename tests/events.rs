//! Live progress: `GET /v1/transactions/{id}/events` as Server-Sent Events (history,
//! live stages, the final result last, resume with `Last-Event-ID`) and
//! `Prefer: respond-async`, against the real binaries.
mod common;

use std::time::Duration;

use common::*;
use ecrlink::pay::{Gateway, SseEvent};
use ecrlink::pki;
use hyper::{Method, StatusCode};
use serde_json::{Value, json};

fn gateway_api(w: &World, gw: &Proc) -> Gateway {
    let tls = ecrlink::tls::client_config(&w.certs().join(pki::CA_CERT), None).unwrap();
    let url = format!("https://localhost:{}", gw.addr.port());
    Gateway::new(&url, Some(tls), None).unwrap()
}

/// Reads a stream to its end (the server closes it after the final event).
async fn read_all(gw: &Gateway, path: &str, last: Option<i64>) -> Vec<SseEvent> {
    let mut stream = gw.events(path, last).await.expect("event stream");
    let mut all = Vec::new();
    let read = async {
        while let Some(e) = stream.next().await.expect("stream read") {
            all.push(e);
        }
    };
    tokio::time::timeout(Duration::from_secs(30), read)
        .await
        .expect("the stream ends after the final event");
    all
}

/// `POST /v1/sale` with `Prefer: respond-async`.
async fn start_async(gw: &Gateway, body: &Value) -> (StatusCode, Value) {
    let body = serde_json::to_vec(body).unwrap();
    gw.call(
        Method::POST,
        "/v1/sale",
        &[("prefer", "respond-async")],
        Some(body),
    )
    .await
    .unwrap()
}

/// The next event within 20 s (`None`: the stream ended).
async fn next_event(stream: &mut ecrlink::pay::gateway::Events, what: &str) -> Option<SseEvent> {
    tokio::time::timeout(Duration::from_secs(20), stream.next())
        .await
        .unwrap_or_else(|_| panic!("{what}"))
        .unwrap()
}

fn names(events: &[SseEvent]) -> Vec<&str> {
    events.iter().map(|e| e.event.as_str()).collect()
}

fn position(events: &[SseEvent], name: &str) -> usize {
    events
        .iter()
        .position(|e| e.event == name)
        .unwrap_or_else(|| panic!("no {name} in {:?}", names(events)))
}

#[tokio::test]
async fn a_sale_streams_its_stages_live_and_ends_with_the_result() {
    let w = World::new();
    let sim = w.sim(&["--card-time", "3", "--hold-payments"]);
    let gw_proc = w.gateway(&w.gateway_config(sim.addr, json!({})));
    let gw = gateway_api(&w, &gw_proc);
    let terminal = w.terminal_client(sim.addr);

    let (st, accepted) = start_async(&gw, &sale("SSE-1", 1000)).await;
    assert_eq!(st, StatusCode::ACCEPTED, "{accepted}");
    assert_eq!(accepted["transactionUrl"], "/v1/transactions/SSE-1");
    assert_eq!(accepted["eventsUrl"], "/v1/transactions/SSE-1/events");
    // A repeat with the same body joins the same transaction, still asynchronously.
    let (st, _) = start_async(&gw, &sale("SSE-1", 1000)).await;
    assert_eq!(st, StatusCode::ACCEPTED);

    // Live: the payment is held at the PIN pad, so the stream must show `pin`
    // before the test lets it go on.
    let mut stream = gw
        .events("/v1/transactions/SSE-1/events", None)
        .await
        .unwrap();
    let mut live = Vec::new();
    while live.last().map(|e: &SseEvent| e.event.as_str()) != Some("pin") {
        let e = next_event(&mut stream, "stages arrive while the payment runs")
            .await
            .expect("stream open while the payment runs");
        live.push(e);
    }
    let (_, current) = gw
        .call(Method::GET, "/v1/transactions/SSE-1", &[], None)
        .await
        .unwrap();
    assert_eq!(
        current["status"], "in_progress",
        "pin came before the result"
    );
    set_faults(&terminal, json!({})).await;
    while let Some(e) = next_event(&mut stream, "the rest arrives").await {
        live.push(e);
    }
    let order = ["received", "sent", "waiting_for_card", "pin", "final"];
    let at: Vec<usize> = order.iter().map(|n| position(&live, n)).collect();
    assert!(at.windows(2).all(|w| w[0] < w[1]), "{:?}", names(&live));
    let last = live.last().unwrap();
    assert_eq!(last.event, "final", "the result is the last event");
    let data: Value = serde_json::from_str(&last.data).unwrap();
    assert_eq!(data["result"]["status"], "approved");
    assert_eq!(data["result"]["transactionId"], "SSE-1");
    let pin: Value = serde_json::from_str(&live[position(&live, "pin")].data).unwrap();
    assert_eq!(pin["event"], "stage");
    assert_eq!(pin["stage"], "pin");
    let ids: Vec<i64> = live
        .iter()
        .map(|e| e.id.expect("every event has an id"))
        .collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "ids ascend: {ids:?}");

    // A late subscriber gets the whole history, then the stream closes.
    let again = read_all(&gw, "/v1/transactions/SSE-1/events", None).await;
    assert_eq!(names(&again), names(&live));
    // Last-Event-ID resumes after that event.
    let pin_id = live[position(&live, "pin")].id;
    let resumed = read_all(&gw, "/v1/transactions/SSE-1/events", pin_id).await;
    assert_eq!(names(&resumed), names(&live[position(&live, "pin") + 1..]));
    // Resumed after the final event: nothing left, and the stream still closes.
    let after_final = read_all(&gw, "/v1/transactions/SSE-1/events", last.id).await;
    assert!(after_final.is_empty(), "{:?}", names(&after_final));

    // Without `Accept: text/event-stream` the route answers JSON as before.
    let (st, json_events) = gw
        .call(Method::GET, "/v1/transactions/SSE-1/events", &[], None)
        .await
        .unwrap();
    assert_eq!(st, StatusCode::OK);
    assert_eq!(json_events.as_array().unwrap().len(), live.len());
    assert!(
        gw.events("/v1/transactions/NOPE/events", None)
            .await
            .is_err()
    );
    // A final transaction asked for asynchronously again: its result at once (200).
    let (st, replay) = start_async(&gw, &sale("SSE-1", 1000)).await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(replay["status"], "approved");
}

#[tokio::test]
async fn the_stream_reports_unknown_and_then_the_reconciled_result() {
    let w = World::new();
    let sim = w.sim(&["--card-time", "0", "--hold-payments"]);
    let gw_proc = w.gateway(&w.gateway_config(sim.addr, json!({"timeStop": 1})));
    let gw = gateway_api(&w, &gw_proc);
    let terminal = w.terminal_client(sim.addr);
    let (st, _) = start_async(&gw, &sale("SSE-U", 1000)).await;
    assert_eq!(st, StatusCode::ACCEPTED);
    let mut stream = gw
        .events("/v1/transactions/SSE-U/events", None)
        .await
        .unwrap();
    let mut seen = Vec::new();
    loop {
        let e = next_event(&mut stream, "events arrive")
            .await
            .expect("open until final");
        let name = e.event.clone();
        seen.push(e);
        if name == "unknown" {
            break;
        }
    }
    set_faults(&terminal, json!({})).await;
    while let Some(e) = next_event(&mut stream, "the reconciled result arrives").await {
        seen.push(e);
    }
    let last = seen.last().unwrap();
    assert_eq!(last.event, "reconciled", "{:?}", names(&seen));
    let data: Value = serde_json::from_str(&last.data).unwrap();
    assert_eq!(data["result"]["status"], "approved");
}
