//! Who may call the API, checked on the request head before any handler runs: the
//! `Host` (against DNS rebinding), the `Origin` (a web page in the POS PC's browser can
//! send a `text/plain` POST without a preflight), the keys (`apiKey`, `refundKey`), and
//! the `Content-Type` of payment and resolve calls. Pure: headers in, a verdict out.

use hyper::header::{
    ACCESS_CONTROL_ALLOW_HEADERS, ACCESS_CONTROL_ALLOW_METHODS, ACCESS_CONTROL_ALLOW_ORIGIN,
    ACCESS_CONTROL_MAX_AGE, AUTHORIZATION, CONTENT_TYPE, HOST, HeaderMap, HeaderValue, ORIGIN,
    VARY,
};
use hyper::{Method, Response, StatusCode};

use crate::constants::CORS_PREFLIGHT_MAX_AGE_SECS;
use crate::http::{Body, error};

/// The access rules of one gateway, from its configuration and certificates.
#[derive(Default)]
pub struct Access {
    pub api_key: Option<String>,
    pub refund_key: Option<String>,
    /// Every connection already presented a client certificate of the private CA.
    pub client_auth: bool,
    pub metrics_public: bool,
    /// Normalized origins (`scheme://host[:port]`, lower case).
    pub cors_origins: Vec<String>,
    /// DNS names the `Host` header may carry besides `localhost` and IP literals: the
    /// names in the gateway's certificate.
    pub host_names: Vec<String>,
    /// `https` or `http`: a page the gateway served itself sends `Origin: SCHEME://HOST`.
    pub scheme: &'static str,
}

/// What a call is, for the rules below.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Call {
    /// Status page, OpenAPI document, `getVersion`: open to anyone who reaches the port.
    Public,
    /// `/metrics`, `/healthz`.
    Monitoring,
    /// Reading transactions and terminals.
    Read,
    /// A sale.
    Sale,
    /// Refund, void, operator resolution: the `refundKey` when one is set.
    Manager,
    /// A cancel: no body, so no content type needed.
    Cancel,
}

impl Call {
    pub fn of(method: &Method, path: &str) -> Call {
        let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
        match (segs.as_slice(), method == Method::POST) {
            ([] | ["openapi.json"] | ["v1", "getVersion"], _) => Call::Public,
            (["metrics"] | ["healthz"], _) => Call::Monitoring,
            (["v1", "sale"], true) => Call::Sale,
            (["v1", "refund" | "void"], true) => Call::Manager,
            (["v1", "transactions", _, "resolve"], true) => Call::Manager,
            (["v1", "transactions", _, "cancel"], true) => Call::Cancel,
            _ => Call::Read,
        }
    }

    /// Calls whose JSON body is read: only `application/json` is taken.
    fn has_json_body(self) -> bool {
        matches!(self, Call::Sale | Call::Manager)
    }
}

/// Why a request was refused before any handler saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    UnsupportedMediaType,
    ForeignOrigin(String),
    ForeignHost(String),
    Unauthorized,
    RefundKeyNeeded,
}

impl Refusal {
    pub fn into_response(self) -> Response<Body> {
        let (status, code, message) = match self {
            Refusal::UnsupportedMediaType => (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "payment and resolve calls take only 'Content-Type: application/json'".into(),
            ),
            Refusal::ForeignOrigin(origin) => (
                StatusCode::FORBIDDEN,
                "origin_not_allowed",
                format!("requests from web origin {origin:?} are refused (list it in corsOrigins)"),
            ),
            Refusal::ForeignHost(host) => (
                StatusCode::FORBIDDEN,
                "host_not_allowed",
                format!(
                    "Host {host:?} does not name this gateway (use localhost, its IP address \
                     or a name in its certificate)"
                ),
            ),
            Refusal::Unauthorized => (
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "missing or wrong API key (send it as 'Authorization: Bearer KEY')".into(),
            ),
            Refusal::RefundKeyNeeded => (
                StatusCode::FORBIDDEN,
                "refund_key_required",
                "refunds, voids and resolutions need the refund key \
                 ('Authorization: Bearer REFUNDKEY')"
                    .into(),
            ),
        };
        error(status, code, message)
    }
}

/// The verdict on a request head: `Ok(Some(origin))` when it came from a listed web
/// origin (the answer gets CORS headers), `Ok(None)` when no origin needs answering.
pub fn check(
    access: &Access,
    method: &Method,
    path: &str,
    headers: &HeaderMap,
) -> Result<Option<String>, Refusal> {
    check_host(access, headers)?;
    let origin = check_origin(access, headers)?;
    let call = Call::of(method, path);
    check_key(access, call, headers)?;
    if call.has_json_body() && !is_json(headers) {
        return Err(Refusal::UnsupportedMediaType);
    }
    Ok(origin)
}

/// A CORS preflight (`OPTIONS` with `Origin`): answered here, without a key (browsers
/// send none on a preflight), when the origin is listed.
pub fn preflight(access: &Access, headers: &HeaderMap) -> Result<Response<Body>, Refusal> {
    check_host(access, headers)?;
    let Some(origin) = check_origin(access, headers)? else {
        return Err(Refusal::ForeignOrigin(String::new()));
    };
    let mut resp = Response::new(Body::default());
    *resp.status_mut() = StatusCode::NO_CONTENT;
    allow_origin(&mut resp, &origin);
    let h = resp.headers_mut();
    h.insert(
        ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static("GET, POST, OPTIONS"),
    );
    h.insert(
        ACCESS_CONTROL_ALLOW_HEADERS,
        HeaderValue::from_static("authorization, content-type"),
    );
    h.insert(
        ACCESS_CONTROL_MAX_AGE,
        HeaderValue::from(CORS_PREFLIGHT_MAX_AGE_SECS),
    );
    Ok(resp)
}

/// Marks an answer as readable by the page of `origin`.
pub fn allow_origin(resp: &mut Response<Body>, origin: &str) {
    if let Ok(value) = HeaderValue::from_str(origin) {
        resp.headers_mut()
            .insert(ACCESS_CONTROL_ALLOW_ORIGIN, value);
    }
}

/// With origins listed, every answer depends on the `Origin` it came with: caches must
/// not hand one origin's answer to another.
pub fn vary_origin(access: &Access, resp: &mut Response<Body>) {
    if !access.cors_origins.is_empty() {
        resp.headers_mut()
            .append(VARY, HeaderValue::from_static("Origin"));
    }
}

fn check_host(access: &Access, headers: &HeaderMap) -> Result<(), Refusal> {
    // Browsers always send Host; a client without one is no web page to rebind.
    let Some(raw) = headers.get(HOST) else {
        return Ok(());
    };
    let text = raw.to_str().unwrap_or("");
    match host_name(text) {
        Some(name) if host_allowed(access, &name) => Ok(()),
        _ => Err(Refusal::ForeignHost(text.chars().take(100).collect())),
    }
}

/// The host part of a `Host` value, lower case, without port or brackets.
fn host_name(text: &str) -> Option<String> {
    let text = text.trim();
    if let Some(rest) = text.strip_prefix('[') {
        let (ip, port) = rest.split_once(']')?;
        if !(port.is_empty() || port.strip_prefix(':').is_some_and(is_port)) {
            return None;
        }
        return Some(ip.to_ascii_lowercase());
    }
    let (name, port) = match text.rsplit_once(':') {
        Some((name, port)) => (name, Some(port)),
        None => (text, None),
    };
    if port.is_some_and(|p| !is_port(p)) || name.is_empty() {
        return None;
    }
    Some(name.trim_end_matches('.').to_ascii_lowercase())
}

fn is_port(text: &str) -> bool {
    !text.is_empty() && text.len() <= 5 && text.bytes().all(|b| b.is_ascii_digit())
}

fn host_allowed(access: &Access, name: &str) -> bool {
    // An IP literal is not a name an attacker's DNS can point here: rebinding needs a name.
    name == "localhost"
        || name.parse::<std::net::IpAddr>().is_ok()
        || access.host_names.iter().any(|n| n == name)
}

fn check_origin(access: &Access, headers: &HeaderMap) -> Result<Option<String>, Refusal> {
    let Some(raw) = headers.get(ORIGIN) else {
        return Ok(None);
    };
    let text = raw.to_str().unwrap_or("");
    let shown = || Refusal::ForeignOrigin(text.chars().take(100).collect());
    let origin = normalize_origin(text).ok_or_else(shown)?;
    if access.cors_origins.contains(&origin) {
        return Ok(Some(origin));
    }
    // The gateway's own status page: same origin, nothing to answer with CORS.
    let own = headers
        .get(HOST)
        .and_then(|h| h.to_str().ok())
        .map(|h| format!("{}://{}", access.scheme, h.to_ascii_lowercase()));
    match own {
        Some(own) if own == origin => Ok(None),
        _ => Err(shown()),
    }
}

/// `scheme://host[:port]` in lower case, or `None` for anything else (paths, `null`,
/// other schemes).
pub fn normalize_origin(text: &str) -> Option<String> {
    let text = text.trim().to_ascii_lowercase();
    let (scheme, rest) = text.split_once("://")?;
    if !matches!(scheme, "http" | "https") || rest.contains(['/', '?', '#', '@', ' ']) {
        return None;
    }
    host_name(rest)?;
    Some(text)
}

fn check_key(access: &Access, call: Call, headers: &HeaderMap) -> Result<(), Refusal> {
    let given = headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    let matches = |key: &Option<String>| match (key, given) {
        (Some(key), Some(given)) => same_secret(key, given),
        _ => false,
    };
    let api_open = access.api_key.is_none();
    // The manager's key opens every call the cashier's does.
    let cashier = api_open || matches(&access.api_key) || matches(&access.refund_key);
    match call {
        Call::Public => Ok(()),
        Call::Monitoring if access.metrics_public => Ok(()),
        Call::Manager if access.refund_key.is_some() => {
            match (matches(&access.refund_key), cashier) {
                (true, _) => Ok(()),
                (false, true) => Err(Refusal::RefundKeyNeeded),
                (false, false) => Err(Refusal::Unauthorized),
            }
        }
        _ if cashier => Ok(()),
        _ => Err(Refusal::Unauthorized),
    }
}

/// Compares digests of the two, in constant time, so the time taken says nothing about
/// how much of a guess was right (or how long the key is).
pub fn same_secret(key: &str, given: &str) -> bool {
    let digest = |s: &str| ring::digest::digest(&ring::digest::SHA256, s.as_bytes());
    let (a, b) = (digest(key), digest(given));
    a.as_ref()
        .iter()
        .zip(b.as_ref())
        .fold(0u8, |acc, (x, y)| acc | (x ^ y))
        == 0
}

fn is_json(headers: &HeaderMap) -> bool {
    let Some(value) = headers.get(CONTENT_TYPE).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let essence = value.split(';').next().unwrap_or("").trim();
    essence.eq_ignore_ascii_case("application/json")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn heads(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    fn access() -> Access {
        Access {
            api_key: Some("cashier".into()),
            refund_key: Some("manager".into()),
            cors_origins: vec!["https://pos.example.com".into()],
            host_names: vec!["till-pc.shop.lan".into()],
            scheme: "https",
            ..Access::default()
        }
    }

    fn sale(h: &HeaderMap) -> Result<Option<String>, Refusal> {
        check(&access(), &Method::POST, "/v1/sale", h)
    }

    #[test]
    fn text_plain_and_missing_type_are_415() {
        let auth = ("authorization", "Bearer cashier");
        let plain = heads(&[auth, ("content-type", "text/plain")]);
        assert_eq!(sale(&plain), Err(Refusal::UnsupportedMediaType));
        assert_eq!(sale(&heads(&[auth])), Err(Refusal::UnsupportedMediaType));
        let json = heads(&[auth, ("content-type", "Application/JSON; charset=utf-8")]);
        assert_eq!(sale(&json), Ok(None));
        // A cancel has no body.
        let cancel = check(
            &access(),
            &Method::POST,
            "/v1/transactions/A/cancel",
            &heads(&[auth]),
        );
        assert_eq!(cancel, Ok(None));
    }

    #[test]
    fn foreign_origin_is_403_and_listed_or_own_origin_passes() {
        let base = [
            ("authorization", "Bearer cashier"),
            ("content-type", "application/json"),
        ];
        let with = |origin: &str| {
            let mut h = heads(&base);
            h.insert(ORIGIN, HeaderValue::from_str(origin).unwrap());
            h.insert(HOST, HeaderValue::from_static("127.0.0.1:3000"));
            h
        };
        assert!(matches!(
            sale(&with("https://evil.example")),
            Err(Refusal::ForeignOrigin(_))
        ));
        assert!(matches!(
            sale(&with("null")),
            Err(Refusal::ForeignOrigin(_))
        ));
        assert_eq!(
            sale(&with("https://POS.example.com")),
            Ok(Some("https://pos.example.com".into()))
        );
        assert_eq!(
            sale(&with("https://127.0.0.1:3000")),
            Ok(None),
            "own status page"
        );
        assert!(matches!(
            sale(&with("http://127.0.0.1:3000")),
            Err(Refusal::ForeignOrigin(_))
        ));
    }

    #[test]
    fn host_must_name_the_gateway() {
        let ok = [
            "localhost:3000",
            "127.0.0.1",
            "[::1]:3000",
            "10.0.0.9:3000",
            "TILL-PC.shop.lan.",
        ];
        for host in ok {
            let h = heads(&[("host", host)]);
            assert_eq!(check_host(&access(), &h), Ok(()), "{host}");
        }
        for host in [
            "evil.example",
            "evil.example:3000",
            "localhost:x",
            "[::1",
            "",
        ] {
            let h = heads(&[("host", host)]);
            assert!(check_host(&access(), &h).is_err(), "{host}");
        }
    }

    #[test]
    fn cashier_sells_manager_refunds() {
        let get = |call: Call, key: Option<&str>| {
            let h = match key {
                Some(k) => heads(&[("authorization", &format!("Bearer {k}"))]),
                None => HeaderMap::new(),
            };
            check_key(&access(), call, &h)
        };
        assert_eq!(get(Call::Sale, Some("cashier")), Ok(()));
        assert_eq!(get(Call::Sale, Some("manager")), Ok(()));
        assert_eq!(get(Call::Sale, Some("cashie")), Err(Refusal::Unauthorized));
        assert_eq!(get(Call::Sale, None), Err(Refusal::Unauthorized));
        assert_eq!(get(Call::Manager, Some("manager")), Ok(()));
        assert_eq!(
            get(Call::Manager, Some("cashier")),
            Err(Refusal::RefundKeyNeeded)
        );
        assert_eq!(
            get(Call::Manager, Some("wrong")),
            Err(Refusal::Unauthorized)
        );
        assert_eq!(get(Call::Monitoring, None), Err(Refusal::Unauthorized));
        assert_eq!(get(Call::Public, None), Ok(()));
        let open = Access {
            metrics_public: true,
            ..access()
        };
        assert_eq!(
            check_key(&open, Call::Monitoring, &HeaderMap::new()),
            Ok(())
        );
    }

    #[test]
    fn origins_normalize() {
        assert_eq!(
            normalize_origin("HTTP://LocalHost:8080"),
            Some("http://localhost:8080".into())
        );
        for bad in [
            "https://a.example/path",
            "ftp://a",
            "null",
            "https://",
            "https://a:99999x",
        ] {
            assert_eq!(normalize_origin(bad), None, "{bad}");
        }
    }

    #[test]
    fn calls_are_classified() {
        assert_eq!(Call::of(&Method::POST, "/v1/refund"), Call::Manager);
        assert_eq!(
            Call::of(&Method::POST, "/v1/transactions/X/resolve"),
            Call::Manager
        );
        assert_eq!(Call::of(&Method::GET, "/v1/sale"), Call::Read);
        assert_eq!(Call::of(&Method::GET, "/healthz"), Call::Monitoring);
        assert_eq!(Call::of(&Method::GET, "/v1/getVersion"), Call::Public);
    }
}
