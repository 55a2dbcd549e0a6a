//! `/metrics` read the way Prometheus reads it: a strict parser of the text exposition
//! format (0.0.4) — every sample belongs to a family declared once with `# TYPE`, families
//! are contiguous, names and labels are well formed, values are numbers, histograms have
//! cumulative buckets ending in `+Inf` equal to `_count` — then the operators' series are
//! checked by value after a sale, a refund and an unknown path.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use common::{DEVICE, World, eventually, sale};
use serde_json::json;

#[derive(Debug)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

#[derive(Debug, Default)]
struct Family {
    kind: String,
    help: bool,
    samples: Vec<Sample>,
}

fn valid_name(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

fn parse_labels(s: &str) -> Result<BTreeMap<String, String>, String> {
    let mut labels = BTreeMap::new();
    let mut rest = s;
    while !rest.is_empty() {
        let (key, after) = rest
            .split_once("=\"")
            .ok_or(format!("label without =\": {s}"))?;
        if !valid_name(key) || key.starts_with("__") {
            return Err(format!("bad label name {key:?}"));
        }
        let mut value = String::new();
        let mut chars = after.char_indices();
        let end = loop {
            match chars.next() {
                Some((_, '\\')) => match chars.next() {
                    Some((_, 'n')) => value.push('\n'),
                    Some((_, c @ ('\\' | '"'))) => value.push(c),
                    other => return Err(format!("bad escape {other:?} in {s}")),
                },
                Some((i, '"')) => break i,
                Some((_, c)) => value.push(c),
                None => return Err(format!("unterminated label value in {s}")),
            }
        };
        if labels.insert(key.to_string(), value).is_some() {
            return Err(format!("label {key} twice in {s}"));
        }
        rest = &after[end + 1..];
        rest = rest.strip_prefix(',').unwrap_or(rest);
    }
    Ok(labels)
}

fn parse_value(s: &str) -> Result<f64, String> {
    match s {
        "+Inf" => Ok(f64::INFINITY),
        "-Inf" => Ok(f64::NEG_INFINITY),
        "NaN" => Ok(f64::NAN),
        _ => s.parse().map_err(|e| format!("bad value {s:?}: {e}")),
    }
}

/// The family a sample name belongs to (histogram parts map to their base name).
fn family_of<'a>(name: &'a str, families: &BTreeMap<String, Family>) -> &'a str {
    for suffix in ["_bucket", "_sum", "_count"] {
        if let Some(base) = name.strip_suffix(suffix)
            && families.get(base).is_some_and(|f| f.kind == "histogram")
        {
            return base;
        }
    }
    name
}

fn parse(text: &str) -> Result<BTreeMap<String, Family>, String> {
    let mut families: BTreeMap<String, Family> = BTreeMap::new();
    let mut finished: BTreeSet<String> = BTreeSet::new();
    let mut current: Option<String> = None;
    if !text.ends_with('\n') {
        return Err("the exposition must end with a newline".into());
    }
    for line in text.lines() {
        if line.is_empty() {
            continue;
        }
        let family = if let Some(rest) = line.strip_prefix("# ") {
            let mut parts = rest.splitn(3, ' ');
            let (what, name, arg) = (parts.next(), parts.next(), parts.next());
            let name = name.ok_or(format!("bad comment line {line:?}"))?;
            if !valid_name(name) {
                return Err(format!("bad metric name {name:?}"));
            }
            let f = families.entry(name.to_string()).or_default();
            match (what, arg) {
                (Some("HELP"), Some(_)) if !f.help => f.help = true,
                (Some("TYPE"), Some(kind)) if f.kind.is_empty() && f.samples.is_empty() => {
                    if !["counter", "gauge", "histogram", "summary", "untyped"].contains(&kind) {
                        return Err(format!("bad type {kind}"));
                    }
                    f.kind = kind.to_string();
                }
                _ => return Err(format!("repeated or misplaced {line:?}")),
            }
            name.to_string()
        } else if line.starts_with('#') {
            continue;
        } else {
            let (head, value) = line.rsplit_once(' ').ok_or(format!("no value: {line:?}"))?;
            let (name, labels) = match head.split_once('{') {
                Some((n, l)) => (
                    n,
                    parse_labels(
                        l.strip_suffix('}')
                            .ok_or(format!("unclosed {{: {line:?}"))?,
                    )?,
                ),
                None => (head, BTreeMap::new()),
            };
            if !valid_name(name) {
                return Err(format!("bad sample name {name:?}"));
            }
            let base = family_of(name, &families).to_string();
            let f = families
                .get_mut(&base)
                .filter(|f| !f.kind.is_empty())
                .ok_or(format!("sample {name} before its # TYPE"))?;
            f.samples.push(Sample {
                name: name.to_string(),
                labels,
                value: parse_value(value)?,
            });
            base
        };
        if current.as_deref() != Some(family.as_str()) {
            if finished.contains(&family) {
                return Err(format!("family {family} is not contiguous"));
            }
            if let Some(prev) = current.replace(family) {
                finished.insert(prev);
            }
        }
    }
    for (name, f) in &families {
        if f.kind.is_empty() {
            return Err(format!("{name} has no # TYPE"));
        }
        if f.kind == "counter" && !name.ends_with("_total") {
            return Err(format!("counter {name} does not end in _total"));
        }
        if f.kind == "histogram" {
            check_histogram(name, f)?;
        }
    }
    Ok(families)
}

fn check_histogram(name: &str, f: &Family) -> Result<(), String> {
    // Per label set (without le): the buckets in order, then _sum and _count.
    // Buckets as (le, count), and the _count.
    type Series = (Vec<(f64, f64)>, Option<f64>);
    let mut series: BTreeMap<BTreeMap<String, String>, Series> = BTreeMap::new();
    for s in &f.samples {
        let mut key = s.labels.clone();
        let le = key.remove("le");
        let entry = series.entry(key).or_default();
        if s.name == format!("{name}_bucket") {
            let le = parse_value(&le.ok_or(format!("{name}_bucket without le"))?)?;
            entry.0.push((le, s.value));
        } else if s.name == format!("{name}_count") {
            entry.1 = Some(s.value);
        }
    }
    for (labels, (buckets, count)) in series {
        let bounds_rise = buckets.windows(2).all(|w| w[0].0 < w[1].0);
        let counts_rise = buckets.windows(2).all(|w| w[0].1 <= w[1].1);
        let last = buckets.last().copied();
        if !bounds_rise || !counts_rise || last.map(|b| b.0) != Some(f64::INFINITY) {
            return Err(format!(
                "{name}{labels:?}: buckets not cumulative up to +Inf"
            ));
        }
        if last.map(|b| b.1) != count {
            return Err(format!("{name}{labels:?}: +Inf bucket differs from _count"));
        }
    }
    Ok(())
}

fn value(families: &BTreeMap<String, Family>, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let base = family_of(name, families);
    families.get(base)?.samples.iter().find_map(|s| {
        let all = labels
            .iter()
            .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v));
        (s.name == name && all).then_some(s.value)
    })
}

#[test]
fn the_parser_refuses_what_prometheus_refuses() {
    let ok = "# TYPE a_total counter\na_total{x=\"1\"} 2\n";
    assert!(parse(ok).is_ok());
    for bad in [
        "a_total 1\n",                                     // no TYPE
        "# TYPE a_total counter\na_total{x=\"1} 2\n",      // unterminated
        "# TYPE a gauge\na 1\n# TYPE b gauge\nb 1\na 2\n", // not contiguous
        "# TYPE a gauge\na x\n",                           // not a number
        "# TYPE a counter\na 1\n",                         // counter without _total
        "# TYPE h histogram\nh_bucket{le=\"1\"} 2\nh_bucket{le=\"+Inf\"} 1\nh_count 1\n",
        "# TYPE h histogram\nh_bucket{le=\"+Inf\"} 2\nh_count 1\n",
        "# TYPE a gauge\n# TYPE a gauge\na 1\n",
        "# TYPE a gauge\na 1",
    ] {
        assert!(parse(bad).is_err(), "accepted: {bad:?}");
    }
}

#[tokio::test]
async fn operators_series_parse_strictly_and_count_what_happened() {
    let w = World::new();
    let sim = w.sim(&["--card-time", "0"]);
    let gw = w.gateway(&w.gateway_config(sim.addr, json!({})));
    let c = w.gateway_client(gw.addr);
    let (st, _) = c.post("/v1/sale", &sale("MET-1", 1000)).await;
    assert_eq!(st.as_u16(), 200);
    let mut refund = sale("MET-R1", 300);
    refund["originalTransactionId"] = json!("MET-1");
    let (st, _) = c.post("/v1/refund", &refund).await;
    assert_eq!(st.as_u16(), 200);
    let (st, _) = c.get("/nowhere").await;
    assert_eq!(st.as_u16(), 404);
    // The probe's first round (TCP and TLS) may still be on its way.
    let families = eventually(Duration::from_secs(20), "probe series", || async {
        let (_, body) = c.get("/metrics").await;
        let families = parse(body.as_str().unwrap()).unwrap_or_else(|e| panic!("{e}"));
        value(
            &families,
            "ecrlink_terminal_probe_rtt_milliseconds",
            &[("layer", "tls")],
        )
        .map(|_| families)
    })
    .await;
    assert!(families.len() >= 15, "{} families", families.len());
    assert!(families.values().any(|f| f.kind == "histogram"));
    let v = |name: &str, labels: &[(&str, &str)]| {
        value(&families, name, labels).unwrap_or_else(|| panic!("{name}{labels:?} missing"))
    };
    let d = ("device_id", DEVICE);
    let approved = ("status", "approved");
    assert_eq!(
        v(
            "ecrlink_payments_final_total",
            &[d, ("kind", "sale"), approved]
        ),
        1.0
    );
    assert_eq!(
        v(
            "ecrlink_payments_final_total",
            &[d, ("kind", "refund"), approved]
        ),
        1.0
    );
    assert_eq!(
        v(
            "ecrlink_payment_duration_seconds_count",
            &[("kind", "sale")]
        ),
        1.0
    );
    assert_eq!(
        v(
            "ecrlink_payment_duration_seconds_count",
            &[("kind", "void")]
        ),
        0.0
    );
    assert_eq!(v("ecrlink_unknown_open", &[]), 0.0);
    assert!(v("ecrlink_journal_commit_seconds_count", &[]) >= 2.0);
    fn route<'a>(r: &'a str, m: &'a str, s: &'a str) -> [(&'a str, &'a str); 3] {
        [("route", r), ("method", m), ("status", s)]
    }
    assert_eq!(
        v(
            "ecrlink_http_responses_total",
            &route("/v1/sale", "POST", "200")
        ),
        1.0
    );
    assert_eq!(
        v(
            "ecrlink_http_responses_total",
            &route("unmatched", "GET", "404")
        ),
        1.0
    );
    for layer in ["tcp", "tls"] {
        let l = [d, ("layer", layer)];
        assert!(v("ecrlink_terminal_probe_rtt_milliseconds", &l) >= 0.0);
        assert!(v("ecrlink_terminal_probe_success_age_seconds", &l) < 60.0);
    }
    let days = v("ecrlink_terminal_certificate_days_left", &[d]);
    assert!(days > 30.0, "{days}");
    assert_eq!(
        v(
            "ecrlink_terminal_transport_active",
            &[d, ("transport", "direct")]
        ),
        1.0
    );
    assert_eq!(
        v(
            "ecrlink_terminal_transport_active",
            &[d, ("transport", "mqtt")]
        ),
        0.0
    );
    for name in [
        "ecrlink_reconciliations_total",
        "ecrlink_transport_switches_total",
        "ecrlink_mqtt_broker_connected",
    ] {
        assert!(families.contains_key(name), "{name} declared");
    }
    // Every per-terminal series names its terminal.
    for (name, f) in &families {
        if name.starts_with("ecrlink_terminal_") {
            assert!(
                f.samples
                    .iter()
                    .all(|s| s.labels.get("device_id").map(String::as_str) == Some(DEVICE)),
                "{name}"
            );
        }
    }
}
