//! `X-Request-Id`: every answer of the API carries one — the caller's when it sent a
//! usable one, else a fresh random id — and every log line of the request names it.

use hyper::header::{HeaderName, HeaderValue};
use hyper::{HeaderMap, Request};
use ring::rand::{SecureRandom, SystemRandom};

pub const HEADER: HeaderName = HeaderName::from_static("x-request-id");

/// The longest caller-given id taken over as it is.
const MAX_LEN: usize = 128;

/// The caller's id when it is 1–128 visible ASCII characters (so it cannot break a
/// log line), else a new one.
pub fn of<B>(req: &Request<B>) -> String {
    given(req.headers()).unwrap_or_else(generate)
}

fn given(headers: &HeaderMap) -> Option<String> {
    let v = headers.get(&HEADER)?.to_str().ok()?;
    let ok = !v.is_empty() && v.len() <= MAX_LEN && v.bytes().all(|b| b.is_ascii_graphic());
    ok.then(|| v.to_string())
}

/// 16 random bytes in hex.
pub fn generate() -> String {
    let mut bytes = [0u8; 16];
    if SystemRandom::new().fill(&mut bytes).is_err() {
        // Uniqueness is what matters for a log correlation id; time is a fallback.
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        bytes = nanos.to_be_bytes();
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub fn header_value(id: &str) -> HeaderValue {
    HeaderValue::from_str(id).unwrap_or_else(|_| HeaderValue::from_static("invalid"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_usable_id_is_kept_and_anything_else_replaced() {
        let with = |v: &str| {
            Request::builder()
                .header("X-Request-Id", v)
                .body(())
                .unwrap()
        };
        assert_eq!(of(&with("abc-123")), "abc-123");
        let fresh = of(&with("has space"));
        assert_eq!(fresh.len(), 32);
        assert_ne!(fresh, "has space");
        assert_eq!(of(&with(&"x".repeat(129))).len(), 32);
        let none = Request::builder().body(()).unwrap();
        assert_ne!(of(&none), of(&none), "fresh ids differ");
    }
}
