//! Logs of the Windows service: a service has no console, so it writes daily files
//! `ecrlink.YYYY-MM-DD.log` in `home\logs`, keeping the last [`LOG_FILES_KEPT`]. The level
//! comes from `RUST_LOG` (a system environment variable) or is `info`.

use std::path::Path;

use tracing_appender::non_blocking::WorkerGuard;
use tracing_appender::rolling::{Builder, Rotation};

use super::{LOG_FILES_KEPT, ServiceError};

/// Starts file logging; keep the guard alive until exit, it flushes the last lines.
pub fn init_files(dir: &Path) -> Result<WorkerGuard, ServiceError> {
    std::fs::create_dir_all(dir).map_err(|source| ServiceError::Io {
        what: "cannot create the log folder",
        path: dir.to_path_buf(),
        source,
    })?;
    let appender = Builder::new()
        .rotation(Rotation::DAILY)
        .filename_prefix("ecrlink")
        .filename_suffix("log")
        .max_log_files(LOG_FILES_KEPT)
        .build(dir)
        .map_err(|e| ServiceError::Windows(format!("log files in {}: {e}", dir.display())))?;
    let (writer, guard) = tracing_appender::non_blocking(appender);
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer)
        .with_ansi(false)
        .init();
    Ok(guard)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_log_line_lands_in_a_dated_file() {
        let dir = tempfile::tempdir().unwrap();
        let appender = Builder::new()
            .rotation(Rotation::DAILY)
            .filename_prefix("ecrlink")
            .filename_suffix("log")
            .max_log_files(LOG_FILES_KEPT)
            .build(dir.path())
            .unwrap();
        let (writer, guard) = tracing_appender::non_blocking(appender);
        let subscriber = tracing_subscriber::fmt()
            .with_writer(writer)
            .with_ansi(false)
            .finish();
        tracing::subscriber::with_default(subscriber, || tracing::info!("gateway ready"));
        drop(guard);
        let files: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        assert_eq!(files.len(), 1, "{files:?}");
        let name = files[0].file_name().unwrap().to_string_lossy().into_owned();
        assert!(
            name.starts_with("ecrlink.") && name.ends_with(".log"),
            "{name}"
        );
        assert!(
            std::fs::read_to_string(&files[0])
                .unwrap()
                .contains("gateway ready")
        );
    }
}
