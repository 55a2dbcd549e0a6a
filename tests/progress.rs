//! `ecrlink pay` against a running gateway: the stages one line each without a TTY,
//! the result line, and the exit code for each outcome.
mod common;

use std::process::{Command, Output, Stdio};

use common::*;
use serde_json::json;

/// `ecrlink pay ARGS --url https://localhost:PORT`, the CA, API key and device taken
/// from the gateway's configuration file.
fn pay(w: &World, gw: &Proc, args: &[&str]) -> Output {
    pay_at(w, gw.addr.port(), args)
}

fn pay_at(w: &World, port: u16, args: &[&str]) -> Output {
    let url = format!("https://localhost:{port}");
    Command::new(ecrlink_bin())
        .arg("pay")
        .args(["--url", &url])
        .args(["--config", w.path("gw.json").to_str().unwrap()])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run ecrlink pay")
}

/// The gateway, with its configuration where `pay` reads its defaults.
fn gateway(w: &World, config: serde_json::Value) -> Proc {
    std::fs::write(w.path("gw.json"), serde_json::to_vec(&config).unwrap()).unwrap();
    w.gateway(&config)
}

fn text(out: &Output) -> String {
    format!(
        "stdout:\n{}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn pay_shows_each_stage_and_exits_by_outcome() {
    let w = World::new();
    let sim = w.sim(&["--card-time", "1.5"]);
    let gw = gateway(&w, w.gateway_config(sim.addr, json!({"apiKey": "k-123"})));

    let out = pay(&w, &gw, &["--amount", "10.00", "--id", "PAY-A"]);
    let all = text(&out);
    assert_eq!(out.status.code(), Some(0), "{all}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    let stage = |name: &str| {
        lines
            .iter()
            .position(|l| l.trim_end().ends_with(&format!("s {name}")))
            .unwrap_or_else(|| panic!("no line for {name}: {all}"))
    };
    assert!(stage("received") < stage("sent"), "{all}");
    assert!(stage("sent") < stage("waiting_for_card"), "{all}");
    let result = lines.last().unwrap();
    assert!(
        result.starts_with("approved 10.00 EUR transactionId PAY-A auth "),
        "{all}"
    );
    assert!(result.contains("card 476173******0010"), "{all}");

    // Same id again: the same transaction's result, not a second charge.
    let again = pay(&w, &gw, &["--amount", "10.00", "--id", "PAY-A"]);
    assert_eq!(again.status.code(), Some(0), "{}", text(&again));
    let stats = tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(sim_stats(&w.terminal_client(sim.addr)));
    assert_eq!(stats["startRequests"]["PAY-A"], 1, "{stats}");

    for (amount, code, status) in [
        ("10.01", 1, "declined"),
        ("10.02", 1, "cancelled"),
        ("10.03", 2, "failed"),
    ] {
        let id = format!("PAY-{amount}");
        let out = pay(
            &w,
            &gw,
            &["--amount", amount, "--id", &id, "--device", DEVICE],
        );
        assert_eq!(out.status.code(), Some(code), "{amount}: {}", text(&out));
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            stdout.lines().last().unwrap().starts_with(status),
            "{}",
            text(&out)
        );
    }
}

#[test]
fn pay_exits_3_on_unknown_and_4_on_usage_or_connection_errors() {
    let w = World::new();
    let sim = w.sim(&["--card-time", "0", "--hold-payments"]);
    let gw = gateway(&w, w.gateway_config(sim.addr, json!({"timeStop": 1})));
    let out = pay(
        &w,
        &gw,
        &["--amount", "5.00", "--id", "PAY-U", "--device", DEVICE],
    );
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("unknown"),
        "{}",
        text(&out)
    );

    let bad = pay(&w, &gw, &["--amount", "ten", "--device", DEVICE]);
    assert_eq!(bad.status.code(), Some(4), "{}", text(&bad));
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("--amount"),
        "{}",
        text(&bad)
    );
    // A terminal that is not configured: refused before anything starts.
    let unknown = pay(&w, &gw, &["--amount", "1.00", "--device", "NOPE"]);
    assert_eq!(unknown.status.code(), Some(4), "{}", text(&unknown));
    assert!(
        String::from_utf8_lossy(&unknown.stderr).contains("unknown_device"),
        "{}",
        text(&unknown)
    );
    // Nobody listening: a connection error.
    let hold = PortHold::loopback();
    let down = pay_at(&w, hold.addr.port(), &["--amount", "1.00"]);
    assert_eq!(down.status.code(), Some(4), "{}", text(&down));
    assert!(
        String::from_utf8_lossy(&down.stderr).contains("cannot reach"),
        "{}",
        text(&down)
    );
}

/// Without a TTY nobody can answer "cancel?": Ctrl-C leaves the payment running at the
/// terminal, says where its result will be, and exits 3 (the outcome is not known).
#[test]
fn ctrl_c_without_a_tty_leaves_the_payment_running() {
    use std::io::{BufRead, BufReader};
    let w = World::new();
    let sim = w.sim(&["--card-time", "0", "--hold-payments"]);
    let gw = gateway(&w, w.gateway_config(sim.addr, json!({})));
    let url = format!("https://localhost:{}", gw.addr.port());
    let mut child = Command::new(ecrlink_bin())
        .args(["pay", "--amount", "2.00", "--id", "PAY-INT", "--url", &url])
        .args(["--config", w.path("gw.json").to_str().unwrap()])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    // `sent` is printed once the payment is on its way: then interrupt.
    while !line.trim_end().ends_with(" sent") {
        line.clear();
        assert!(stdout.read_line(&mut line).unwrap() > 0, "pay ended early");
    }
    let killed = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(stderr.contains("GET /v1/transactions/PAY-INT"), "{stderr}");
    // Still running at the terminal: the gateway has not invented an outcome.
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (_, t) = rt.block_on(w.gateway_client(gw.addr).get("/v1/transactions/PAY-INT"));
    assert_eq!(t["status"], "in_progress", "{t}");
}

/// On a terminal, Ctrl-C asks whether to cancel at the terminal; "y" cancels the held
/// payment there and `pay` reports it (exit 1). The terminal is a pseudo-terminal from
/// `script` (util-linux, in every Debian): Ctrl-C is the byte 0x03 typed into it. The
/// command is `exec`ed so no shell sits between `script` and `pay`: Ctrl-C reaches the
/// whole foreground group, and a shell that waits (dash, CI's `/bin/sh`) dies of it,
/// making `script` report 130 whatever `pay` returned.
#[test]
fn ctrl_c_on_a_tty_asks_and_cancels_at_the_terminal() {
    use std::io::{Read, Write};
    use std::sync::mpsc;
    let w = World::new();
    let sim = w.sim(&["--card-time", "0", "--hold-payments"]);
    let gw = gateway(&w, w.gateway_config(sim.addr, json!({})));
    let cmd = format!(
        "exec {} pay --amount 3.00 --id PAY-TTY --url https://localhost:{} --config {}",
        ecrlink_bin(),
        gw.addr.port(),
        w.path("gw.json").display()
    );
    let mut child = Command::new("script")
        .env("SHELL", "/bin/sh")
        .args(["-qec", &cmd, "/dev/null"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("script (util-linux) runs pay on a pseudo-terminal");
    let mut stdin = child.stdin.take().unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel::<Vec<u8>>();
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = stdout.read(&mut buf) {
            if n == 0 || tx.send(buf[..n].to_vec()).is_err() {
                break;
            }
        }
    });
    let mut seen = String::new();
    let mut wait_for = |what: &str| {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while !seen.contains(what) {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match rx.recv_timeout(left) {
                Ok(bytes) => seen.push_str(&String::from_utf8_lossy(&bytes)),
                Err(_) => panic!("no {what:?} on the terminal: {seen:?}"),
            }
        }
        seen.clone()
    };
    // The spinner shows the stage (held at the card), then Ctrl-C.
    wait_for("waiting for card");
    stdin.write_all(b"\x03").unwrap();
    wait_for("Cancel the payment at the terminal? [y/N]");
    stdin.write_all(b"y\n").unwrap();
    let all = wait_for("cancelled 3.00 EUR transactionId PAY-TTY");
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(1), "{all:?}");
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (_, t) = rt.block_on(w.gateway_client(gw.addr).get("/v1/transactions/PAY-TTY"));
    assert_eq!(t["status"], "cancelled", "{t}");
}
