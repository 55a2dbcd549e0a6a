//! ecrlink against a TLS re-encrypting proxy, in one run on 127.0.0.1 (issue 13):
//! the same sales (`--card-time 0`, unique ids) sent **straight** to a simulator,
//! through **nginx** (TLS on both sides, the simulator's certificate and name verified
//! against the run's CA, upstream keep-alive, no durability), and through **ecrlink**
//! (the release binary: journaled, every invariant on).
//!
//! - Sequential latency: one keep-alive POS connection per path, `--rounds` rounds of
//!   `--sales` sales, the three paths interleaved sale by sale; medians and p99 per
//!   round, the median of rounds, and what each path adds over straight.
//! - Throughput at `--lanes` lanes: as many simulators and POS connections, one lane
//!   per connection, all selling at once for `--secs` seconds per path, rounds
//!   interleaved; sales/s and the ratio ecrlink / nginx.
//! - Journal: commits per sale from `/metrics` (`ecrlink_journal_commits_total`), and
//!   with `--strace` fsync/fdatasync calls per sale counted by `strace -c -f`.
//!
//! Needs nginx (Debian `nginx`); `scripts/bench-vs-nginx.sh` installs it and runs this.
//!
//! cargo build --release && cargo run --release --example bench_vs_nginx -- \
//!     [--rounds 5] [--sales 200] [--lanes 32] [--secs 5] [--strace 1]

#[path = "bench_common/mod.rs"]
mod bench_common;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bench_common::*;
use hyper::{Method, StatusCode};
use serde_json::{Value, json};

const TERMINAL_NAME: &str = "instorepaymentapi.globalpayments.es";

/// The three ways a sale can go.
#[derive(Clone, Copy, Debug)]
enum Path3 {
    Straight,
    Nginx,
    Ecrlink,
}

const PATHS: [Path3; 3] = [Path3::Straight, Path3::Nginx, Path3::Ecrlink];

struct Setup {
    world: World,
    sims: Vec<Proc>,
    nginx: Nginx,
    gateway: Proc,
}

impl Setup {
    fn device(lane: usize) -> String {
        format!("LANE-{lane:03}")
    }

    /// Where a POS connection for `path` goes, the name it verifies, the URL prefix.
    fn target(&self, path: Path3, lane: usize) -> (SocketAddr, &'static str, String) {
        match path {
            Path3::Straight => (self.sims[lane].addr, TERMINAL_NAME, String::new()),
            Path3::Nginx => (self.nginx.addr, "localhost", format!("/lane{lane}")),
            Path3::Ecrlink => (self.gateway.addr, "localhost", String::new()),
        }
    }

    async fn connect(&self, path: Path3, lane: usize) -> Lane {
        let (addr, name, prefix) = self.target(path, lane);
        Lane {
            conn: KeepAlive::connect(addr, self.world.client_tls(), name).await,
            prefix,
            device: Setup::device(lane),
        }
    }
}

struct Lane {
    conn: KeepAlive,
    prefix: String,
    device: String,
}

static SALE_ID: AtomicU64 = AtomicU64::new(0);

impl Lane {
    async fn sale(&mut self) -> Duration {
        let n = SALE_ID.fetch_add(1, Ordering::Relaxed);
        let body = json!({"deviceId": self.device, "transactionId": format!("B-{n}"),
            "paymentApp": "comercia", "amount": 1000, "currencyCode": "EUR"});
        let t0 = Instant::now();
        let (status, bytes) = self
            .conn
            .call(
                Method::POST,
                &format!("{}/v1/sale", self.prefix),
                Some(serde_json::to_vec(&body).unwrap()),
            )
            .await;
        let took = t0.elapsed();
        let v: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        assert!(
            status == StatusCode::OK && v["status"] == "approved",
            "sale {n} via {}: {status} {v}",
            self.prefix
        );
        took
    }
}

struct Nginx {
    child: Child,
    addr: SocketAddr,
}

impl Drop for Nginx {
    /// SIGTERM: the master stops its workers too (a SIGKILL would orphan them).
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
    }
}

fn free_port() -> SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap()
}

/// nginx with its own config in `dir`: TLS for the POS with the gateway's certificate,
/// one upstream per simulator, verified like ecrlink verifies the terminal.
fn nginx(dir: &Path, certs: &Path, sims: &[Proc], workers: usize) -> Nginx {
    let addr = free_port();
    let mut upstreams = String::new();
    let mut locations = String::new();
    for (i, sim) in sims.iter().enumerate() {
        upstreams.push_str(&format!(
            "upstream sim{i} {{ server {}; keepalive 8; }}\n",
            sim.addr
        ));
        locations.push_str(&format!(
            "location /lane{i}/ {{ proxy_pass https://sim{i}/; }}\n"
        ));
    }
    let c = |f: &str| certs.join(f).display().to_string();
    let conf = format!(
        "worker_processes {workers};\ndaemon off;\npid {pid};\nerror_log {err} warn;\n\
         events {{ worker_connections 1024; }}\n\
         http {{\n access_log off;\n client_body_temp_path {tmp};\n proxy_temp_path {tmp};\n\
         {upstreams}\
         server {{\n  listen {addr} ssl;\n  ssl_certificate {cert};\n  ssl_certificate_key {key};\n\
          keepalive_requests 1000000;\n\
          proxy_http_version 1.1;\n  proxy_set_header Connection \"\";\n\
          proxy_set_header Host {TERMINAL_NAME};\n\
          proxy_ssl_verify on;\n  proxy_ssl_trusted_certificate {ca};\n\
          proxy_ssl_name {TERMINAL_NAME};\n  proxy_ssl_server_name on;\n  proxy_ssl_session_reuse on;\n\
          {locations}\
         }}\n}}\n",
        pid = dir.join("nginx.pid").display(),
        err = dir.join("nginx-error.log").display(),
        tmp = dir.display(),
        cert = c("gateway.pem"),
        key = c("gateway.key"),
        ca = c("ca.pem"),
    );
    let path = dir.join("nginx.conf");
    std::fs::write(&path, conf).unwrap();
    let child = Command::new(nginx_bin())
        .args(["-p", &dir.display().to_string(), "-c"])
        .arg(&path)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .spawn()
        .expect("start nginx (apt-get install nginx)");
    // Ready when it accepts connections.
    let started = Instant::now();
    while std::net::TcpStream::connect(addr).is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "nginx did not start: {}",
            std::fs::read_to_string(dir.join("nginx-error.log")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    Nginx { child, addr }
}

fn nginx_bin() -> PathBuf {
    ["/usr/sbin/nginx", "/usr/bin/nginx"]
        .into_iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
        .expect("nginx not installed (apt-get install nginx)")
}

fn gateway_config(world: &World, sims: &[Proc]) -> PathBuf {
    let terminals: Vec<Value> = sims
        .iter()
        .enumerate()
        .map(|(i, s)| json!({"deviceId": Setup::device(i), "terminalIp": s.addr.to_string()}))
        .collect();
    let config = json!({
        "port": "0", "url": "localhost", "mode": "F", "SSL": "True",
        "terminals": terminals,
        "staticIptimeOut": 2, "timeStop": 20, "pollSeconds": 0.2, "loopsBefore": 3, "retries": 600,
        "certsDir": world.certs(), "journal": world.path("journal.db"),
    });
    let path = world.path("config-lanes.json");
    std::fs::write(&path, serde_json::to_vec_pretty(&config).unwrap()).unwrap();
    path
}

async fn journal_commits(setup: &Setup) -> u64 {
    KeepAlive::connect(setup.gateway.addr, setup.world.client_tls(), "localhost")
        .await
        .journal_commits()
        .await
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let rounds: usize = arg("--rounds", 5);
    let sales: usize = arg("--sales", 200);
    let lanes: usize = arg("--lanes", 32);
    let secs: u64 = arg("--secs", 5);
    let strace: u8 = arg("--strace", 0);
    let workers: usize = arg("--nginx-workers", 2);
    let budget = Budget::new(Duration::from_secs(arg("--budget-secs", 900)));

    let world = World::new(&bench_base());
    let sims: Vec<Proc> = (0..lanes.max(1))
        .map(|i| {
            let device = Setup::device(i);
            Proc::start(
                &[
                    "sim",
                    "--listen",
                    "127.0.0.1:0",
                    "--certs",
                    &world.certs().display().to_string(),
                    "--card-time",
                    "0",
                    "--device-id",
                    &device,
                ],
                &world.path(&format!("sim-{i}.log")),
            )
        })
        .collect();
    let nginx = nginx(world.dir.path(), &world.certs(), &sims, workers);
    let gateway = world.gateway(&gateway_config(&world, &sims));
    let setup = Setup {
        world,
        sims,
        nginx,
        gateway,
    };
    println!(
        "{lanes} simulators (--card-time 0), nginx with {workers} workers, ecrlink serve; \
         sequential: {rounds} rounds x {sales} sales per path, interleaved"
    );

    // Sequential latency, lane 0, the three paths interleaved sale by sale.
    let mut conns = Vec::new();
    for path in PATHS {
        conns.push(setup.connect(path, 0).await);
    }
    for c in conns.iter_mut() {
        for _ in 0..20 {
            c.sale().await;
        }
    }
    let commits_before = journal_commits(&setup).await;
    let mut medians = vec![Vec::new(); 3];
    let mut p99s = vec![Vec::new(); 3];
    for round in 1..=rounds {
        let mut samples: Vec<Vec<Duration>> = (0..3).map(|_| Vec::with_capacity(sales)).collect();
        for _ in 0..sales {
            budget.check("sequential round");
            for (i, c) in conns.iter_mut().enumerate() {
                samples[i].push(c.sale().await);
            }
        }
        let line: Vec<String> = (0..3)
            .map(|i| {
                let (m, p) = summarize(&mut samples[i]);
                medians[i].push(m);
                p99s[i].push(p);
                format!("{:?} {m:.3}/{p:.3}", PATHS[i])
            })
            .collect();
        println!("  round {round}: median/p99 ms: {}", line.join(", "));
    }
    let ecrlink_sales = (rounds * sales) as f64;
    let commits = journal_commits(&setup).await - commits_before;
    let med = |i: usize| median_f64(&medians[i]);
    let p99 = |i: usize| median_f64(&p99s[i]);
    println!("sequential (median of round medians / of round p99s), ms:");
    for (i, path) in PATHS.iter().enumerate() {
        println!(
            "  {path:?}: {:.3} / {:.3}; added over straight {:+.3} / {:+.3}",
            med(i),
            p99(i),
            med(i) - med(0),
            p99(i) - p99(0)
        );
    }
    let (nginx_added, ecrlink_added) = (med(1) - med(0), med(2) - med(0));
    println!(
        "  ecrlink adds {ecrlink_added:.3} ms, nginx {nginx_added:.3} ms: ratio {:.2}",
        ecrlink_added / nginx_added
    );
    println!(
        "  journal commits per ecrlink sale: {:.2} ({commits} over {ecrlink_sales})",
        commits as f64 / ecrlink_sales
    );
    drop(conns);

    if strace == 1 {
        fsyncs_per_sale(&setup, sales).await;
    }

    // Throughput at `lanes` lanes.
    let mut rates = vec![Vec::new(); 3];
    for round in 1..=rounds.min(3) {
        let mut line = Vec::new();
        for (i, path) in PATHS.iter().enumerate() {
            budget.check("throughput round");
            let rate = throughput(&setup, *path, lanes, Duration::from_secs(secs)).await;
            rates[i].push(rate);
            line.push(format!("{path:?} {rate:.0}"));
        }
        println!(
            "  {lanes} lanes, round {round}: sales/s {}",
            line.join(", ")
        );
    }
    let rate = |i: usize| median_f64(&rates[i]);
    println!(
        "throughput at {lanes} lanes (median sales/s): straight {:.0}, nginx {:.0}, ecrlink {:.0}; \
         ecrlink/nginx {:.2}",
        rate(0),
        rate(1),
        rate(2),
        rate(2) / rate(1)
    );
    let commits_total = journal_commits(&setup).await;
    println!("journal commits in all: {commits_total}");
}

/// `lanes` POS connections selling at once on `path` for `secs`; sales per second.
async fn throughput(setup: &Setup, path: Path3, lanes: usize, secs: Duration) -> f64 {
    let mut conns = Vec::new();
    for lane in 0..lanes {
        conns.push(setup.connect(path, lane).await);
    }
    let done = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let stop = started + secs;
    let mut tasks = tokio::task::JoinSet::new();
    for mut c in conns {
        let done = done.clone();
        tasks.spawn(async move {
            while Instant::now() < stop {
                c.sale().await;
                done.fetch_add(1, Ordering::Relaxed);
            }
        });
    }
    while let Some(r) = tasks.join_next().await {
        r.expect("lane task");
    }
    done.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64()
}

/// fsync + fdatasync calls of the gateway per sequential sale, by `strace -c -f`.
async fn fsyncs_per_sale(setup: &Setup, sales: usize) {
    let out = setup.world.path("strace.txt");
    let mut strace = Command::new("strace")
        .args(["-f", "-c", "-e", "trace=fsync,fdatasync", "-o"])
        .arg(&out)
        .args(["-p", &setup.gateway.child.id().to_string()])
        .stderr(Stdio::null())
        .spawn()
        .expect("strace (apt-get install strace)");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut c = setup.connect(Path3::Ecrlink, 0).await;
    for _ in 0..sales {
        c.sale().await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let _ = Command::new("kill")
        .args(["-INT", &strace.id().to_string()])
        .status();
    let _ = strace.wait();
    let text = std::fs::read_to_string(&out).unwrap_or_default();
    let calls: u64 = text
        .lines()
        .filter(|l| l.trim_end().ends_with("fsync") || l.trim_end().ends_with("fdatasync"))
        .filter_map(|l| {
            l.split_whitespace()
                .nth(3)
                .and_then(|n| n.parse::<u64>().ok())
        })
        .sum();
    println!(
        "  fsync+fdatasync per sale (strace -c -f, {sales} sequential sales): {:.2}",
        calls as f64 / sales as f64
    );
}
