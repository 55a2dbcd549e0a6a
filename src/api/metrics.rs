//! `GET /metrics`: Prometheus text exposition of the gateway's counters, the
//! journal's state and the transactions by status.

use std::sync::atomic::Ordering;

use hyper::{Response, StatusCode};

use super::{Api, ApiError};
use crate::http::{Body, with_type};
use crate::probe::{Health, LinkState};
use crate::terminal::wire::TxnStatus;

pub(super) async fn render(api: &Api) -> Result<Response<Body>, ApiError> {
    let m = &api.metrics;
    let counters = api.payments.counters();
    let journal = api.payments.journal().health();
    let load = |c: &std::sync::atomic::AtomicU64| c.load(Ordering::Relaxed);
    let (counter, gauge) = ("counter", "gauge");
    let series: [(&str, &str, &str, u64); 9] = [
        (
            counter,
            "ecrlink_http_requests_total",
            "HTTP requests served.",
            load(&m.http_requests),
        ),
        (
            counter,
            "ecrlink_http_errors_total",
            "HTTP answers with a 4xx or 5xx status.",
            load(&m.http_errors),
        ),
        (
            counter,
            "ecrlink_payments_started_total",
            "Transactions started since start-up.",
            load(&m.payments_started),
        ),
        (
            counter,
            "ecrlink_payments_replayed_total",
            "Repeated requests answered from an existing transaction.",
            load(&m.payments_replayed),
        ),
        (
            counter,
            "ecrlink_answer_mismatches_total",
            "Terminal answers that did not match their request and were not adopted.",
            load(&counters.answer_mismatches),
        ),
        (
            counter,
            "ecrlink_resolved_by_operator_total",
            "Unknown transactions settled by an operator.",
            load(&counters.resolved_by_operator),
        ),
        (
            counter,
            "ecrlink_journal_write_errors_total",
            "Journal writes that failed (each is retried; a final result is held until written).",
            journal.write_errors(),
        ),
        (
            counter,
            "ecrlink_journal_commits_total",
            "Journal commits (one fsync each; group commit carries many writes in one).",
            journal.commits(),
        ),
        (
            gauge,
            "ecrlink_journal_writable",
            "1 while the last journal write went through, 0 after a failed one.",
            u64::from(journal.last_error().is_none()),
        ),
    ];
    let mut out = String::new();
    for (kind, name, help, value) in series {
        out.push_str(&format!(
            "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}\n"
        ));
    }
    let counts = api
        .payments
        .journal()
        .status_counts()
        .await
        .map_err(|e| ApiError::Unavailable(e.to_string()))?;
    out.push_str("# HELP ecrlink_transactions Journaled transactions by status.\n# TYPE ecrlink_transactions gauge\n");
    for st in TxnStatus::ALL {
        let n = counts.iter().find(|(s, _)| *s == st).map_or(0, |(_, n)| *n);
        out.push_str(&format!(
            "ecrlink_transactions{{status=\"{}\"}} {n}\n",
            st.as_str()
        ));
    }
    terminal_metrics(api, &mut out);
    let unknown = counts
        .iter()
        .find(|(s, _)| *s == TxnStatus::Unknown)
        .map_or(0, |(_, n)| *n);
    super::metrics_ops::render(api, unknown, &mut out);
    super::access::metrics(api, &mut out);
    out.push_str(&format!(
        "# HELP ecrlink_uptime_seconds Seconds since start.\n# TYPE ecrlink_uptime_seconds gauge\necrlink_uptime_seconds {}\n",
        api.started.elapsed().as_secs()
    ));
    Ok(with_type(
        StatusCode::OK,
        "text/plain; version=0.0.4",
        out.into_bytes(),
    ))
}

/// The per-terminal series, each labelled with its `device_id`.
fn terminal_metrics(api: &Api, out: &mut String) {
    let mut family =
        |name: &str, kind: &str, help: &str, value: &dyn Fn(&Health) -> Vec<(String, f64)>| {
            out.push_str(&format!("# HELP {name} {help}\n# TYPE {name} {kind}\n"));
            for t in &api.terminals {
                let health = t.health.borrow();
                for (extra, v) in value(&health) {
                    out.push_str(&format!(
                        "{name}{{device_id=\"{}\"{extra}}} {v}\n",
                        t.device_id
                    ));
                }
            }
        };
    family(
        "ecrlink_terminal_link",
        "gauge",
        "1 for the terminal's current link state (unknown, up, degraded, down).",
        &|h| {
            let states = [
                LinkState::Unknown,
                LinkState::Up,
                LinkState::Degraded,
                LinkState::Down,
            ];
            let one = |s: LinkState| f64::from(u8::from(h.state == s));
            states
                .iter()
                .map(|s| (format!(",state=\"{}\"", s.as_str()), one(*s)))
                .collect()
        },
    );
    family(
        "ecrlink_terminal_link_changes_total",
        "counter",
        "Link state changes since start-up.",
        &|h| vec![(String::new(), h.changes as f64)],
    );
    family(
        "ecrlink_terminal_busy",
        "gauge",
        "1 while a transaction occupies the terminal.",
        &|h| {
            vec![(
                String::new(),
                f64::from(u8::from(api.payments.busy_with(&h.device_id).is_some())),
            )]
        },
    );
    family(
        "ecrlink_terminal_on_fallback",
        "gauge",
        "1 while new work for the terminal starts on the push fallback.",
        &|h| {
            let active = api.payments.active_transport(&h.device_id);
            vec![(
                String::new(),
                f64::from(u8::from(active.is_some_and(|t| t != "direct"))),
            )]
        },
    );
    family(
        "ecrlink_terminal_transport_switches_total",
        "counter",
        "Moves of the terminal's new work between direct and the fallback since start-up.",
        &|h| {
            let switches = api.payments.active_since(&h.device_id).map(|(_, n)| n);
            vec![(String::new(), switches.unwrap_or(0) as f64)]
        },
    );
    family(
        "ecrlink_terminal_icmp_rtt_milliseconds",
        "gauge",
        "Round-trip time of the last ICMP echo answered.",
        &|h| {
            h.last_icmp_rtt_ms
                .map(|ms| (String::new(), ms))
                .into_iter()
                .collect()
        },
    );
}
