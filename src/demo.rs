//! `ecrlink demo`: a store of three lanes on loopback with a throwaway PKI — two simulated
//! InStore terminals, one `comercia-pos` terminal with a vendor CA of its own, and one
//! gateway — a real sale on each lane at once over verified TLS, then the curl lines to try.

use std::path::Path;
use std::time::Duration;

use hyper::{Method, StatusCode};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::{self, Overrides};
use crate::constants::DEFAULT_DEVICE_ID;
use crate::http::client::HttpClient;
use crate::pki::{self, InitOptions};
use crate::serve::Gateway;
use crate::sim::{Faults, Fleet, FleetOptions, SimProfile};
use crate::terminal::wire::{TxnResult, TxnStatus};
use crate::tls;

#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error("{0}")]
    Setup(String),
    #[error("the demo sale did not succeed: {0}")]
    Sale(String),
}

/// The demo store's InStore lanes, each with its own simulated terminal.
const LANES: u16 = 2;

/// The third lane: a `comercia-pos` terminal, its certificate for this name from a
/// vendor CA that is not ecrlink's.
const COMERCIA_LANE: &str = "ECRLINK-POS-0003";
const COMERCIA_NAME: &str = "pos.comercia.demo";

fn setup<E: std::fmt::Display>(what: &str) -> impl FnOnce(E) -> DemoError + '_ {
    move |e| DemoError::Setup(format!("{what}: {e}"))
}

/// Runs the demo. With `smoke`, one sale and exit; otherwise serve until `shutdown`.
pub async fn run(smoke: bool, shutdown: CancellationToken) -> Result<Vec<TxnResult>, DemoError> {
    let dir = tempfile::Builder::new()
        .prefix("ecrlink-demo-")
        .tempdir()
        .map_err(setup("temporary folder"))?;
    let certs = dir.path().join("certs");
    pki::init(&InitOptions {
        dir: certs.clone(),
        terminal_ips: vec!["127.0.0.1".parse().expect("literal IP")],
        gateway_names: Vec::new(),
        force: false,
    })
    .map_err(setup("certificates"))?;

    let vendor = dir.path().join("vendor");
    let loopback = ["127.0.0.1".parse().expect("literal IP")];
    pki::vendor_ca(&vendor, COMERCIA_NAME, &loopback, false).map_err(setup("vendor CA"))?;

    let tasks = TaskTracker::new();
    let options = FleetOptions {
        listen: "127.0.0.1:0".parse().expect("literal address"),
        devices: LANES,
        certs: certs.clone(),
        device_id: DEFAULT_DEVICE_ID.to_string(),
        card_time: if smoke {
            Duration::from_millis(200)
        } else {
            Duration::from_secs(2)
        },
        state: None,
        faults: Faults::default(),
        mdns: None,
        mqtt: None,
        profile: SimProfile::Instore,
    };
    let comercia = FleetOptions {
        devices: 1,
        certs: vendor.clone(),
        device_id: COMERCIA_LANE.into(),
        profile: SimProfile::ComerciaPos,
        ..options.clone()
    };
    let fleet = Fleet::bind(options).await.map_err(setup("simulators"))?;
    let comercia = Fleet::bind(comercia).await.map_err(setup("simulators"))?;
    let mut lanes = fleet.terminals();
    lanes.extend(comercia.terminals());
    tasks.spawn(fleet.run(shutdown.clone()));
    tasks.spawn(comercia.run(shutdown.clone()));

    let mut terminals: Vec<_> = (lanes.iter())
        .map(|(id, addr)| serde_json::json!({"deviceId": id, "terminalIp": addr.to_string()}))
        .collect();
    terminals[LANES as usize]["profile"] = "comercia-pos".into();
    terminals[LANES as usize]["serverName"] = COMERCIA_NAME.into();
    terminals[LANES as usize]["caCert"] = vendor.join(pki::CA_CERT).display().to_string().into();
    let config_json = serde_json::json!({
        "port": "0", "url": "localhost", "SSL": "True", "mode": "F", "terminals": terminals,
        "staticIptimeOut": 5, "timeStop": 60, "pollSeconds": 2, "loopsBefore": 3,
        "certsDir": certs, "journal": dir.path().join("journal.db"),
    });
    let config = config::load_from(Some(&config_json.to_string()), &[], &Overrides::default())
        .map_err(setup("demo configuration"))?;
    let gateway = Gateway::prepare(&config, shutdown.clone())
        .await
        .map_err(setup("gateway"))?;
    let listener = TcpListener::bind(config.listen)
        .await
        .map_err(setup("gateway port"))?;
    let api_addr = listener.local_addr().map_err(setup("gateway port"))?;
    tasks.spawn(gateway.run(listener, shutdown.clone()));
    for (id, addr) in &lanes {
        let how = match id.as_str() {
            COMERCIA_LANE => {
                format!("comercia-pos, verified as {COMERCIA_NAME} against its vendor CA")
            }
            _ => "verified as instorepaymentapi.globalpayments.es".into(),
        };
        println!("simulated terminal {id} at https://{addr} ({how})");
    }
    println!("gateway API at https://localhost:{}", api_addr.port());

    // One sale per lane, at the same time: neither lane waits for the other.
    let (first, second, third) = tokio::join!(
        demo_sale(&certs, api_addr, &lanes[0].0),
        demo_sale(&certs, api_addr, &lanes[1].0),
        demo_sale(&certs, api_addr, &lanes[2].0)
    );
    let results = [first, second, third];
    for r in results.iter().flatten() {
        println!(
            "demo sale {} on {}: {} {} {:.2} {} (authorization {})",
            r.transaction_id,
            r.device_id,
            r.status.as_str(),
            r.kind.as_str(),
            r.amount as f64 / 100.0,
            r.currency_code,
            r.authorization_code.as_deref().unwrap_or("-")
        );
    }
    let result = results.into_iter().collect::<Result<Vec<_>, _>>();
    if !smoke {
        print_curl_lines(&certs, api_addr.port(), &lanes[1].0);
        shutdown.cancelled().await;
    }
    shutdown.cancel();
    tasks.close();
    tasks.wait().await;
    result
}

async fn demo_sale(
    certs: &Path,
    api: std::net::SocketAddr,
    device_id: &str,
) -> Result<TxnResult, DemoError> {
    let tls = tls::client_config(&certs.join(pki::CA_CERT), None).map_err(setup("client TLS"))?;
    let name = rustls::pki_types::ServerName::try_from("localhost")
        .map_err(setup("server name"))?
        .to_owned();
    let client = HttpClient::https(api, tls, name, Duration::from_secs(5));
    let id = format!(
        "demo-{device_id}-{}",
        time::OffsetDateTime::now_utc().unix_timestamp_nanos()
    );
    let body = serde_json::json!({
        "deviceId": device_id, "transactionId": id, "paymentApp": "comercia",
        "amount": 1000, "currencyCode": "EUR", "otherData": {"printReceipt": 0}
    });
    let (status, bytes) = client
        .request(
            Method::POST,
            "/v1/sale",
            Some(body.to_string().into_bytes()),
            Duration::from_secs(90),
        )
        .await
        .map_err(|e| DemoError::Sale(e.to_string()))?;
    let result: TxnResult = serde_json::from_slice(&bytes).map_err(|e| {
        DemoError::Sale(format!(
            "status {status}: {e}: {}",
            String::from_utf8_lossy(&bytes)
        ))
    })?;
    if status != StatusCode::OK || result.status != TxnStatus::Approved {
        return Err(DemoError::Sale(format!(
            "status {status}, outcome {}",
            result.status.as_str()
        )));
    }
    Ok(result)
}

fn print_curl_lines(certs: &Path, port: u16, second_lane: &str) {
    let ca = certs.join(pki::CA_CERT);
    let ca = ca.display();
    println!(
        "\nTry it (Ctrl-C stops the demo and deletes its certificates and journal):\n\
         curl --cacert {ca} https://localhost:{port}/v1/getVersion\n\
         curl --cacert {ca} -H 'Content-Type: application/json' https://localhost:{port}/v1/sale \\\n  \
         -d '{{\"deviceId\":\"{second_lane}\",\"transactionId\":\"T-1001\",\"paymentApp\":\"comercia\",\"amount\":1250,\"currencyCode\":\"EUR\",\"otherData\":{{\"printReceipt\":0}}}}'\n\
         curl --cacert {ca} https://localhost:{port}/v1/transactions/T-1001\n\
         curl --cacert {ca} https://localhost:{port}/v1/transactions\n\
         curl --cacert {ca} https://localhost:{port}/v1/terminals\n\
         ecrlink pay --amount 7.50 --device {second_lane} --url https://localhost:{port} --cacert {ca}\n\
         status page: https://localhost:{port}/ (trusting {ca})\n\
         (amounts ending in 01 are declined, 02 cancelled by the cardholder, 03 a card read error)"
    );
}
