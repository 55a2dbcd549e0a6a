//! The small typed values: secrets, the seed's `startTecnology`, a terminal's profile.

use std::fmt;

/// Never printed: `Debug` and `Display` show `***`; [`Secret::expose`] reads it on purpose.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

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

/// The seed's `startTecnology` (the vendor's spelling): every value but `none` asks for the
/// push fallback over MQTT when one is configured (the seed's cloud channels do not exist here).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartTechnology {
    None,
    Pushy,
    Signalr,
    Mqtt,
}

impl StartTechnology {
    pub(super) const ALL: [StartTechnology; 4] =
        [Self::None, Self::Pushy, Self::Signalr, Self::Mqtt];

    pub fn as_str(self) -> &'static str {
        ["none", "pushy", "signalr", "mqtt"][self as usize]
    }

    pub fn wants_push_fallback(self) -> bool {
        self != StartTechnology::None
    }
}

/// The protocol a terminal speaks: the InStore REST API (DESIGN.md) or the payment app's own
/// (`comercia-pos`, `terminal::comercia`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Profile {
    #[default]
    Instore,
    ComerciaPos,
}

impl Profile {
    pub(super) const ALL: [Profile; 2] = [Profile::Instore, Profile::ComerciaPos];

    pub fn as_str(self) -> &'static str {
        ["instore", "comercia-pos"][self as usize]
    }
}
