//! Issue 16: the per-client limits, from a client that is really beyond loopback. The
//! gateway and its terminal run inside a network namespace of their own; the test talks
//! to the gateway's 10.x address over the veth pair, so the gateway sees a LAN client.
//! Needs root (iproute2): `#[ignore]`d with the reason, run by `.ci/run`.
mod common;

use std::time::Duration;

use common::lan::{self, Host};
use common::*;
use hyper::StatusCode;
use serde_json::json;

const KEY: &str = "limits-key";

#[tokio::test]
#[ignore = "needs root and iproute2: .ci/run runs it (cargo test -- --include-ignored)"]
async fn a_lan_client_is_held_to_its_connection_and_start_limits() {
    lan::require();
    let w = World::new();
    let host = Host::new();
    let sim = host.sim_at(
        &w,
        &w.certs(),
        "127.0.0.1:0".parse().unwrap(),
        &["--card-time", "0"],
    );
    let mut config = w.gateway_config(
        sim.addr,
        json!({"url": host.ip.to_string(), "apiKey": KEY,
               "maxConnectionsPerIp": 2, "startsPerSecondPerIp": 2}),
    );
    config["journal"] = json!(w.path("limits.db"));
    let cfg = w.path("limits.json");
    std::fs::write(&cfg, config.to_string()).unwrap();
    let gw = host.ecrlink(
        &["serve".into(), "--config".into(), cfg.display().to_string()],
        &w.path("gw-limits.log"),
    );
    assert!(!gw.addr.ip().is_loopback(), "{}", gw.addr);
    let client = || Client(w.gateway_client(gw.addr).0.with_bearer(KEY));

    // Starts: a burst of two, then 429 with Retry-After, and nothing sent for it.
    let c = client();
    let mut statuses = Vec::new();
    for i in 0..4 {
        let (st, body) = c.post("/v1/sale", &sale(&format!("LIM-{i}"), 1000)).await;
        statuses.push((st, body["error"]["code"].as_str().map(str::to_string)));
    }
    let limited = statuses
        .iter()
        .filter(|(st, _)| *st == StatusCode::TOO_MANY_REQUESTS)
        .count();
    assert!(limited >= 1, "{statuses:?}");
    assert!(
        statuses[..2].iter().all(|(st, _)| *st == StatusCode::OK),
        "{statuses:?}"
    );
    assert!(
        statuses
            .iter()
            .any(|(_, code)| code.as_deref() == Some("rate_limited")),
        "{statuses:?}"
    );
    // Held open by raw connections: the third is answered 503 and closed. Each attempt
    // opens its own two, so a slot that ended (handshake deadline) never hides the limit.
    let addr = gw.addr;
    let third = eventually(
        // A deadline, not a wait: generous for a loaded CI machine.
        Duration::from_secs(20),
        "a 503 for the third connection",
        || async move {
            let a = tokio::net::TcpStream::connect(addr).await.ok()?;
            let b = tokio::net::TcpStream::connect(addr).await.ok()?;
            let answer = client()
                .call(hyper::Method::GET, "/v1/getVersion", None)
                .await;
            drop((a, b));
            match answer {
                Ok((st, body)) if st == StatusCode::SERVICE_UNAVAILABLE => Some(body),
                _ => None,
            }
        },
    )
    .await;
    assert_eq!(third["error"]["code"], "too_many_connections", "{third}");
    eventually(Duration::from_secs(20), "slots freed", || async {
        let ok = client()
            .call(hyper::Method::GET, "/v1/getVersion", None)
            .await;
        matches!(ok, Ok((StatusCode::OK, _))).then_some(())
    })
    .await;
    let (_, metrics) = client().get("/metrics").await;
    let metrics = metrics.as_str().unwrap().to_string();
    let count = |limit: &str| -> u64 {
        let prefix = format!("ecrlink_limited_total{{limit=\"{limit}\"}} ");
        let line = metrics
            .lines()
            .find(|l| l.starts_with(&prefix))
            .unwrap_or_else(|| panic!("{metrics}"));
        line[prefix.len()..].parse().unwrap()
    };
    assert_eq!(count("starts"), limited as u64, "{metrics}");
    assert!(count("connections") >= 1, "{metrics}");
    // Only the admitted sales were journaled (and so sent).
    let (_, list) = client().get("/v1/transactions").await;
    assert_eq!(list.as_array().unwrap().len(), 4 - limited, "{list}");
}
