//! `ecrlink doctor`: for each terminal, each layer a sale depends on, with a verdict and
//! the fix in one line — config, ICMP, TCP, TLS (fixed name, configured CA; what is wrong
//! with the certificate in words), certificate days left, clock skew against the
//! terminal's `Date`, the protocol's version call, and the MQTT broker when the fallback
//! is configured. Exit code 0 only when everything a sale needs is fine.

mod cert;
mod mqtt;
mod terminal;

use std::fmt::Write;

use crate::config::{Config, ConfigError};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    Ok,
    /// Worth fixing, but a sale works (ICMP blocked, certificate expiring, clock off).
    Warn,
    /// A sale cannot work until this is fixed.
    Fail,
    /// Not checked: an earlier layer failed, or the part is not configured.
    Skip,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Ok => "OK",
            Verdict::Warn => "WARN",
            Verdict::Fail => "FAIL",
            Verdict::Skip => "SKIP",
        }
    }
}

#[derive(Clone, Debug)]
pub struct Check {
    /// The terminal's `deviceId`, or `gateway` for what is not per terminal.
    pub scope: String,
    pub layer: &'static str,
    pub verdict: Verdict,
    pub detail: String,
    /// One line saying what to do; empty when nothing is to be done.
    pub fix: String,
}

#[derive(Debug, Default)]
pub struct Report {
    pub checks: Vec<Check>,
}

impl Report {
    fn add(
        &mut self,
        scope: &str,
        layer: &'static str,
        verdict: Verdict,
        detail: String,
        fix: &str,
    ) {
        self.checks.push(Check {
            scope: scope.to_string(),
            layer,
            verdict,
            detail,
            fix: fix.to_string(),
        });
    }

    /// Everything a sale needs is fine.
    pub fn healthy(&self) -> bool {
        self.checks.iter().all(|c| c.verdict != Verdict::Fail)
    }

    pub fn render(&self) -> String {
        let width = self.checks.iter().map(|c| c.scope.len()).max().unwrap_or(7);
        let mut out = String::new();
        for c in &self.checks {
            let _ = write!(
                out,
                "{:width$}  {:8}  {:4}  {}",
                c.scope,
                c.layer,
                c.verdict.as_str(),
                c.detail
            );
            if !c.fix.is_empty() {
                let _ = write!(out, " — fix: {}", c.fix);
            }
            out.push('\n');
        }
        let fails = self
            .checks
            .iter()
            .filter(|c| c.verdict == Verdict::Fail)
            .count();
        let warns = self
            .checks
            .iter()
            .filter(|c| c.verdict == Verdict::Warn)
            .count();
        let _ = writeln!(
            out,
            "{}: {fails} failed, {warns} warnings",
            if fails == 0 {
                "ready to sell"
            } else {
                "NOT ready to sell"
            }
        );
        out
    }
}

/// Runs every check for a loaded (or refused) configuration.
pub async fn run(config: Result<Config, ConfigError>) -> Report {
    let mut report = Report::default();
    let config = match config {
        Ok(c) => c,
        Err(e) => {
            report.add(
                "gateway",
                "config",
                Verdict::Fail,
                format!("not valid: {}", e.to_string().replace('\n', "; ")),
                "correct the keys named above (ecrlink config check prints them all)",
            );
            return report;
        }
    };
    report.add(
        "gateway",
        "config",
        Verdict::Ok,
        format!("valid, {} terminal(s)", config.terminals.len()),
        "",
    );
    let tls = cert::Recorder::config(&config.certs_dir.join(crate::pki::CA_CERT));
    let tls = match tls {
        Ok(t) => t,
        Err(e) => {
            report.add(
                "gateway",
                "ca",
                Verdict::Fail,
                format!("cannot read the CA in {}: {e}", config.certs_dir.display()),
                "point certsDir at the folder with ca.pem (ecrlink certs init writes it)",
            );
            return report;
        }
    };
    certificates(&mut report, &config.certs_dir);
    let icmp = crate::probe::icmp::Icmp::open();
    for t in &config.terminals {
        // A comercia-pos lane is verified against its own caCert, for its serverName.
        let Some(lane) = &t.comercia else {
            terminal::check(&mut report, t, &tls, &icmp).await;
            continue;
        };
        match cert::Recorder::config(&lane.ca_cert) {
            Ok(own) => terminal::check(&mut report, t, &own, &icmp).await,
            Err(e) => report.add(
                &t.device_id,
                "ca",
                Verdict::Fail,
                format!("cannot read caCert {}: {e}", lane.ca_cert.display()),
                "point the terminal's caCert at the payment app SDK's CA file (PEM)",
            ),
        }
    }
    mqtt::check(&mut report, &config).await;
    report
}

/// The certificates in `certsDir` (the gateway's own, the CA, the clients'): the one that
/// expires first, a warning when it has less than `CERT_EXPIRY_WARNING` left.
fn certificates(report: &mut Report, dir: &std::path::Path) {
    let now = time::OffsetDateTime::now_utc();
    let rfc3339 = &time::format_description::well_known::Rfc3339;
    let soonest = crate::pki::show(dir)
        .unwrap_or_default()
        .into_iter()
        .filter_map(|s| {
            let end = time::OffsetDateTime::parse(&s.not_after, rfc3339).ok()?;
            Some((end - now, s.file))
        })
        .min_by_key(|(left, _)| *left);
    let Some((left, file)) = soonest else {
        return;
    };
    let name = file.file_name().unwrap_or_default().to_string_lossy();
    let days = left.whole_days();
    let fix = format!("run `ecrlink certs renew --dir {}`", dir.display());
    if left < crate::constants::CERT_EXPIRY_WARNING {
        let what = format!("{name} expires in {days} days (the first in certsDir to expire)");
        report.add("gateway", "certs", Verdict::Warn, what, &fix);
    } else {
        let what = format!("valid for {days} more days at least ({name} expires first)");
        report.add("gateway", "certs", Verdict::Ok, what, "");
    }
}
