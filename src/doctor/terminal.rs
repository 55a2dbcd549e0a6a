//! One terminal's layers, in the order a sale needs them: ICMP (informative), TCP, TLS,
//! certificate days left, clock skew and the protocol's version call (one HTTPS request).

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::Request;
use hyper::header::{DATE, HOST};
use hyper_util::rt::TokioIo;
use rustls::ClientConfig;
use rustls::pki_types::ServerName;
use time::OffsetDateTime;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use super::cert::{self, Recorder};
use super::{Report, Verdict};
use crate::config::Terminal;
use crate::constants::{
    DOCTOR_CERT_WARN_DAYS, DOCTOR_CLOCK_SKEW_WARN, DOCTOR_ICMP_DEADLINE, TERMINAL_SERVER_NAME,
};
use crate::probe::icmp::{Echo, Icmp};
use crate::tls::terminal_server_name;

pub(super) async fn check(
    report: &mut Report,
    t: &Terminal,
    tls: &(Arc<ClientConfig>, Arc<Recorder>),
    icmp: &Icmp,
) {
    let id = t.device_id.as_str();
    let addr = t.address;
    let icmp_fix = "sales do not need ICMP; to watch the link with it, allow echo requests from this PC on the terminal's network";
    match icmp.echo(addr.ip(), DOCTOR_ICMP_DEADLINE).await {
        None => report.add(id, "icmp", Verdict::Warn, "this process may not send ICMP".into(),
            "run `sudo setcap cap_net_raw+ep $(which ecrlink)` or `sudo sysctl -w net.ipv4.ping_group_range=\"0 2147483647\"`"),
        Some(Echo::Reply(rtt)) => report.add(id, "icmp", Verdict::Ok,
            format!("{} answers ping in {:.1} ms", addr.ip(), rtt.as_secs_f64() * 1e3), ""),
        Some(Echo::Timeout) => report.add(id, "icmp", Verdict::Warn,
            format!("no echo reply from {} (ICMP blocked, or the terminal is off)", addr.ip()), icmp_fix),
        Some(Echo::Error(e)) => report.add(id, "icmp", Verdict::Warn,
            format!("{}: {e}", addr.ip()), icmp_fix),
    }
    let started = Instant::now();
    let tcp = match tokio::time::timeout(t.static_ip_timeout, TcpStream::connect(addr)).await {
        Ok(Ok(s)) => {
            report.add(
                id,
                "tcp",
                Verdict::Ok,
                format!(
                    "connected to {addr} in {:.1} ms",
                    started.elapsed().as_secs_f64() * 1e3
                ),
                "",
            );
            s
        }
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
            report.add(
                id,
                "tcp",
                Verdict::Fail,
                format!(
                    "{addr} refused the connection: nothing listens on port {}",
                    addr.port()
                ),
                "start the payment app on the terminal, or correct terminalIp's port",
            );
            return skip_rest(report, id, "TCP");
        }
        Ok(Err(e)) => {
            report.add(
                id,
                "tcp",
                Verdict::Fail,
                format!("cannot connect to {addr}: {e}"),
                "check terminalIp and that this PC has a route to the terminal's network",
            );
            return skip_rest(report, id, "TCP");
        }
        Err(_) => {
            report.add(id, "tcp", Verdict::Fail,
                format!("{addr} did not answer within {} ms", t.static_ip_timeout.as_millis()),
                "check that the terminal is on, at this address, and that no firewall drops its port");
            return skip_rest(report, id, "TCP");
        }
    };
    let (config, recorder) = tls;
    let _ = recorder.take();
    let name = match &t.comercia {
        Some(lane) => ServerName::try_from(lane.server_name.clone())
            .map(|n| n.to_owned())
            .unwrap_or_else(|_| terminal_server_name()),
        None => terminal_server_name(),
    };
    let started = Instant::now();
    let connector = TlsConnector::from(config.clone());
    let stream =
        match tokio::time::timeout(t.static_ip_timeout, connector.connect(name.clone(), tcp)).await
        {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => {
                let seen = recorder.take().map(|c| cert::describe(&c));
                let (what, fix) = tls_problem(&e);
                let detail = match seen {
                    Some(s) => format!("{what}: the terminal presents a certificate {s}"),
                    None => what,
                };
                report.add(id, "tls", Verdict::Fail, detail, fix);
                return skip_rest(report, id, "TLS");
            }
            Err(_) => {
                report.add(
                    id,
                    "tls",
                    Verdict::Fail,
                    "TLS handshake did not finish in time".into(),
                    "check that the terminal's payment app serves HTTPS on this port",
                );
                return skip_rest(report, id, "TLS");
            }
        };
    let presented = stream
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|c| c.first())
        .cloned();
    report.add(
        id,
        "tls",
        Verdict::Ok,
        format!(
            "verified as {} by the configured CA in {:.1} ms",
            name.to_str(),
            started.elapsed().as_secs_f64() * 1e3
        ),
        "",
    );
    match presented.as_ref().and_then(|c| cert::days_left(c)) {
        Some(days) if days < DOCTOR_CERT_WARN_DAYS => report.add(
            id,
            "cert",
            Verdict::Warn,
            format!("terminal certificate expires in {days:.0} days"),
            "issue a new terminal certificate and install it before it expires",
        ),
        Some(days) => report.add(
            id,
            "cert",
            Verdict::Ok,
            format!("terminal certificate valid for {days:.0} more days"),
            "",
        ),
        None => report.add(
            id,
            "cert",
            Verdict::Warn,
            "the expiry date could not be read".into(),
            "",
        ),
    }
    if t.comercia.is_some() {
        for layer in ["clock", "version"] {
            let what = "the comercia-pos profile has no version call (probes use TCP and TLS)";
            report.add(id, layer, Verdict::Skip, what.into(), "");
        }
        return;
    }
    version_and_clock(report, id, stream).await;
}

fn skip_rest(report: &mut Report, id: &str, after: &str) {
    let layers: &[&'static str] = match after {
        "TCP" => &["tls", "cert", "clock", "version"],
        _ => &["cert", "clock", "version"],
    };
    for &layer in layers {
        report.add(
            id,
            layer,
            Verdict::Skip,
            format!("not checked: {after} failed"),
            "",
        );
    }
}

/// What is wrong with the handshake, in words, and the one-line fix.
fn tls_problem(err: &std::io::Error) -> (String, &'static str) {
    use rustls::CertificateError as C;
    let what = crate::tls::describe_handshake_error(err);
    let tls = err
        .get_ref()
        .and_then(|e| e.downcast_ref::<rustls::Error>());
    let fix = match tls {
        Some(rustls::Error::InvalidCertificate(C::UnknownIssuer | C::BadSignature)) => {
            "the terminal's certificate comes from another CA: put that store's ca.pem in certsDir, or install a terminal certificate issued by this CA"
        }
        Some(rustls::Error::InvalidCertificate(C::Expired | C::ExpiredContext { .. })) => {
            "issue a new terminal certificate with this CA and install it on the terminal"
        }
        Some(rustls::Error::InvalidCertificate(C::NotValidYet | C::NotValidYetContext { .. })) => {
            "set the clocks of the terminal and this PC right (NTP), or re-issue the certificate"
        }
        Some(rustls::Error::InvalidCertificate(
            C::NotValidForName | C::NotValidForNameContext { .. },
        )) => {
            "install a terminal certificate for instorepaymentapi.globalpayments.es (ecrlink certs init writes one)"
        }
        Some(e) if crate::tls::is_name_constraint_violation(e) => {
            "install a terminal certificate for instorepaymentapi.globalpayments.es (ecrlink certs init writes one)"
        }
        _ => "check that the terminal's payment app serves HTTPS on this port",
    };
    (what, fix)
}

/// `GET /v1/getVersion` on the verified connection: the protocol answers, and its `Date`
/// says how far the terminal's clock is from ours.
async fn version_and_clock<S>(report: &mut Report, id: &str, stream: S)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let answer = async {
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| e.to_string())?;
        tokio::spawn(conn);
        let req = Request::get("/v1/getVersion")
            .header(HOST, TERMINAL_SERVER_NAME)
            .body(Empty::<Bytes>::new())
            .map_err(|e| e.to_string())?;
        let sent = OffsetDateTime::now_utc();
        let resp = sender.send_request(req).await.map_err(|e| e.to_string())?;
        let received = OffsetDateTime::now_utc();
        let status = resp.status();
        let date = resp
            .headers()
            .get(DATE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let body = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| e.to_string())?
            .to_bytes();
        let midpoint: OffsetDateTime = sent + (received - sent) / 2;
        Ok::<_, String>((status, date, body, midpoint))
    };
    let answer = tokio::time::timeout(Duration::from_secs(10), answer)
        .await
        .unwrap_or_else(|_| Err("no answer in 10 s".into()));
    let (status, date, body, midpoint) = match answer {
        Ok(a) => a,
        Err(e) => {
            report.add(
                id,
                "clock",
                Verdict::Skip,
                "not checked: no answer".into(),
                "",
            );
            report.add(
                id,
                "version",
                Verdict::Fail,
                format!("GET /v1/getVersion failed: {e}"),
                "update or restart the terminal's payment app",
            );
            return;
        }
    };
    match date.as_deref().and_then(parse_http_date) {
        Some(theirs) => {
            let skew: time::Duration = theirs - midpoint;
            let secs = skew.as_seconds_f64();
            if secs.abs() > DOCTOR_CLOCK_SKEW_WARN.as_secs_f64() {
                report.add(
                    id,
                    "clock",
                    Verdict::Warn,
                    format!(
                        "the terminal's clock is {:.0} s {} this PC's",
                        secs.abs(),
                        if secs > 0.0 { "ahead of" } else { "behind" }
                    ),
                    "set both clocks by NTP (certificate dates and journal times depend on them)",
                );
            } else {
                report.add(
                    id,
                    "clock",
                    Verdict::Ok,
                    format!("within {:.0} s of this PC", secs.abs().ceil()),
                    "",
                );
            }
        }
        None => report.add(
            id,
            "clock",
            Verdict::Warn,
            "the terminal sent no readable Date header".into(),
            "",
        ),
    }
    let version = serde_json::from_slice::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| v["version"].as_str().map(str::to_string));
    match (status.is_success(), version) {
        (true, Some(v)) => report.add(
            id,
            "version",
            Verdict::Ok,
            format!("protocol answers, version {v}"),
            "",
        ),
        _ => report.add(
            id,
            "version",
            Verdict::Fail,
            format!("GET /v1/getVersion answered {status} without a version"),
            "this does not look like the InStore payment API: check the terminal's app and port",
        ),
    }
}

/// An IMF-fixdate (`Wed, 02 Dec 2026 18:42:10 GMT`), the form HTTP servers send.
pub(super) fn parse_http_date(s: &str) -> Option<OffsetDateTime> {
    let format = time::macros::format_description!(
        "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
    );
    time::PrimitiveDateTime::parse(s.trim(), format)
        .ok()
        .map(|t| t.assume_utc())
}

#[cfg(test)]
mod tests {
    #[test]
    fn http_dates_parse() {
        let t = super::parse_http_date("Wed, 02 Dec 2026 18:42:10 GMT").unwrap();
        assert_eq!((t.hour(), t.minute(), t.second()), (18, 42, 10));
        assert!(super::parse_http_date("yesterday").is_none());
    }
}
