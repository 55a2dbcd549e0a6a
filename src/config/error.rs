//! Loading errors; every [`Problem`] names the key path, the bad value (never a secret's)
//! and its source.

use std::path::PathBuf;
use std::{fmt, io};

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file was asked for explicitly and is not there.
    #[error("config file {} not found", path.display())]
    NotFound { path: PathBuf },

    #[error("cannot read config file {}: {source}", path.display())]
    Io { path: PathBuf, source: io::Error },

    /// Not JSON, not UTF-8, or not a JSON object; `path` is `None` for JSON given as text.
    #[error("{}: {message}", match path {
        Some(path) => format!("config file {} is not valid", path.display()),
        None => "config text is not valid".to_string(),
    })]
    Syntax {
        path: Option<PathBuf>,
        message: String,
    },

    /// Every problem, one per line: the layers' (environment, duplicate keys) first, then
    /// unknown keys and shapes, then the values.
    #[error("invalid configuration ({} problem{}):{}", .0.len(), if .0.len() == 1 { "" } else { "s" },
            .0.iter().map(|p| format!("\n  {p}")).collect::<String>())]
    Invalid(Vec<Problem>),
}

impl ConfigError {
    /// The problems of an `Invalid` error (empty for the other kinds).
    pub fn problems(&self) -> &[Problem] {
        match self {
            ConfigError::Invalid(problems) => problems,
            _ => &[],
        }
    }
}

/// One thing wrong with one key.
#[derive(Debug, Clone)]
pub struct Problem {
    /// `port`, `terminals[1].terminalIp`, `fallback.mqtt.url`, or a wrong environment variable.
    pub key: String,
    /// The offending value as JSON; `None` for secrets, unknown keys and absent values.
    pub value: Option<String>,
    /// `file PATH`, `JSON text`, `environment variable NAME` or `command line`; `None` for a
    /// default or a missing key.
    pub source: Option<String>,
    pub message: String,
}

impl Problem {
    pub(super) fn new(key: String, source: Option<String>, message: impl Into<String>) -> Problem {
        let message = message.into();
        Problem {
            key,
            value: None,
            source,
            message,
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.key, self.message)?;
        if let Some(value) = &self.value {
            write!(f, ", got {value}")?;
        }
        if let Some(source) = &self.source {
            write!(f, " (from {source})")?;
        }
        Ok(())
    }
}
