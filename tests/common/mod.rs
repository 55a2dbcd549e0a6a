//! Test harness: a throwaway PKI, the real `ecrlink` binary started as simulator or
//! gateway on port 0 (the bound address read from its first stdout line, the process
//! killed on drop), and a verifying HTTPS client. Nothing here sleeps to
//! synchronise: waits poll a condition against a deadline.
#![allow(dead_code)]

pub mod broker;
pub mod lan;
pub mod proxy;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use ecrlink::http::client::{ClientError, HttpClient};
use ecrlink::pki::{self, InitOptions};
use ecrlink::tls;
use hyper::{Method, StatusCode};
use rustls::pki_types::ServerName;
use serde_json::{Value, json};
use tempfile::TempDir;

pub const DEVICE: &str = "ECRLINK-SIM-0001";

/// A folder with a fresh PKI (terminal certificate valid for 127.0.0.1) and room
/// for journals, configs, state files and logs.
pub struct World {
    pub dir: TempDir,
}

impl World {
    pub fn new() -> World {
        let dir = tempfile::tempdir().expect("temp dir");
        pki::init(&InitOptions {
            dir: dir.path().join("certs"),
            terminal_ips: vec!["127.0.0.1".parse().unwrap()],
            gateway_names: Vec::new(),
            force: false,
        })
        .expect("pki init");
        World { dir }
    }

    pub fn certs(&self) -> PathBuf {
        self.dir.path().join("certs")
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// A gateway config for this world, pointing at `terminal`, with fast timings;
    /// `extra` keys are merged over it.
    pub fn gateway_config(&self, terminal: SocketAddr, extra: Value) -> Value {
        let mut config = json!({
            "port": "0", "url": "localhost", "mode": "F", "SSL": "True",
            "terminalIp": terminal.to_string(), "deviceId": DEVICE,
            "staticIptimeOut": 2, "timeStop": 20, "pollSeconds": 0.2, "loopsBefore": 3, "retries": 600,
            "certsDir": self.certs(), "journal": self.path("journal.db"),
        });
        if let (Value::Object(base), Value::Object(extra)) = (&mut config, extra) {
            base.extend(extra);
        }
        config
    }

    pub fn sim(&self, args: &[&str]) -> Proc {
        self.sim_on("127.0.0.1:0".parse().unwrap(), args)
    }

    /// A simulator on a given address (to restart a terminal at its fixed IP: hold the
    /// address with a [`PortHold`] so nobody else can take it in between).
    pub fn sim_on(&self, listen: SocketAddr, args: &[&str]) -> Proc {
        let mut all = vec![
            "sim".to_string(),
            "--listen".into(),
            listen.to_string(),
            "--certs".into(),
            self.certs().display().to_string(),
        ];
        all.extend(args.iter().map(|s| s.to_string()));
        Proc::start(&all, &self.path(&format!("sim-{}.log", unique())))
    }

    /// A gateway with `config` written to a file in this world.
    pub fn gateway(&self, config: &Value) -> Proc {
        let path = self.path(&format!("config-{}.json", unique()));
        std::fs::write(&path, serde_json::to_vec_pretty(config).unwrap()).unwrap();
        Proc::start(
            &[
                "serve".into(),
                "--config".into(),
                path.display().to_string(),
            ],
            &self.path(&format!("gateway-{}.log", unique())),
        )
    }

    /// A client that verifies the gateway's certificate for `localhost`.
    pub fn gateway_client(&self, addr: SocketAddr) -> Client {
        let tls = tls::client_config(&self.certs().join(pki::CA_CERT), None).unwrap();
        let name = ServerName::try_from("localhost").unwrap().to_owned();
        Client(HttpClient::https(addr, tls, name, Duration::from_secs(5)))
    }

    /// A client that talks to the simulator as the gateway would.
    pub fn terminal_client(&self, addr: SocketAddr) -> Client {
        self.terminal_client_with_ca(addr, &self.certs().join(pki::CA_CERT))
    }

    pub fn terminal_client_with_ca(&self, addr: SocketAddr, ca: &Path) -> Client {
        let tls = tls::client_config(ca, None).unwrap();
        Client(HttpClient::https(
            addr,
            tls,
            tls::terminal_server_name(),
            Duration::from_secs(5),
        ))
    }
}

fn unique() -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// The `ecrlink` binary under test: cargo's `CARGO_BIN_EXE_ecrlink` in the integration
/// tests. The `bench_*` examples that share this harness get no such variable: for them
/// `$BENCH_ECRLINK_BIN`, else the binary next to the examples' folder
/// (`<target>/release/examples/bench_x` → `<target>/release/ecrlink`).
pub fn ecrlink_bin() -> String {
    if let Some(path) = option_env!("CARGO_BIN_EXE_ecrlink") {
        return path.to_string();
    }
    if let Ok(path) = std::env::var("BENCH_ECRLINK_BIN") {
        return path;
    }
    let exe = std::env::current_exe().expect("current exe");
    let bin = exe
        .parent()
        .and_then(Path::parent)
        .map(|d| d.join("ecrlink"))
        .expect("target folder");
    assert!(
        bin.exists(),
        "{} not found: run `cargo build --release` first or set BENCH_ECRLINK_BIN",
        bin.display()
    );
    bin.display().to_string()
}

/// A loopback port reserved for as long as this value lives: a socket bound with
/// SO_REUSEADDR that never listens. Connections to the port are refused until someone
/// listens on it; a process that binds it with SO_REUSEADDR too (the simulator,
/// mosquitto, [`PortHold::listen`]) can, and the kernel hands the port to nobody else
/// in between, so a server can stop and start again on the same port without a
/// "bind 0, close, bind again" race.
pub struct PortHold {
    _socket: tokio::net::TcpSocket,
    pub addr: SocketAddr,
}

impl PortHold {
    pub fn loopback() -> PortHold {
        PortHold::on("127.0.0.1:0".parse().unwrap())
    }

    pub fn on(addr: SocketAddr) -> PortHold {
        let socket = reusable(addr);
        let addr = socket.local_addr().expect("held port");
        PortHold {
            _socket: socket,
            addr,
        }
    }

    /// A listener of this process on the held port.
    pub fn listen(&self) -> tokio::net::TcpListener {
        reusable(self.addr)
            .listen(1024)
            .expect("listen on the held port")
    }
}

fn reusable(addr: SocketAddr) -> tokio::net::TcpSocket {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()
    } else {
        tokio::net::TcpSocket::new_v6()
    }
    .expect("socket");
    socket.set_reuseaddr(true).expect("SO_REUSEADDR");
    socket
        .bind(addr)
        .unwrap_or_else(|e| panic!("bind {addr}: {e}"));
    socket
}

/// A running `ecrlink` process, killed (SIGKILL) when dropped.
pub struct Proc {
    pub child: Child,
    pub addr: SocketAddr,
    pub log: PathBuf,
}

impl Proc {
    pub fn start(args: &[String], log: &Path) -> Proc {
        Proc::start_program(&ecrlink_bin(), args, log)
    }

    /// Starts `program ARGS` (e.g. `ip netns exec NS ecrlink …`), which must print
    /// `listening on ADDR` first.
    pub fn start_program(program: &str, args: &[String], log: &Path) -> Proc {
        let log_file = std::fs::File::create(log).unwrap();
        let mut child = Command::new(program)
            .args(args)
            .env(
                "RUST_LOG",
                std::env::var("TEST_RUST_LOG").unwrap_or_else(|_| "info".into()),
            )
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log_file)
            .spawn()
            .expect("start ecrlink");
        let stdout = child.stdout.take().unwrap();
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).unwrap();
        let Some(addr) = line.trim().strip_prefix("listening on ") else {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "ecrlink {args:?} did not start: {line:?}\n{}",
                std::fs::read_to_string(log).unwrap_or_default()
            );
        };
        let addr = addr
            .trim_start_matches("https://")
            .trim_start_matches("http://")
            .parse()
            .unwrap();
        Proc {
            child,
            addr,
            log: log.to_path_buf(),
        }
    }

    /// SIGKILL, and reap.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Waits for the process to exit by itself and returns its exit code.
    pub fn wait_exit(&mut self, within: Duration) -> Option<i32> {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status.code();
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        None
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

#[derive(Clone)]
pub struct Client(pub HttpClient);

impl Client {
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> Result<(StatusCode, Value), ClientError> {
        let (status, bytes) = self
            .0
            .request(method, path, body, Duration::from_secs(60))
            .await?;
        let value = serde_json::from_slice(&bytes)
            .unwrap_or(Value::String(String::from_utf8_lossy(&bytes).into()));
        Ok((status, value))
    }

    pub async fn get(&self, path: &str) -> (StatusCode, Value) {
        self.call(Method::GET, path, None).await.expect("GET")
    }

    pub async fn post(&self, path: &str, body: &Value) -> (StatusCode, Value) {
        self.call(Method::POST, path, Some(serde_json::to_vec(body).unwrap()))
            .await
            .expect("POST")
    }

    pub async fn post_raw(&self, path: &str, body: &[u8]) -> (StatusCode, Value) {
        self.call(Method::POST, path, Some(body.to_vec()))
            .await
            .expect("POST")
    }
}

pub fn sale(id: &str, amount: u64) -> Value {
    json!({"deviceId": DEVICE, "transactionId": id, "paymentApp": "comercia",
           "amount": amount, "currencyCode": "EUR", "otherData": {"printReceipt": 0}})
}

/// Polls `check` until it returns `Some`, failing the test after `within`.
pub async fn eventually<T, F, Fut>(within: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + within;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits until the terminal says it is running transaction `id`.
pub async fn wait_at_terminal(terminal: &Client, id: &str) {
    eventually(
        Duration::from_secs(5),
        &format!("{id} at the terminal"),
        || async {
            let (_, cur) = terminal.get("/v1/transactions/current").await;
            (cur["transactionId"] == id).then_some(())
        },
    )
    .await;
}

/// The simulator's own counters (`/sim/stats`).
pub async fn sim_stats(client: &Client) -> Value {
    client.get("/sim/stats").await.1
}

/// Replaces the simulator's faults (`POST /sim/faults`) and checks it took them; `{}`
/// clears every fault, a held payment (`holdPayments`) included.
pub async fn set_faults(terminal: &Client, faults: Value) {
    let (st, body) = terminal.post("/sim/faults", &faults).await;
    assert_eq!(st, StatusCode::OK, "POST /sim/faults {faults}: {body}");
}
