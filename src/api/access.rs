//! The gate in front of the handlers: the pure rules of `guard` applied to each request
//! head, CORS preflights answered, and every refusal counted for `/metrics`.

use std::sync::atomic::{AtomicU64, Ordering};

use hyper::body::Incoming;
use hyper::{Method, Request, Response};

use super::Api;
use super::guard::{self, Refusal};
use crate::http::Body;

/// Refusals by reason, for `/metrics`.
#[derive(Default)]
pub struct Refused {
    media_type: AtomicU64,
    origin: AtomicU64,
    host: AtomicU64,
    key: AtomicU64,
    refund_key: AtomicU64,
}

impl Refused {
    fn count(&self, why: &Refusal) {
        let counter = match why {
            Refusal::UnsupportedMediaType => &self.media_type,
            Refusal::ForeignOrigin(_) => &self.origin,
            Refusal::ForeignHost(_) => &self.host,
            Refusal::Unauthorized => &self.key,
            Refusal::RefundKeyNeeded => &self.refund_key,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

/// The request, with the listed origin its answer must name, or the refusal's answer
/// (a preflight's answer too: it never reaches a handler).
pub(super) fn admit(
    api: &Api,
    req: Request<Incoming>,
) -> Result<(Request<Incoming>, Option<String>), Response<Body>> {
    let refuse = |why: Refusal| {
        api.refused.count(&why);
        why.into_response()
    };
    let headers = req.headers();
    if req.method() == Method::OPTIONS && headers.contains_key(hyper::header::ORIGIN) {
        return Err(guard::preflight(&api.access, headers).unwrap_or_else(refuse));
    }
    match guard::check(&api.access, req.method(), req.uri().path(), headers) {
        Ok(origin) => Ok((req, origin)),
        Err(why) => Err(refuse(why)),
    }
}

/// The access series of `/metrics`.
pub(super) fn metrics(api: &Api, out: &mut String) {
    cert_metrics(api, out);
    let name = "ecrlink_requests_refused_total";
    out.push_str(&format!(
        "# HELP {name} Requests refused before any handler, by reason.\n# TYPE {name} counter\n"
    ));
    let r = &api.refused;
    let reasons = [
        ("content_type", &r.media_type),
        ("origin", &r.origin),
        ("host", &r.host),
        ("api_key", &r.key),
        ("refund_key", &r.refund_key),
    ];
    for (reason, n) in reasons {
        let n = n.load(Ordering::Relaxed);
        out.push_str(&format!("{name}{{reason=\"{reason}\"}} {n}\n"));
    }
}

/// Seconds each certificate of `certsDir` has left (negative once expired).
pub(super) fn cert_metrics(api: &Api, out: &mut String) {
    let name = "ecrlink_certificate_expiry_seconds";
    out.push_str(&format!(
        "# HELP {name} Seconds until each certificate in certsDir expires (warned 30 days ahead).\n# TYPE {name} gauge\n"
    ));
    let now = time::OffsetDateTime::now_utc();
    for e in &api.cert_expiry {
        let left = (e.not_after - now).whole_seconds();
        out.push_str(&format!("{name}{{file=\"{}\"}} {left}\n", e.file));
    }
}
