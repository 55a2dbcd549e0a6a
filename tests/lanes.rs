//! A store's lanes: three simulated terminals from one `ecrlink sim --devices 3`, one
//! gateway for all of them. Sales on different lanes run at once, each is charged once on
//! its own terminal, and a busy lane refuses a second sale at once without holding up the
//! others.
mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::*;
use hyper::StatusCode;
use serde_json::{Value, json};

const LANES: [&str; 3] = ["LANE-01", "LANE-02", "LANE-03"];

struct Store {
    w: World,
    sims: Proc,
    gw: Proc,
}

impl Store {
    /// `sim --devices 3` puts device i on the first port + i, ids counted up from LANE-01.
    fn open(card_time: &str) -> Store {
        let w = World::new();
        let sims = w.sim(&[
            "--devices",
            "3",
            "--device-id",
            LANES[0],
            "--card-time",
            card_time,
        ]);
        let terminals: Vec<Value> = (0..3)
            .map(|i| json!({"deviceId": LANES[i], "terminalIp": lane_addr(&sims, i).to_string()}))
            .collect();
        let mut config = w.gateway_config(sims.addr, json!({"terminals": terminals}));
        let map = config.as_object_mut().unwrap();
        map.remove("terminalIp");
        map.remove("deviceId");
        let gw = w.gateway(&config);
        Store { w, sims, gw }
    }

    fn gateway(&self) -> Client {
        self.w.gateway_client(self.gw.addr)
    }

    fn terminal(&self, lane: usize) -> Client {
        self.w.terminal_client(lane_addr(&self.sims, lane))
    }
}

fn lane_addr(sims: &Proc, lane: usize) -> SocketAddr {
    SocketAddr::new(sims.addr.ip(), sims.addr.port() + lane as u16)
}

fn sale_on(lane: usize, id: &str) -> Value {
    json!({"deviceId": LANES[lane], "transactionId": id, "paymentApp": "comercia",
           "amount": 1250, "currencyCode": "EUR", "otherData": {"printReceipt": 0}})
}

#[tokio::test]
async fn three_lanes_sell_at_once_each_charged_once_on_its_own_terminal() {
    let s = Store::open("0.5");
    let gw = s.gateway();
    let sales = (0..3).map(|lane| {
        let gw = gw.clone();
        tokio::spawn(async move {
            gw.post("/v1/sale", &sale_on(lane, &format!("T-{lane}")))
                .await
        })
    });
    let mut answers = Vec::new();
    for sale in sales.collect::<Vec<_>>() {
        answers.push(sale.await.unwrap());
    }
    for (lane, (status, body)) in answers.iter().enumerate() {
        assert_eq!(*status, StatusCode::OK, "lane {lane}: {body}");
        assert_eq!(body["status"], "approved", "lane {lane}: {body}");
        assert_eq!(body["deviceId"], LANES[lane], "{body}");
    }
    for lane in 0..3 {
        let terminal = s.terminal(lane);
        let stats = sim_stats(&terminal).await;
        // Charged once, on its own terminal: one start call, for its own sale.
        let started = json!({ format!("T-{lane}"): 1 });
        assert_eq!(stats["startRequests"], started, "lane {lane}: {stats}");
        // The terminal's own record holds its lane's sale and only that one.
        let (_, record) = terminal.get("/v1/transactions").await;
        let ids: Vec<&str> = record
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["transactionId"].as_str().unwrap())
            .collect();
        assert_eq!(ids, [format!("T-{lane}")], "lane {lane}: {record}");
    }
    let (status, list) = gw.get("/v1/terminals").await;
    assert_eq!(status, StatusCode::OK);
    let ids: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["deviceId"].as_str().unwrap())
        .collect();
    assert_eq!(ids, LANES);
}

#[tokio::test]
async fn a_busy_lane_answers_409_at_once_while_the_others_sell() {
    // Long enough that lane 0's first sale is still at its terminal when the others finish.
    let s = Store::open("4");
    let gw = s.gateway();
    let first = {
        let gw = gw.clone();
        tokio::spawn(async move { gw.post("/v1/sale", &sale_on(0, "BUSY-1")).await })
    };
    wait_at_terminal(&s.terminal(0), "BUSY-1").await;

    let (status, body) = gw.post("/v1/sale", &sale_on(0, "BUSY-2")).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["error"]["code"], "terminal_busy", "{body}");
    // "At once": the refusal came while the first sale is still running at the terminal.
    let (_, current) = s.terminal(0).get("/v1/transactions/current").await;
    assert_eq!(current["transactionId"], "BUSY-1", "{current}");

    // The other lanes sell meanwhile: their sales reach their terminals while lane 0's
    // first one is still running, and /v1/terminals shows each lane busy with its own.
    let others: Vec<_> = (1..3)
        .map(|lane| {
            let gw = gw.clone();
            let id = format!("FREE-{lane}");
            tokio::spawn(async move { gw.post("/v1/sale", &sale_on(lane, &id)).await })
        })
        .collect();
    for lane in 1..3 {
        wait_at_terminal(&s.terminal(lane), &format!("FREE-{lane}")).await;
    }
    let (_, list) = gw.get("/v1/terminals").await;
    let busy: Vec<&Value> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|t| &t["busyWith"])
        .collect();
    assert_eq!(
        busy,
        [&json!("BUSY-1"), &json!("FREE-1"), &json!("FREE-2")],
        "{list}"
    );
    let (_, current) = s.terminal(0).get("/v1/transactions/current").await;
    assert_eq!(
        current["transactionId"], "BUSY-1",
        "lane 0 still selling: {current}"
    );
    for other in others {
        let (status, body) = other.await.unwrap();
        assert_eq!(
            (status, body["status"].as_str()),
            (StatusCode::OK, Some("approved")),
            "{body}"
        );
    }

    let (status, body) = first.await.unwrap();
    assert_eq!(
        (status, body["status"].as_str()),
        (StatusCode::OK, Some("approved")),
        "{body}"
    );
    let started = sim_stats(&s.terminal(0)).await["startRequests"].clone();
    assert_eq!(
        started,
        json!({"BUSY-1": 1}),
        "BUSY-2 never reached the terminal"
    );
}

#[tokio::test]
async fn unknown_lanes_are_named_and_metrics_label_each_lane() {
    let s = Store::open("0");
    let gw = s.gateway();
    let (status, body) = gw
        .post(
            "/v1/sale",
            &json!({"deviceId": "LANE-09", "transactionId": "X-1",
        "paymentApp": "comercia", "amount": 100, "currencyCode": "EUR"}),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert_eq!(body["error"]["code"], "unknown_device");
    let message = body["error"]["message"].as_str().unwrap();
    for lane in LANES {
        assert!(message.contains(lane), "{message}");
    }
    let (status, _) = gw.get("/v1/terminals/LANE-09").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, one) = gw.get("/v1/terminals/LANE-02").await;
    assert_eq!(
        (status, one["deviceId"].as_str()),
        (StatusCode::OK, Some("LANE-02")),
        "{one}"
    );

    // Every lane's probe monitor reports its own terminal up.
    eventually(Duration::from_secs(10), "every lane up", || async {
        let (_, list) = gw.get("/v1/terminals").await;
        list.as_array()?
            .iter()
            .all(|t| t["state"] == "up")
            .then_some(())
    })
    .await;
    let (status, metrics) = gw.get("/metrics").await;
    assert_eq!(status, StatusCode::OK);
    let text = metrics.as_str().unwrap();
    for lane in LANES {
        let up = format!("ecrlink_terminal_link{{device_id=\"{lane}\",state=\"up\"}} 1");
        assert!(text.contains(&up), "{up} missing:\n{text}");
        let busy = format!("ecrlink_terminal_busy{{device_id=\"{lane}\"}} 0");
        assert!(text.contains(&busy), "{busy} missing:\n{text}");
    }
}
