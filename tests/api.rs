//! The integrator API over verified TLS, against the real binaries.
mod common;

use common::*;
use hyper::{Method, StatusCode};
use serde_json::{Value, json};

struct Setup {
    w: World,
    sim: Proc,
    gw: Proc,
}

fn setup(sim_args: &[&str], extra: Value) -> Setup {
    let w = World::new();
    let sim = w.sim(sim_args);
    let gw = w.gateway(&w.gateway_config(sim.addr, extra));
    Setup { w, sim, gw }
}

#[tokio::test]
async fn outcomes_follow_the_amount() {
    let s = setup(&["--card-time", "0"], json!({}));
    let c = s.w.gateway_client(s.gw.addr);
    let cases = [
        (1000, "approved"),
        (1001, "declined"),
        (1002, "cancelled"),
        (1003, "failed"),
    ];
    for (i, (amount, status)) in cases.into_iter().enumerate() {
        let id = format!("AMT-{i}");
        let (st, body) = c.post("/v1/sale", &sale(&id, amount)).await;
        assert_eq!(st, StatusCode::OK, "{body}");
        assert_eq!(body["status"], status, "{body}");
        assert_eq!(body["transactionId"], id);
        assert_eq!(body["amount"], amount);
        assert_eq!(body["transport"], "direct");
        if status == "approved" {
            assert_eq!(body["authorizationCode"].as_str().unwrap().len(), 6);
            assert_eq!(body["maskedPan"], "476173******0010");
        }
        // The journal holds the same result.
        let (st, stored) = c.get(&format!("/v1/transactions/{id}")).await;
        assert_eq!(st, StatusCode::OK);
        assert_eq!(stored["status"], status);
        assert_eq!(stored["authorizationCode"], body["authorizationCode"]);
    }
    let (st, list) = c.get("/v1/transactions").await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(list.as_array().unwrap().len(), 4);
    assert_eq!(list[0]["transactionId"], "AMT-3", "newest first");
}

#[tokio::test]
async fn version_terminals_metrics_openapi_and_status_page() {
    let s = setup(&["--card-time", "0"], json!({}));
    let c = s.w.gateway_client(s.gw.addr);
    let (st, v) = c.get("/v1/getVersion").await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(v["version"], env!("CARGO_PKG_VERSION"));
    let (st, terminals) = c.get("/v1/terminals").await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(terminals[0]["deviceId"], DEVICE);
    assert_eq!(terminals[0]["address"], s.sim.addr.to_string());
    assert_eq!(terminals[0]["activeTransport"], "direct");
    let (st, one) = c.get(&format!("/v1/terminals/{DEVICE}")).await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(one["deviceId"], DEVICE);
    let (st, err) = c.get("/v1/terminals/NOPE").await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    assert_eq!(err["error"]["code"], "unknown_device");
    let (st, spec) = c.get("/openapi.json").await;
    assert_eq!(st, StatusCode::OK);
    assert!(spec["paths"]["/v1/sale"]["post"].is_object());
    c.post("/v1/sale", &sale("M-1", 500)).await;
    let (st, metrics) = c.get("/metrics").await;
    assert_eq!(st, StatusCode::OK);
    let text = metrics.as_str().unwrap();
    assert!(
        text.contains("ecrlink_transactions{status=\"approved\"} 1"),
        "{text}"
    );
    assert!(text.contains("ecrlink_payments_started_total 1"), "{text}");
    let (st, page) = c.get("/").await;
    assert_eq!(st, StatusCode::OK);
    assert!(page.as_str().unwrap().contains("ecrlink gateway"));
}

#[tokio::test]
async fn duplicates_replay_and_conflicts_are_refused() {
    let s = setup(&["--card-time", "0"], json!({}));
    let c = s.w.gateway_client(s.gw.addr);
    let (st1, first) = c.post("/v1/sale", &sale("DUP-1", 1234)).await;
    let (st2, second) = c.post("/v1/sale", &sale("DUP-1", 1234)).await;
    assert_eq!((st1, st2), (StatusCode::OK, StatusCode::OK));
    assert_eq!(first, second, "a repeat gets the very same answer");
    let (st, err) = c.post("/v1/sale", &sale("DUP-1", 999)).await;
    assert_eq!(st, StatusCode::CONFLICT);
    assert_eq!(err["error"]["code"], "transaction_conflict");
    // A refund with a sale's id is a different request too.
    let mut refund = sale("DUP-1", 1234);
    refund["originalTransactionId"] = json!("X-1");
    let (st, _) = c.post("/v1/refund", &refund).await;
    assert_eq!(st, StatusCode::CONFLICT);
    let term = s.w.terminal_client(s.sim.addr);
    let stats = sim_stats(&term).await;
    assert_eq!(stats["startRequests"]["DUP-1"], 1, "{stats}");
}

#[tokio::test]
async fn busy_terminal_gets_409_at_once_and_cancel_works() {
    // Held at the card: only the cancel ends BUSY-1.
    let s = setup(
        &["--card-time", "0", "--hold-payments"],
        json!({"timeStop": 60}),
    );
    let c = s.w.gateway_client(s.gw.addr);
    let first = {
        let c = c.clone();
        tokio::spawn(async move { c.post("/v1/sale", &sale("BUSY-1", 1000)).await })
    };
    eventually(
        std::time::Duration::from_secs(10),
        "sale in progress",
        || {
            let c = c.clone();
            async move {
                let (st, b) = c.get("/v1/transactions/BUSY-1").await;
                (st == StatusCode::OK && b["status"] == "in_progress").then_some(())
            }
        },
    )
    .await;
    let (st, err) = c.post("/v1/sale", &sale("BUSY-2", 1000)).await;
    assert_eq!(st, StatusCode::CONFLICT);
    assert_eq!(err["error"]["code"], "terminal_busy");
    assert!(err["error"]["message"].as_str().unwrap().contains("BUSY-1"));
    let (st, answer) = c.post("/v1/transactions/BUSY-1/cancel", &json!({})).await;
    assert_eq!(st, StatusCode::OK, "{answer}");
    assert_eq!(answer["cancelled"], true);
    let (st, result) = first.await.unwrap();
    assert_eq!(st, StatusCode::OK);
    assert_eq!(result["status"], "cancelled");
    assert_eq!(result["resultCode"], "cancelled_by_ecr");
    // Once final, a cancel says so; an unknown id is 404.
    let (_, answer) = c.post("/v1/transactions/BUSY-1/cancel", &json!({})).await;
    assert_eq!(answer["cancelled"], false);
    let (st, _) = c.post("/v1/transactions/NOPE/cancel", &json!({})).await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    let (st, _) = c.get("/v1/transactions/BUSY-2").await;
    assert_eq!(st, StatusCode::NOT_FOUND, "a refused sale leaves no record");
    // The terminal is free again: with the hold released, the next sale goes through.
    set_faults(&s.w.terminal_client(s.sim.addr), json!({})).await;
    let (st, r) = c.post("/v1/sale", &sale("BUSY-3", 1000)).await;
    assert_eq!(st, StatusCode::OK, "{r}");
    assert_eq!(r["status"], "approved", "{r}");
}

#[tokio::test]
async fn refund_and_void_need_an_approved_original() {
    let s = setup(&["--card-time", "0"], json!({}));
    let c = s.w.gateway_client(s.gw.addr);
    let undo = |id: &str, amount: u64, original: &str| {
        let mut body = sale(id, amount);
        body["originalTransactionId"] = json!(original);
        body
    };
    c.post("/v1/sale", &sale("ORIG-1", 5000)).await;
    let (st, r) = c.post("/v1/refund", &undo("REF-1", 2000, "ORIG-1")).await;
    assert_eq!(st, StatusCode::OK, "{r}");
    assert_eq!(
        (r["type"].as_str(), r["status"].as_str()),
        (Some("refund"), Some("approved"))
    );
    // The journal knows the original: the gateway refuses before the terminal hears it.
    let requests = sim_stats(&s.w.terminal_client(s.sim.addr)).await["requests"].clone();
    let (st, r) = c.post("/v1/refund", &undo("REF-2", 3001, "ORIG-1")).await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "{r}");
    assert_eq!(r["error"]["code"], "invalid_original");
    assert!(
        r["error"]["message"].as_str().unwrap().contains("5001"),
        "{r}"
    );
    let (st, r) = c.post("/v1/void", &undo("VOID-0", 5000, "ORIG-1")).await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "refunded: {r}");
    assert_eq!(
        sim_stats(&s.w.terminal_client(s.sim.addr)).await["requests"],
        requests,
        "refused refunds and voids never reach the terminal"
    );
    let (_, r) = c.post("/v1/refund", &undo("REF-3", 3000, "ORIG-1")).await;
    assert_eq!(r["status"], "approved", "up to the sale's amount: {r}");

    c.post("/v1/sale", &sale("ORIG-2", 5000)).await;
    let (st, r) = c.post("/v1/void", &undo("VOID-1", 4000, "ORIG-2")).await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "{r}");
    let (_, r) = c.post("/v1/void", &undo("VOID-1B", 5000, "ORIG-2")).await;
    assert_eq!(r["status"], "approved", "{r}");
    let (st, r) = c.post("/v1/void", &undo("VOID-2", 5000, "ORIG-2")).await;
    assert_eq!(
        st,
        StatusCode::UNPROCESSABLE_ENTITY,
        "a sale is voided once: {r}"
    );
    assert!(
        r["error"]["message"]
            .as_str()
            .unwrap()
            .contains("already voided"),
        "{r}"
    );
    let (st, _) = c.post("/v1/refund", &undo("REF-4", 100, "ORIG-2")).await;
    assert_eq!(
        st,
        StatusCode::UNPROCESSABLE_ENTITY,
        "a voided sale is not refunded"
    );

    // An original the journal does not know is the terminal's to judge.
    let (st, r) = c.post("/v1/refund", &undo("REF-5", 100, "ELSEWHERE")).await;
    assert_eq!(st, StatusCode::OK, "{r}");
    assert_eq!(r["status"], "declined");
    assert_eq!(r["resultCode"], "invalid_original");
}

#[tokio::test]
async fn bad_input_is_400_naming_the_field_and_never_a_500() {
    let s = setup(&["--card-time", "0"], json!({}));
    let c = s.w.gateway_client(s.gw.addr);
    let mut cases: Vec<(Value, &str)> = Vec::new();
    for (field, value) in [
        ("amount", json!(10.5)),
        ("amount", json!(-1)),
        ("amount", json!(0)),
        ("amount", json!("1000")),
        ("currencyCode", json!("EURO")),
        ("currencyCode", json!("ABC")),
        ("transactionId", json!("")),
        ("transactionId", json!("has space")),
        ("transactionId", json!("x".repeat(65))),
    ] {
        let mut body = sale("BAD-1", 1000);
        body[field] = value;
        cases.push((body, field));
    }
    let mut missing = sale("BAD-2", 1000);
    missing.as_object_mut().unwrap().remove("paymentApp");
    cases.push((missing, "paymentApp"));
    for (body, field) in cases {
        let (st, err) = c.post("/v1/sale", &body).await;
        assert_eq!(st, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(err["error"]["code"], "invalid_request");
        assert!(
            err["error"]["message"].as_str().unwrap().contains(field),
            "{err}"
        );
    }
    let (st, err) = c.post_raw("/v1/sale", b"{\"deviceId\": ").await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
    assert!(err["error"]["message"].as_str().unwrap().contains("JSON"));
    let mut other = sale("DEV-1", 1000);
    other["deviceId"] = json!("SOMEONE-ELSE");
    let (st, err) = c.post("/v1/sale", &other).await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    assert_eq!(err["error"]["code"], "unknown_device");
    let big = vec![b' '; 70 * 1024];
    let (st, err) = c.post_raw("/v1/sale", &big).await;
    assert_eq!(st, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(err["error"]["code"], "payload_too_large");
    let (st, _) = c.get("/v1/sale").await;
    assert_eq!(st, StatusCode::METHOD_NOT_ALLOWED);
    let (st, _) = c.get("/nowhere").await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    let (st, _) = c.get("/v1/transactions/bad%20id").await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
    let (st, _) = c.get("/v1/transactions?limit=0").await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
    // None of it reached the terminal.
    let stats = sim_stats(&s.w.terminal_client(s.sim.addr)).await;
    assert_eq!(stats["requests"], 0, "{stats}");
}

#[tokio::test]
async fn api_key_is_required_when_configured() {
    let s = setup(&["--card-time", "0"], json!({"apiKey": "s3cret-key"}));
    let c = s.w.gateway_client(s.gw.addr);
    let (st, err) = c.post("/v1/sale", &sale("K-1", 1000)).await;
    assert_eq!(st, StatusCode::UNAUTHORIZED);
    assert_eq!(err["error"]["code"], "unauthorized");
    let (st, _) = c.get("/v1/getVersion").await;
    assert_eq!(
        st,
        StatusCode::OK,
        "getVersion stays open for health checks"
    );
    // An empty log would pass the check below: first make sure it is the gateway's log
    // and it got past loading the config that holds the key.
    let log = log_with(&s.gw, &["gateway ready"]).await;
    assert!(
        !log.contains("s3cret-key"),
        "the key never reaches the log: {log}"
    );
}

#[tokio::test]
async fn plain_http_only_when_ssl_is_false() {
    let w = World::new();
    let sim = w.sim(&["--card-time", "0"]);
    let gw = w.gateway(&w.gateway_config(sim.addr, json!({"SSL": "False"})));
    let http = ecrlink::http::client::HttpClient::plain(gw.addr, std::time::Duration::from_secs(5));
    let (st, bytes) = http
        .request(
            Method::GET,
            "/v1/getVersion",
            None,
            std::time::Duration::from_secs(5),
        )
        .await
        .unwrap();
    assert_eq!(st, StatusCode::OK);
    assert!(String::from_utf8_lossy(&bytes).contains("version"));
    // And the terminal side is still verified HTTPS: a sale goes through.
    let client = Client(http);
    let (st, r) = client.post("/v1/sale", &sale("P-1", 1000)).await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(r["status"], "approved");
}

#[tokio::test]
async fn logs_carry_no_card_data_or_other_data() {
    let s = setup(&["--card-time", "0"], json!({}));
    let c = s.w.gateway_client(s.gw.addr);
    let mut body = sale("LOG-1", 1000);
    body["otherData"] = json!({"customerNote": "PRIVATE-NOTE-4761739001010010"});
    let (st, _) = c.post("/v1/sale", &body).await;
    assert_eq!(st, StatusCode::OK);
    // Both logs hold what they should before we look for what they must not hold: an
    // empty log would pass. (The simulator logs no per-request line at info level.)
    let gw_log = log_with(
        &s.gw,
        &["transaction journaled", "transaction final", "LOG-1"],
    )
    .await;
    let sim_log = log_with(&s.sim, &["terminal simulator ready"]).await;
    for log in [gw_log, sim_log] {
        assert!(!log.contains("PRIVATE-NOTE"), "otherData is never logged");
        assert!(!log.contains("4761739001010010"));
    }
}

/// The process's log once it holds every one of `lines` (a process writes its log on
/// its own schedule); fails the test if it does not within 5 s.
async fn log_with(proc: &Proc, lines: &[&str]) -> String {
    eventually(
        std::time::Duration::from_secs(5),
        &format!("{lines:?} in {}", proc.log.display()),
        || async {
            let log = proc.log_text();
            lines.iter().all(|l| log.contains(l)).then_some(log)
        },
    )
    .await
}
