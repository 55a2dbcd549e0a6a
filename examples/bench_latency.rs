//! Latency of `GET /v1/getVersion` on the gateway vs the same call on the terminal
//! simulator, both the real release binary on loopback, over verified TLS.
//!
//! Keep-alive: one persistent connection to each (hyper `client::conn::http1` over
//! tokio-rustls), requests alternating gateway/simulator so both see the same machine
//! state. New connection per request: ecrlink's own `HttpClient` (TCP + TLS 1.3
//! handshake + one request each time), as the gateway itself calls the terminal.
//!
//! Note: the gateway answers `getVersion` itself (it is not forwarded to the terminal),
//! and both servers share `http::server`; the difference is therefore the cost of the
//! gateway's API layer (routing, metrics, auth check) over the simulator's, not a hop.
//!
//! cargo build --release && cargo run --release --example bench_latency -- \
//!     [--runs 5] [--requests 2000] [--warmup 200] [--fresh-requests 200]

#[path = "bench_common/mod.rs"]
mod bench_common;

use std::time::{Duration, Instant};

use bench_common::*;
use ecrlink::http::client::HttpClient;
use hyper::{Method, StatusCode};
use rustls::pki_types::ServerName;

const GATEWAY_NAME: &str = "localhost";
const TERMINAL_NAME: &str = "instorepaymentapi.globalpayments.es";
const PATH: &str = "/v1/getVersion";

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let runs: usize = arg("--runs", 5);
    let requests: usize = arg("--requests", 2000);
    let warmup: usize = arg("--warmup", 200);
    let fresh: usize = arg("--fresh-requests", 200);
    let budget = Budget::new(Duration::from_secs(arg("--budget-secs", 300)));

    let world = World::new(&bench_base());
    let sim = world.sim();
    let config = world.gateway_config(sim.addr, "journal.db");
    let gateway = world.gateway(&config);
    let tls = world.client_tls();
    println!(
        "gateway {} (verified as {GATEWAY_NAME}), simulator {} (verified as {TERMINAL_NAME})",
        gateway.addr, sim.addr
    );

    // --- keep-alive -------------------------------------------------------------
    let mut gw = KeepAlive::connect(gateway.addr, tls.clone(), GATEWAY_NAME).await;
    let mut tm = KeepAlive::connect(sim.addr, tls.clone(), TERMINAL_NAME).await;
    for _ in 0..warmup {
        budget.check("warm-up");
        expect_ok(gw.call(Method::GET, PATH, None).await);
        expect_ok(tm.call(Method::GET, PATH, None).await);
    }
    println!(
        "keep-alive: {runs} runs x {requests} requests to each, after {warmup} warm-up (alternating)"
    );
    let mut gw_medians = Vec::new();
    let mut tm_medians = Vec::new();
    let mut gw_p99s = Vec::new();
    let mut tm_p99s = Vec::new();
    let mut diffs = Vec::new();
    for run in 1..=runs {
        let mut g = Vec::with_capacity(requests);
        let mut t = Vec::with_capacity(requests);
        for i in 0..requests {
            budget.check("keep-alive run");
            // Alternate who goes first so neither always follows the other.
            if i % 2 == 0 {
                g.push(timed(gw.call(Method::GET, PATH, None)).await);
                t.push(timed(tm.call(Method::GET, PATH, None)).await);
            } else {
                t.push(timed(tm.call(Method::GET, PATH, None)).await);
                g.push(timed(gw.call(Method::GET, PATH, None)).await);
            }
        }
        let (gm, gp) = summarize(&mut g);
        let (tmm, tp) = summarize(&mut t);
        println!(
            "  run {run}: gateway median {gm:.3} ms p99 {gp:.3} ms | simulator median {tmm:.3} ms p99 {tp:.3} ms | added {:+.4} ms",
            gm - tmm
        );
        gw_medians.push(gm);
        tm_medians.push(tmm);
        gw_p99s.push(gp);
        tm_p99s.push(tp);
        diffs.push(gm - tmm);
    }
    drop(gw);
    drop(tm);

    // --- new connection per request (ecrlink's HttpClient) -----------------------
    let gw_client = HttpClient::https(
        gateway.addr,
        tls.clone(),
        ServerName::try_from(GATEWAY_NAME).unwrap().to_owned(),
        CALL_TIMEOUT,
    );
    let tm_client = HttpClient::https(
        sim.addr,
        tls.clone(),
        ecrlink::tls::terminal_server_name(),
        CALL_TIMEOUT,
    );
    for _ in 0..(fresh / 10).max(1) {
        budget.check("fresh warm-up");
        fresh_call(&gw_client).await;
        fresh_call(&tm_client).await;
    }
    println!("new connection per request: {runs} runs x {fresh} requests to each");
    let mut fgw = Vec::new();
    let mut ftm = Vec::new();
    for run in 1..=runs {
        let mut g = Vec::with_capacity(fresh);
        let mut t = Vec::with_capacity(fresh);
        for _ in 0..fresh {
            budget.check("fresh-connection run");
            g.push(timed_fresh(&gw_client).await);
            t.push(timed_fresh(&tm_client).await);
        }
        let (gm, gp) = summarize(&mut g);
        let (tmm, tp) = summarize(&mut t);
        println!(
            "  run {run}: gateway median {gm:.3} ms p99 {gp:.3} ms | simulator median {tmm:.3} ms p99 {tp:.3} ms"
        );
        fgw.push(gm);
        ftm.push(tmm);
    }

    let added = median_f64(&diffs);
    println!(
        "SUMMARY keep-alive getVersion: gateway median {:.3} ms (p99 {:.3}), simulator median {:.3} ms (p99 {:.3}) [medians of {runs} runs]",
        median_f64(&gw_medians),
        median_f64(&gw_p99s),
        median_f64(&tm_medians),
        median_f64(&tm_p99s),
    );
    println!(
        "SUMMARY keep-alive added latency (gateway - simulator, median of per-run differences): {added:+.4} ms; ratio {:.2}x; target <= 0.200 ms: {}",
        median_f64(&gw_medians) / median_f64(&tm_medians),
        if added <= 0.2 { "met" } else { "MISSED" }
    );
    println!(
        "SUMMARY new connection per request getVersion: gateway median {:.3} ms, simulator median {:.3} ms [medians of {runs} runs]",
        median_f64(&fgw),
        median_f64(&ftm)
    );
}

/// A real answer: 200 and the `{"version": ...}` body, so a fast error cannot pass
/// for a fast answer.
fn expect_ok((status, body): (StatusCode, bytes::Bytes)) {
    let text = String::from_utf8_lossy(&body);
    assert_eq!(status, StatusCode::OK, "{text}");
    assert!(text.contains("\"version\""), "unexpected body: {text}");
}

async fn timed(call: impl std::future::Future<Output = (StatusCode, bytes::Bytes)>) -> Duration {
    let start = Instant::now();
    let answer = call.await;
    let took = start.elapsed();
    expect_ok(answer);
    took
}

async fn fresh_call(client: &HttpClient) {
    let (status, body) = client
        .request(Method::GET, PATH, None, CALL_TIMEOUT)
        .await
        .expect("getVersion over a new connection");
    expect_ok((status, body));
}

async fn timed_fresh(client: &HttpClient) -> Duration {
    let start = Instant::now();
    fresh_call(client).await;
    start.elapsed()
}
