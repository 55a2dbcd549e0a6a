//! `ecrlink pay`: one sale, refund or void sent to a running gateway, followed live
//! on its event stream (`Prefer: respond-async`, then `GET …/events`), with the
//! result as the exit code: 0 approved, 1 declined or cancelled, 2 failed, 3 unknown,
//! 4 usage or connection error. Ctrl-C asks whether to cancel at the terminal.

pub mod gateway;
mod interrupt;
mod show;

use std::io::IsTerminal;
use std::time::Instant;

use hyper::{Method, StatusCode};
use serde_json::{Value, json};

pub use gateway::{Gateway, GatewayError, SseEvent};
use show::Progress;

/// How `pay` ends, as the process exit code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exit {
    Approved = 0,
    DeclinedOrCancelled = 1,
    Failed = 2,
    Unknown = 3,
    Usage = 4,
}

impl Exit {
    fn of_status(status: &str) -> Exit {
        match status {
            "approved" => Exit::Approved,
            "declined" | "cancelled" => Exit::DeclinedOrCancelled,
            "failed" => Exit::Failed,
            _ => Exit::Unknown,
        }
    }
}

/// One payment to run.
pub struct PayRequest {
    pub kind: &'static str,
    pub device_id: String,
    pub transaction_id: String,
    pub amount_minor: u64,
    pub currency: String,
    pub original: Option<String>,
}

/// Where `pay` finds the gateway when the command line does not say: from the
/// gateway's configuration (its port, `SSL`, `certsDir`, `apiKey`, first terminal).
pub struct Defaults {
    pub url: String,
    pub ca_cert: std::path::PathBuf,
    pub api_key: Option<String>,
    pub device_id: String,
}

impl Defaults {
    /// Without a configuration: a gateway on this machine's default port.
    pub fn builtin() -> Defaults {
        Defaults {
            url: format!("https://localhost:{}", crate::constants::DEFAULT_PORT),
            ca_cert: std::path::Path::new("certs").join(crate::pki::CA_CERT),
            api_key: None,
            device_id: crate::constants::DEFAULT_DEVICE_ID.to_string(),
        }
    }

    pub fn from_config(config: &crate::config::Config) -> Defaults {
        let ip = config.listen.ip();
        // The gateway's certificate names `localhost`; a wildcard listener is reached there too.
        let host = if ip.is_loopback() || ip.is_unspecified() {
            "localhost".to_string()
        } else if ip.is_ipv6() {
            format!("[{ip}]")
        } else {
            ip.to_string()
        };
        let scheme = if config.ssl { "https" } else { "http" };
        Defaults {
            url: format!("{scheme}://{host}:{}", config.listen.port()),
            ca_cert: config.certs_dir.join(crate::pki::CA_CERT),
            api_key: config.api_key.as_ref().map(|k| k.expose().to_string()),
            device_id: config
                .terminals
                .first()
                .map(|t| t.device_id.clone())
                .unwrap_or_else(|| crate::constants::DEFAULT_DEVICE_ID.to_string()),
        }
    }
}

/// How many times a dropped event stream is resumed (`Last-Event-ID`) before `pay`
/// falls back to asking for the transaction.
const STREAM_RESUMES: u32 = 5;

/// `"10.00"` → 1000 minor units; at most two decimals, above zero.
pub fn parse_amount(text: &str) -> Result<u64, String> {
    let bad = || format!("--amount {text:?}: expected an amount above 0 like 10.00");
    let (units, cents) = match text.trim().split_once('.') {
        Some((u, c)) if c.len() == 1 => (u, format!("{c}0")),
        Some((u, c)) if c.len() == 2 => (u, c.to_string()),
        Some(_) => return Err(bad()),
        None => (text.trim(), "00".to_string()),
    };
    if units.is_empty() || !units.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    if !cents.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    let units: u64 = units.parse().map_err(|_| bad())?;
    let cents: u64 = cents.parse().map_err(|_| bad())?;
    match units.checked_mul(100).and_then(|u| u.checked_add(cents)) {
        Some(0) | None => Err(bad()),
        Some(n) => Ok(n),
    }
}

/// A transaction id for a payment typed at a shell: unique enough per gateway.
pub fn generated_id() -> String {
    let ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0);
    format!("PAY-{ms}-{}", std::process::id())
}

/// Runs the payment and returns how it ended. Progress goes to stderr (a spinner on a
/// terminal, one line per stage otherwise); the result line goes to stdout.
pub async fn run(gw: &Gateway, req: &PayRequest) -> Exit {
    let mut interrupts = match interrupt::Interrupts::register() {
        Ok(i) => i,
        Err(e) => {
            eprintln!("ecrlink pay: cannot watch for Ctrl-C: {e}");
            return Exit::Usage;
        }
    };
    let mut progress = Progress::new(std::io::stdout().is_terminal());
    let started = Instant::now();
    let mut body = json!({
        "deviceId": req.device_id,
        "transactionId": req.transaction_id,
        "paymentApp": "ecrlink-pay",
        "amount": req.amount_minor,
        "currencyCode": req.currency,
        "otherData": {},
    });
    if let Some(original) = &req.original {
        body["originalTransactionId"] = json!(original);
    }
    let path = format!("/v1/{}", req.kind);
    let answer = gw
        .call(
            Method::POST,
            &path,
            &[("prefer", "respond-async")],
            Some(body.to_string().into_bytes()),
        )
        .await;
    let (status, value) = match answer {
        Ok(a) => a,
        Err(e) => {
            progress.finish();
            eprintln!("ecrlink pay: {e}");
            return Exit::Usage;
        }
    };
    match status {
        StatusCode::ACCEPTED => {}
        // Already final (a repeat of a known transactionId): its result, as first heard.
        StatusCode::OK | StatusCode::GATEWAY_TIMEOUT => {
            progress.finish();
            return report(&value);
        }
        _ => {
            progress.finish();
            return refused(status, &value);
        }
    }
    progress.stage("received", started.elapsed());
    let events = value["eventsUrl"]
        .as_str()
        .map(str::to_string)
        .unwrap_or_else(|| format!("/v1/transactions/{}/events", req.transaction_id));
    let exit = follow(gw, req, &events, &mut progress, &mut interrupts, started).await;
    progress.finish();
    exit
}

/// Follows the event stream to the final result (or `unknown`), resuming dropped
/// streams and handling Ctrl-C.
async fn follow(
    gw: &Gateway,
    req: &PayRequest,
    events_path: &str,
    progress: &mut Progress,
    interrupts: &mut interrupt::Interrupts,
    started: Instant,
) -> Exit {
    let mut last_id = None;
    let mut resumes = 0;
    let mut cancel_asked = false;
    loop {
        let mut stream = match gw.events(events_path, last_id).await {
            Ok(s) => s,
            Err(e) if resumes < STREAM_RESUMES => {
                resumes += 1;
                progress.note(&format!("event stream: {e}; retrying"));
                tokio::time::sleep(crate::constants::SSE_RETRY).await;
                continue;
            }
            Err(e) => return lookup(gw, req, &e.to_string(), progress).await,
        };
        loop {
            let next = tokio::select! {
                next = stream.next() => next,
                _ = interrupts.next() => {
                    if cancel_asked {
                        progress.finish();
                        eprintln!(
                            "left running; the result will be at GET /v1/transactions/{}",
                            req.transaction_id
                        );
                        return Exit::Unknown;
                    }
                    cancel_asked = true;
                    if let Some(exit) = interrupted(gw, req, progress).await {
                        return exit;
                    }
                    continue;
                }
            };
            match next {
                Ok(Some(event)) => {
                    last_id = event.id.or(last_id);
                    let data: Value = serde_json::from_str(&event.data).unwrap_or(Value::Null);
                    if let Some(result) = data.get("result").filter(|r| r.is_object()) {
                        progress.finish();
                        return report(result);
                    }
                    progress.stage(&event.event, started.elapsed());
                    if event.event == "unknown" {
                        progress.finish();
                        println!(
                            "unknown: no final answer within timeStop; the gateway keeps asking \
                             the terminal (GET /v1/transactions/{})",
                            req.transaction_id
                        );
                        return Exit::Unknown;
                    }
                }
                // Ended without a final result (gateway stopping): resume.
                Ok(None) | Err(_) if resumes < STREAM_RESUMES => {
                    resumes += 1;
                    break;
                }
                Ok(None) => return lookup(gw, req, "event stream ended", progress).await,
                Err(e) => return lookup(gw, req, &e.to_string(), progress).await,
            }
        }
    }
}

/// Ctrl-C: on a terminal, asks whether to cancel the payment at the terminal; without
/// one, nobody can answer, so `pay` leaves the payment running and says so.
async fn interrupted(gw: &Gateway, req: &PayRequest, progress: &mut Progress) -> Option<Exit> {
    progress.finish();
    if !std::io::stdin().is_terminal() {
        eprintln!(
            "interrupted; the payment goes on at the terminal: GET /v1/transactions/{}",
            req.transaction_id
        );
        return Some(Exit::Unknown);
    }
    eprint!("Cancel the payment at the terminal? [y/N] ");
    let answer = tokio::task::spawn_blocking(|| {
        let mut line = String::new();
        std::io::stdin().read_line(&mut line).map(|_| line)
    })
    .await
    .ok()
    .and_then(Result::ok)
    .unwrap_or_default();
    if !answer.trim().eq_ignore_ascii_case("y") && !answer.trim().eq_ignore_ascii_case("yes") {
        eprintln!("not cancelled; waiting for the result (Ctrl-C again leaves it running)");
        return None;
    }
    let path = format!("/v1/transactions/{}/cancel", req.transaction_id);
    match gw.call(Method::POST, &path, &[], None).await {
        Ok((StatusCode::OK, v)) => {
            let message = v["message"].as_str().unwrap_or("");
            eprintln!("cancel asked: {message}; waiting for the result");
        }
        Ok((status, v)) => eprintln!("cancel refused ({status}): {}", error_message(&v)),
        Err(e) => eprintln!("cancel not sent: {e}"),
    }
    None
}

/// The stream is gone for good: the transaction's record decides.
async fn lookup(gw: &Gateway, req: &PayRequest, why: &str, progress: &mut Progress) -> Exit {
    progress.finish();
    let path = format!("/v1/transactions/{}", req.transaction_id);
    match gw.call(Method::GET, &path, &[], None).await {
        Ok((StatusCode::OK, v)) if v["status"] != "in_progress" => report(&v),
        _ => {
            println!(
                "unknown: {why}; the result will be at GET /v1/transactions/{}",
                req.transaction_id
            );
            Exit::Unknown
        }
    }
}

/// Prints the result line and maps its status to the exit code.
fn report(result: &Value) -> Exit {
    let status = result["status"].as_str().unwrap_or("unknown");
    let amount = result["amount"].as_u64().unwrap_or(0);
    let mut line = format!(
        "{status} {}.{:02} {} transactionId {}",
        amount / 100,
        amount % 100,
        result["currencyCode"].as_str().unwrap_or(""),
        result["transactionId"].as_str().unwrap_or("")
    );
    if let Some(code) = result["authorizationCode"].as_str() {
        line.push_str(&format!(" auth {code}"));
    }
    if let Some(card) = result["maskedPan"].as_str() {
        line.push_str(&format!(" card {card}"));
    }
    if let Some(message) = result["resultMessage"].as_str() {
        line.push_str(&format!(" ({message})"));
    }
    println!("{line}");
    Exit::of_status(status)
}

fn error_message(v: &Value) -> String {
    v["error"]["message"]
        .as_str()
        .map(str::to_string)
        .unwrap_or_else(|| v.to_string())
}

/// A refusal before processing, or an error answer that carries the transaction.
fn refused(status: StatusCode, v: &Value) -> Exit {
    if let Some(t) = v["error"].get("transaction").filter(|t| t.is_object()) {
        return report(t);
    }
    eprintln!(
        "ecrlink pay: the gateway refused ({status} {}): {}",
        v["error"]["code"].as_str().unwrap_or(""),
        error_message(v)
    );
    Exit::Usage
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_are_read_as_minor_units() {
        assert_eq!(parse_amount("10.00"), Ok(1000));
        assert_eq!(parse_amount("10"), Ok(1000));
        assert_eq!(parse_amount("0.5"), Ok(50));
        assert_eq!(parse_amount("12.34"), Ok(1234));
        for bad in ["", "0", "0.00", "-1", "1.234", "1,00", "abc", "1.", ".5x"] {
            assert!(parse_amount(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn statuses_map_to_exit_codes() {
        assert_eq!(Exit::of_status("approved") as i32, 0);
        assert_eq!(Exit::of_status("declined") as i32, 1);
        assert_eq!(Exit::of_status("cancelled") as i32, 1);
        assert_eq!(Exit::of_status("failed") as i32, 2);
        assert_eq!(Exit::of_status("unknown") as i32, 3);
    }
}
