//! The configuration keys, spelled exactly as in the vendor's `config.json` (including
//! `startTecnology` and `staticIptimeOut`), ecrlink's own keys, and their defaults.

use serde_json::{Map, Value, json};

use crate::constants::{DEFAULT_DEVICE_ID, DEFAULT_PORT};

// The seed's keys.
pub(super) const PORT: &str = "port";
pub(super) const URL: &str = "url";
pub(super) const TERMINAL_IP: &str = "terminalIp";
pub(super) const STATIC_IP_TIMEOUT: &str = "staticIptimeOut";
pub(super) const KEY: &str = "key";
pub(super) const MODE: &str = "mode";
pub(super) const SSL: &str = "SSL";
pub(super) const START_TECHNOLOGY: &str = "startTecnology";
pub(super) const LOOPS_BEFORE: &str = "loopsBefore";
pub(super) const TIME_STOP: &str = "timeStop";
pub(super) const RETRIES: &str = "retries";
// ecrlink's keys.
pub(super) const DEVICE_ID: &str = "deviceId";
pub(super) const CERTS_DIR: &str = "certsDir";
pub(super) const POLL_SECONDS: &str = "pollSeconds";
pub(super) const JOURNAL: &str = "journal";
pub(super) const JOURNAL_RETENTION_DAYS: &str = "journalRetentionDays";
pub(super) const PROBE_INTERVAL_MS: &str = "probeIntervalMs";
pub(super) const API_KEY: &str = "apiKey";
pub(super) const PROBE_DOWN_AFTER: &str = "probeDownAfter";
pub(super) const PROBE_UP_AFTER: &str = "probeUpAfter";
pub(super) const MDNS: &str = "mdns";
pub(super) const FALLBACK: &str = super::fallback::FALLBACK;
pub(super) const NOT_FOUND_HORIZON: &str = "notFoundHorizonSeconds";

pub(super) const ALL: [&str; 23] = [
    PORT,
    URL,
    TERMINAL_IP,
    STATIC_IP_TIMEOUT,
    KEY,
    MODE,
    SSL,
    START_TECHNOLOGY,
    LOOPS_BEFORE,
    TIME_STOP,
    RETRIES,
    DEVICE_ID,
    CERTS_DIR,
    POLL_SECONDS,
    JOURNAL,
    JOURNAL_RETENTION_DAYS,
    PROBE_INTERVAL_MS,
    API_KEY,
    PROBE_DOWN_AFTER,
    PROBE_UP_AFTER,
    MDNS,
    FALLBACK,
    NOT_FOUND_HORIZON,
];

/// Environment variables that set a key start with this (matched case-insensitively).
pub(super) const ENV_PREFIX: &str = "ECRLINK_";

/// Keys whose values are never shown, in errors or in the effective configuration.
pub(super) fn is_secret(key: &str) -> bool {
    key == KEY || key == API_KEY
}

/// The bottom layer. `terminalIp`, `key`, `apiKey` and `fallback` have none: the first is
/// required, the others are optional. The seed's values where the seed has them.
pub(super) fn defaults() -> Map<String, Value> {
    let defaults = json!({
        PORT: DEFAULT_PORT,
        URL: "localhost",
        STATIC_IP_TIMEOUT: 5,
        MODE: "F",
        SSL: true,
        START_TECHNOLOGY: "none",
        LOOPS_BEFORE: 3,
        TIME_STOP: 240,
        RETRIES: 600,
        DEVICE_ID: DEFAULT_DEVICE_ID,
        CERTS_DIR: "certs",
        POLL_SECONDS: 10,
        JOURNAL: "data/journal.db",
        JOURNAL_RETENTION_DAYS: 90,
        PROBE_INTERVAL_MS: 1000,
        PROBE_DOWN_AFTER: crate::probe::health::DEFAULT_DOWN_AFTER,
        PROBE_UP_AFTER: crate::probe::health::DEFAULT_UP_AFTER,
        MDNS: { "enabled": false, "interfaces": [] },
        NOT_FOUND_HORIZON: crate::constants::DEFAULT_NOT_FOUND_HORIZON.as_secs(),
    });
    match defaults {
        Value::Object(map) => map,
        _ => unreachable!("json!({{..}}) is an object"),
    }
}

/// The key an environment variable's suffix names: JSON names are camelCase but
/// variables are usually upper case, so `TERMINALIP` and `terminalIp` both mean `terminalIp`.
pub(super) fn from_env_suffix(suffix: &str) -> Option<&'static str> {
    ALL.into_iter().find(|key| key.eq_ignore_ascii_case(suffix))
}

/// A short hint for an unknown key: the known key it probably meant, or the list.
pub(super) fn hint(unknown: &str) -> String {
    let folded = unknown.to_ascii_lowercase();
    let meant = match folded.as_str() {
        // The vendor misspells these; people who fix the spelling get told.
        "starttechnology" => Some(START_TECHNOLOGY),
        "staticiptimeout" | "staticiptimeouts" => Some(STATIC_IP_TIMEOUT),
        _ => ALL
            .into_iter()
            .find(|key| key.eq_ignore_ascii_case(unknown)),
    };
    match meant {
        Some(key) => format!("did you mean \"{key}\"? (keys are case-sensitive)"),
        None => format!("known keys: {}", ALL.join(", ")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_but_the_required_and_optional_ones_has_a_default() {
        let defaults = defaults();
        for key in ALL {
            let expected = !matches!(key, TERMINAL_IP | KEY | API_KEY | FALLBACK);
            assert_eq!(defaults.contains_key(key), expected, "{key}");
        }
        assert_eq!(defaults.len(), ALL.len() - 4);
    }

    #[test]
    fn env_suffix_matches_exact_key_case_insensitively() {
        assert_eq!(from_env_suffix("TERMINALIP"), Some(TERMINAL_IP));
        assert_eq!(from_env_suffix("terminalIp"), Some(TERMINAL_IP));
        assert_eq!(from_env_suffix("ssl"), Some(SSL));
        assert_eq!(from_env_suffix("TERMINAL_IP"), None);
        assert_eq!(from_env_suffix(""), None);
    }

    #[test]
    fn hints_point_at_the_vendor_spelling() {
        assert!(hint("startTechnology").contains("\"startTecnology\""));
        assert!(hint("staticIpTimeout").contains("\"staticIptimeOut\""));
        assert!(hint("ssl").contains("\"SSL\""));
        assert!(hint("colour").contains("terminalIp"));
    }
}
