//! Issue 16: SPKI pinning of the terminal's certificate. The pin `certs show` prints is the
//! one OpenSSL computes; a lane pinned to its terminal sells, a lane pinned to anything
//! else is refused at the handshake, so the terminal receives nothing; a list of pins
//! lets a terminal's key rotate.
mod common;

use std::process::{Command, Stdio};

use common::*;
use ecrlink::pki;
use hyper::StatusCode;
use serde_json::json;

fn pin_of(w: &World, file: &str) -> String {
    let pem = std::fs::read(w.certs().join(file)).unwrap();
    let der = rustls::pki_types::CertificateDer::from_pem_slice(&pem).unwrap();
    ecrlink::pin::spki_pin(&der).unwrap()
}

use rustls::pki_types::pem::PemObject;

#[test]
fn the_pin_is_the_one_openssl_computes() {
    let w = World::new();
    let cert = w.certs().join(pki::TERMINAL_CERT);
    let script = format!(
        "openssl x509 -in '{}' -pubkey -noout | openssl pkey -pubin -outform der | \
         openssl dgst -sha256 -binary | base64",
        cert.display()
    );
    let out = Command::new("sh")
        .args(["-c", &script])
        .stderr(Stdio::inherit())
        .output()
        .expect("sh and openssl");
    assert!(out.status.success());
    let openssl = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert_eq!(pin_of(&w, pki::TERMINAL_CERT), format!("sha256/{openssl}"));
    let shown = pki::summarize(&cert).unwrap().to_string();
    assert!(
        shown.contains(&format!("pin:       sha256/{openssl}")),
        "{shown}"
    );
}

#[tokio::test]
async fn a_pinned_lane_sells_and_a_mismatch_sends_nothing() {
    let w = World::new();
    let sim = w.sim(&["--card-time", "0"]);
    let right = pin_of(&w, pki::TERMINAL_CERT);
    let wrong = pin_of(&w, pki::GATEWAY_CERT);
    // Rotation: the old pin and the new one, in either order.
    let gw = w.gateway(&w.gateway_config(sim.addr, json!({"terminalPin": [wrong, right]})));
    let (st, r) = w
        .gateway_client(gw.addr)
        .post("/v1/sale", &sale("PIN-1", 1000))
        .await;
    assert_eq!(
        (st, r["status"].as_str()),
        (StatusCode::OK, Some("approved")),
        "{r}"
    );
    drop(gw);
    let before = sim_stats(&w.terminal_client(sim.addr)).await["requests"]
        .as_u64()
        .unwrap();

    let config = w.gateway_config(
        sim.addr,
        json!({"terminals": [{"deviceId": DEVICE, "terminalIp": sim.addr.to_string(), "terminalPin": wrong}],
               "terminalIp": null, "deviceId": null, "journal": w.path("j-wrong.db")}),
    );
    let mut config = config;
    config.as_object_mut().unwrap().retain(|_, v| !v.is_null());
    let gw = w.gateway(&config);
    let (st, r) = w
        .gateway_client(gw.addr)
        .post("/v1/sale", &sale("PIN-2", 1000))
        .await;
    assert_eq!(st, StatusCode::BAD_GATEWAY, "{r}");
    assert_eq!(r["error"]["code"], "terminal_tls_error", "{r}");
    let after = sim_stats(&w.terminal_client(sim.addr)).await["requests"]
        .as_u64()
        .unwrap();
    assert_eq!(after, before, "the unpinned terminal received no request");
}
