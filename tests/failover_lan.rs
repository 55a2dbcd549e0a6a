//! Failover without waiting (issue 11), on the namespace LAN of `common/lan.rs`: the
//! terminal's direct link cut while no sale runs moves its new work to MQTT before any
//! sale (and back after restore), and a gateway started with a stale `terminalIp`
//! approves its very first sale at the address the terminal announces by mDNS, while
//! an impostor with another CA gets nothing. Needs root, nftables and iproute2 (and
//! mosquitto for the MQTT test): `#[ignore]`d with that reason; `.ci/run` runs them.
mod common;

use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use common::broker::Broker;
use common::lan::{self, Fault, Host};
use common::*;
use hyper::StatusCode;
use serde_json::{Value, json};

/// A gateway listening beyond loopback needs a key (issue 16).
const LAN_KEY: &str = "lan-test-key";

async fn terminal_view(c: &Client) -> Value {
    let (st, t) = c.get(&format!("/v1/terminals/{DEVICE}")).await;
    assert_eq!(st, StatusCode::OK, "{t}");
    t
}

async fn wait_view(
    c: &Client,
    what: &str,
    within: Duration,
    ok: impl Fn(&Value) -> bool,
) -> Duration {
    let start = Instant::now();
    eventually(within, what, || async {
        let t = terminal_view(c).await;
        ok(&t).then_some(())
    })
    .await;
    start.elapsed()
}

fn switches(metrics: &str) -> f64 {
    metrics
        .lines()
        .find(|l| l.starts_with("ecrlink_terminal_transport_switches_total{") && l.contains(DEVICE))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no switch counter for {DEVICE} in:\n{metrics}"))
}

#[tokio::test]
#[ignore = "needs root, iproute2, nftables and mosquitto: .ci/run runs it (cargo test -- --include-ignored)"]
async fn idle_cut_moves_new_work_to_mqtt_before_any_sale_and_back_after_restore() {
    lan::require();
    let w = World::new();
    let terminal = Host::new();
    // The broker on the test's end of the veth pair: the simulator in the namespace and
    // the gateway both reach it, and cutting the terminal's HTTPS port leaves it alone.
    let broker = Broker::start_on(&w, terminal.peer_ip.into()).await;
    let url = broker.url();
    let card = Duration::from_millis(300);
    let sim = terminal.sim(&w, &w.certs(), &["--card-time", "0.3", "--mqtt", &url]);
    // The gateway's default probe and poll settings: only the fallback is configured.
    let config = w.gateway_config(
        sim.addr,
        json!({"startTecnology": "mqtt", "fallback": {"mqtt": {"url": url}},
               "staticIptimeOut": 5, "pollSeconds": 10, "timeStop": 60}),
    );
    let gw = w.gateway(&config);
    let c = w.gateway_client(gw.addr);
    wait_view(
        &c,
        "up, direct, fallback ready",
        Duration::from_secs(15),
        |t| {
            let mqtt = &t["transports"][0];
            t["state"] == "up"
                && t["activeTransport"] == "direct"
                && mqtt["brokerConnected"] == true
                && mqtt["terminalPresence"] == "online"
        },
    )
    .await;
    let before = terminal_view(&c).await;
    let (_, m) = c.get("/metrics").await;
    assert_eq!(switches(m.as_str().unwrap()), 0.0);

    terminal.fault(Fault::DropTcp(sim.addr.port()));
    let took = wait_view(&c, "active transport mqtt", Duration::from_secs(6), |t| {
        t["activeTransport"] == "mqtt"
    })
    .await;
    // Loose here (the benchmark measures it): well under the 3.7 s detection of before.
    assert!(
        took < Duration::from_secs(4),
        "moved to mqtt after {took:?}"
    );
    let moved = terminal_view(&c).await;
    assert_eq!(moved["state"], "down", "{moved}");
    assert_ne!(moved["activeSince"], before["activeSince"], "{moved}");
    let (_, m) = c.get("/metrics").await;
    assert_eq!(switches(m.as_str().unwrap()), 1.0);

    // The next sale starts on MQTT with no direct attempt first: about the card time.
    let t0 = Instant::now();
    let (st, r) = c.post("/v1/sale", &sale("IDLE-CUT-1", 1000)).await;
    let sale_time = t0.elapsed();
    assert_eq!(st, StatusCode::OK, "{r}");
    assert_eq!(r["status"], "approved", "{r}");
    assert_eq!(r["transport"], "mqtt", "{r}");
    assert!(
        sale_time < card + Duration::from_millis(1500),
        "sale took {sale_time:?}"
    );
    let (_, events) = c.get("/v1/transactions/IDLE-CUT-1/events").await;
    let text = events.to_string();
    assert!(
        !text.contains("not_delivered") && !text.contains("transport_switch"),
        "{text}"
    );

    terminal.clear_faults();
    wait_view(&c, "failback to direct", Duration::from_secs(8), |t| {
        t["activeTransport"] == "direct" && t["state"] == "up"
    })
    .await;
    let (_, m) = c.get("/metrics").await;
    assert_eq!(switches(m.as_str().unwrap()), 2.0);
    let (st, r) = c.post("/v1/sale", &sale("IDLE-CUT-2", 1000)).await;
    assert_eq!(
        (st, r["transport"].clone()),
        (StatusCode::OK, json!("direct")),
        "{r}"
    );
    drop((sim, broker));
}

#[tokio::test]
#[ignore = "needs root, iproute2 and nftables: .ci/run runs it (cargo test -- --include-ignored)"]
async fn stale_terminal_ip_first_sale_is_approved_at_the_address_mdns_announces() {
    lan::require();
    let w = World::new();
    // As in lan.rs: the gateway in a namespace of its own (mDNS never touches the
    // machine's interfaces), the terminal and an impostor each behind it.
    let gw_host = Host::new();
    let terminal = Host::linked_to(&gw_host);
    let impostor = Host::linked_to(&gw_host);
    let other_ca = World::new();
    let port = 3000;
    let listen: SocketAddr = format!("0.0.0.0:{port}").parse().unwrap();
    let real = terminal.sim_at(&w, &w.certs(), listen, &["--card-time", "0", "--mdns"]);
    let fake = impostor.sim_at(
        &other_ca,
        &other_ca.certs(),
        listen,
        &["--card-time", "0", "--mdns"],
    );
    // The configured address is one nobody holds any more on the terminal's subnet.
    let [a, b, c3, _] = terminal.ip.octets();
    let stale = Ipv4Addr::new(a, b, c3, 99);
    assert_ne!(stale, terminal.ip);
    let mut config = w.gateway_config(
        SocketAddr::new(stale.into(), port),
        json!({"url": gw_host.ip.to_string(), "apiKey": LAN_KEY, "staticIptimeOut": 5, "pollSeconds": 1,
               "mdns": {"enabled": true, "interfaces": [terminal.peer_ifname, impostor.peer_ifname]}}),
    );
    config["journal"] = json!(w.path("stale.db"));
    let cfg = w.path("stale-config.json");
    std::fs::write(&cfg, serde_json::to_vec(&config).unwrap()).unwrap();
    let gw = gw_host.ecrlink(
        &["serve".into(), "--config".into(), cfg.display().to_string()],
        &w.path("gw-stale.log"),
    );
    let c = Client(w.gateway_client(gw.addr).0.with_bearer(LAN_KEY));
    // The first sale, right after start-up.
    let t0 = Instant::now();
    let (st, r) = c.post("/v1/sale", &sale("STALE-1", 1000)).await;
    let took = t0.elapsed();
    assert_eq!(st, StatusCode::OK, "{r}\n{}", gw.log_text());
    assert_eq!(r["status"], "approved", "{r}");
    assert!(took < Duration::from_secs(9), "approved after {took:?}");
    let t = terminal_view(&c).await;
    assert_eq!(t["addressSource"], "mdns", "{t}");
    assert_eq!(t["address"], format!("{}:{port}", terminal.ip), "{t}");
    let (_, events) = c.get("/v1/transactions/STALE-1/events").await;
    assert!(
        events.to_string().contains("not_delivered"),
        "resent after the move: {events}"
    );
    // The impostor announced the same deviceId with another CA: never a request.
    let fake_client = other_ca.terminal_client(SocketAddr::new(impostor.ip.into(), port));
    let stats = sim_stats(&fake_client).await;
    assert_eq!(stats["requests"], 0, "{stats}");
    let real_client = w.terminal_client(SocketAddr::new(terminal.ip.into(), port));
    assert_eq!(sim_stats(&real_client).await["startRequests"]["STALE-1"], 1);
    eprintln!("stale terminalIp: first sale approved after {took:?}");
    drop((real, fake));
}

const ANNOUNCE_INNER: &str = "FAILOVER_LAN_ANNOUNCE_IN_NETNS";

/// `mdns.announce` puts the gateway on the LAN as `_ecrlink._tcp.local.` (port, scheme)
/// on the configured interfaces; without it the gateway announces nothing. The test
/// re-runs itself under `unshare --net` (only `lo`, up): no multicast join ever
/// reaches the machine's interfaces.
#[tokio::test]
#[ignore = "needs root (unshare --net) and iproute2: .ci/run runs it (cargo test -- --include-ignored)"]
async fn gateway_announces_itself_by_mdns_only_when_configured() {
    if std::env::var_os(ANNOUNCE_INNER).is_none() {
        lan::require();
        let exe = std::env::current_exe().unwrap();
        let out = std::process::Command::new("unshare")
            .args([
                "--net",
                "--",
                "sh",
                "-c",
                "ip link set lo up && exec \"$0\" \"$@\"",
            ])
            .arg(exe)
            .args([
                "--exact",
                "gateway_announces_itself_by_mdns_only_when_configured",
                "--include-ignored",
                "--nocapture",
            ])
            .env(ANNOUNCE_INNER, "1")
            .output()
            .expect("unshare");
        let text = String::from_utf8_lossy(&out.stdout).to_string()
            + &String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "inner run failed:\n{text}");
        assert!(
            text.contains("1 passed"),
            "the inner test did not run:\n{text}"
        );
        return;
    }
    let w = World::new();
    let nowhere: SocketAddr = "127.0.0.1:9".parse().unwrap();
    let mdns = json!({"mdns": {"announce": true, "interfaces": ["lo"]}});
    let on = w.gateway(&w.gateway_config(nowhere, mdns));
    let mut quiet_config = w.gateway_config(nowhere, json!({}));
    quiet_config["journal"] = json!(w.path("quiet.db"));
    let quiet = w.gateway(&quiet_config);
    let daemon = mdns_sd::ServiceDaemon::new().unwrap();
    let events = daemon
        .browse(ecrlink::probe::mdns::GATEWAY_SERVICE)
        .unwrap();
    let mut ports = Vec::new();
    let found_until = Instant::now() + Duration::from_secs(10);
    // Until the announced gateway is seen, then a bounded while longer for any other.
    let mut until = found_until;
    while let Ok(event) = events.recv_timeout(until.saturating_duration_since(Instant::now())) {
        if let mdns_sd::ServiceEvent::ServiceResolved(info) = event {
            assert_eq!(
                info.get_property_val_str("scheme"),
                Some("https"),
                "{info:?}"
            );
            ports.push(info.get_port());
            if info.get_port() == on.addr.port() {
                until = until.min(Instant::now() + Duration::from_secs(2));
            }
        }
        if Instant::now() >= until {
            break;
        }
    }
    let _ = daemon.shutdown();
    assert!(
        ports.contains(&on.addr.port()),
        "announced gateway not found: {ports:?}"
    );
    assert!(
        !ports.contains(&quiet.addr.port()),
        "mDNS is off by default: {ports:?}"
    );
}
