//! The DESIGN.md invariants on the `comercia-pos` lane: a payment that may have been
//! delivered is never sent again, only its status asked; nothing about another order is
//! adopted; a refusal is only what proves nothing started.

use super::*;

#[tokio::test]
async fn a_lost_payment_answer_is_decided_by_status_never_resent() {
    let s = Store::open(json!({}));
    let t = s.comercia_terminal();
    set_faults(&t, json!({"dropResponses": 1})).await;
    let (st, r) = s
        .gateway()
        .post("/v1/sale", &sale_on(COMERCIA, "LOST-1", 2000))
        .await;
    assert_eq!(
        (st, r["status"].clone()),
        (StatusCode::OK, json!("approved")),
        "{r}"
    );
    assert_eq!(starts(&t, "LOST-1").await, 1);
    assert!(
        sim_stats(&t).await["lookupRequests"]["LOST-1"]
            .as_u64()
            .unwrap()
            >= 1
    );
}

#[tokio::test]
async fn a_status_answer_about_another_order_is_never_adopted() {
    let s = Store::open(json!({}));
    let t = s.comercia_terminal();
    let gw = s.gateway();
    let (_, r) = gw.post("/v1/sale", &sale_on(COMERCIA, "WR-0", 1001)).await;
    assert_eq!(r["status"], "declined");
    set_faults(&t, json!({"wrongAnswer": true})).await;
    let (_, r) = gw.post("/v1/sale", &sale_on(COMERCIA, "WR-1", 1000)).await;
    assert_eq!(
        (r["transactionId"].clone(), r["status"].clone()),
        (json!("WR-1"), json!("approved")),
        "{r}"
    );
    // The terminal did tell WR-0's verdict about WR-1 (a declined 10.01 €). The gateway
    // asks WR-1's status twice at once (its own poll and the lookup after "idle"): when
    // the true answer is processed first the sale is final and the other one is moot, so
    // `answer_mismatch` is journaled only if the wrong answer came first.
    let stats = sim_stats(&t).await;
    assert_eq!(stats["wrongAnswers"]["WR-1"], 1, "the fault fired: {stats}");
    let (_, wr1) = gw.get("/v1/transactions/WR-1").await;
    assert_eq!(
        (wr1["amount"].clone(), wr1["resultCode"].clone()),
        (json!(1000), json!("0")),
        "WR-1's own verdict: {wr1}"
    );
    assert_eq!(starts(&t, "WR-1").await, 1);
}

#[tokio::test]
async fn a_duplicated_order_913_is_looked_up_not_charged_again() {
    let s = Store::open(json!({}));
    let t = s.comercia_terminal();
    // The order already reached the terminal (another path, an earlier life).
    let (_, first) = t
        .post(
            "/v1/transactions/payment",
            &json!({"orderId": "DUP-1", "amount": "12.50"}),
        )
        .await;
    assert_eq!(first["resultCode"], 1001, "{first}");
    let (st, r) = s
        .gateway()
        .post("/v1/sale", &sale_on(COMERCIA, "DUP-1", 1250))
        .await;
    assert_eq!(
        (st, r["status"].clone()),
        (StatusCode::OK, json!("approved")),
        "{r}"
    );
    let stats = sim_stats(&t).await;
    assert_eq!(stats["transactions"], 1, "one charge: {stats}");
    assert_eq!(
        stats["startRequests"]["DUP-1"], 2,
        "the gateway's request met 913"
    );
}

#[tokio::test]
async fn a_terminal_busy_with_another_order_is_a_409_refusal() {
    let s = Store::open(json!({}));
    let t = s.comercia_terminal();
    set_faults(&t, json!({"holdPayments": true})).await;
    let (_, other) = t
        .post(
            "/v1/transactions/payment",
            &json!({"orderId": "OTHER", "amount": "1.00"}),
        )
        .await;
    assert_eq!(other["resultCode"], 1001);
    let (st, r) = s
        .gateway()
        .post("/v1/sale", &sale_on(COMERCIA, "BUSY-1", 700))
        .await;
    assert_eq!(st, StatusCode::CONFLICT, "{r}");
    assert_eq!(r["error"]["code"], "terminal_busy", "{r}");
    set_faults(&t, json!({})).await;
    assert_eq!(sim_stats(&t).await["transactions"], 1, "BUSY-1 never ran");
}

#[tokio::test]
async fn a_payment_in_flight_at_a_gateway_restart_is_asked_about_not_resent() {
    let mut s = Store::open(json!({}));
    let t = s.comercia_terminal();
    set_faults(&t, json!({"holdPayments": true})).await;
    let gw = s.gateway();
    let sale = tokio::spawn(async move {
        gw.call(
            hyper::Method::POST,
            "/v1/sale",
            Some(serde_json::to_vec(&sale_on(COMERCIA, "RST-1", 3300)).unwrap()),
        )
        .await
    });
    eventually(Duration::from_secs(10), "RST-1 at the terminal", || async {
        (starts(&t, "RST-1").await == 1).then_some(())
    })
    .await;
    s.gw.kill();
    let _ = sale.await;
    set_faults(&t, json!({})).await;
    let config: Vec<_> = std::fs::read_dir(s.w.dir.path())
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("config-")
        })
        .collect();
    let config: Value = serde_json::from_slice(&std::fs::read(&config[0]).unwrap()).unwrap();
    s.gw = s.w.gateway(&config);
    let gw = s.gateway();
    let r = eventually(Duration::from_secs(15), "RST-1 reconciled", || async {
        let (_, r) = gw.get("/v1/transactions/RST-1").await;
        (r["status"] == "approved").then_some(r)
    })
    .await;
    assert_eq!(r["receipt"]["Amount"], "33.00");
    assert_eq!(starts(&t, "RST-1").await, 1, "never sent again");
}
