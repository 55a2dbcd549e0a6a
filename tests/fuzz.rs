//! Issue 16: the fuzz targets of `ecrlink::fuzzing` on stable, as property tests with a
//! bounded number of cases (`FUZZ_CASES`, default 1000), plus random bodies sent to a
//! real gateway: never a panic, never a 5xx for input. `fuzz/` holds the same targets for
//! cargo-fuzz (nightly) for longer runs.
mod common;

use common::*;
use ecrlink::fuzzing;
use hyper::StatusCode;
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config, TestRunner};
use serde_json::json;

fn cases() -> u32 {
    std::env::var("FUZZ_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(1000)
}

/// Bytes that look like the JSON these parsers read: fragments of valid bodies with
/// random bytes and numbers in between, so the fuzzer gets past the first `{`.
fn jsonish() -> impl Strategy<Value = Vec<u8>> {
    let piece = prop_oneof![
        Just(b"{".to_vec()),
        Just(b"}".to_vec()),
        Just(b"[".to_vec()),
        Just(b"]".to_vec()),
        Just(b",".to_vec()),
        Just(b":".to_vec()),
        Just(b"null".to_vec()),
        Just(b"\"transactionId\"".to_vec()),
        Just(b"\"deviceId\"".to_vec()),
        Just(b"\"amount\"".to_vec()),
        Just(b"\"currencyCode\"".to_vec()),
        Just(b"\"status\"".to_vec()),
        Just(b"\"approved\"".to_vec()),
        Just(b"\"terminals\"".to_vec()),
        Just(b"\"terminalIp\"".to_vec()),
        Just(b"\"EUR\"".to_vec()),
        // The comercia-pos profile's answers.
        Just(b"\"orderId\"".to_vec()),
        Just(b"\"resultCode\"".to_vec()),
        Just(b"\"ticket\"".to_vec()),
        Just(b"\"CardNumber\"".to_vec()),
        Just(b"\"Amount\"".to_vec()),
        Just(b"\"4111111111111111\"".to_vec()),
        Just(b"\"10.50\"".to_vec()),
        any::<i64>().prop_map(|n| n.to_string().into_bytes()),
        any::<f64>().prop_map(|n| n.to_string().into_bytes()),
        "\"[^\"]{0,12}\"".prop_map(String::into_bytes),
        proptest::collection::vec(any::<u8>(), 0..6),
    ];
    proptest::collection::vec(piece, 0..40).prop_map(|v| v.concat())
}

fn bytes() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![proptest::collection::vec(any::<u8>(), 0..512), jsonish()]
}

proptest! {
    #![proptest_config(Config { cases: cases(), failure_persistence: None, ..Config::default() })]

    #[test]
    fn pos_requests_never_panic_and_never_5xx(data in bytes()) {
        let status = fuzzing::pos_request(&data);
        prop_assert!(!status.is_server_error(), "{status} for {data:?}");
    }

    #[test]
    fn terminal_answers_never_panic(data in bytes()) {
        fuzzing::terminal_answer(&data);
    }

    #[test]
    fn config_files_never_panic(data in bytes()) {
        fuzzing::config_text(&data);
    }
}

/// The same inputs over HTTPS to the real binary: the answer is never a 5xx, and the
/// terminal hears only of what the gateway admitted.
#[tokio::test]
async fn random_bodies_to_a_running_gateway_are_never_a_5xx() {
    let w = World::new();
    let sim = w.sim(&["--card-time", "0"]);
    let gw = w.gateway(&w.gateway_config(sim.addr, json!({})));
    let c = w.gateway_client(gw.addr);
    let mut runner = TestRunner::deterministic();
    let strategy = bytes();
    let paths = [
        "/v1/sale",
        "/v1/refund",
        "/v1/void",
        "/v1/transactions/F-1/resolve",
    ];
    let mut admitted = 0;
    for i in 0..cases().min(300) {
        let body = strategy.new_tree(&mut runner).unwrap().current();
        let path = paths[i as usize % paths.len()];
        let (st, answer) = c.post_raw(path, &body).await;
        assert!(!st.is_server_error(), "{st} {answer} for {path} {body:?}");
        admitted += usize::from(st == StatusCode::OK);
    }
    // A valid sale still goes through afterwards, charged once.
    let (st, r) = c.post("/v1/sale", &sale("FUZZ-OK", 1000)).await;
    assert_eq!(
        (st, r["status"].as_str()),
        (StatusCode::OK, Some("approved")),
        "{r}"
    );
    let stats = sim_stats(&w.terminal_client(sim.addr)).await;
    assert_eq!(stats["requests"], admitted + 1, "{stats}");
}
