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
