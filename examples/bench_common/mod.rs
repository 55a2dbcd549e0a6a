//! Shared pieces of the `bench_*` examples: a throwaway PKI, the release `ecrlink`
//! binary started on loopback port 0 (killed on drop), a keep-alive HTTPS client
//! built on hyper's `client::conn::http1` over tokio-rustls, and percentiles.
//!
//! Every loop in the benchmarks is bounded in count and by a wall-clock budget, and
//! every network call has a deadline. Traffic only ever goes to 127.0.0.1.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use ecrlink::pki::{self, InitOptions};
use ecrlink::tls;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper::header::{CONTENT_TYPE, HOST, HeaderValue};
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use serde_json::{Value, json};
use tempfile::TempDir;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

pub const DEVICE: &str = "ECRLINK-SIM-0001";
/// Deadline for one request on an open connection.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(10);
/// Deadline for a started process to print its `listening on` line.
pub const START_TIMEOUT: Duration = Duration::from_secs(20);

/// The `ecrlink` binary: `$BENCH_ECRLINK_BIN` (not `ECRLINK_*`: that prefix is the
/// gateway's config namespace), else the one next to this example's folder
/// (`<target>/release/examples/bench_x` -> `<target>/release/ecrlink`).
pub fn ecrlink_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("BENCH_ECRLINK_BIN") {
        return PathBuf::from(p);
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
    bin
}

/// `--name value` from the command line, parsed, or `default`.
pub fn arg<T: std::str::FromStr>(name: &str, default: T) -> T {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .map(|v| {
            v.parse()
                .unwrap_or_else(|_| panic!("{name}: cannot parse {v:?}"))
        })
        .unwrap_or(default)
}

/// A folder with a fresh PKI (terminal certificate also valid for 127.0.0.1).
pub struct World {
    pub dir: TempDir,
}

impl World {
    /// The folder is made under `base` (a real disk, so fsync costs what it costs).
    pub fn new(base: &Path) -> World {
        std::fs::create_dir_all(base).expect("bench folder");
        let dir = tempfile::Builder::new()
            .prefix("ecrlink-bench-")
            .tempdir_in(base)
            .expect("temp dir");
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

    pub fn sim(&self) -> Proc {
        Proc::start(
            &[
                "sim",
                "--listen",
                "127.0.0.1:0",
                "--certs",
                &self.certs().display().to_string(),
                "--card-time",
                "0",
            ],
            &self.path("sim.log"),
        )
    }

    /// Writes a gateway config (as `tests/common` does, port 0) pointing at `terminal`.
    pub fn gateway_config(&self, terminal: SocketAddr, journal: &str) -> PathBuf {
        let config = json!({
            "port": "0", "url": "localhost", "mode": "F", "SSL": "True",
            "terminalIp": terminal.to_string(), "deviceId": DEVICE,
            "staticIptimeOut": 2, "timeStop": 20, "pollSeconds": 0.2, "loopsBefore": 3, "retries": 600,
            "certsDir": self.certs(), "journal": self.path(journal),
        });
        let path = self.path(&format!("config-{journal}.json"));
        std::fs::write(&path, serde_json::to_vec_pretty(&config).unwrap()).unwrap();
        path
    }

    pub fn gateway(&self, config: &Path) -> Proc {
        Proc::start(
            &["serve", "--config", &config.display().to_string()],
            &self.path("gateway.log"),
        )
    }

    /// Client side TLS trusting the project CA.
    pub fn client_tls(&self) -> Arc<rustls::ClientConfig> {
        tls::client_config(&self.certs().join(pki::CA_CERT), None).expect("client TLS")
    }
}

/// A running `ecrlink` process, SIGKILLed and reaped on drop.
pub struct Proc {
    pub child: Child,
    pub addr: SocketAddr,
    /// From spawn to the `listening on` line.
    pub ready_after: Duration,
}

impl Proc {
    pub fn start(args: &[&str], log: &Path) -> Proc {
        let log_file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .unwrap();
        let mut command = Command::new(ecrlink_bin());
        // Only the config file counts: no ECRLINK_* override from the caller's shell.
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("ECRLINK_") {
                command.env_remove(key);
            }
        }
        let spawned = Instant::now();
        let mut child = command
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log_file)
            .spawn()
            .expect("start ecrlink");
        let stdout = child.stdout.take().unwrap();
        // The read runs on a thread so a process that never prints cannot hang us.
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut reader = BufReader::new(stdout);
            let mut line = String::new();
            let _ = reader.read_line(&mut line);
            let _ = tx.send(line);
            // Keep draining so the child never blocks on a full pipe.
            let mut sink = String::new();
            while reader.read_line(&mut sink).map(|n| n > 0).unwrap_or(false) {
                sink.clear();
            }
        });
        // A timeout leaves the line empty and is reported below with the log.
        let line: String = rx.recv_timeout(START_TIMEOUT).unwrap_or_default();
        let ready_after = spawned.elapsed();
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
            .expect("bound address");
        Proc {
            child,
            addr,
            ready_after,
        }
    }

    /// Resident set size now, in KiB, from /proc/PID/status.
    pub fn rss_kib(&self) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).ok()?;
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One persistent HTTP/1.1 connection over verified TLS.
pub struct KeepAlive {
    sender: SendRequest<Full<Bytes>>,
    host: HeaderValue,
    driver: tokio::task::JoinHandle<()>,
}

impl KeepAlive {
    /// TCP-connects to `addr` and verifies the certificate for `name`.
    pub async fn connect(
        addr: SocketAddr,
        tls: Arc<rustls::ClientConfig>,
        name: &str,
    ) -> KeepAlive {
        assert!(addr.ip().is_loopback(), "benchmarks only talk to loopback");
        let server_name = ServerName::try_from(name.to_string()).expect("server name");
        let connecting = async {
            let tcp = TcpStream::connect(addr).await.expect("connect");
            tcp.set_nodelay(true).expect("nodelay");
            let tls = TlsConnector::from(tls)
                .connect(server_name, tcp)
                .await
                .expect("TLS handshake (verified)");
            hyper::client::conn::http1::handshake(TokioIo::new(tls))
                .await
                .expect("HTTP handshake")
        };
        let (sender, conn) = tokio::time::timeout(CALL_TIMEOUT, connecting)
            .await
            .expect("connect within deadline");
        let driver = tokio::spawn(async move {
            let _ = conn.await;
        });
        KeepAlive {
            sender,
            host: HeaderValue::from_str(&format!("{name}:{}", addr.port())).unwrap(),
            driver,
        }
    }

    /// One request; returns status and body. Panics on a transport error or timeout.
    pub async fn call(
        &mut self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> (StatusCode, Bytes) {
        self.call_within(method, path, body, CALL_TIMEOUT).await
    }

    /// `ecrlink_journal_commits_total` from the gateway's `/metrics` on this connection.
    pub async fn journal_commits(&mut self) -> u64 {
        let (status, body) = self.call(Method::GET, "/metrics", None).await;
        assert_eq!(status, StatusCode::OK, "/metrics");
        String::from_utf8_lossy(&body)
            .lines()
            .find_map(|l| l.strip_prefix("ecrlink_journal_commits_total "))
            .and_then(|v| v.trim().parse().ok())
            .expect("ecrlink_journal_commits_total in /metrics")
    }

    /// [`KeepAlive::call`] with another deadline (a sale that may take `timeStop`).
    pub async fn call_within(
        &mut self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
        deadline: Duration,
    ) -> (StatusCode, Bytes) {
        let mut req = Request::builder()
            .method(method)
            .uri(path)
            .header(HOST, self.host.clone());
        if body.is_some() {
            req = req.header(CONTENT_TYPE, "application/json");
        }
        let req = req
            .body(Full::new(Bytes::from(body.unwrap_or_default())))
            .unwrap();
        let exchange = async {
            self.sender.ready().await.expect("connection ready");
            let resp = self.sender.send_request(req).await.expect("send");
            let status = resp.status();
            let bytes = resp.into_body().collect().await.expect("body").to_bytes();
            (status, bytes)
        };
        tokio::time::timeout(deadline, exchange)
            .await
            .expect("answer within deadline")
    }
}

impl Drop for KeepAlive {
    fn drop(&mut self) {
        self.driver.abort();
    }
}

/// A sale request body the simulator approves (amount not ending in 01/02/03).
pub fn sale(id: &str) -> Vec<u8> {
    let v: Value = json!({"deviceId": DEVICE, "transactionId": id, "paymentApp": "comercia",
           "amount": 1000, "currencyCode": "EUR", "otherData": {"printReceipt": 0}});
    serde_json::to_vec(&v).unwrap()
}

/// Nearest-rank percentile (p in 0..=100) of sorted samples.
pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    assert!(!sorted.is_empty());
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

pub fn median_f64(values: &[f64]) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Median and p99 (ms) of one run's samples.
pub fn summarize(samples: &mut [Duration]) -> (f64, f64) {
    samples.sort();
    (ms(percentile(samples, 50.0)), ms(percentile(samples, 99.0)))
}

/// A wall-clock budget shared by all loops of a benchmark: exceeding it aborts.
pub struct Budget {
    until: Instant,
    total: Duration,
}

impl Budget {
    pub fn new(total: Duration) -> Budget {
        Budget {
            until: Instant::now() + total,
            total,
        }
    }

    pub fn check(&self, what: &str) {
        assert!(
            Instant::now() < self.until,
            "time budget of {:?} exceeded during {what}; figures would be partial",
            self.total
        );
    }
}

/// Where temp folders go: `$BENCH_DIR`, else `<target>/bench-tmp` (same disk as the build).
pub fn bench_base() -> PathBuf {
    if let Some(p) = std::env::var_os("BENCH_DIR") {
        return PathBuf::from(p);
    }
    let exe = std::env::current_exe().expect("current exe");
    exe.parent()
        .and_then(Path::parent)
        .map(|d| d.join("bench-tmp"))
        .expect("target folder")
}
