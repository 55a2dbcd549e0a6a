mod common;
use common::*;
use hyper::StatusCode;

#[tokio::test]
async fn sale_through_real_binaries() {
    let w = World::new();
    let sim = w.sim(&["--card-time", "0"]);
    let gw = w.gateway(&w.gateway_config(sim.addr, serde_json::json!({})));
    let c = w.gateway_client(gw.addr);
    let (st, body) = c.post("/v1/sale", &sale("S-1", 1000)).await;
    assert_eq!(st, StatusCode::OK, "{body}");
    assert_eq!(body["status"], "approved");
}
