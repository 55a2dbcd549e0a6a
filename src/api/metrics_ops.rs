//! The operators' series of `/metrics` (issue 14): payments by kind and final status,
//! payment duration, unknowns and reconciliations, per-terminal probe RTT and last-success
//! age per layer, active transport and switches, certificate days left, journal commit
//! latency, MQTT broker connection, HTTP answers by route and status. Written in the text
//! exposition format; `tests/metrics.rs` parses it strictly.

use std::fmt::Write;

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::Api;
use super::observe::KINDS;
use crate::histogram::{LabelledCounter, escape};
use crate::probe::Health;

fn head(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

fn labelled(out: &mut String, name: &str, keys: &[&str], counter: &LabelledCounter) {
    for (values, n) in counter.snapshot() {
        let labels: Vec<String> = keys
            .iter()
            .zip(&values)
            .map(|(k, v)| format!("{k}=\"{}\"", escape(v)))
            .collect();
        let _ = writeln!(out, "{name}{{{}}} {n}", labels.join(","));
    }
}

pub(super) fn render(api: &Api, unknown_open: u64, out: &mut String) {
    let c = api.payments.counters();
    let name = "ecrlink_payments_final_total";
    head(
        out,
        name,
        "counter",
        "Final results journaled, by terminal, kind and status.",
    );
    labelled(out, name, &["device_id", "kind", "status"], &c.finals);

    let name = "ecrlink_payment_duration_seconds";
    head(
        out,
        name,
        "histogram",
        "How long the POS waited for a payment it started (request to answer), by kind.",
    );
    for (i, kind) in KINDS.iter().enumerate() {
        let labels = format!("kind=\"{}\"", kind.as_str());
        api.metrics.observed.payment_seconds[i].render(out, name, &labels);
    }

    let name = "ecrlink_unknown_open";
    head(
        out,
        name,
        "gauge",
        "Journaled transactions whose outcome is still unknown (being reconciled).",
    );
    let _ = writeln!(out, "{name} {unknown_open}");

    let name = "ecrlink_reconciliations_total";
    head(
        out,
        name,
        "counter",
        "Outcomes found by reconciliation (after unknown or a restart), by terminal and status.",
    );
    labelled(out, name, &["device_id", "status"], &c.reconciled);

    let name = "ecrlink_transport_switches_total";
    head(
        out,
        name,
        "counter",
        "Transport switches made during transactions, by terminal and the transport moved to.",
    );
    labelled(out, name, &["device_id", "to"], &c.transport_switches);

    per_terminal(api, out);

    let name = "ecrlink_journal_commit_seconds";
    head(
        out,
        name,
        "histogram",
        "Journal commit latency: BEGIN to the end of COMMIT, its fsync included.",
    );
    api.payments
        .journal()
        .health()
        .commit_latency
        .0
        .render(out, name, "");

    let name = "ecrlink_http_responses_total";
    head(
        out,
        name,
        "counter",
        "API answers by route template (unmatched for unknown paths), method and status.",
    );
    labelled(
        out,
        name,
        &["route", "method", "status"],
        &api.metrics.observed.http,
    );
}

fn per_terminal(api: &Api, out: &mut String) {
    let now = tokio::time::Instant::now();
    let mut rtt = String::new();
    let mut age = String::new();
    let mut days = String::new();
    let mut active = String::new();
    let mut mqtt = String::new();
    for t in &api.terminals {
        let h: Health = t.health.borrow().clone();
        let device = escape(&t.device_id);
        let layers = [
            ("icmp", h.last_icmp_rtt_ms, h.last_ok_at.icmp),
            ("tcp", h.last_tcp_rtt_ms, h.last_ok_at.tcp),
            ("tls", h.last_tls_rtt_ms, h.last_ok_at.tls),
        ];
        for (layer, ms, at) in layers {
            let labels = format!("device_id=\"{device}\",layer=\"{layer}\"");
            if let Some(ms) = ms {
                let _ = writeln!(
                    rtt,
                    "ecrlink_terminal_probe_rtt_milliseconds{{{labels}}} {ms}"
                );
            }
            if let Some(at) = at {
                let secs = now.saturating_duration_since(at).as_secs_f64();
                let _ = writeln!(
                    age,
                    "ecrlink_terminal_probe_success_age_seconds{{{labels}}} {secs}"
                );
            }
        }
        if let Some(left) = h.certificate_expiry.as_deref().and_then(days_left) {
            let _ = writeln!(
                days,
                "ecrlink_terminal_certificate_days_left{{device_id=\"{device}\"}} {left:.2}"
            );
        }
        let current = api
            .payments
            .active_transport(&t.device_id)
            .unwrap_or("direct");
        for transport in ["direct", "mqtt"] {
            let _ = writeln!(
                active,
                "ecrlink_terminal_transport_active{{device_id=\"{device}\",transport=\"{transport}\"}} {}",
                u8::from(current == transport)
            );
        }
        for detail in api.payments.transport_details(&t.device_id) {
            if let Some(up) = detail.get("brokerConnected").and_then(|v| v.as_bool()) {
                let _ = writeln!(
                    mqtt,
                    "ecrlink_mqtt_broker_connected{{device_id=\"{device}\"}} {}",
                    u8::from(up)
                );
            }
        }
    }
    head(
        out,
        "ecrlink_terminal_probe_rtt_milliseconds",
        "gauge",
        "Last successful probe's time per layer: ICMP echo, TCP connect, TLS check (connect and verified handshake).",
    );
    out.push_str(&rtt);
    head(
        out,
        "ecrlink_terminal_probe_success_age_seconds",
        "gauge",
        "Seconds since each probe layer last succeeded.",
    );
    out.push_str(&age);
    head(
        out,
        "ecrlink_terminal_certificate_days_left",
        "gauge",
        "Days until the terminal's certificate expires (from the last TLS check).",
    );
    out.push_str(&days);
    head(
        out,
        "ecrlink_terminal_transport_active",
        "gauge",
        "1 for the transport new work for the terminal starts on.",
    );
    out.push_str(&active);
    head(
        out,
        "ecrlink_mqtt_broker_connected",
        "gauge",
        "1 while the MQTT fallback's broker connection is up (only where the fallback is configured).",
    );
    out.push_str(&mqtt);
}

fn days_left(expiry: &str) -> Option<f64> {
    let at = OffsetDateTime::parse(expiry, &Rfc3339).ok()?;
    Some((at - OffsetDateTime::now_utc()).as_seconds_f64() / 86_400.0)
}
