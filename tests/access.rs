//! Issue 16, from outside: who may charge a card. Browser-borne requests (a page in the
//! POS PC's browser posting `text/plain`, a foreign `Origin`, a rebinding `Host`) are
//! refused before anything reaches the terminal; a listed origin gets proper CORS; keys
//! split cashier and manager; mutual TLS admits only the private CA's clients; a gateway
//! beyond loopback does not start without client authentication.
mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;

use common::*;
use ecrlink::http::client::HttpClient;
use ecrlink::pki;
use ecrlink::tls;
use hyper::StatusCode;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// One raw HTTP/1.1 request over verified TLS, with exactly the headers given (the
/// crate's client always sends JSON and its own Host).
async fn raw(w: &World, addr: SocketAddr, head: &str, body: &str) -> (u16, String, Value) {
    let config = tls::client_config(&w.certs().join(pki::CA_CERT), None).unwrap();
    let connector = tokio_rustls::TlsConnector::from(config);
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let mut tls = connector.connect(name, tcp).await.unwrap();
    let req = format!(
        "{head}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    tls.write_all(req.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    let _ = tls.read_to_end(&mut answer).await;
    let text = String::from_utf8_lossy(&answer).to_string();
    let (heads, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = heads
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = serde_json::from_str(body).unwrap_or(Value::String(body.into()));
    (status, heads.to_ascii_lowercase(), body)
}

fn sale_text(id: &str) -> String {
    sale(id, 1000).to_string()
}

#[tokio::test]
async fn browser_borne_requests_are_refused_and_the_terminal_gets_nothing() {
    let w = World::new();
    let sim = w.sim(&["--card-time", "0"]);
    let gw = w.gateway(&w.gateway_config(sim.addr, json!({})));
    let host = format!("Host: localhost:{}", gw.addr.port());
    // What any web page can send without a preflight.
    let head = format!("POST /v1/sale HTTP/1.1\r\n{host}\r\nContent-Type: text/plain");
    let (st, _, err) = raw(&w, gw.addr, &head, &sale_text("WEB-1")).await;
    assert_eq!(st, 415, "{err}");
    assert_eq!(err["error"]["code"], "unsupported_media_type");
    let head = format!("POST /v1/sale HTTP/1.1\r\n{host}");
    let (st, _, _) = raw(&w, gw.addr, &head, &sale_text("WEB-2")).await;
    assert_eq!(st, 415, "no content type");
    let head = format!(
        "POST /v1/sale HTTP/1.1\r\n{host}\r\nContent-Type: application/json\r\nOrigin: https://evil.example"
    );
    let (st, _, err) = raw(&w, gw.addr, &head, &sale_text("WEB-3")).await;
    assert_eq!(st, 403, "{err}");
    assert_eq!(err["error"]["code"], "origin_not_allowed");
    // A cancel has no body, but the Origin rule holds for it too.
    let head = format!(
        "POST /v1/transactions/WEB-3/cancel HTTP/1.1\r\n{host}\r\nOrigin: https://evil.example"
    );
    let (st, _, _) = raw(&w, gw.addr, &head, "").await;
    assert_eq!(st, 403);
    // DNS rebinding: the page's own name, now pointing here.
    let head =
        "POST /v1/sale HTTP/1.1\r\nHost: evil.example:3000\r\nContent-Type: application/json";
    let (st, _, err) = raw(&w, gw.addr, head, &sale_text("WEB-4")).await;
    assert_eq!(st, 403, "{err}");
    assert_eq!(err["error"]["code"], "host_not_allowed");
    let stats = sim_stats(&w.terminal_client(sim.addr)).await;
    assert_eq!(
        stats["requests"], 0,
        "nothing reached the terminal: {stats}"
    );
    let (st, list) = w.gateway_client(gw.addr).get("/v1/transactions").await;
    assert_eq!((st, list), (StatusCode::OK, json!([])), "nothing journaled");
    // The same sale as a POS sends it goes through, and the refusals are counted.
    let head = format!("POST /v1/sale HTTP/1.1\r\n{host}\r\nContent-Type: application/json");
    let (st, _, r) = raw(&w, gw.addr, &head, &sale_text("POS-1")).await;
    assert_eq!((st, r["status"].as_str()), (200, Some("approved")), "{r}");
    let (_, metrics) = w.gateway_client(gw.addr).get("/metrics").await;
    let metrics = metrics.as_str().unwrap().to_string();
    for line in [
        "ecrlink_requests_refused_total{reason=\"content_type\"} 2",
        "ecrlink_requests_refused_total{reason=\"origin\"} 2",
        "ecrlink_requests_refused_total{reason=\"host\"} 1",
    ] {
        assert!(metrics.contains(line), "{line} in {metrics}");
    }
}

#[tokio::test]
async fn a_listed_origin_gets_its_preflight_and_its_call() {
    let w = World::new();
    let sim = w.sim(&["--card-time", "0"]);
    let extra = json!({"corsOrigins": ["https://pos.example.com"], "apiKey": "k-123"});
    let gw = w.gateway(&w.gateway_config(sim.addr, extra));
    let host = format!("Host: localhost:{}", gw.addr.port());
    let head = format!(
        "OPTIONS /v1/sale HTTP/1.1\r\n{host}\r\nOrigin: https://pos.example.com\r\n\
         Access-Control-Request-Method: POST\r\nAccess-Control-Request-Headers: authorization, content-type"
    );
    let (st, heads, _) = raw(&w, gw.addr, &head, "").await;
    assert_eq!(st, 204, "{heads}");
    for h in [
        "access-control-allow-origin: https://pos.example.com",
        "access-control-allow-methods: get, post, options",
        "access-control-allow-headers: authorization, content-type",
        "vary: origin",
    ] {
        assert!(heads.contains(h), "{h} in {heads}");
    }
    let head = format!(
        "POST /v1/sale HTTP/1.1\r\n{host}\r\nOrigin: https://pos.example.com\r\n\
         Content-Type: application/json\r\nAuthorization: Bearer k-123"
    );
    let (st, heads, r) = raw(&w, gw.addr, &head, &sale_text("CORS-1")).await;
    assert_eq!((st, r["status"].as_str()), (200, Some("approved")), "{r}");
    assert!(
        heads.contains("access-control-allow-origin: https://pos.example.com"),
        "{heads}"
    );
    // Refused for want of a key, the listed page may still read why.
    let head = format!(
        "POST /v1/sale HTTP/1.1\r\n{host}\r\nOrigin: https://pos.example.com\r\nContent-Type: application/json"
    );
    let (st, heads, err) = raw(&w, gw.addr, &head, &sale_text("CORS-2")).await;
    assert_eq!(
        (st, err["error"]["code"].as_str()),
        (401, Some("unauthorized")),
        "{err}"
    );
    assert!(
        heads.contains("access-control-allow-origin: https://pos.example.com"),
        "{heads}"
    );
    // Another origin's preflight is refused, and gets no CORS grant.
    let head = format!("OPTIONS /v1/sale HTTP/1.1\r\n{host}\r\nOrigin: https://evil.example");
    let (st, heads, _) = raw(&w, gw.addr, &head, "").await;
    assert_eq!(st, 403);
    assert!(!heads.contains("access-control-allow-origin"), "{heads}");
}

/// Runs `ecrlink serve --config PATH`, which must exit (refusing) within 30 s; a gateway
/// that starts instead is killed, and the caller's assertions say why.
fn serve_exits(path: &Path) -> (bool, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_ecrlink"))
        .args(["serve", "--config", path.to_str().unwrap()])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while child.try_wait().unwrap().is_none() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let _ = child.kill();
    let out = child.wait_with_output().unwrap();
    let said =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), said)
}

fn serve_refused(w: &World, extra: Value) -> String {
    let mut config = w.gateway_config("127.0.0.1:9".parse().unwrap(), extra);
    config["url"] = json!("0.0.0.0");
    let path = w.path("exposed.json");
    std::fs::write(&path, config.to_string()).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_ecrlink"))
        .args(["serve", "--config", path.to_str().unwrap()])
        .output()
        .unwrap();
    let said =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "started: {said}");
    assert!(!said.contains("listening on"), "{said}");
    assert!(!said.contains("panicked"), "{said}");
    said
}

#[test]
fn beyond_loopback_start_is_refused_without_client_auth_or_in_plain_http() {
    let w = World::new();
    let said = serve_refused(&w, json!({}));
    assert!(
        said.contains("\"apiKey\"") && said.contains("\"clientAuth\"") && said.contains("0.0.0.0"),
        "{said}"
    );
    let said = serve_refused(&w, json!({"apiKey": "k-1", "SSL": "False"}));
    assert!(said.contains("\"SSL\": \"False\""), "{said}");
    assert!(!said.contains("k-1"), "the key is not printed: {said}");
}

#[tokio::test]
async fn cashier_sells_manager_refunds_and_metrics_follow_the_api_rule() {
    let w = World::new();
    let sim = w.sim(&["--card-time", "0"]);
    let extra = json!({"apiKey": "cashier-key", "refundKey": "manager-key"});
    let gw = w.gateway(&w.gateway_config(sim.addr, extra));
    let client = |key: &str| Client(w.gateway_client(gw.addr).0.with_bearer(key));
    let (cashier, manager) = (client("cashier-key"), client("manager-key"));
    let (st, r) = cashier.post("/v1/sale", &sale("KS-1", 1000)).await;
    assert_eq!(
        (st, r["status"].as_str()),
        (StatusCode::OK, Some("approved"))
    );
    let mut refund = sale("KR-1", 1000);
    refund["originalTransactionId"] = json!("KS-1");
    let (st, err) = cashier.post("/v1/refund", &refund).await;
    assert_eq!(st, StatusCode::FORBIDDEN, "{err}");
    assert_eq!(err["error"]["code"], "refund_key_required");
    let (st, err) = client("wrong").post("/v1/refund", &refund).await;
    assert_eq!(st, StatusCode::UNAUTHORIZED, "{err}");
    let (st, r) = manager.post("/v1/refund", &refund).await;
    assert_eq!(
        (st, r["status"].as_str()),
        (StatusCode::OK, Some("approved")),
        "{r}"
    );
    let (st, _) = w.gateway_client(gw.addr).get("/metrics").await;
    assert_eq!(
        st,
        StatusCode::UNAUTHORIZED,
        "metrics follow the API's rule"
    );
    let (st, _) = cashier.get("/metrics").await;
    assert_eq!(st, StatusCode::OK);
    let stats = sim_stats(&w.terminal_client(sim.addr)).await;
    assert_eq!(stats["requests"], 2, "one sale, one refund: {stats}");

    let open = w.gateway(&w.gateway_config(
        sim.addr,
        json!({"apiKey": "cashier-key", "metricsPublic": true, "journal": w.path("j2.db")}),
    ));
    let (st, _) = w.gateway_client(open.addr).get("/healthz").await;
    assert_eq!(
        st,
        StatusCode::OK,
        "metricsPublic opens /healthz and /metrics"
    );
    let (st, _) = w.gateway_client(open.addr).get("/v1/transactions").await;
    assert_eq!(st, StatusCode::UNAUTHORIZED, "but not the API");
}

fn mtls_client(w: &World, addr: SocketAddr, identity: Option<&Path>) -> Client {
    let ca = w.certs().join(pki::CA_CERT);
    let pair = identity.map(|d| (d.join(pki::CLIENT_CERT), d.join(pki::CLIENT_KEY)));
    let pair = pair.as_ref().map(|(c, k)| (c.as_path(), k.as_path()));
    let config: Arc<rustls::ClientConfig> = tls::client_config(&ca, pair).unwrap();
    let name = rustls::pki_types::ServerName::try_from("localhost")
        .unwrap()
        .to_owned();
    Client(HttpClient::https(
        addr,
        config,
        name,
        std::time::Duration::from_secs(5),
    ))
}

#[tokio::test]
async fn mutual_tls_admits_the_private_cas_clients_only() {
    let w = World::new();
    let other = World::new();
    let sim = w.sim(&["--card-time", "0"]);
    let gw = w.gateway(&w.gateway_config(sim.addr, json!({"clientAuth": true})));
    let ours = mtls_client(&w, gw.addr, Some(&w.certs()));
    let (st, r) = ours.post("/v1/sale", &sale("MTLS-1", 1000)).await;
    assert_eq!(
        (st, r["status"].as_str()),
        (StatusCode::OK, Some("approved")),
        "{r}"
    );
    // With TLS 1.3 a refused client certificate shows on the first request.
    let foreign = mtls_client(&w, gw.addr, Some(&other.certs()));
    let refused = foreign
        .call(
            hyper::Method::POST,
            "/v1/sale",
            Some(sale_text("MTLS-2").into_bytes()),
        )
        .await;
    assert!(refused.is_err(), "another CA's client: {refused:?}");
    let anonymous = mtls_client(&w, gw.addr, None);
    let refused = anonymous
        .call(hyper::Method::GET, "/v1/getVersion", None)
        .await;
    assert!(refused.is_err(), "no client certificate: {refused:?}");
    let stats = sim_stats(&w.terminal_client(sim.addr)).await;
    assert_eq!(stats["requests"], 1, "only our client's sale: {stats}");
}

#[cfg(unix)]
#[tokio::test]
async fn keys_and_journal_are_private_and_expiry_is_reported() {
    use std::os::unix::fs::PermissionsExt;
    let w = World::new();
    let sim = w.sim(&["--card-time", "0"]);
    let gw = w.gateway(&w.gateway_config(sim.addr, json!({})));
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(
        mode(&w.path("journal.db")),
        0o600,
        "the journal is owner-only"
    );
    let c = w.gateway_client(gw.addr);
    let (_, metrics) = c.get("/metrics").await;
    let metrics = metrics.as_str().unwrap().to_string();
    let line = metrics
        .lines()
        .find(|l| l.starts_with("ecrlink_certificate_expiry_seconds{file=\"gateway.pem\"}"))
        .unwrap_or_else(|| panic!("gateway.pem expiry in {metrics}"));
    let left: i64 = line.rsplit(' ').next().unwrap().parse().unwrap();
    assert!((360 * 86_400..=365 * 86_400).contains(&left), "{line}");
    let log = gw.log_text();
    assert!(log.contains("the CA key sits in certsDir"), "{log}");
    drop(gw);
    // A key others can read is refused.
    let key = w.certs().join(pki::GATEWAY_KEY);
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let path = w.path("exposed-key.json");
    let config = w.gateway_config(sim.addr, json!({"journal": w.path("j3.db")}));
    std::fs::write(&path, config.to_string()).unwrap();
    let (success, said) = serve_exits(&path);
    assert!(!success, "{said}");
    assert!(
        said.contains("gateway.key") && said.contains("chmod 600"),
        "{said}"
    );
}
