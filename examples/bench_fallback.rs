//! Benchmarks (issue 5) of the MQTT fallback against a real mosquitto on 127.0.0.1 (found
//! as the tests find it: `$TEST_MOSQUITTO`, else PATH, else /usr/sbin; no root needed).
//! It shares the integration tests' harness (`tests/common`); scripts/bench.sh runs it.
//!
//!   cargo build --release --bin ecrlink && cargo run --release --example bench_fallback -- --probe fast
//!   BENCH_SWITCH_TRIALS=10 cargo run --release --example bench_fallback -- --probe default
//!
//! `--probe fast` (the tests' pace: pollSeconds 0.2 or `BENCH_POLL_SECONDS`, probeIntervalMs
//! 100): the time from cutting the direct link mid-sale to the sale running over MQTT, and
//! the round trip of a status call over each transport.
//!
//! `--probe default`: the same switch at the gateway's defaults: pollSeconds 10 and the
//! default probe (1000 ms, down after 3, up after 2). Before each trial it waits for the
//! probe to say `up` and new work to go direct again (cutting right after failback, while
//! the probe still says `down`, is not what is measured here). Per trial: a sale
//! (`--card-time 60`) reaches the terminal over the direct link, the relay in front of the
//! terminal is cut at a spread phase of the probe round (new connects refused, open ones
//! closed), and the time to the gateway's record showing `"transport": "mqtt"` is taken
//! (polled every 5 ms); then the sale is cancelled and the relay restored. The seed's
//! figure is 30 s (3 unanswered 10-s polls).
#[path = "../tests/common/mod.rs"]
mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::broker::Broker;
use common::proxy::Proxy;
use common::*;
use ecrlink::pki;
use ecrlink::terminal::{TerminalAddress, TerminalClient};
use ecrlink::transport::Transport;
use ecrlink::transport::direct::Direct;
use ecrlink::transport::mqtt::wire::BrokerUrl;
use ecrlink::transport::mqtt::{MqttLink, Presence};
use hyper::StatusCode;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let probe = std::env::args()
        .skip_while(|a| a != "--probe")
        .nth(1)
        .unwrap_or_else(|| "fast".into());
    match probe.as_str() {
        "fast" => switch_and_status_round_trip().await,
        "default" => switch_default_probe().await,
        other => panic!("--probe fast|default, not {other:?}"),
    }
}

/// A terminal (simulator, HTTPS behind a relay + MQTT), a broker and a gateway.
struct Shop {
    world: World,
    broker: Broker,
    sim: Proc,
    proxy: Arc<Proxy>,
    gateway: Proc,
    api: Client,
    terminal: Client,
}

impl Shop {
    async fn open(card_time: &str, extra: Value) -> Shop {
        let world = World::new();
        let broker = Broker::start(&world).await;
        let sim = world.sim(&["--card-time", card_time, "--mqtt", &broker.url()]);
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
            world,
            broker,
            sim,
            proxy,
            gateway,
            api,
            terminal,
        };
        eventually(
            Duration::from_secs(10),
            "the MQTT fallback to be ready",
            || async {
                let (_, terminals) = shop.api.get("/v1/terminals").await;
                let mqtt = &terminals[0]["transports"][0];
                (mqtt["brokerConnected"] == true && mqtt["terminalPresence"] == "online")
                    .then_some(())
            },
        )
        .await;
        shop
    }

    async fn sale(&self, id: &str, amount: u64) -> tokio::task::JoinHandle<(StatusCode, Value)> {
        let api = self.api.clone();
        let body = sale(id, amount);
        tokio::spawn(async move { api.post("/v1/sale", &body).await })
    }

    async fn active_transport(&self) -> String {
        let (_, terminals) = self.api.get("/v1/terminals").await;
        terminals[0]["activeTransport"]
            .as_str()
            .unwrap()
            .to_string()
    }
}

/// Cuts the direct link once the terminal has the sale; returns how long after the cut
/// the gateway's record says the sale runs over MQTT.
async fn cut_mid_sale(shop: &Shop, id: &str) -> Duration {
    eventually(
        Duration::from_secs(10),
        "the sale to reach the terminal",
        || async {
            (sim_stats(&shop.terminal).await["startRequests"][id].as_u64() == Some(1)).then_some(())
        },
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
            shop.gateway.log_text()
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
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

async fn switch_and_status_round_trip() {
    let median = |mut v: Vec<Duration>| {
        v.sort();
        v[v.len() / 2]
    };
    // BENCH_POLL_SECONDS sets pollSeconds (default 0.2, the tests' pace).
    let poll: f64 = std::env::var("BENCH_POLL_SECONDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.2);
    let shop = Shop::open("60", json!({"timeStop": 120, "pollSeconds": poll})).await;
    let mut switches = Vec::new();
    for i in 0..11 {
        let id = format!("BENCH-{i}");
        let sale = shop.sale(&id, 1000).await;
        switches.push(cut_mid_sale(&shop, &id).await);
        let (_, r) = shop
            .api
            .post(&format!("/v1/transactions/{id}/cancel"), &json!({}))
            .await;
        assert_eq!(r["cancelled"], true, "{r}");
        let (_, result) = sale.await.unwrap();
        assert_eq!(result["status"], "cancelled", "{result}");
        shop.proxy.restore().await;
        eventually(Duration::from_secs(5), "failback", || async {
            (shop.active_transport().await == "direct").then_some(())
        })
        .await;
    }
    println!(
        "BENCH direct-link loss -> sale on MQTT: median {:?} (n={}, pollSeconds {poll}, loopsBefore 3), all {:?}",
        median(switches.clone()),
        switches.len(),
        switches
    );

    let shutdown = CancellationToken::new();
    let link = mqtt_link(&shop.broker, "bench", &shutdown).await;
    let mqtt = link.transport(DEVICE, Duration::from_secs(5));
    let tls = ecrlink::tls::client_config(&shop.world.certs().join(pki::CA_CERT), None).unwrap();
    let direct = Direct::new(TerminalClient::new(
        TerminalAddress::new(shop.sim.addr),
        tls,
        Duration::from_secs(2),
    ));
    let mut over_direct = Vec::new();
    let mut over_mqtt = Vec::new();
    for _ in 0..50 {
        let t = Instant::now();
        direct.current().await.unwrap();
        over_direct.push(t.elapsed());
        let t = Instant::now();
        mqtt.current().await.unwrap();
        over_mqtt.push(t.elapsed());
    }
    println!(
        "BENCH status call round trip: direct (new TLS connection per call) median {:?}, MQTT median {:?} (n=50)",
        median(over_direct),
        median(over_mqtt)
    );
    shutdown.cancel();
}

async fn switch_default_probe() {
    let trials: usize = std::env::var("BENCH_SWITCH_TRIALS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10)
        .clamp(1, 30);
    let w = World::new();
    let broker = Broker::start(&w).await;
    let sim = w.sim(&["--card-time", "60", "--mqtt", &broker.url()]);
    let proxy = Proxy::start(sim.addr).await;
    let config = w.gateway_config(
        proxy.addr,
        json!({
            "startTecnology": "mqtt", "fallback": {"mqtt": {"url": broker.url()}},
            "pollSeconds": 10, "timeStop": 120, "staticIptimeOut": 2,
        }),
    );
    let gw = w.gateway(&config);
    let c = w.gateway_client(gw.addr);
    let terminal = w.terminal_client(sim.addr);
    let ready = || async {
        let (_, t) = c.get("/v1/terminals").await;
        let t = &t[0];
        (t["state"] == "up"
            && t["activeTransport"] == "direct"
            && t["transports"][0]["brokerConnected"] == true
            && t["transports"][0]["terminalPresence"] == "online")
            .then_some(())
    };
    let budget = Instant::now() + Duration::from_secs(40 * trials as u64 + 60);
    let mut switches = Vec::new();
    for i in 0..trials {
        assert!(Instant::now() < budget, "time budget exceeded");
        eventually(
            Duration::from_secs(20),
            "direct link up, broker ready",
            ready,
        )
        .await;
        tokio::time::sleep(Duration::from_millis(((i as u64) * 379) % 1000)).await;
        let id = format!("SWITCH-{i}");
        let sale_task = {
            let c = c.clone();
            let body = sale(&id, 1000);
            tokio::spawn(async move { c.post("/v1/sale", &body).await })
        };
        eventually(
            Duration::from_secs(10),
            "the sale at the terminal",
            || async {
                (sim_stats(&terminal).await["startRequests"][&id].as_u64() == Some(1)).then_some(())
            },
        )
        .await;
        let cut = Instant::now();
        proxy.cut();
        let took = loop {
            let (_, r) = c.get(&format!("/v1/transactions/{id}")).await;
            if r["transport"] == "mqtt" {
                break cut.elapsed();
            }
            assert!(
                cut.elapsed() < Duration::from_secs(40),
                "no switch to MQTT within 40 s: {r}\n{}",
                gw.log_text()
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        };
        println!(
            "BENCH switch trial {i}: direct-link loss -> sale on MQTT after {:.0} ms",
            took.as_secs_f64() * 1e3
        );
        switches.push(took);
        let (_, r) = c
            .post(&format!("/v1/transactions/{id}/cancel"), &json!({}))
            .await;
        assert_eq!(r["cancelled"], true, "{r}");
        let (_, result) = sale_task.await.unwrap();
        assert_eq!(result["status"], "cancelled", "{result}");
        proxy.restore().await;
    }
    switches.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let n = switches.len();
    let median = if n % 2 == 1 {
        ms(switches[n / 2])
    } else {
        (ms(switches[n / 2 - 1]) + ms(switches[n / 2])) / 2.0
    };
    println!(
        "SUMMARY switch direct-link loss -> sale on MQTT (pollSeconds 10, default probe): median {median:.0} ms, min {:.0} ms, max {:.0} ms (n={n}); seed 30000 ms",
        ms(switches[0]),
        ms(switches[n - 1])
    );
    drop(broker);
}
