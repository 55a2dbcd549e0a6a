//! The MQTT fallback against a real mosquitto (started here on a free loopback port with
//! the project's certificates): a direct link cut mid-sale, a request on both transports,
//! both paths down, the broker's refusals, and failback. The direct link runs through a
//! TCP relay (`common::proxy`) that the test cuts and restores. Every test here needs
//! mosquitto, so every one is `#[ignore]`d with that reason; `.ci/run` runs them with
//! `--include-ignored` (`cargo test --test mqtt -- --include-ignored` needs no root), and
//! run that way without mosquitto they fail saying how to get it.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::broker::Broker;
use common::proxy::Proxy;
use common::*;
use ecrlink::pki;
use ecrlink::terminal::wire::{PaymentRequest, TxnKind, TxnStatus};
use ecrlink::terminal::{Lookup, TerminalAddress, TerminalClient};
use ecrlink::transport::Transport;
use ecrlink::transport::direct::Direct;
use ecrlink::transport::mqtt::wire::BrokerUrl;
use ecrlink::transport::mqtt::{MqttLink, Presence};
use hyper::StatusCode;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

/// A terminal (simulator, HTTPS behind a relay + MQTT), a broker and a gateway.
struct Shop {
    /// The temp folder (PKI, journal, logs): kept for as long as the shop is open.
    _world: World,
    broker: Broker,
    sim: Proc,
    proxy: Arc<Proxy>,
    gateway: Proc,
    api: Client,
    terminal: Client,
}

impl Shop {
    /// `sim_args` for the simulator, besides `--mqtt`.
    async fn open(sim_args: &[&str], extra: Value) -> Shop {
        let world = World::new();
        let broker = Broker::start(&world).await;
        let url = broker.url();
        let mut args = vec!["--mqtt", url.as_str()];
        args.extend_from_slice(sim_args);
        let sim = world.sim(&args);
        let proxy = Proxy::start(sim.addr).await;
        let mut config = world.gateway_config(
            proxy.addr,
            json!({
                "startTecnology": "mqtt",
                "fallback": {"mqtt": {"url": broker.url()}},
                "staticIptimeOut": 1, "probeIntervalMs": 100, "timeStop": 10,
            }),
        );
        if let (Value::Object(base), Value::Object(extra)) = (&mut config, extra) {
            base.extend(extra);
        }
        let gateway = world.gateway(&config);
        let api = world.gateway_client(gateway.addr);
        let terminal = world.terminal_client(sim.addr);
        let shop = Shop {
            _world: world,
            broker,
            sim,
            proxy,
            gateway,
            api,
            terminal,
        };
        shop.wait_fallback_ready().await;
        shop
    }

    /// The gateway is on the broker and sees the terminal's retained `online`.
    async fn wait_fallback_ready(&self) {
        eventually(
            Duration::from_secs(10),
            "the MQTT fallback to be ready",
            || async {
                let (_, terminals) = self.api.get("/v1/terminals").await;
                let mqtt = &terminals[0]["transports"][0];
                (mqtt["brokerConnected"] == true && mqtt["terminalPresence"] == "online")
                    .then_some(())
            },
        )
        .await;
    }

    async fn sale(&self, id: &str, amount: u64) -> tokio::task::JoinHandle<(StatusCode, Value)> {
        let api = self.api.clone();
        let body = sale(id, amount);
        tokio::spawn(async move { api.post("/v1/sale", &body).await })
    }

    async fn starts(&self, id: &str) -> u64 {
        sim_stats(&self.terminal).await["startRequests"][id]
            .as_u64()
            .unwrap_or(0)
    }

    async fn events(&self, id: &str) -> Vec<String> {
        let (_, events) = self.api.get(&format!("/v1/transactions/{id}/events")).await;
        events
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                format!(
                    "{} {}",
                    e["event"].as_str().unwrap(),
                    e["detail"].as_str().unwrap_or("")
                )
            })
            .collect()
    }

    async fn active_transport(&self) -> String {
        let (_, terminals) = self.api.get("/v1/terminals").await;
        terminals[0]["activeTransport"]
            .as_str()
            .unwrap()
            .to_string()
    }

    fn logs(&self) -> String {
        format!(
            "--- gateway\n{}\n--- sim\n{}\n--- broker\n{}",
            self.gateway.log_text(),
            self.sim.log_text(),
            self.broker.log_text()
        )
    }
}

/// Cuts the direct link once the terminal has the sale; returns when the gateway's record
/// says the sale runs over MQTT, and how long that took after the cut.
async fn cut_mid_sale(shop: &Shop, id: &str) -> Duration {
    eventually(
        Duration::from_secs(10),
        "the sale to reach the terminal",
        || async { (shop.starts(id).await == 1).then_some(()) },
    )
    .await;
    let cut = Instant::now();
    shop.proxy.cut();
    loop {
        let (_, r) = shop.api.get(&format!("/v1/transactions/{id}")).await;
        if r["transport"] == "mqtt" {
            return cut.elapsed();
        }
        assert!(
            cut.elapsed() < Duration::from_secs(15),
            "no switch to MQTT: {r}\n{}",
            shop.logs()
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs mosquitto: .ci/run runs it (cargo test -- --include-ignored)"]
async fn direct_link_cut_mid_sale_completes_over_mqtt_with_one_charge() {
    // The card stays in the reader until the sale runs over MQTT: no card time to race.
    let shop = Shop::open(&["--card-time", "0", "--hold-payments"], json!({})).await;
    let sale = shop.sale("CUT-1", 1250).await;
    let switched_after = cut_mid_sale(&shop, "CUT-1").await;
    set_faults(&shop.terminal, json!({})).await;
    let (status, result) = sale.await.unwrap();
    assert_eq!(status, StatusCode::OK, "{result}\n{}", shop.logs());
    assert_eq!(result["status"], "approved", "{result}");
    assert_eq!(result["transport"], "mqtt", "{result}");
    assert_eq!(shop.starts("CUT-1").await, 1, "the sale was sent once");
    assert_eq!(sim_stats(&shop.terminal).await["transactions"], 1);
    let events = shop.events("CUT-1").await;
    assert!(
        events
            .iter()
            .any(|e| e.starts_with("transport_switch direct -> mqtt")),
        "{events:?}"
    );
    assert_eq!(shop.active_transport().await, "mqtt");
    println!("switched to MQTT {switched_after:?} after the cut");
}

/// Issue 15: the terminal's card stages reach the journal (and the event stream) over
/// MQTT too: with the direct link dead from the start, every poll goes over the broker.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs mosquitto: .ci/run runs it (cargo test -- --include-ignored)"]
async fn card_stages_arrive_over_mqtt() {
    let shop = Shop::open(&["--card-time", "1", "--hold-payments"], json!({})).await;
    shop.proxy.cut();
    let sale = shop.sale("STG-1", 700).await;
    // Held at the PIN pad: `pin` must show up while the sale runs over MQTT.
    eventually(Duration::from_secs(15), "stage pin over MQTT", || async {
        // 404 until the sale is journaled.
        let (_, events) = shop.api.get("/v1/transactions/STG-1/events").await;
        let events = events.as_array()?.clone();
        events
            .iter()
            .any(|e| e["event"] == "stage" && e["detail"] == "pin")
            .then_some(())
    })
    .await;
    set_faults(&shop.terminal, json!({})).await;
    let (status, result) = sale.await.unwrap();
    assert_eq!(status, StatusCode::OK, "{result}\n{}", shop.logs());
    assert_eq!(result["transport"], "mqtt", "{result}");
    let events = shop.events("STG-1").await;
    let at = |name: &str| events.iter().position(|e| e == name);
    assert!(at("stage waiting_for_card") < at("stage pin"), "{events:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs mosquitto: .ci/run runs it (cargo test -- --include-ignored)"]
async fn failback_sends_new_work_direct_once_the_link_is_healthy() {
    let shop = Shop::open(&["--card-time", "0.2"], json!({})).await;
    // Dead HTTPS port from the start: nothing is sent direct, so the sale is resent
    // over MQTT at once.
    shop.proxy.cut();
    let (status, first) = shop.sale("FB-1", 500).await.await.unwrap();
    assert_eq!(status, StatusCode::OK, "{first}\n{}", shop.logs());
    assert_eq!(first["transport"], "mqtt", "{first}");
    assert_eq!(shop.active_transport().await, "mqtt");

    shop.proxy.restore().await;
    eventually(Duration::from_secs(5), "failback to direct", || async {
        (shop.active_transport().await == "direct").then_some(())
    })
    .await;
    let (status, second) = shop.sale("FB-2", 700).await.await.unwrap();
    assert_eq!(status, StatusCode::OK, "{second}");
    assert_eq!(second["status"], "approved");
    assert_eq!(second["transport"], "direct", "{second}");
    assert_eq!(shop.starts("FB-1").await, 1);
    assert_eq!(shop.starts("FB-2").await, 1);
    assert!(
        shop.events("FB-2")
            .await
            .iter()
            .all(|e| !e.starts_with("transport_switch"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs mosquitto: .ci/run runs it (cargo test -- --include-ignored)"]
async fn a_sale_started_on_the_fallback_goes_direct_when_the_broker_is_down() {
    // No failback by the monitor during this test: new work stays on MQTT.
    let mut shop = Shop::open(
        &["--card-time", "0.2"],
        json!({"probeIntervalMs": 3_600_000}),
    )
    .await;
    shop.proxy.cut();
    let (_, first) = shop.sale("SYM-1", 500).await.await.unwrap();
    assert_eq!(first["transport"], "mqtt", "{first}");
    assert_eq!(shop.active_transport().await, "mqtt");

    shop.broker.stop();
    shop.proxy.restore().await;
    eventually(
        Duration::from_secs(5),
        "the gateway to see the broker gone",
        || async {
            let (_, terminals) = shop.api.get("/v1/terminals").await;
            (terminals[0]["transports"][0]["brokerConnected"] == false).then_some(())
        },
    )
    .await;
    let (status, second) = shop.sale("SYM-2", 600).await.await.unwrap();
    assert_eq!(status, StatusCode::OK, "{second}\n{}", shop.logs());
    assert_eq!(second["status"], "approved");
    assert_eq!(second["transport"], "direct", "{second}");
    let events = shop.events("SYM-2").await;
    assert!(
        events
            .iter()
            .any(|e| e.starts_with("transport_switch mqtt -> direct")),
        "{events:?}"
    );
    assert_eq!(shop.starts("SYM-2").await, 1);
    assert_eq!(shop.active_transport().await, "direct");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs mosquitto: .ci/run runs it (cargo test -- --include-ignored)"]
async fn both_paths_down_gives_unknown_then_the_direct_link_reconciles() {
    // Held at the card until both paths are down and the POS heard `unknown`.
    let mut shop = Shop::open(
        &["--card-time", "0", "--hold-payments"],
        json!({"timeStop": 3}),
    )
    .await;
    let begun = Instant::now();
    let sale = shop.sale("DARK-1", 900).await;
    eventually(
        Duration::from_secs(5),
        "the sale to reach the terminal",
        || async { (shop.starts("DARK-1").await == 1).then_some(()) },
    )
    .await;
    shop.proxy.cut();
    shop.broker.stop();
    let (status, result) = sale.await.unwrap();
    assert_eq!(
        status,
        StatusCode::GATEWAY_TIMEOUT,
        "{result}\n{}",
        shop.logs()
    );
    assert_eq!(result["status"], "unknown", "{result}");
    assert!(
        begun.elapsed() < Duration::from_secs(6),
        "unknown came at {:?}",
        begun.elapsed()
    );

    // The test reaches the terminal directly, not through the cut relay.
    set_faults(&shop.terminal, json!({})).await;
    shop.proxy.restore().await;
    let reconciled = eventually(Duration::from_secs(15), "reconciliation", || async {
        let (_, r) = shop.api.get("/v1/transactions/DARK-1").await;
        (r["status"] == "approved").then_some(r)
    })
    .await;
    assert_eq!(reconciled["transport"], "direct", "{reconciled}");
    assert_eq!(shop.starts("DARK-1").await, 1);
    let events = shop.events("DARK-1").await;
    assert!(
        events.iter().any(|e| e.starts_with("unknown")),
        "{events:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs mosquitto: .ci/run runs it (cargo test -- --include-ignored)"]
async fn both_paths_down_then_the_broker_returns_and_reconciles() {
    // Held at the card until both paths are down and the POS heard `unknown`.
    let mut shop = Shop::open(
        &["--card-time", "0", "--hold-payments"],
        json!({"timeStop": 3}),
    )
    .await;
    let sale = shop.sale("DARK-2", 900).await;
    eventually(
        Duration::from_secs(5),
        "the sale to reach the terminal",
        || async { (shop.starts("DARK-2").await == 1).then_some(()) },
    )
    .await;
    shop.proxy.cut();
    shop.broker.stop();
    let (status, result) = sale.await.unwrap();
    assert_eq!(status, StatusCode::GATEWAY_TIMEOUT, "{result}");
    assert_eq!(result["status"], "unknown");

    set_faults(&shop.terminal, json!({})).await;
    shop.broker.restart().await;
    let reconciled = eventually(
        Duration::from_secs(20),
        "reconciliation over MQTT",
        || async {
            let (_, r) = shop.api.get("/v1/transactions/DARK-2").await;
            (r["status"] == "approved").then_some(r)
        },
    )
    .await;
    assert_eq!(
        reconciled["transport"],
        "mqtt",
        "{reconciled}\n{}",
        shop.logs()
    );
    assert_eq!(shop.starts("DARK-2").await, 1);
}

fn payment(id: &str) -> PaymentRequest {
    serde_json::from_value(sale(id, 4200)).unwrap()
}

/// The gateway's MQTT link as a library user builds it, under its own client id.
async fn mqtt_link(
    broker: &Broker,
    client_id: &str,
    shutdown: &CancellationToken,
) -> Arc<MqttLink> {
    let link = MqttLink::start(
        BrokerUrl::parse(&broker.url()).unwrap(),
        broker.client_tls(pki::CLIENT_CERT, pki::CLIENT_KEY),
        client_id,
        shutdown.clone(),
    );
    assert!(
        link.session().wait_connected(Duration::from_secs(10)).await,
        "not connected"
    );
    eventually(
        Duration::from_secs(10),
        "the terminal's online status",
        || async { (link.presence(DEVICE) == Presence::Online).then_some(()) },
    )
    .await;
    link
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs mosquitto: .ci/run runs it (cargo test -- --include-ignored)"]
async fn one_request_on_both_transports_is_one_charge() {
    let world = World::new();
    let broker = Broker::start(&world).await;
    let sim = world.sim(&["--card-time", "0.5", "--mqtt", &broker.url()]);
    let shutdown = CancellationToken::new();
    let link = mqtt_link(&broker, "test-both", &shutdown).await;
    let mqtt = link.transport(DEVICE, Duration::from_secs(5));
    let tls = ecrlink::tls::client_config(&world.certs().join(pki::CA_CERT), None).unwrap();
    let direct = Direct::new(TerminalClient::new(
        TerminalAddress::new(sim.addr),
        tls,
        Duration::from_secs(2),
    ));

    let request = payment("BOTH-1");
    let wait = Duration::from_secs(10);
    let (over_mqtt, over_https) = tokio::join!(
        mqtt.start(TxnKind::Sale, &request, wait),
        direct.start(TxnKind::Sale, &request, wait)
    );
    let (over_mqtt, over_https) = (over_mqtt.unwrap(), over_https.unwrap());
    assert_eq!(over_mqtt.status, TxnStatus::Approved);
    assert_eq!(over_mqtt.authorization_code, over_https.authorization_code);
    assert_eq!(
        over_mqtt.finished_at, over_https.finished_at,
        "the same payment"
    );
    // A QoS 1 redelivery of the start is one more request, not one more charge.
    let again = mqtt.start(TxnKind::Sale, &request, wait).await.unwrap();
    assert_eq!(again, over_mqtt);

    let stats = sim_stats(&world.terminal_client(sim.addr)).await;
    assert_eq!(stats["startRequests"]["BOTH-1"], 3, "{stats}");
    assert_eq!(stats["transactions"], 1, "{stats}");
    assert_eq!(
        mqtt.lookup("BOTH-1").await.unwrap(),
        Lookup::Found(over_https.clone())
    );
    assert_eq!(mqtt.lookup("NOPE").await.unwrap(), Lookup::NotFound);
    shutdown.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs mosquitto: .ci/run runs it (cargo test -- --include-ignored)"]
async fn the_terminal_drops_an_expired_request() {
    use ecrlink::transport::mqtt::wire::{self, MqttRequest, Op};
    let world = World::new();
    let broker = Broker::start(&world).await;
    let sim = world.sim(&["--card-time", "0", "--mqtt", &broker.url()]);
    let shutdown = CancellationToken::new();
    let link = mqtt_link(&broker, "test-expiry", &shutdown).await;
    // A sale that spent too long on its way (a persistent session delivering it late).
    let stale = MqttRequest {
        request_id: "stale-1".into(),
        op: Op::Start,
        expires_at: "2020-01-01T00:00:00Z".into(),
        transaction_id: Some("EXP-1".into()),
        kind: Some(TxnKind::Sale),
        request: Some(payment("EXP-1")),
    };
    link.session()
        .publish(
            wire::request_topic(DEVICE),
            serde_json::to_vec(&stale).unwrap(),
            false,
        )
        .unwrap();
    // Requests are handled in order: by the time the lookup is answered the stale
    // start has been read and dropped.
    let mqtt = link.transport(DEVICE, Duration::from_secs(5));
    assert_eq!(mqtt.lookup("EXP-1").await.unwrap(), Lookup::NotFound);
    let stats = sim_stats(&world.terminal_client(sim.addr)).await;
    assert!(stats["startRequests"].get("EXP-1").is_none(), "{stats}");
    assert!(sim.log_text().contains("expired MQTT request dropped"));
    shutdown.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs mosquitto: .ci/run runs it (cargo test -- --include-ignored)"]
async fn broker_refuses_foreign_certificates_and_other_devices_topics() {
    use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
    let world = World::new();
    let broker = Broker::start(&world).await;
    let options = |client_id: &str, tls: Arc<rustls::ClientConfig>| {
        let mut o = MqttOptions::new(client_id, "127.0.0.1", broker.addr.port());
        let mut tls = (*tls).clone();
        tls.alpn_protocols.clear();
        o.set_transport(rumqttc::Transport::tls_with_config(
            rumqttc::TlsConfiguration::Rustls(Arc::new(tls)),
        ));
        o
    };

    // A client certificate from another CA: the broker refuses the connection.
    let stranger = World::new();
    let foreign = ecrlink::tls::client_config(
        &world.certs().join(pki::CA_CERT),
        Some((
            &stranger.certs().join(pki::CLIENT_CERT),
            &stranger.certs().join(pki::CLIENT_KEY),
        )),
    )
    .unwrap();
    let (_client, mut eventloop) = AsyncClient::new(options("stranger", foreign), 10);
    let outcome = tokio::time::timeout(Duration::from_secs(10), eventloop.poll()).await;
    assert!(
        matches!(outcome, Ok(Err(_))),
        "a foreign certificate must be refused, got {outcome:?}"
    );

    // The gateway identity watches everything.
    let (watcher, mut watching) = AsyncClient::new(
        options(
            "watcher",
            broker.client_tls(pki::CLIENT_CERT, pki::CLIENT_KEY),
        ),
        10,
    );
    watcher
        .subscribe("ecrlink/#", QoS::AtLeastOnce)
        .await
        .unwrap();
    let (seen_tx, mut seen) = tokio::sync::mpsc::unbounded_channel();
    let (ready_tx, ready) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        let mut ready_tx = Some(ready_tx);
        while let Ok(event) = watching.poll().await {
            match event {
                Event::Incoming(Packet::SubAck(_)) => {
                    if let Some(tx) = ready_tx.take() {
                        let _ = tx.send(());
                    }
                }
                Event::Incoming(Packet::Publish(p)) => {
                    let _ = seen_tx.send((p.topic.clone(), p.payload.to_vec()));
                }
                _ => {}
            }
        }
    });
    tokio::time::timeout(Duration::from_secs(10), ready)
        .await
        .unwrap()
        .unwrap();

    // Another terminal, with a valid certificate of its own.
    let other = "ECRLINK-SIM-0002";
    pki::issue_device(&world.certs(), other, false).unwrap();
    let (intruder, mut intruding) = AsyncClient::new(
        options(
            other,
            broker.client_tls(
                &format!("device-{other}.pem"),
                &format!("device-{other}.key"),
            ),
        ),
        10,
    );
    for topic in [
        format!("ecrlink/{DEVICE}/req"),
        format!("ecrlink/{other}/req"),
    ] {
        intruder.subscribe(topic, QoS::AtLeastOnce).await.unwrap();
    }
    let (got_tx, mut got) = tokio::sync::mpsc::unbounded_channel();
    let (subscribed_tx, mut subscribed) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        loop {
            match intruding.poll().await {
                Ok(Event::Incoming(Packet::SubAck(ack))) => {
                    let _ = subscribed_tx.send(ack.return_codes);
                }
                Ok(Event::Incoming(Packet::Publish(p))) => {
                    let _ = got_tx.send(String::from_utf8_lossy(&p.payload).to_string());
                }
                Ok(_) => {}
                Err(e) => {
                    let _ = subscribed_tx.send(vec![]);
                    panic!("the other device lost its connection: {e}");
                }
            }
        }
    });
    for _ in 0..2 {
        let codes = tokio::time::timeout(Duration::from_secs(10), subscribed.recv())
            .await
            .unwrap()
            .unwrap();
        // mosquitto 2.0 grants the SUBACK and enforces read access on delivery.
        assert!(!codes.is_empty(), "the other device could not connect");
    }

    // A forged answer on the first terminal's topic, then one on its own: only the
    // second may reach the gateway.
    intruder
        .publish(
            format!("ecrlink/{DEVICE}/resp"),
            QoS::AtLeastOnce,
            false,
            b"forged".to_vec(),
        )
        .await
        .unwrap();
    intruder
        .publish(
            format!("ecrlink/{other}/resp"),
            QoS::AtLeastOnce,
            false,
            b"own".to_vec(),
        )
        .await
        .unwrap();
    let mut received = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), async {
        while let Some((topic, payload)) = seen.recv().await {
            let own = payload == b"own";
            received.push((topic, String::from_utf8_lossy(&payload).to_string()));
            if own {
                break;
            }
        }
    })
    .await
    .unwrap_or_else(|_| {
        panic!(
            "the device's own answer never arrived: {received:?}\n{}",
            broker.log_text()
        )
    });
    assert!(
        received.iter().all(|(_, p)| p != "forged"),
        "a forged answer got through: {received:?}"
    );

    // Requests for the first terminal never reach the other one, though it subscribed.
    for (topic, payload) in [(DEVICE, "secret"), (other, "yours")] {
        watcher
            .publish(
                format!("ecrlink/{topic}/req"),
                QoS::AtLeastOnce,
                false,
                payload.as_bytes().to_vec(),
            )
            .await
            .unwrap();
    }
    let mut delivered = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(payload) = got.recv().await {
            let done = payload == "yours";
            delivered.push(payload);
            if done {
                break;
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("the device's own request never arrived: {delivered:?}"));
    assert_eq!(
        delivered,
        vec!["yours".to_string()],
        "another terminal's request leaked"
    );
}

/// `ecrlink doctor` reads each fallback terminal's presence from the broker: `online`
/// while the simulator is on it, its last will `offline` once it is gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs mosquitto: .ci/run runs it (cargo test -- --include-ignored)"]
async fn doctor_reads_the_terminals_presence_on_the_broker() {
    let world = World::new();
    let broker = Broker::start(&world).await;
    let mut sim = world.sim(&["--card-time", "0", "--mqtt", &broker.url()]);
    let config = world.gateway_config(
        sim.addr,
        json!({"startTecnology": "mqtt", "fallback": {"mqtt": {"url": broker.url()}}}),
    );
    let path = world.path("doctor-mqtt.json");
    std::fs::write(&path, serde_json::to_vec(&config).unwrap()).unwrap();
    let doctor = || {
        let out = std::process::Command::new(ecrlink_bin())
            .args(["doctor", "--config"])
            .arg(&path)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        let line = text
            .lines()
            .find(|l| l.split_whitespace().nth(1) == Some("presence"))
            .map(str::to_string);
        line.unwrap_or_else(|| panic!("no presence line in:\n{text}"))
    };
    let online = eventually(Duration::from_secs(10), "the sim online", || async {
        let line = doctor();
        line.contains("online on the broker").then_some(line)
    })
    .await;
    assert!(
        online.contains(DEVICE) && online.contains(" OK "),
        "{online}"
    );
    sim.kill();
    let offline = eventually(Duration::from_secs(10), "its last will", || async {
        let line = doctor();
        line.contains("offline").then_some(line)
    })
    .await;
    assert!(offline.contains("WARN"), "{offline}");
}
