//! The probe monitor against a real fixed-IP LAN: the terminal simulator runs in a
//! network namespace of its own, reached over a veth pair at a 10.x address; faults
//! are nftables rules inside that namespace. Needs root (CI runs as root); without
//! it every test prints why it skipped.
mod common;

use std::time::{Duration, Instant};

use common::lan::{self, Fault, Host};
use common::*;
use hyper::StatusCode;
use serde_json::{Value, json};

async fn health(c: &Client) -> Value {
    let (st, h) = c.get(&format!("/v1/terminals/{DEVICE}")).await;
    assert_eq!(st, StatusCode::OK);
    h
}

/// Waits until the terminal is in `state`; returns how long it took.
async fn wait_state(c: &Client, state: &str, within: Duration) -> Duration {
    let start = Instant::now();
    eventually(within, &format!("terminal {state}"), || async {
        (health(c).await["state"] == state).then_some(())
    })
    .await;
    start.elapsed()
}

struct Store {
    w: World,
    terminal: Host,
    _sim: Proc,
    gw: Proc,
}

fn store(sim_args: &[&str], extra: Value) -> Store {
    let w = World::new();
    let terminal = Host::new();
    let sim = terminal.sim(&w, &w.certs(), sim_args);
    let gw = w.gateway(&w.gateway_config(sim.addr, extra));
    Store {
        w,
        terminal,
        _sim: sim,
        gw,
    }
}

#[tokio::test]
async fn link_cut_is_down_within_seconds_and_restore_is_up() {
    if !lan::available("link_cut_is_down_within_seconds_and_restore_is_up") {
        return;
    }
    let s = store(&["--card-time", "0"], json!({}));
    let c = s.w.gateway_client(s.gw.addr);
    wait_state(&c, "up", Duration::from_secs(10)).await;
    let h = health(&c).await;
    assert_eq!(h["tcp"], "ok");
    assert_eq!(h["icmp"], "ok", "root can ping into the namespace: {h}");
    assert_eq!(h["tls"], "ok");
    assert!(h["certificateExpiry"].is_string(), "{h}");
    assert_eq!(h["addressSource"], "config");
    s.terminal.fault(Fault::DropAll);
    let took = wait_state(&c, "down", Duration::from_secs(15)).await;
    // The seed notices after 30 s; the default probe (1 s rounds, down after 3) in ~3 s.
    assert!(took < Duration::from_secs(8), "down after {took:?}");
    s.terminal.clear_faults();
    wait_state(&c, "up", Duration::from_secs(10)).await;
}

#[tokio::test]
async fn tcp_reset_is_down_even_though_ping_answers() {
    if !lan::available("tcp_reset_is_down_even_though_ping_answers") {
        return;
    }
    let s = store(&["--card-time", "0"], json!({}));
    let c = s.w.gateway_client(s.gw.addr);
    wait_state(&c, "up", Duration::from_secs(10)).await;
    s.terminal.fault(Fault::ResetTcp(s._sim.addr.port()));
    wait_state(&c, "down", Duration::from_secs(15)).await;
    let h = health(&c).await;
    assert!(h["tcp"].as_str().unwrap().contains("refused"), "{h}");
    assert_eq!(h["icmp"], "ok");
}

#[tokio::test]
async fn icmp_only_drop_is_degraded_not_down() {
    if !lan::available("icmp_only_drop_is_degraded_not_down") {
        return;
    }
    let s = store(&["--card-time", "0"], json!({}));
    let c = s.w.gateway_client(s.gw.addr);
    wait_state(&c, "up", Duration::from_secs(10)).await;
    s.terminal.fault(Fault::DropIcmp);
    wait_state(&c, "degraded", Duration::from_secs(15)).await;
    let h = health(&c).await;
    assert_eq!(h["changes"], 1, "up → degraded directly, never down: {h}");
    assert_eq!(h["tcp"], "ok");
    // Payments still work on a degraded link.
    let (st, r) = c.post("/v1/sale", &sale("DEG-1", 1000)).await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(r["status"], "approved");
}

#[tokio::test]
async fn thirty_percent_loss_does_not_flap() {
    if !lan::available("thirty_percent_loss_does_not_flap") {
        return;
    }
    let s = store(&["--card-time", "0"], json!({}));
    let c = s.w.gateway_client(s.gw.addr);
    wait_state(&c, "up", Duration::from_secs(10)).await;
    let before = health(&c).await["changes"].clone();
    s.terminal.fault(Fault::Loss(30));
    // Watch a dozen probe rounds: the state must not move.
    let until = Instant::now() + Duration::from_secs(12);
    while Instant::now() < until {
        let h = health(&c).await;
        assert_eq!(h["state"], "up", "flapped under 30 % loss: {h}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert_eq!(health(&c).await["changes"], before);
}

#[tokio::test]
async fn sale_in_flight_when_the_link_dies_is_acted_on_at_once() {
    if !lan::available("sale_in_flight_when_the_link_dies_is_acted_on_at_once") {
        return;
    }
    // The seed's timings: polls every 10 s, switch after 3 missed (30 s).
    let s = store(
        &["--card-time", "60"],
        json!({"pollSeconds": 10, "loopsBefore": 3, "timeStop": 120}),
    );
    let c = s.w.gateway_client(s.gw.addr);
    wait_state(&c, "up", Duration::from_secs(10)).await;
    let sale_task = {
        let c = c.clone();
        tokio::spawn(async move {
            c.call(
                hyper::Method::POST,
                "/v1/sale",
                Some(serde_json::to_vec(&sale("CUT-1", 1000)).unwrap()),
            )
            .await
        })
    };
    eventually(Duration::from_secs(10), "sale in progress", || async {
        (c.get("/v1/transactions/CUT-1").await.1["status"] == "in_progress").then_some(())
    })
    .await;
    let cut = Instant::now();
    s.terminal.fault(Fault::DropAll);
    eventually(Duration::from_secs(15), "link_down journaled", || async {
        let (_, events) = c.get("/v1/transactions/CUT-1/events").await;
        events
            .as_array()
            .is_some_and(|e| e.iter().any(|e| e["event"] == "link_down"))
            .then_some(())
    })
    .await;
    let took = cut.elapsed();
    assert!(
        took < Duration::from_secs(10),
        "acted after {took:?}, the seed waits 30 s"
    );
    // Never an invented outcome: the sale is still open, not declined.
    let (_, t) = c.get("/v1/transactions/CUT-1").await;
    assert_eq!(t["status"], "in_progress");
    sale_task.abort();
}

#[tokio::test]
async fn moved_terminal_is_found_by_mdns_and_an_impostor_gets_nothing() {
    if !lan::available("moved_terminal_is_found_by_mdns_and_an_impostor_gets_nothing") {
        return;
    }
    let w = World::new();
    // The gateway's own namespace (mDNS must not touch the machine's interfaces),
    // reachable from the test; the terminal and an impostor each behind it.
    let gw_host = Host::new();
    let mut terminal = Host::linked_to(&gw_host);
    let impostor = Host::linked_to(&gw_host);
    let other_ca = World::new();
    let port = 3000;
    let real = terminal.sim_at(
        &w,
        &w.certs(),
        format!("0.0.0.0:{port}").parse().unwrap(),
        &["--card-time", "0", "--mdns"],
    );
    let fake = impostor.sim_at(
        &w,
        &other_ca.certs(),
        format!("0.0.0.0:{port}").parse().unwrap(),
        &["--card-time", "0", "--mdns"],
    );
    let mut config = w.gateway_config(
        format!("{}:{port}", terminal.ip).parse().unwrap(),
        json!({"url": gw_host.ip.to_string(), "mdns": {"enabled": true, "interfaces": [terminal.peer_ifname, impostor.peer_ifname]}}),
    );
    config["journal"] = json!(w.path("mdns.db"));
    let cfg = w.path("mdns-config.json");
    std::fs::write(&cfg, serde_json::to_vec(&config).unwrap()).unwrap();
    let gw = gw_host.ecrlink(
        &["serve".into(), "--config".into(), cfg.display().to_string()],
        &w.path("gw-mdns.log"),
    );
    let c = w.gateway_client(gw.addr);
    wait_state(&c, "up", Duration::from_secs(10)).await;
    // A technician changes the terminal's "fixed" IP under the running payment app.
    let old = terminal.ip;
    terminal.change_address(7);
    let deadline = Instant::now() + Duration::from_secs(30);
    let moved = loop {
        let h = health(&c).await;
        if h["addressSource"] == "mdns" && h["state"] == "up" {
            break h;
        }
        assert!(
            Instant::now() < deadline,
            "not found by mDNS: {h}\n{}\nREAL:\n{}\nFAKE:\n{}",
            gw.log_text(),
            real.log_text(),
            fake.log_text()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(
        moved["address"],
        format!("{}:{port}", terminal.ip),
        "{moved}"
    );
    assert_ne!(terminal.ip, old);
    let (st, r) = c.post("/v1/sale", &sale("MDNS-1", 1000)).await;
    assert_eq!(st, StatusCode::OK, "{r}");
    assert_eq!(r["status"], "approved");
    // The impostor announced the same deviceId: it got TLS handshakes at most, never a request.
    let fake_client = other_ca.terminal_client(std::net::SocketAddr::new(impostor.ip.into(), port));
    let stats = sim_stats(&fake_client).await;
    assert_eq!(stats["requests"], 0, "{stats}");
    assert!(
        gw.log_text().contains("mDNS candidate refused"),
        "the impostor was tried and refused"
    );
    drop((real, fake));
}

#[tokio::test]
async fn slow_link_stays_up_and_still_takes_payments() {
    if !lan::available("slow_link_stays_up_and_still_takes_payments") {
        return;
    }
    let s = store(&["--card-time", "0"], json!({}));
    let c = s.w.gateway_client(s.gw.addr);
    wait_state(&c, "up", Duration::from_secs(10)).await;
    s.terminal.throttle("256kbit");
    let (st, r) = c.post("/v1/sale", &sale("SLOW-LINK-1", 1000)).await;
    assert_eq!(st, StatusCode::OK, "{r}");
    assert_eq!(r["status"], "approved");
    let h = health(&c).await;
    assert_eq!(h["state"], "up", "{h}");
    assert_eq!(h["changes"], 0, "{h}");
}

/// Without the privilege to open ICMP sockets (CAP_NET_RAW dropped, and the
/// namespace's ping_group_range excluding us) the gateway probes with TCP/TLS only
/// and says once how to enable ICMP.
#[tokio::test]
async fn without_icmp_privileges_tcp_and_tls_probes_carry_on() {
    if !lan::available("without_icmp_privileges_tcp_and_tls_probes_carry_on") {
        return;
    }
    let w = World::new();
    let terminal = Host::new();
    let sim = terminal.sim(&w, &w.certs(), &["--card-time", "0"]);
    let cfg = w.path("noicmp.json");
    std::fs::write(
        &cfg,
        serde_json::to_vec(&w.gateway_config(sim.addr, json!({}))).unwrap(),
    )
    .unwrap();
    // A namespace of its own for the gateway is not needed: ping_group_range is
    // "1 0" (nobody) by default, and the bounding set loses CAP_NET_RAW.
    let args: Vec<String> = [
        "--bounding-set=-net_raw",
        "--inh-caps=-net_raw",
        "--",
        env!("CARGO_BIN_EXE_ecrlink"),
        "serve",
        "--config",
        cfg.to_str().unwrap(),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let group_range =
        std::fs::read_to_string("/proc/sys/net/ipv4/ping_group_range").unwrap_or_default();
    let gw = Proc::start_program("setpriv", &args, &w.path("noicmp-gw.log"));
    let c = w.gateway_client(gw.addr);
    wait_state(&c, "up", Duration::from_secs(10)).await;
    let h = health(&c).await;
    if group_range.split_whitespace().collect::<Vec<_>>() != ["1", "0"] {
        println!(
            "SKIPPED without_icmp_privileges…: ping_group_range is {group_range:?}, unprivileged ICMP is allowed here"
        );
        return;
    }
    assert_eq!(h["icmp"], "unavailable", "{h}");
    assert_eq!(h["tcp"], "ok");
    let (st, r) = c.post("/v1/sale", &sale("NOICMP-1", 1000)).await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(r["status"], "approved");
    let log = gw.log_text();
    assert_eq!(
        log.matches("ICMP probes are off").count(),
        1,
        "said once: {log}"
    );
    assert!(
        log.contains("setcap cap_net_raw+ep") && log.contains("ping_group_range"),
        "{log}"
    );
}
