//! The gate in front of the handlers: the pure rules of `guard` applied to each request
//! head, CORS preflights answered, and every refusal counted for `/metrics`.

use std::sync::atomic::{AtomicU64, Ordering};

use hyper::body::Incoming;
use hyper::{Method, Request, Response};

use super::Api;
use super::guard::{self, Refusal};
use crate::http::Body;

/// The client's address, put on each request by the accept loop.
#[derive(Clone, Copy, Debug)]
pub struct Peer(pub std::net::SocketAddr);

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
    // A listed origin may read its refusal too (a browser hides an answer without CORS).
    let listed = req
        .headers()
        .get(hyper::header::ORIGIN)
        .and_then(|o| o.to_str().ok())
        .and_then(guard::normalize_origin)
        .filter(|o| api.access.cors_origins.contains(o));
    let refuse = |why: Refusal| {
        api.refused.count(&why);
        let mut resp = why.into_response();
        if let Some(origin) = &listed {
            guard::allow_origin(&mut resp, origin);
        }
        resp
    };
    let headers = req.headers();
    if req.method() == Method::OPTIONS && headers.contains_key(hyper::header::ORIGIN) {
        return Err(guard::preflight(&api.access, headers).unwrap_or_else(refuse));
    }
    let origin =
        guard::check(&api.access, req.method(), req.uri().path(), headers).map_err(refuse)?;
    if is_start(req.method(), req.uri().path())
        && let Some(Peer(peer)) = req.extensions().get::<Peer>()
        && let Err(why) = api.limits.start(peer.ip(), std::time::Instant::now())
    {
        let mut resp = crate::http::error(
            hyper::StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            why.to_string(),
        );
        resp.headers_mut().insert(
            hyper::header::RETRY_AFTER,
            hyper::header::HeaderValue::from_static("1"),
        );
        return Err(resp);
    }
    Ok((req, origin))
}

/// A call that starts a transaction at a terminal.
fn is_start(method: &Method, path: &str) -> bool {
    let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    method == Method::POST && matches!(segs.as_slice(), ["v1", "sale" | "refund" | "void"])
}

/// The access series of `/metrics`.
pub(super) fn metrics(api: &Api, out: &mut String) {
    cert_metrics(api, out);
    let name = "ecrlink_limited_total";
    out.push_str(&format!(
        "# HELP {name} Connections (503) and transaction starts (429) refused by the per-client limits.\n# TYPE {name} counter\n"
    ));
    let l = &api.limits;
    for (limit, n) in [
        ("connections", &l.refused_connections),
        ("starts", &l.refused_starts),
    ] {
        let n = n.load(Ordering::Relaxed);
        out.push_str(&format!("{name}{{limit=\"{limit}\"}} {n}\n"));
    }
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
