//! The small typed values of the configuration: secrets, the connector mode and the
//! push technology named by the seed's `startTecnology`.

use std::fmt;

/// A value that must never reach a log line or an error message: `Debug` and `Display`
/// print `***`. Read it on purpose with [`Secret::expose`].
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The secret itself, for the one place that has to compare or send it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// The connector mode. The vendor's modes B (standard) and S (proxy) pair and relay
/// through its cloud; ecrlink is cloud-free and only runs F, the fixed-IP mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    F,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::F => "F",
        }
    }

    /// Reads the seed's `mode` value; the error is the whole message for the user.
    pub(super) fn parse(text: &str) -> Result<Mode, String> {
        match text.trim().to_ascii_uppercase().as_str() {
            "F" => Ok(Mode::F),
            "B" | "S" => Err("modes B and S need the vendor's cloud (Pushy/SignalR via \
                              Azure); ecrlink is cloud-free and runs mode F only: set \
                              \"mode\": \"F\" and \"terminalIp\""
                .to_string()),
            _ => Err(
                "must be \"F\" (the only mode ecrlink runs; the vendor's B and S need \
                      its cloud)"
                    .to_string(),
            ),
        }
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The seed's `startTecnology` (the vendor's spelling). In the seed it picks the first
/// cloud push channel; in ecrlink every value but `none` asks for the push fallback
/// over MQTT when one is configured, and `none` turns the fallback off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartTechnology {
    None,
    Pushy,
    Signalr,
    Mqtt,
}

impl StartTechnology {
    pub fn as_str(self) -> &'static str {
        match self {
            StartTechnology::None => "none",
            StartTechnology::Pushy => "pushy",
            StartTechnology::Signalr => "signalr",
            StartTechnology::Mqtt => "mqtt",
        }
    }

    /// Whether the push fallback is wanted at all (it still needs its own settings).
    pub fn wants_push_fallback(self) -> bool {
        self != StartTechnology::None
    }

    pub(super) fn parse(text: &str) -> Result<StartTechnology, String> {
        match text.trim().to_ascii_lowercase().as_str() {
            "none" => Ok(StartTechnology::None),
            "pushy" => Ok(StartTechnology::Pushy),
            "signalr" => Ok(StartTechnology::Signalr),
            "mqtt" => Ok(StartTechnology::Mqtt),
            _ => Err("must be one of none, pushy, signalr, mqtt".to_string()),
        }
    }
}

impl fmt::Display for StartTechnology {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_never_prints() {
        let secret = Secret::new("hunter2");
        assert_eq!(format!("{secret}"), "***");
        assert_eq!(format!("{secret:?}"), "***");
        assert_eq!(format!("{:?}", Some(secret.clone())), "Some(***)");
        assert_eq!(secret.expose(), "hunter2");
    }

    #[test]
    fn mode_f_only_and_cloud_modes_explained() {
        assert_eq!(Mode::parse("F"), Ok(Mode::F));
        assert_eq!(Mode::parse(" f "), Ok(Mode::F));
        for cloud in ["B", "S", "s"] {
            let message = Mode::parse(cloud).unwrap_err();
            assert!(message.contains("cloud-free"), "{message}");
            assert!(message.contains("\"mode\": \"F\""), "{message}");
        }
        assert!(Mode::parse("X").unwrap_err().contains("\"F\""));
    }

    #[test]
    fn start_technology_is_case_insensitive() {
        assert_eq!(StartTechnology::parse("Pushy"), Ok(StartTechnology::Pushy));
        assert_eq!(
            StartTechnology::parse("SignalR"),
            Ok(StartTechnology::Signalr)
        );
        assert_eq!(StartTechnology::parse("MQTT"), Ok(StartTechnology::Mqtt));
        assert_eq!(StartTechnology::parse("none"), Ok(StartTechnology::None));
        assert!(!StartTechnology::None.wants_push_fallback());
        assert!(StartTechnology::Signalr.wants_push_fallback());
        assert!(StartTechnology::parse("carrier-pigeon").is_err());
    }
}
