//! What travels over the broker: topic names, the request and answer envelopes, and the
//! broker address. Shared by the gateway's transport and the simulator's MQTT side.
//!
//! A request carries a `requestId` (to correlate the answer) and an `expiresAt` that the
//! terminal enforces: MQTT 3.1.1 has no message expiry, and a persistent session would
//! otherwise hand a stale sale to a terminal that reconnects minutes later.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::terminal::wire::{PaymentRequest, TxnKind};

/// The port of MQTT over TLS.
pub const DEFAULT_MQTTS_PORT: u16 = 8883;

/// The retained payloads of the status topic.
pub const STATUS_ONLINE: &str = "online";
pub const STATUS_OFFLINE: &str = "offline";

/// `ecrlink/{deviceId}/req`: gateway → terminal.
pub fn request_topic(device_id: &str) -> String {
    format!("ecrlink/{device_id}/req")
}

/// `ecrlink/{deviceId}/resp`: terminal → gateway.
pub fn response_topic(device_id: &str) -> String {
    format!("ecrlink/{device_id}/resp")
}

/// `ecrlink/{deviceId}/status`: the terminal's retained `online`, its last will `offline`.
pub fn status_topic(device_id: &str) -> String {
    format!("ecrlink/{device_id}/status")
}

/// The device id and the leaf (`req`, `resp`, `status`) of an `ecrlink/…` topic.
pub fn parse_topic(topic: &str) -> Option<(&str, &str)> {
    let rest = topic.strip_prefix("ecrlink/")?;
    let (device, leaf) = rest.split_once('/')?;
    (!device.is_empty() && !leaf.contains('/')).then_some((device, leaf))
}

/// The operations of the terminal protocol, as they travel over MQTT.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Op {
    Start,
    Current,
    Lookup,
    Cancel,
}

/// Gateway → terminal.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MqttRequest {
    pub request_id: String,
    pub op: Op,
    /// RFC 3339; a terminal that reads the request later must drop it.
    pub expires_at: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transaction_id: Option<String>,
    /// For `start`: sale, refund or void.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<TxnKind>,
    /// For `start`: the POS's request body, as the direct link sends it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request: Option<PaymentRequest>,
}

impl MqttRequest {
    /// True when `expiresAt` is in the past (or unreadable: a request whose lifetime
    /// cannot be known is not acted on).
    pub fn is_expired(&self, now: time::OffsetDateTime) -> bool {
        match time::OffsetDateTime::parse(
            &self.expires_at,
            &time::format_description::well_known::Rfc3339,
        ) {
            Ok(at) => at <= now,
            Err(_) => true,
        }
    }
}

/// Terminal → gateway: the HTTP status and body the direct link would have answered.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MqttResponse {
    pub request_id: String,
    pub status: u16,
    pub body: serde_json::Value,
}

/// RFC 3339 of now + `ttl`.
pub fn expires_in(ttl: Duration) -> String {
    let at = time::OffsetDateTime::now_utc() + ttl;
    at.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// `mqtts://IP:PORT`. An IP, as for `terminalIp`: the broker is on the shop LAN, and a
/// name that needs DNS could resolve somewhere unexpected, or nowhere.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BrokerUrl(pub SocketAddr);

impl BrokerUrl {
    pub fn parse(text: &str) -> Result<BrokerUrl, String> {
        let text = text.trim();
        let Some(rest) = text.strip_prefix("mqtts://") else {
            return Err(if text.starts_with("mqtt://") {
                "must use mqtts:// (the broker link is always TLS with client certificates)"
                    .to_string()
            } else {
                "must look like \"mqtts://192.168.1.10:8883\"".to_string()
            });
        };
        let rest = rest.trim_end_matches('/');
        let addr = rest
            .parse::<SocketAddr>()
            .ok()
            .or_else(|| {
                let ip = rest.parse::<IpAddr>().ok().or_else(|| {
                    rest.strip_prefix('[')?
                        .strip_suffix(']')?
                        .parse::<IpAddr>()
                        .ok()
                })?;
                Some(SocketAddr::new(ip, DEFAULT_MQTTS_PORT))
            })
            .ok_or_else(|| {
                "must be mqtts://IP[:PORT] with the broker's IP address (port 8883 when \
                 omitted); host names are not resolved"
                    .to_string()
            })?;
        if addr.port() == 0 || addr.ip().is_unspecified() || addr.ip().is_multicast() {
            return Err(format!("{addr} is not the address of a broker"));
        }
        Ok(BrokerUrl(addr))
    }
}

impl fmt::Display for BrokerUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "mqtts://{}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topics_and_their_parts() {
        assert_eq!(request_topic("D1"), "ecrlink/D1/req");
        assert_eq!(parse_topic("ecrlink/D1/resp"), Some(("D1", "resp")));
        assert_eq!(parse_topic("ecrlink/D1/a/b"), None);
        assert_eq!(parse_topic("other/D1/resp"), None);
        assert_eq!(parse_topic("ecrlink//resp"), None);
    }

    #[test]
    fn broker_urls() {
        let ok = |t: &str| BrokerUrl::parse(t).unwrap().to_string();
        assert_eq!(ok("mqtts://192.168.1.10"), "mqtts://192.168.1.10:8883");
        assert_eq!(ok("mqtts://127.0.0.1:18883/"), "mqtts://127.0.0.1:18883");
        assert_eq!(ok("mqtts://[fd00::1]:8883"), "mqtts://[fd00::1]:8883");
        assert_eq!(ok("mqtts://[fd00::1]"), "mqtts://[fd00::1]:8883");
        assert!(
            BrokerUrl::parse("mqtt://10.0.0.1")
                .unwrap_err()
                .contains("mqtts")
        );
        assert!(
            BrokerUrl::parse("mqtts://broker.lan")
                .unwrap_err()
                .contains("host names")
        );
        assert!(BrokerUrl::parse("10.0.0.1:8883").is_err());
        assert!(BrokerUrl::parse("mqtts://10.0.0.1:0").is_err());
    }

    #[test]
    fn expiry_is_enforced_and_unreadable_means_expired() {
        let now = time::OffsetDateTime::now_utc();
        let mut req = MqttRequest {
            request_id: "r1".into(),
            op: Op::Current,
            expires_at: expires_in(Duration::from_secs(5)),
            transaction_id: None,
            kind: None,
            request: None,
        };
        assert!(!req.is_expired(now));
        assert!(req.is_expired(now + Duration::from_secs(6)));
        req.expires_at = "soon".into();
        assert!(req.is_expired(now));
        let text = serde_json::to_value(&req).unwrap();
        assert_eq!(text["op"], "current");
        assert!(text.get("expiresAt").is_some() && text.get("requestId").is_some());
    }
}
