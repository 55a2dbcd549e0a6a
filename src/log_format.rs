//! How `ecrlink` writes its log to stderr: `text` for people, `json` for log shippers
//! (one JSON object per line; the request's span carries `request_id`, `transaction_id`
//! and `device_id`). Chosen by `--log-format` or `ECRLINK_LOGFORMAT`.

use std::io::IsTerminal;

use crate::constants::LOG_FORMAT_ENV;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

impl LogFormat {
    /// The flag when given, else `ECRLINK_LOGFORMAT`, else text. A variable with another
    /// value is an error naming it.
    pub fn choose(flag: Option<LogFormat>) -> Result<LogFormat, String> {
        if let Some(f) = flag {
            return Ok(f);
        }
        match std::env::var(LOG_FORMAT_ENV) {
            Err(_) => Ok(LogFormat::Text),
            Ok(v) if v.eq_ignore_ascii_case("json") => Ok(LogFormat::Json),
            Ok(v) if v.eq_ignore_ascii_case("text") => Ok(LogFormat::Text),
            Ok(v) => Err(format!("{LOG_FORMAT_ENV}={v:?}: must be text or json")),
        }
    }
}

/// Installs the global subscriber (`RUST_LOG` filter, default `info`).
pub fn init(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.with_ansi(std::io::stderr().is_terminal()).init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .init(),
    }
}
