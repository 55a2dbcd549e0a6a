//! What an operator sees and does (issue 8): `/healthz` says whether the journal can
//! commit, and a transaction that stayed `unknown` is settled by
//! `POST /v1/transactions/{id}/resolve`, journaled with the operator's reason.

mod common;

use common::*;
use hyper::StatusCode;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_sale_is_settled_by_an_operator_and_replayed_as_settled() {
    let w = World::new();
    // A frozen terminal: the sale can only end unknown.
    let sim = w.sim(&["--card-time", "0", "--hang"]);
    let config = w.gateway_config(sim.addr, json!({"pollSeconds": 0.1, "timeStop": 1.5}));
    let gw = w.gateway(&config);
    let c = w.gateway_client(gw.addr);

    let (st, health) = c.get("/healthz").await;
    assert_eq!(st, StatusCode::OK, "{health}");
    assert_eq!(health["journal"], "writable");

    let (st, r) = c.post("/v1/sale", &sale("OP-1", 1000)).await;
    assert_eq!(st, StatusCode::GATEWAY_TIMEOUT, "{r}");
    assert_eq!(r["status"], "unknown");

    for (body, want) in [
        (json!({"status": "approved"}), StatusCode::BAD_REQUEST),
        (
            json!({"status": "in_progress", "reason": "x"}),
            StatusCode::BAD_REQUEST,
        ),
        (
            json!({"status": "approved", "reason": "  "}),
            StatusCode::BAD_REQUEST,
        ),
    ] {
        let (st, e) = c.post("/v1/transactions/OP-1/resolve", &body).await;
        assert_eq!(st, want, "{body}: {e}");
        assert_eq!(e["error"]["code"], "invalid_request", "{e}");
    }
    let (st, e) = c
        .post(
            "/v1/transactions/NOPE/resolve",
            &json!({"status": "approved", "reason": "x"}),
        )
        .await;
    assert_eq!(st, StatusCode::NOT_FOUND, "{e}");

    let reason = "receipt 0042 shows approved";
    let (st, r) = c
        .post(
            "/v1/transactions/OP-1/resolve",
            &json!({"status": "approved", "reason": reason}),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{r}");
    assert_eq!(r["status"], "approved");
    assert_eq!(r["resultCode"], "resolved_by_operator");

    let (_, r) = c.get("/v1/transactions/OP-1").await;
    assert_eq!(r["status"], "approved", "{r}");
    let (_, events) = c.get("/v1/transactions/OP-1/events").await;
    let last = events.as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["event"], "resolved_by_operator", "{events}");
    assert_eq!(last["detail"], reason);
    // A retrying POS hears the settled result.
    let (st, r) = c.post("/v1/sale", &sale("OP-1", 1000)).await;
    assert_eq!(
        (st, r["status"].as_str()),
        (StatusCode::OK, Some("approved"))
    );
    // Settled is settled.
    let (st, e) = c
        .post(
            "/v1/transactions/OP-1/resolve",
            &json!({"status": "declined", "reason": "second thoughts"}),
        )
        .await;
    assert_eq!(st, StatusCode::CONFLICT, "{e}");
    assert_eq!(e["error"]["code"], "invalid_state");

    let (st, metrics) = c.get("/metrics").await;
    assert_eq!(st, StatusCode::OK);
    let metrics = metrics.as_str().expect("Prometheus text");
    for line in [
        "ecrlink_resolved_by_operator_total 1",
        "ecrlink_journal_writable 1",
        "ecrlink_answer_mismatches_total 0",
    ] {
        assert!(
            metrics.lines().any(|l| l == line),
            "{line} missing:\n{metrics}"
        );
    }
}
