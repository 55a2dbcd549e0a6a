//! A terminal that fails TLS verification gets nothing: no request bytes, a 502
//! `terminal_tls_error` naming the reason, and a `failed` record (nothing charged).
mod common;

use std::path::PathBuf;
use std::time::Duration;

use common::*;
use ecrlink::http::client::HttpClient;
use ecrlink::pki::{self, Ca, LeafSpec};
use hyper::StatusCode;
use rustls::pki_types::ServerName;
use serde_json::json;

/// A certs folder whose terminal certificate comes from `leaf`.
fn terminal_certs(w: &World, name: &str, leaf: &pki::Leaf) -> PathBuf {
    let dir = w.path(name);
    std::fs::create_dir_all(&dir).unwrap();
    leaf.write(
        &dir.join(pki::TERMINAL_CERT),
        &dir.join(pki::TERMINAL_KEY),
        false,
    )
    .unwrap();
    dir
}

fn sim_with_certs(w: &World, certs: &std::path::Path, state: &std::path::Path) -> Proc {
    Proc::start(
        &[
            "sim".into(),
            "--listen".into(),
            "127.0.0.1:0".into(),
            "--certs".into(),
            certs.display().to_string(),
            "--card-time".into(),
            "0".into(),
            "--state".into(),
            state.display().to_string(),
        ],
        &w.path(&format!(
            "sim-{}.log",
            state.file_name().unwrap().to_string_lossy()
        )),
    )
}

/// Runs a sale against a terminal with the given certificate folder and checks the
/// refusal; returns the simulator for further checks.
async fn refused(w: &World, certs: PathBuf, tag: &str, reason: &str) -> Proc {
    let state = w.path(&format!("{tag}-state.json"));
    let sim = sim_with_certs(w, &certs, &state);
    let gw =
        w.gateway(&w.gateway_config(sim.addr, json!({"journal": w.path(&format!("{tag}.db"))})));
    let c = w.gateway_client(gw.addr);
    let id = format!("TLS-{tag}");
    let (st, err) = c.post("/v1/sale", &sale(&id, 1000)).await;
    assert_eq!(st, StatusCode::BAD_GATEWAY, "{err}");
    assert_eq!(err["error"]["code"], "terminal_tls_error");
    let message = err["error"]["message"].as_str().unwrap();
    assert!(message.contains(reason), "{message}");
    assert_eq!(err["error"]["transaction"]["status"], "failed");
    let (_, stored) = c.get(&format!("/v1/transactions/{id}")).await;
    assert_eq!(stored["status"], "failed");
    assert_eq!(stored["resultCode"], "terminal_tls_error");
    // A repeat replays the same refusal without a new attempt.
    let (st, again) = c.post("/v1/sale", &sale(&id, 1000)).await;
    assert_eq!(st, StatusCode::BAD_GATEWAY);
    assert_eq!(again, err);
    assert!(!state.exists(), "the terminal recorded nothing");
    sim
}

#[tokio::test]
async fn terminal_from_another_ca_gets_nothing() {
    let w = World::new();
    let other = World::new();
    let sim = refused(&w, other.certs(), "wrong-ca", "unknown issuer").await;
    // The terminal's own counters, read with its own CA: zero requests arrived.
    let stats = sim_stats(&other.terminal_client(sim.addr)).await;
    assert_eq!(stats["requests"], 0, "{stats}");
}

#[tokio::test]
async fn terminal_with_another_name_gets_nothing() {
    let w = World::new();
    let ca = Ca::load(&w.certs()).unwrap();
    let leaf = ca
        .issue(&LeafSpec::server(
            "other",
            &["other.home.arpa".into()],
            &["127.0.0.1".parse().unwrap()],
        ))
        .unwrap();
    let certs = terminal_certs(&w, "wrong-name", &leaf);
    let sim = refused(&w, certs, "wrong-name", "not valid for the name").await;
    let tls = ecrlink::tls::client_config(&w.certs().join(pki::CA_CERT), None).unwrap();
    let name = ServerName::try_from("other.home.arpa").unwrap().to_owned();
    let client = Client(HttpClient::https(
        sim.addr,
        tls,
        name,
        Duration::from_secs(5),
    ));
    let stats = sim_stats(&client).await;
    assert_eq!(stats["requests"], 0, "{stats}");
}

#[tokio::test]
async fn expired_terminal_certificate_gets_nothing() {
    let w = World::new();
    let ca = Ca::load(&w.certs()).unwrap();
    let leaf = ca
        .issue(&LeafSpec::terminal(&["127.0.0.1".parse().unwrap()]).expired())
        .unwrap();
    let certs = terminal_certs(&w, "expired", &leaf);
    refused(&w, certs, "expired", "expired").await;
}

#[tokio::test]
async fn refused_connection_is_terminal_unreachable_and_failed() {
    let w = World::new();
    // Bind and drop a listener: a loopback port nobody listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let gw = w.gateway(&w.gateway_config(port, json!({})));
    let c = w.gateway_client(gw.addr);
    let (st, err) = c.post("/v1/sale", &sale("DOWN-1", 1000)).await;
    assert_eq!(st, StatusCode::BAD_GATEWAY, "{err}");
    assert_eq!(err["error"]["code"], "terminal_unreachable");
    assert!(
        err["error"]["message"]
            .as_str()
            .unwrap()
            .contains("nothing was charged")
    );
    let (_, stored) = c.get("/v1/transactions/DOWN-1").await;
    assert_eq!(stored["status"], "failed");
    // The terminal is not left busy by a failed attempt.
    let (st, _) = c.post("/v1/sale", &sale("DOWN-2", 1000)).await;
    assert_eq!(st, StatusCode::BAD_GATEWAY);
}

#[tokio::test]
async fn gateway_api_certificate_verifies_for_localhost_only_with_the_ca() {
    let w = World::new();
    let sim = w.sim(&["--card-time", "0"]);
    let gw = w.gateway(&w.gateway_config(sim.addr, json!({})));
    let (st, _) = w.gateway_client(gw.addr).get("/v1/getVersion").await;
    assert_eq!(st, StatusCode::OK);
    let other = World::new();
    let err = other
        .gateway_client(gw.addr)
        .call(hyper::Method::GET, "/v1/getVersion", None)
        .await
        .unwrap_err();
    assert!(!err.maybe_delivered(), "refused before any request: {err}");
}
