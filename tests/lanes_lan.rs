//! A store's lanes on a real fixed-IP LAN: three terminals, each simulated in a network
//! namespace of its own behind a veth pair, one gateway in the test's namespace. Cutting
//! one lane's link (nftables drop inside its namespace) leaves the other lanes' sales
//! unaffected. Needs root, nftables and iproute2, so it is `#[ignore]`d in a plain
//! `cargo test`; `.ci/run` runs ignored tests as root.
mod common;

use std::time::{Duration, Instant};

use common::lan::{self, Fault, Host};
use common::*;
use hyper::StatusCode;
use serde_json::{Value, json};

const LANES: [&str; 3] = ["LANE-1", "LANE-2", "LANE-3"];

fn sale_on(lane: usize, id: &str) -> Value {
    json!({"deviceId": LANES[lane], "transactionId": id, "paymentApp": "comercia",
           "amount": 1250, "currencyCode": "EUR", "otherData": {"printReceipt": 0}})
}

async fn lane_state(gw: &Client, lane: usize) -> String {
    let (_, h) = gw.get(&format!("/v1/terminals/{}", LANES[lane])).await;
    h["state"].as_str().unwrap_or_default().to_string()
}

#[tokio::test]
#[ignore = "needs root, iproute2 and nftables: .ci/run runs it (cargo test -- --include-ignored)"]
async fn one_lane_cut_leaves_the_other_lanes_selling() {
    lan::require();
    let w = World::new();
    let hosts: Vec<Host> = (0..3).map(|_| Host::new()).collect();
    let sims: Vec<Proc> = (hosts.iter().zip(LANES))
        .map(|(host, id)| host.sim(&w, &w.certs(), &["--device-id", id, "--card-time", "0"]))
        .collect();
    let terminals: Vec<Value> = (sims.iter().zip(LANES))
        .map(|(sim, id)| json!({"deviceId": id, "terminalIp": sim.addr.to_string()}))
        .collect();
    let mut config = w.gateway_config(sims[0].addr, json!({"terminals": terminals}));
    let map = config.as_object_mut().unwrap();
    map.remove("terminalIp");
    map.remove("deviceId");
    let gw_proc = w.gateway(&config);
    let gw = w.gateway_client(gw_proc.addr);
    eventually(Duration::from_secs(10), "every lane up", || async {
        let (_, list) = gw.get("/v1/terminals").await;
        list.as_array()?
            .iter()
            .all(|t| t["state"] == "up")
            .then_some(())
    })
    .await;

    hosts[0].fault(Fault::DropAll);
    eventually(Duration::from_secs(15), "lane 1 down", || async {
        (lane_state(&gw, 0).await == "down").then_some(())
    })
    .await;
    assert_eq!(lane_state(&gw, 1).await, "up");
    assert_eq!(lane_state(&gw, 2).await, "up");

    // A sale on the cut lane waits for its connect deadline (staticIptimeOut 2 s); the
    // other lanes' sales, sent at the same moment, are answered well before it.
    let started = Instant::now();
    let cut = {
        let gw = gw.clone();
        tokio::spawn(async move { gw.post("/v1/sale", &sale_on(0, "CUT-1")).await })
    };
    for (lane, sim) in sims.iter().enumerate().skip(1) {
        let (status, body) = gw
            .post("/v1/sale", &sale_on(lane, &format!("OK-{lane}")))
            .await;
        assert_eq!(
            (status, body["status"].as_str()),
            (StatusCode::OK, Some("approved")),
            "{body}"
        );
        let stats = sim_stats(&w.terminal_client(sim.addr)).await;
        assert_eq!(
            stats["startRequests"],
            json!({ format!("OK-{lane}"): 1 }),
            "{stats}"
        );
    }
    let others_took = started.elapsed();
    assert!(
        !cut.is_finished(),
        "the cut lane answered before the others ({others_took:?})"
    );
    let (status, body) = cut.await.unwrap();
    assert_ne!(body["status"], "approved", "{status}: {body}");
    assert!(
        others_took < Duration::from_secs(2),
        "the others took {others_took:?}"
    );
    hosts[0].clear_faults();
    eventually(Duration::from_secs(10), "lane 1 back up", || async {
        (lane_state(&gw, 0).await == "up").then_some(())
    })
    .await;
}
