//! The small typed values of the configuration: secrets, the push technology named by
//! the seed's `startTecnology` and a terminal's protocol profile.

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
        fmt::Debug::fmt(self, f)
    }
}

/// The seed's `mode`. B (standard) and S (proxy) pair and relay through the vendor's
/// cloud; ecrlink is cloud-free and runs only F, the fixed-IP mode, so the value is not kept.
pub(super) fn check_mode(text: &str) -> Result<(), String> {
    let why = match text.trim().to_ascii_uppercase().as_str() {
        "F" => return Ok(()),
        "B" | "S" => {
            "modes B and S need the vendor's cloud (Pushy/SignalR via Azure); ecrlink is \
             cloud-free and runs mode F only: set \"mode\": \"F\" and \"terminalIp\""
        }
        _ => "must be \"F\" (the only mode ecrlink runs; B and S need the vendor's cloud)",
    };
    Err(why.into())
}

/// The seed's `startTecnology` (the vendor's spelling). In the seed it picks the first
/// cloud push channel; in ecrlink every value but `none` asks for the push fallback over
/// MQTT when one is configured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartTechnology {
    None,
    Pushy,
    Signalr,
    Mqtt,
}

impl StartTechnology {
    const ALL: [StartTechnology; 4] = [Self::None, Self::Pushy, Self::Signalr, Self::Mqtt];

    pub fn as_str(self) -> &'static str {
        ["none", "pushy", "signalr", "mqtt"][self as usize]
    }

    /// Whether the push fallback is wanted at all (it still needs its own settings).
    pub fn wants_push_fallback(self) -> bool {
        self != StartTechnology::None
    }

    pub(super) fn parse(text: &str) -> Result<StartTechnology, String> {
        let text = text.trim().to_ascii_lowercase();
        let found = Self::ALL.into_iter().find(|t| t.as_str() == text);
        found.ok_or_else(|| "must be one of none, pushy, signalr, mqtt".into())
    }
}

/// The protocol a terminal speaks: the InStore REST API (DESIGN.md) or the payment app's
/// own REST API (`comercia-pos`, `terminal::comercia`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Profile {
    #[default]
    Instore,
    ComerciaPos,
}

impl Profile {
    pub fn as_str(self) -> &'static str {
        match self {
            Profile::Instore => "instore",
            Profile::ComerciaPos => "comercia-pos",
        }
    }

    pub(super) fn parse(text: &str) -> Result<Profile, String> {
        let text = text.trim().to_ascii_lowercase();
        let found = [Profile::Instore, Profile::ComerciaPos]
            .into_iter()
            .find(|p| p.as_str() == text);
        found.ok_or_else(|| "must be \"instore\" or \"comercia-pos\"".into())
    }
}
