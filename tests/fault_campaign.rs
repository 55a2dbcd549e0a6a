//! The randomized fault campaign of issue 8: many sales in a row, each with random
//! faults — error statuses after the charge, another transaction's record, dropped
//! answers, late records, failing lookups, ignored polls, a hanging terminal, terminal
//! restarts (kill -9, restarted on the same address with its state file) and gateway
//! kill -9 (restarted on the same journal) — then every sale is checked against the
//! terminal's own record: 0 lost, 0 doubled, 0 invented.
//!
//! `ECRLINK_CAMPAIGN_SALES` (default 100) and `ECRLINK_CAMPAIGN_SEED` (default: random,
//! always printed) choose the run; `scripts/fault-campaign.sh COUNT SEED` runs a long
//! one. The same seed gives the same sales and faults; the moments at which processes
//! die are drawn from it too, but land wherever the scheduler has got to.

mod common;
#[path = "common/faults.rs"]
mod faults;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use common::*;
use faults::*;
use hyper::{Method, StatusCode};
use serde_json::{Value, json};

/// splitmix64: tiny and deterministic, so a failing run is replayed from its seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len() as u64) as usize]
    }
}

/// How the terminal spoils its answers during one sale (simulator knobs).
#[derive(Clone, Copy, Debug)]
enum Answer {
    Clean,
    ErrorAfterCharge(u16),
    OtherRecord,
    Dropped,
    DroppedThenLate(u64),
    DroppedThenLookupErrors(u32),
    IgnoredPolls(u32),
}

impl Answer {
    fn knobs(self) -> Value {
        match self {
            Answer::Clean => json!({}),
            Answer::ErrorAfterCharge(s) => json!({"errorAfterCharge": s}),
            Answer::OtherRecord => json!({"wrongAnswer": true}),
            Answer::Dropped => json!({"dropResponses": 1}),
            Answer::DroppedThenLate(ms) => json!({"dropResponses": 1, "lateRecordMs": ms}),
            Answer::DroppedThenLookupErrors(n) => json!({"dropResponses": 1, "lookupErrors": n}),
            Answer::IgnoredPolls(n) => json!({"ignorePolls": n}),
        }
    }

    fn name(self) -> &'static str {
        match self {
            Answer::Clean => "clean",
            Answer::ErrorAfterCharge(_) => "errorAfterCharge",
            Answer::OtherRecord => "wrongAnswer",
            Answer::Dropped => "dropResponses",
            Answer::DroppedThenLate(_) => "dropResponses+lateRecordMs",
            Answer::DroppedThenLookupErrors(_) => "dropResponses+lookupErrors",
            Answer::IgnoredPolls(_) => "ignorePolls",
        }
    }
}

/// What else goes wrong during the sale, `after` the POS sent it.
#[derive(Clone, Copy, Debug)]
enum Disruption {
    None,
    Hang { after: Duration, lasting: Duration },
    TerminalRestart { after: Duration },
    GatewayKill { after: Duration },
}

impl Disruption {
    fn name(self) -> &'static str {
        match self {
            Disruption::None => "none",
            Disruption::Hang { .. } => "hang",
            Disruption::TerminalRestart { .. } => "terminal kill -9",
            Disruption::GatewayKill { .. } => "gateway kill -9",
        }
    }
}

/// The lookup horizon the gateway runs with; `lateRecordMs` stays below it, since a
/// record later than the horizon is indistinguishable from one that never came.
const HORIZON_SECS: u64 = 1;

fn draw(rng: &mut Rng) -> (u64, Answer, Disruption) {
    // Endings: 00 approved (most), 01 declined, 02 cancelled by the cardholder,
    // 03 failed (card read error).
    let ending = rng.pick(&[0, 0, 0, 0, 0, 1, 2, 3]);
    let amount = 100 * (1 + rng.below(300)) + ending;
    let answer = match rng.below(14) {
        0..=2 => Answer::Clean,
        3..=5 => Answer::ErrorAfterCharge(rng.pick(&[500, 502, 503, 404, 401, 403, 400])),
        6 | 7 => Answer::OtherRecord,
        8 | 9 => Answer::Dropped,
        10 | 11 => Answer::DroppedThenLate(100 + rng.below(HORIZON_SECS * 1000 - 300)),
        12 => Answer::DroppedThenLookupErrors(1 + rng.below(4) as u32),
        _ => Answer::IgnoredPolls(1 + rng.below(4) as u32),
    };
    let ms = |rng: &mut Rng, n: u64| Duration::from_millis(rng.below(n));
    let disruption = match rng.below(40) {
        0..=23 => Disruption::None,
        // Some hangs outlast timeStop (1.5 s): the POS hears `unknown`, the gateway
        // reconciles after.
        24..=26 => Disruption::Hang {
            after: ms(rng, 150),
            lasting: Duration::from_millis(100) + ms(rng, 2100),
        },
        // A sale takes ~0.1 s here (card time 0.05 s): the kills land before, during
        // and just after it.
        27..=32 => Disruption::TerminalRestart {
            after: ms(rng, 150),
        },
        _ => Disruption::GatewayKill {
            after: ms(rng, 150),
        },
    };
    (amount, answer, disruption)
}

/// One sale as the campaign saw it.
struct Sale {
    id: String,
    amount: u64,
    answer: Answer,
    disruption: Disruption,
    /// What the POS heard (an error when its gateway was killed under it).
    pos: Result<(StatusCode, Value), String>,
    /// The gateway's final record (`None`: never journaled, the gateway was killed first).
    gateway: Option<Value>,
    /// From the POS's request to the settled record.
    took: Duration,
}

impl Sale {
    fn describe(&self, seed: u64) -> String {
        format!(
            "{} (seed {seed:#x}, amount {}, answer {:?}, disruption {:?})",
            self.id, self.amount, self.answer, self.disruption
        )
    }
}

/// A simulator that may be killed and restarted on the same address; start calls are
/// counted over all its lives (from its log, and its stats taken before each kill).
struct Terminal {
    proc: Proc,
    /// Its address, held for the whole campaign so a restart gets it back.
    port: PortHold,
    args: Vec<String>,
    /// Start calls per id over the lives banked so far.
    starts: HashMap<String, u64>,
}

impl Terminal {
    fn args(&self) -> Vec<&str> {
        self.args.iter().map(String::as_str).collect()
    }

    async fn restart(&mut self, w: &World) {
        let snapshot = sim_stats(&w.terminal_client(self.port.addr)).await;
        self.proc.kill();
        self.bank(&snapshot);
        self.proc = w.sim_on(self.port.addr, &self.args());
    }

    /// Adds one life's start counts: the larger of its last stats and its log
    /// (a start may land between the stats call and the kill; the log line is written
    /// when the start is admitted).
    fn bank(&mut self, snapshot: &Value) {
        let mut counts = starts_in_log(&self.proc.log);
        if let Some(stats) = snapshot["startRequests"].as_object() {
            for (id, n) in stats {
                let n = n.as_u64().unwrap_or(0);
                let c = counts.entry(id.clone()).or_default();
                *c = (*c).max(n);
            }
        }
        for (id, n) in counts {
            *self.starts.entry(id).or_default() += n;
        }
    }
}

fn starts_in_log(log: &PathBuf) -> HashMap<String, u64> {
    let mut counts = HashMap::new();
    for line in std::fs::read_to_string(log).unwrap_or_default().lines() {
        if !line.contains("start request") {
            continue;
        }
        if let Some(id) = line
            .split_whitespace()
            .find_map(|t| t.strip_prefix("transaction_id="))
        {
            *counts.entry(id.to_string()).or_default() += 1;
        }
    }
    counts
}

fn env_u64(name: &str) -> Option<u64> {
    let v = std::env::var(name).ok()?;
    let v = v.trim();
    match v.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16).ok(),
        None => v.parse().ok(),
    }
}

fn random_seed() -> u64 {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let mut rng = Rng(t.as_nanos() as u64 ^ u64::from(std::process::id()) << 32);
    rng.next()
}

/// The campaign's own variables: `ECRLINK_*` names the gateway would refuse as unknown
/// settings, so its processes run without them.
const CAMPAIGN_VARS: [&str; 2] = ["ECRLINK_CAMPAIGN_SALES", "ECRLINK_CAMPAIGN_SEED"];

/// `ecrlink serve` with `config`, started through `env -u` so the campaign's variables
/// do not reach it.
fn gateway(w: &World, config: &Value, life: u32) -> Proc {
    let path = w.path("campaign-config.json");
    std::fs::write(&path, serde_json::to_vec_pretty(config).unwrap()).unwrap();
    let mut args: Vec<String> = Vec::new();
    for var in CAMPAIGN_VARS {
        args.extend(["-u".to_string(), var.to_string()]);
    }
    args.extend([
        env!("CARGO_BIN_EXE_ecrlink").to_string(),
        "serve".into(),
        "--config".into(),
        path.display().to_string(),
    ]);
    Proc::start_program("env", &args, &w.path(&format!("gateway-{life}.log")))
}

/// Waits for the sale's final record on `c`. `None` only when the journal never had
/// it, which is final too: recovery runs before a restarted gateway listens.
async fn settle(c: &Client, id: &str, within: Duration) -> Result<Option<Value>, String> {
    let deadline = Instant::now() + within;
    loop {
        let (st, r) = c.get(&format!("/v1/transactions/{id}")).await;
        if st == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        if FINAL.contains(&r["status"].as_str().unwrap_or("")) {
            return Ok(Some(r));
        }
        if Instant::now() >= deadline {
            return Err(format!("still {} after {within:?}: {r}", r["status"]));
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// The result a POS answer carries, if any: a result object, or one inside an error.
fn pos_result(body: &Value) -> Option<&Value> {
    if body["transactionId"].is_string() {
        Some(body)
    } else if body["error"]["transaction"].is_object() {
        Some(&body["error"]["transaction"])
    } else {
        None
    }
}

async fn campaign(sales: u64, seed: u64) {
    eprintln!("fault campaign: {sales} sales, seed {seed:#x} (ECRLINK_CAMPAIGN_SEED={seed})");
    let w = World::new();
    let state = w.path("terminal-state.json");
    let args: Vec<String> = ["--card-time", "0.05", "--state", state.to_str().unwrap()]
        .map(String::from)
        .to_vec();
    let port = PortHold::loopback();
    let first = w.sim_on(
        port.addr,
        &args.iter().map(String::as_str).collect::<Vec<_>>(),
    );
    let mut terminal = Terminal {
        port,
        proc: first,
        args,
        starts: HashMap::new(),
    };
    let config = w.gateway_config(
        terminal.port.addr,
        json!({"pollSeconds": 0.2, "timeStop": 1.5, "staticIptimeOut": 1, "loopsBefore": 3,
               "notFoundHorizonSeconds": HORIZON_SECS}),
    );
    let mut lives = 0;
    let mut gw = gateway(&w, &config, lives);
    let mut rng = Rng(seed);
    let mut done: Vec<Sale> = Vec::new();
    let started = Instant::now();

    for i in 0..sales {
        let (amount, answer, disruption) = draw(&mut rng);
        let id = format!("FC-{seed:x}-{i}");
        let sale_started = Instant::now();
        let sim = w.terminal_client(terminal.port.addr);
        set_faults(&sim, answer.knobs()).await;
        let pos = {
            let c = w.gateway_client(gw.addr);
            let body = serde_json::to_vec(&sale(&id, amount)).unwrap();
            tokio::spawn(async move { c.call(Method::POST, "/v1/sale", Some(body)).await })
        };
        match disruption {
            Disruption::None => {}
            Disruption::Hang { after, lasting } => {
                tokio::time::sleep(after).await;
                let mut knobs = faults_now(&sim).await;
                knobs["hang"] = json!(true);
                set_faults(&sim, knobs).await;
                tokio::time::sleep(lasting).await;
                let mut knobs = faults_now(&sim).await;
                knobs["hang"] = json!(false);
                set_faults(&sim, knobs).await;
            }
            Disruption::TerminalRestart { after } => {
                tokio::time::sleep(after).await;
                terminal.restart(&w).await;
            }
            Disruption::GatewayKill { after } => {
                tokio::time::sleep(after).await;
                gw.kill();
                lives += 1;
                gw = gateway(&w, &config, lives);
            }
        }
        let pos = pos.await.unwrap().map_err(|e| e.to_string());
        let c = w.gateway_client(gw.addr);
        let mut s = Sale {
            id: id.clone(),
            amount,
            answer,
            disruption,
            pos,
            gateway: None,
            took: Duration::ZERO,
        };
        match settle(&c, &id, Duration::from_secs(40)).await {
            Ok(g) => s.gateway = g,
            Err(e) => panic!("LOST: {}: {e}", s.describe(seed)),
        }
        if s.gateway.is_none() && !matches!(disruption, Disruption::GatewayKill { .. }) {
            panic!(
                "LOST: {}: the gateway has no record, yet it was never killed",
                s.describe(seed)
            );
        }
        s.took = sale_started.elapsed();
        done.push(s);
    }
    let took = started.elapsed();

    // Afterwards, transaction by transaction, against the terminal's own record.
    let sim = w.terminal_client(terminal.port.addr);
    let last_life = sim_stats(&sim).await;
    terminal.bank(&last_life);
    let sent: HashSet<&str> = done.iter().map(|s| s.id.as_str()).collect();
    let (_, records) = sim.get("/v1/transactions").await;
    let mut tally = Tally::default();
    let mut truth: HashMap<String, Value> = HashMap::new();
    for r in records.as_array().expect("the terminal's record") {
        let id = r["transactionId"].as_str().unwrap().to_string();
        if !sent.contains(id.as_str()) {
            tally
                .invented
                .push(format!("{id}: at the terminal, never sent by the campaign"));
        }
        if truth.insert(id.clone(), r.clone()).is_some() {
            tally
                .doubled
                .push(format!("{id}: two records at the terminal"));
        }
    }
    let c = w.gateway_client(gw.addr);
    for s in &done {
        // Asked again at the end: a settled record never changes.
        let now = c.get(&format!("/v1/transactions/{}", s.id)).await;
        let starts = terminal.starts.get(&s.id).copied().unwrap_or(0);
        tally.judge(s, truth.get(&s.id), starts, now, seed);
    }
    tally.report(seed, done.len(), took);
    if let Some(s) = done.iter().max_by_key(|s| s.took) {
        let names = event_names(&c, &s.id).await;
        eprintln!("  slowest: {:.1?}, {}: {names:?}", s.took, s.describe(seed));
    }
    tally.assert_clean(seed);
}

/// The verdicts on every sale, and the figures for RELIABILITY.md.
#[derive(Default)]
struct Tally {
    lost: Vec<String>,
    doubled: Vec<String>,
    invented: Vec<String>,
    figures: BTreeMap<&'static str, u64>,
    by_fault: BTreeMap<String, (u64, Duration)>,
}

impl Tally {
    fn count(&mut self, figure: &'static str) {
        *self.figures.entry(figure).or_default() += 1;
    }

    /// One sale: the terminal's record `t`, the start calls it got, and the gateway's
    /// record asked again at the end (`now`).
    fn judge(
        &mut self,
        s: &Sale,
        t: Option<&Value>,
        starts: u64,
        now: (StatusCode, Value),
        seed: u64,
    ) {
        let what = s.describe(seed);
        for key in [
            format!("answer {}", s.answer.name()),
            format!("disruption {}", s.disruption.name()),
        ] {
            let e = self.by_fault.entry(key).or_default();
            e.0 += 1;
            e.1 += s.took;
        }
        if starts > 1 {
            self.doubled
                .push(format!("{what}: {starts} start requests at the terminal"));
        }
        if t.is_some() && starts == 0 {
            self.lost.push(format!(
                "{what}: the terminal ran it, but no start was counted"
            ));
        }
        let (st, now) = now;
        match &s.gateway {
            None => {
                self.count("never journaled (gateway killed first)");
                if st != StatusCode::NOT_FOUND {
                    self.lost
                        .push(format!("{what}: was not journaled, now {st} {now}"));
                }
                if let Some(t) = t {
                    self.lost.push(format!(
                        "{what}: never journaled, yet the terminal ran it: {t}"
                    ));
                }
                if starts != 0 {
                    self.doubled.push(format!(
                        "{what}: never journaled, yet {starts} start(s) sent"
                    ));
                }
            }
            Some(g) => {
                if now != *g {
                    self.invented
                        .push(format!("{what}: settled as {g}, later {now}"));
                }
                let gs = g["status"].as_str().unwrap_or("");
                self.count(gs_key(gs));
                match t {
                    Some(t) => {
                        if g["status"] != t["status"]
                            || g["authorizationCode"] != t["authorizationCode"]
                        {
                            self.invented
                                .push(format!("{what}: gateway {g} vs terminal {t}"));
                        }
                    }
                    None => {
                        if gs != "failed" {
                            self.invented
                                .push(format!("{what}: gateway {gs}, terminal has no record"));
                        }
                        if g["resultCode"] == "not_received" {
                            self.count("failed: not_received");
                        }
                    }
                }
            }
        }
        let terminal_status = t.map(|t| t["status"].as_str().unwrap_or("").to_string());
        let gateway_status = s.gateway.as_ref().map(|g| g["status"].clone());
        match &s.pos {
            Err(_) => self.count("POS: connection lost"),
            Ok((st, body)) => match pos_result(body) {
                Some(r) if r["status"] == "unknown" => {
                    self.count("POS: unknown, then reconciled");
                    if *st != StatusCode::GATEWAY_TIMEOUT {
                        self.invented
                            .push(format!("{what}: unknown with {st}: {body}"));
                    }
                }
                Some(r) => {
                    self.count("POS: final answer");
                    let said = r["status"].as_str().unwrap_or("");
                    let as_terminal = match &terminal_status {
                        Some(ts) => said == ts,
                        None => said == "failed",
                    };
                    if !as_terminal || gateway_status.as_ref() != Some(&r["status"]) {
                        self.invented.push(format!(
                            "{what}: POS heard {st} {said}, terminal {terminal_status:?}, \
                             gateway {gateway_status:?}"
                        ));
                    }
                }
                None => {
                    self.count("POS: error without a result");
                    if t.is_some() {
                        self.invented.push(format!(
                            "{what}: POS heard {st} {body}, the terminal ran it: \
                             {terminal_status:?}"
                        ));
                    }
                }
            },
        }
    }

    fn report(&self, seed: u64, sales: usize, took: Duration) {
        eprintln!(
            "fault campaign: seed {seed:#x}, {sales} sales in {took:.1?}: lost {}, doubled {}, \
             invented {} (sales)",
            sales_in(&self.lost),
            sales_in(&self.doubled),
            sales_in(&self.invented),
        );
        for (k, v) in &self.figures {
            eprintln!("  {k}: {v}");
        }
        for (k, (n, t)) in &self.by_fault {
            eprintln!("  {k}: {n} sales, {t:.1?}");
        }
    }

    fn assert_clean(&self, seed: u64) {
        let problems: Vec<&str> = self
            .lost
            .iter()
            .chain(&self.doubled)
            .chain(&self.invented)
            .map(String::as_str)
            .collect();
        assert!(
            problems.is_empty(),
            "seed {seed:#x}: sales lost {}, doubled {}, invented {}:\n{}",
            sales_in(&self.lost),
            sales_in(&self.doubled),
            sales_in(&self.invented),
            problems.join("\n")
        );
    }
}

/// How many sales the problems name (each problem starts with the sale's id).
fn sales_in(problems: &[String]) -> usize {
    problems
        .iter()
        .filter_map(|p| p.split([' ', ':']).next())
        .collect::<HashSet<_>>()
        .len()
}

fn gs_key(status: &str) -> &'static str {
    match status {
        "approved" => "gateway final: approved",
        "declined" => "gateway final: declined",
        "cancelled" => "gateway final: cancelled",
        _ => "gateway final: failed",
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_campaign() {
    let sales = env_u64("ECRLINK_CAMPAIGN_SALES").unwrap_or(100);
    let seed = env_u64("ECRLINK_CAMPAIGN_SEED").unwrap_or_else(random_seed);
    campaign(sales, seed).await;
}
