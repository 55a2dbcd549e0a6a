//! The status page's inputs, without a browser (the browser test is `.ci/browser.sh`):
//! the page is self-contained, and `/v1/terminals` carries the link history it draws.
mod common;

use std::time::Duration;

use common::*;
use hyper::StatusCode;
use serde_json::json;

#[tokio::test]
async fn the_page_is_self_contained_and_terminals_carry_their_link_history() {
    let w = World::new();
    let sim = w.sim(&["--card-time", "0"]);
    let gw = w.gateway(&w.gateway_config(sim.addr, json!({"probeIntervalMs": 100})));
    let c = w.gateway_client(gw.addr);
    let (st, page) = c.get("/").await;
    assert_eq!(st, StatusCode::OK);
    let page = page.as_str().unwrap();
    assert!(page.contains("ecrlink gateway"));
    // No CDN, no external fonts or scripts: nothing loaded from another origin.
    for external in [
        "src=\"http",
        "href=\"http",
        "@import",
        "url(http",
        "//cdn",
        "fonts.googleapis",
    ] {
        assert!(
            !page.contains(external),
            "the page refers outside: {external}"
        );
    }
    assert!(
        page.contains("sessionStorage"),
        "the API key lives in the tab's session"
    );
    assert!(
        !page.contains("localStorage.setItem"),
        "never kept beyond the session"
    );
    assert!(page.contains("name=\"viewport\""), "readable on a phone");
    // One sample per probe round, the newest last, with the state it found.
    let history = eventually(Duration::from_secs(10), "three probe rounds", || async {
        let (_, t) = c.get("/v1/terminals").await;
        let h = t[0]["linkHistory"].as_array()?.clone();
        (h.len() >= 3 && h.last()?["state"] == "up").then_some(h)
    })
    .await;
    let at: Vec<u64> = history.iter().map(|s| s["at"].as_u64().unwrap()).collect();
    assert!(at.windows(2).all(|w| w[0] <= w[1]), "oldest first: {at:?}");
    assert!(history.iter().all(|s| s.get("rttMs").is_some()));
}

#[tokio::test]
async fn recent_transactions_filter_by_status() {
    let w = World::new();
    let sim = w.sim(&["--card-time", "0"]);
    let gw = w.gateway(&w.gateway_config(sim.addr, json!({})));
    let c = w.gateway_client(gw.addr);
    for (id, amount) in [("F-1", 1000), ("F-2", 1001), ("F-3", 1000)] {
        let (st, body) = c.post("/v1/sale", &sale(id, amount)).await;
        assert_eq!(st, StatusCode::OK, "{body}");
    }
    let (st, approved) = c.get("/v1/transactions?status=approved&limit=10").await;
    assert_eq!(st, StatusCode::OK);
    let ids: Vec<&str> = approved
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["transactionId"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["F-3", "F-1"], "newest first, approved only");
    let (_, declined) = c.get("/v1/transactions?status=declined").await;
    assert_eq!(declined.as_array().unwrap().len(), 1);
    assert_eq!(declined[0]["transactionId"], "F-2");
    let (st, err) = c.get("/v1/transactions?status=maybe").await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
    assert_eq!(err["error"]["code"], "invalid_request");
}
