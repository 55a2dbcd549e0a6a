//! Single values in the spellings the seed and the environment use: numbers as JSON
//! numbers or numeric strings, booleans as true/false or "True"/"yes"/"1"/"on" and their
//! opposites, any scalar where a string is meant; and the address, id and path formats.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;

use serde_json::Value;

use crate::constants::DEFAULT_PORT;

const MAX_DEVICE_ID_LEN: usize = 64;

/// Any scalar as text: environment values and the seed's quoting make types unreliable.
pub(super) fn scalar_text(value: &Value) -> Option<String> {
    match value {
        Value::String(text) => Some(text.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(flag) => Some(flag.to_string()),
        Value::Null | Value::Array(_) | Value::Object(_) => None,
    }
}

pub(super) fn whole_number(value: &Value) -> Option<u64> {
    match value {
        Value::Number(n) => n.as_u64(),
        Value::String(text) => text.trim().parse().ok(),
        _ => None,
    }
}

pub(super) fn number(value: &Value) -> Option<f64> {
    let n = match value {
        Value::Number(n) => n.as_f64(),
        Value::String(text) => text.trim().parse().ok(),
        _ => None,
    }?;
    n.is_finite().then_some(n)
}

pub(super) fn boolean(value: &Value) -> Option<bool> {
    match value {
        Value::Bool(flag) => Some(*flag),
        Value::Number(n) => match n.as_u64() {
            Some(1) => Some(true),
            Some(0) => Some(false),
            _ => None,
        },
        Value::String(text) => match text.trim().to_ascii_lowercase().as_str() {
            "true" | "yes" | "on" | "1" => Some(true),
            "false" | "no" | "off" | "0" => Some(false),
            _ => None,
        },
        _ => None,
    }
}

/// `url`: where the API listens. Only "localhost" or an IP literal: resolving a name at
/// start-up could bind somewhere unexpected, or nowhere without DNS.
pub(super) fn parse_listen_ip(text: &str) -> Result<IpAddr, String> {
    let text = text.trim();
    if text.eq_ignore_ascii_case("localhost") {
        return Ok(IpAddr::V4(Ipv4Addr::LOCALHOST));
    }
    let bare = text
        .strip_prefix('[')
        .and_then(|t| t.strip_suffix(']'))
        .unwrap_or(text);
    bare.parse().map_err(|_| {
        "must be \"localhost\" or an IP address to listen on (like \"0.0.0.0\" or \"::1\"); \
         host names are not resolved"
            .to_string()
    })
}

/// `terminalIp`: "IP:PORT", "IP" (port 3000), "[v6]:PORT", "[v6]" or a bare v6 address.
/// Mode F means a fixed IP, so a host name is refused rather than resolved.
pub(super) fn parse_terminal_addr(text: &str) -> Result<SocketAddr, String> {
    let text = text.trim();
    let bracketed = text.strip_prefix('[').and_then(|t| t.strip_suffix(']'));
    let addr = text
        .parse::<SocketAddr>()
        .ok()
        .or_else(|| {
            text.parse::<IpAddr>()
                .ok()
                .map(|ip| SocketAddr::new(ip, DEFAULT_PORT))
        })
        .or_else(|| {
            let ip = bracketed?.parse::<IpAddr>().ok()?;
            Some(SocketAddr::new(ip, DEFAULT_PORT))
        })
        .ok_or_else(|| {
            "must be the terminal's IP address, optionally with a port (\"192.168.1.20:3000\", \
             \"192.168.1.20\" or \"[fd00::20]:3000\"); mode F uses a fixed IP, so host names \
             are not accepted"
                .to_string()
        })?;
    let ip = addr.ip();
    if ip.is_unspecified() || ip.is_multicast() || ip == IpAddr::V4(Ipv4Addr::BROADCAST) {
        return Err(format!("{ip} is not the address of a terminal"));
    }
    if addr.port() == 0 {
        return Err("port 0 is not a terminal port (leave the port out for 3000)".to_string());
    }
    Ok(addr)
}

pub(super) fn parse_device_id(text: &str) -> Result<String, String> {
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-');
    if (1..=MAX_DEVICE_ID_LEN).contains(&text.len()) && text.chars().all(allowed) {
        Ok(text.to_string())
    } else {
        Err(format!(
            "must be 1 to {MAX_DEVICE_ID_LEN} characters of A-Z, a-z, 0-9, '.', '_' or '-'"
        ))
    }
}

pub(super) fn parse_path(text: &str) -> Result<PathBuf, String> {
    if text.trim().is_empty() {
        Err("must be a path, not empty".to_string())
    } else {
        Ok(PathBuf::from(text))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn terminal_addresses() {
        let ok = |text: &str| parse_terminal_addr(text).unwrap().to_string();
        assert_eq!(ok("192.168.55.105:3000"), "192.168.55.105:3000");
        assert_eq!(ok(" 10.0.0.5 "), "10.0.0.5:3000");
        assert_eq!(ok("[fd00::5]:4000"), "[fd00::5]:4000");
        assert_eq!(ok("[fd00::5]"), "[fd00::5]:3000");
        assert_eq!(ok("fd00::5"), "[fd00::5]:3000");
        for bad in [
            "terminal.local",
            "terminal.local:3000",
            "10.0.0.5:abc",
            "10.0.0.5:70000",
        ] {
            assert!(
                parse_terminal_addr(bad).unwrap_err().contains("host names"),
                "{bad}"
            );
        }
        for bad in ["0.0.0.0:3000", "224.0.0.1", "255.255.255.255", "[::]:3000"] {
            assert!(
                parse_terminal_addr(bad)
                    .unwrap_err()
                    .contains("not the address"),
                "{bad}"
            );
        }
        assert!(
            parse_terminal_addr("10.0.0.5:0")
                .unwrap_err()
                .contains("port 0")
        );
    }

    #[test]
    fn listen_addresses() {
        assert_eq!(
            parse_listen_ip("LocalHost"),
            Ok(IpAddr::V4(Ipv4Addr::LOCALHOST))
        );
        assert_eq!(parse_listen_ip("0.0.0.0").unwrap().to_string(), "0.0.0.0");
        assert_eq!(parse_listen_ip("[::1]").unwrap().to_string(), "::1");
        assert!(parse_listen_ip("pos.example").is_err());
        assert!(parse_listen_ip("http://localhost").is_err());
    }

    #[test]
    fn scalars_in_the_seeds_spellings() {
        assert_eq!(boolean(&json!("True")), Some(true));
        assert_eq!(boolean(&json!("no")), Some(false));
        assert_eq!(boolean(&json!(0)), Some(false));
        assert_eq!(boolean(&json!("maybe")), None);
        assert_eq!(boolean(&json!(2)), None);
        assert_eq!(whole_number(&json!("3000")), Some(3000));
        assert_eq!(whole_number(&json!(-1)), None);
        assert_eq!(whole_number(&json!(1.5)), None);
        assert_eq!(number(&json!("0.5")), Some(0.5));
        assert_eq!(number(&json!("NaN")), None);
        assert_eq!(number(&json!("inf")), None);
        assert_eq!(scalar_text(&json!(42)).as_deref(), Some("42"));
        assert_eq!(scalar_text(&json!(["x"])), None);
    }

    #[test]
    fn device_ids() {
        assert!(parse_device_id("ECRLINK-SIM-0001").is_ok());
        assert!(parse_device_id("a.b_c-9").is_ok());
        assert!(parse_device_id("").is_err());
        assert!(parse_device_id("has space").is_err());
        assert!(parse_device_id("ñ").is_err());
        assert!(parse_device_id(&"x".repeat(65)).is_err());
        assert!(parse_device_id(&"x".repeat(64)).is_ok());
    }
}
