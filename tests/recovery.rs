//! No lost result, and "unknown" as a real state (issue 3): a dropped answer is
//! recovered by lookup; a terminal that dies or hangs mid-sale gives the POS
//! `unknown` by `timeStop`, and the gateway reconciles by itself once the terminal
//! answers again.

mod common;

use std::time::{Duration, Instant};

use common::*;
use hyper::StatusCode;
use serde_json::{Value, json};

const TIME_STOP: f64 = 1.5;

fn short(w: &World, terminal: std::net::SocketAddr) -> Value {
    w.gateway_config(
        terminal,
        json!({"pollSeconds": 0.1, "timeStop": TIME_STOP, "staticIptimeOut": 1}),
    )
}

async fn event_names(c: &Client, id: &str) -> Vec<String> {
    let (st, events) = c.get(&format!("/v1/transactions/{id}/events")).await;
    assert_eq!(st, StatusCode::OK, "{events}");
    events
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["event"].as_str().map(String::from))
        .collect()
}

/// Posts a sale and checks the POS hears 504 `unknown` in time.
async fn sale_ends_unknown(c: &Client, id: &str) -> Value {
    let asked = Instant::now();
    let (st, body) = c.post("/v1/sale", &sale(id, 1000)).await;
    let took = asked.elapsed();
    assert_eq!(st, StatusCode::GATEWAY_TIMEOUT, "{body}");
    assert_eq!(body["status"], "unknown", "{body}");
    assert!(
        took >= Duration::from_secs_f64(TIME_STOP * 0.9)
            && took < Duration::from_secs_f64(TIME_STOP + 2.0),
        "unknown after {took:?}, timeStop {TIME_STOP}s"
    );
    body
}

async fn final_result(c: &Client, id: &str, within: Duration) -> Value {
    eventually(within, &format!("{id} reconciled"), || {
        let c = c.clone();
        let id = id.to_string();
        async move {
            let (_, r) = c.get(&format!("/v1/transactions/{id}")).await;
            let done = ["approved", "declined", "cancelled", "failed"]
                .contains(&r["status"].as_str().unwrap_or(""));
            done.then_some(r)
        }
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_answer_is_recovered_by_lookup() {
    let w = World::new();
    let sim = w.sim(&["--card-time", "0.05", "--drop-responses", "1"]);
    let gw = w.gateway(&short(&w, sim.addr));
    let c = w.gateway_client(gw.addr);
    let (st, body) = c.post("/v1/sale", &sale("DROP-1", 1000)).await;
    assert_eq!(st, StatusCode::OK, "{body}");
    assert_eq!(body["status"], "approved", "{body}");
    let terminal = w.terminal_client(sim.addr);
    let (_, truth) = terminal.get("/v1/transactions/DROP-1").await;
    assert_eq!(body["authorizationCode"], truth["authorizationCode"]);
    let names = event_names(&c, "DROP-1").await;
    assert!(names.iter().any(|n| n == "answer_lost"), "{names:?}");
    assert_eq!(names.last().map(String::as_str), Some("final"), "{names:?}");
    assert!(names.iter().any(|n| n == "sent"), "{names:?}");
    let stats = sim_stats(&terminal).await;
    assert_eq!(stats["startRequests"]["DROP-1"], 1, "{stats}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn terminal_crash_after_approval_is_reconciled_after_its_restart() {
    let w = World::new();
    let state = w.path("terminal-state.json");
    let state = state.to_str().unwrap();
    let port = PortHold::loopback();
    let addr = port.addr;
    let mut sim = w.sim_on(
        addr,
        &[
            "--card-time",
            "0.05",
            "--state",
            state,
            "--crash-after-outcome",
        ],
    );
    let gw = w.gateway(&short(&w, addr));
    let c = w.gateway_client(gw.addr);
    sale_ends_unknown(&c, "CRASH-1").await;
    assert_eq!(
        sim.wait_exit(Duration::from_secs(5)),
        Some(3),
        "the sim crashed"
    );
    let (_, r) = c.get("/v1/transactions/CRASH-1").await;
    assert_eq!(
        r["status"], "unknown",
        "never a guess while the terminal is away: {r}"
    );

    // The terminal comes back at its fixed address with its memory; nobody asks
    // the gateway anything.
    let sim = w.sim_on(addr, &["--card-time", "0.05", "--state", state]);
    let fin = final_result(&c, "CRASH-1", Duration::from_secs(15)).await;
    let (_, truth) = w
        .terminal_client(sim.addr)
        .get("/v1/transactions/CRASH-1")
        .await;
    assert_eq!(fin["status"], "approved", "{fin}");
    assert_eq!(fin["authorizationCode"], truth["authorizationCode"]);
    let names = event_names(&c, "CRASH-1").await;
    assert!(names.iter().any(|n| n == "unknown"), "{names:?}");
    assert_eq!(
        names.last().map(String::as_str),
        Some("reconciled"),
        "{names:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn terminal_killed_mid_card_time_reconciles_to_its_restart_outcome() {
    let w = World::new();
    let state = w.path("terminal-state.json");
    let state = state.to_str().unwrap();
    // The held port stays ours while the terminal is down; the payment is held at
    // the card until the kill.
    let port = PortHold::loopback();
    let addr = port.addr;
    let mut sim = w.sim_on(
        addr,
        &["--card-time", "0", "--hold-payments", "--state", state],
    );
    let terminal = w.terminal_client(addr);
    let gw = w.gateway(&short(&w, addr));
    let c = w.gateway_client(gw.addr);
    let pos = {
        let c = c.clone();
        tokio::spawn(async move { sale_ends_unknown(&c, "MID-1").await })
    };
    wait_at_terminal(&terminal, "MID-1").await;
    sim.kill();
    pos.await.unwrap();
    let (_, r) = c.get("/v1/transactions/MID-1").await;
    assert_eq!(r["status"], "unknown", "{r}");

    let sim = w.sim_on(addr, &["--card-time", "0.05", "--state", state]);
    let fin = final_result(&c, "MID-1", Duration::from_secs(15)).await;
    assert_eq!(fin["status"], "cancelled", "{fin}");
    assert_eq!(fin["resultCode"], "terminal_restart", "{fin}");
    let (_, truth) = w
        .terminal_client(sim.addr)
        .get("/v1/transactions/MID-1")
        .await;
    assert_eq!(truth["status"], "cancelled", "{truth}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hanging_terminal_gives_unknown_then_the_truth() {
    let w = World::new();
    let sim = w.sim(&["--card-time", "0.05"]);
    let terminal = w.terminal_client(sim.addr);
    let (st, _) = terminal.post("/sim/faults", &json!({"hang": true})).await;
    assert_eq!(st, StatusCode::OK);
    let gw = w.gateway(&short(&w, sim.addr));
    let c = w.gateway_client(gw.addr);
    sale_ends_unknown(&c, "HANG-1").await;
    let (_, r) = c.get("/v1/transactions/HANG-1").await;
    assert_eq!(r["status"], "unknown", "{r}");
    let names = event_names(&c, "HANG-1").await;
    assert!(names.iter().any(|n| n == "unknown"), "journaled: {names:?}");

    let (st, _) = terminal.post("/sim/faults", &json!({})).await;
    assert_eq!(st, StatusCode::OK);
    let fin = final_result(&c, "HANG-1", Duration::from_secs(15)).await;
    eprintln!("hang: gateway {fin}");
    // Whatever the terminal made of the held request, the gateway says the same.
    let (tst, truth) = terminal.get("/v1/transactions/HANG-1").await;
    if tst == StatusCode::NOT_FOUND {
        assert_eq!(fin["status"], "failed", "{fin}");
        assert_eq!(fin["resultCode"], "not_received", "{fin}");
    } else {
        assert_eq!(fin["status"], truth["status"], "{fin} vs {truth}");
        assert_eq!(fin["authorizationCode"], truth["authorizationCode"]);
    }
    let stats = sim_stats(&terminal).await;
    assert!(
        stats["startRequests"]["HANG-1"].as_u64().unwrap_or(0) <= 1,
        "{stats}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ignored_polls_do_not_change_the_outcome() {
    let w = World::new();
    // Held at the card until the gateway has met all three unanswered polls.
    let sim = w.sim(&["--card-time", "0", "--ignore-polls", "3", "--hold-payments"]);
    let terminal = w.terminal_client(sim.addr);
    let gw = w.gateway(&short(&w, sim.addr));
    let c = w.gateway_client(gw.addr);
    let pos = {
        let c = c.clone();
        tokio::spawn(async move { c.post("/v1/sale", &sale("IGN-1", 1001)).await })
    };
    // `/sim/faults` is not a status call: reading it does not use up an ignored poll.
    eventually(Duration::from_secs(10), "three polls ignored", || async {
        let (_, faults) = terminal.get("/sim/faults").await;
        (faults["ignorePolls"] == 0).then_some(())
    })
    .await;
    set_faults(&terminal, json!({})).await;
    let (st, body) = pos.await.unwrap();
    assert_eq!(st, StatusCode::OK, "{body}");
    assert_eq!(body["status"], "declined", "{body}");
    let names = event_names(&c, "IGN-1").await;
    assert!(names.iter().any(|n| n == "poll_missed"), "{names:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_card_gives_unknown_then_the_late_truth_and_a_retry_gets_it() {
    let w = World::new();
    // The card outlasts timeStop for sure: it is held until the POS heard `unknown`.
    let sim = w.sim(&["--card-time", "0", "--hold-payments"]);
    let gw = w.gateway(&short(&w, sim.addr));
    let c = w.gateway_client(gw.addr);
    sale_ends_unknown(&c, "SLOW-1").await;
    set_faults(&w.terminal_client(sim.addr), json!({})).await;
    let fin = final_result(&c, "SLOW-1", Duration::from_secs(10)).await;
    assert_eq!(fin["status"], "approved", "{fin}");
    let (st, replay) = c.post("/v1/sale", &sale("SLOW-1", 1000)).await;
    assert_eq!(st, StatusCode::OK, "{replay}");
    assert_eq!(replay, fin, "a retrying POS gets the reconciled result");
    let names = event_names(&c, "SLOW-1").await;
    let unknown_at = names.iter().position(|n| n == "unknown").expect("unknown");
    assert_eq!(
        names.last().map(String::as_str),
        Some("reconciled"),
        "{names:?}"
    );
    assert!(unknown_at < names.len() - 1, "{names:?}");
    let stats = sim_stats(&w.terminal_client(sim.addr)).await;
    assert_eq!(stats["startRequests"]["SLOW-1"], 1, "{stats}");
}

fn signal(proc: &Proc, sig: &str) {
    let status = std::process::Command::new("kill")
        .args([sig, &proc.child.id().to_string()])
        .status()
        .expect("kill(1)");
    assert!(status.success(), "kill {sig}");
}

/// A frozen terminal (SIGSTOP: the kernel still accepts connections, nothing
/// answers) mid-sale: `unknown` in time, then the truth once it thaws.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frozen_terminal_mid_sale_gives_unknown_then_the_truth() {
    let w = World::new();
    // Held at the card, so the freeze surely lands mid-payment.
    let sim = w.sim(&["--card-time", "0", "--hold-payments"]);
    let terminal = w.terminal_client(sim.addr);
    let gw = w.gateway(&short(&w, sim.addr));
    let c = w.gateway_client(gw.addr);
    let pos = {
        let c = c.clone();
        tokio::spawn(async move { sale_ends_unknown(&c, "FROZEN-1").await })
    };
    wait_at_terminal(&terminal, "FROZEN-1").await;
    signal(&sim, "-STOP");
    pos.await.unwrap();
    let (_, r) = c.get("/v1/transactions/FROZEN-1").await;
    assert_eq!(r["status"], "unknown", "{r}");
    signal(&sim, "-CONT");
    set_faults(&terminal, json!({})).await;
    let fin = final_result(&c, "FROZEN-1", Duration::from_secs(15)).await;
    let (_, truth) = terminal.get("/v1/transactions/FROZEN-1").await;
    assert_eq!(fin["status"], "approved", "{fin}");
    assert_eq!(fin["authorizationCode"], truth["authorizationCode"]);
}

/// Gateway and terminal both go down around an `unknown` sale: the restarted
/// gateway keeps the sale open (no guess) and the terminal held, and reconciles
/// once the terminal is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateway_restarted_while_the_terminal_is_down_reconciles_later() {
    let w = World::new();
    let state = w.path("terminal-state.json");
    let state = state.to_str().unwrap();
    let port = PortHold::loopback();
    let addr = port.addr;
    let mut sim = w.sim_on(
        addr,
        &[
            "--card-time",
            "0.05",
            "--state",
            state,
            "--crash-after-outcome",
        ],
    );
    let config = short(&w, addr);
    let mut gw = w.gateway(&config);
    sale_ends_unknown(&w.gateway_client(gw.addr), "BOTH-1").await;
    assert_eq!(sim.wait_exit(Duration::from_secs(5)), Some(3));
    gw.kill();

    let gw = w.gateway(&config);
    let c = w.gateway_client(gw.addr);
    let (_, r) = c.get("/v1/transactions/BOTH-1").await;
    assert!(
        r["status"] == "unknown" || r["status"] == "in_progress",
        "still open, never guessed: {r}"
    );
    let (st, body) = c.post("/v1/sale", &sale("BOTH-2", 1000)).await;
    assert_eq!(st, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["error"]["code"], "terminal_busy", "{body}");

    let _sim = w.sim_on(addr, &["--card-time", "0.05", "--state", state]);
    let fin = final_result(&c, "BOTH-1", Duration::from_secs(15)).await;
    assert_eq!(fin["status"], "approved", "{fin}");
    let names = event_names(&c, "BOTH-1").await;
    assert!(names.iter().any(|n| n == "recovering"), "{names:?}");
    let (st, body) = c.post("/v1/sale", &sale("BOTH-2", 1000)).await;
    assert_eq!(st, StatusCode::OK, "{body}");
}

/// SIGTERM mid-sale: the gateway stops cleanly and the next start finishes the
/// sale from the journal.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_stop_mid_sale_is_resumed_at_the_next_start() {
    let w = World::new();
    // Held at the card until the gateway has stopped and started again.
    let sim = w.sim(&["--card-time", "0", "--hold-payments"]);
    let terminal = w.terminal_client(sim.addr);
    let config = w.gateway_config(sim.addr, json!({"pollSeconds": 0.1, "timeStop": 10}));
    let mut gw = w.gateway(&config);
    let c = w.gateway_client(gw.addr);
    let pos = {
        let c = c.clone();
        let body = serde_json::to_vec(&sale("TERM-1", 1001)).unwrap();
        tokio::spawn(async move { c.call(hyper::Method::POST, "/v1/sale", Some(body)).await })
    };
    wait_at_terminal(&terminal, "TERM-1").await;
    signal(&gw, "-TERM");
    assert!(
        gw.wait_exit(Duration::from_secs(10)).is_some(),
        "the gateway stops on SIGTERM"
    );
    // Whatever the POS heard, it was not a made-up outcome.
    if let Ok((st, body)) = pos.await.unwrap() {
        assert!(
            st == StatusCode::GATEWAY_TIMEOUT || st == StatusCode::SERVICE_UNAVAILABLE,
            "{st} {body}"
        );
    }
    let gw = w.gateway(&config);
    let c = w.gateway_client(gw.addr);
    let (_, r) = c.get("/v1/transactions/TERM-1").await;
    assert!(
        r["status"] == "in_progress" || r["status"] == "unknown",
        "still open, never guessed: {r}"
    );
    set_faults(&terminal, json!({})).await;
    let fin = final_result(&c, "TERM-1", Duration::from_secs(15)).await;
    assert_eq!(fin["status"], "declined", "{fin}");
    let stats = sim_stats(&terminal).await;
    assert_eq!(stats["startRequests"]["TERM-1"], 1, "{stats}");
}

/// The payment app freezes while a card is being read: the held answer does not
/// come either, so the POS hears `unknown`; once it thaws, the truth.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn terminal_hanging_mid_sale_gives_unknown_then_the_truth() {
    let w = World::new();
    // Held at the card, so the hang surely lands mid-payment.
    let sim = w.sim(&["--card-time", "0", "--hold-payments"]);
    let terminal = w.terminal_client(sim.addr);
    let gw = w.gateway(&short(&w, sim.addr));
    let c = w.gateway_client(gw.addr);
    let pos = {
        let c = c.clone();
        tokio::spawn(async move { sale_ends_unknown(&c, "HANG-2").await })
    };
    wait_at_terminal(&terminal, "HANG-2").await;
    set_faults(&terminal, json!({"hang": true, "holdPayments": true})).await;
    pos.await.unwrap();
    let (_, r) = c.get("/v1/transactions/HANG-2").await;
    assert_eq!(r["status"], "unknown", "{r}");

    set_faults(&terminal, json!({})).await;
    let fin = final_result(&c, "HANG-2", Duration::from_secs(15)).await;
    let (_, truth) = terminal.get("/v1/transactions/HANG-2").await;
    assert_eq!(fin["status"], "approved", "{fin}");
    assert_eq!(fin["authorizationCode"], truth["authorizationCode"]);
    let stats = sim_stats(&terminal).await;
    assert_eq!(stats["startRequests"]["HANG-2"], 1, "{stats}");
}
