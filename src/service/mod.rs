//! `ecrlink service …`: the gateway as a Windows service (the vendor's connector is one
//! too, installed with NSSM; ecrlink registers itself, no NSSM needed). On Linux the
//! systemd unit in `packaging/linux/` plays this part and the subcommand says so.
//!
//! A service starts in `C:\Windows\System32`, so the service first moves into its
//! *home* folder; the relative defaults (`config/config.json`, `certs`,
//! `data/journal.db`) then resolve there, and the rotating logs go to `home\logs`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use tokio_util::sync::CancellationToken;

#[cfg(windows)]
mod logging;
#[cfg(windows)]
mod windows;

pub const SERVICE_NAME: &str = "ecrlink";
pub const DISPLAY_NAME: &str = "ecrlink payment gateway";
pub const DESCRIPTION: &str = "Cloud-free gateway between the cash register and the payment terminal (REST API on the \
     configured port, HTTPS to the terminal's fixed IP).";
/// The configuration file, relative to the home folder.
pub const CONFIG_FILE: &str = "config/config.json";
/// Rotating log files live here, relative to the home folder.
pub const LOG_DIR: &str = "logs";
/// Daily log files kept before the oldest is deleted.
pub const LOG_FILES_KEPT: usize = 14;

#[derive(Debug, clap::Subcommand)]
pub enum ServiceCommand {
    /// Register the gateway as a Windows service: starts at boot, restarts on failure.
    Install {
        /// Home folder (config\config.json, certs, data, logs). Default: the folder of
        /// ecrlink.exe when config\config.json is beside it, else %ProgramData%\ecrlink.
        #[arg(long)]
        dir: Option<PathBuf>,
    },
    /// Stop the service if it runs and remove it (files and logs stay).
    Uninstall,
    /// Start the installed service and wait until it runs.
    Start,
    /// Stop the service and wait until it stopped.
    Stop,
    /// Print the service's state, home folder and log folder.
    Status,
    /// What the Service Control Manager starts; not for a terminal (use `serve` there).
    #[command(hide = true)]
    Run {
        #[arg(long)]
        dir: PathBuf,
    },
}

impl ServiceCommand {
    /// `run` logs to rotating files; every other subcommand talks to a person.
    pub fn logs_to_files(&self) -> bool {
        matches!(self, ServiceCommand::Run { .. })
    }
}

/// Runs the gateway with the configuration found from the current folder until the
/// token is cancelled. `main` provides it, so the service runs exactly what `serve`
/// runs.
pub type ServeFn = fn(CancellationToken) -> Result<(), Box<dyn std::error::Error + Send + Sync>>;

#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error(
        "`ecrlink service` manages a Windows service and works only on Windows. On Linux \
         use the systemd unit ecrlink.service (installed by the .deb; see \
         packaging/linux/README.md): `sudo systemctl enable --now ecrlink`"
    )]
    WindowsOnly,
    #[error("{0}")]
    Windows(String),
    #[error("{what} {path}: {source}")]
    Io {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Carries out one `ecrlink service` subcommand.
pub fn run(command: ServiceCommand, serve: ServeFn) -> Result<ExitCode, ServiceError> {
    #[cfg(windows)]
    {
        windows::run(command, serve)
    }
    #[cfg(not(windows))]
    {
        let _ = (command, serve);
        Err(ServiceError::WindowsOnly)
    }
}

/// The home folder when `install` is given none: beside the executable for a portable
/// install (a `config/config.json` is there), else `%ProgramData%\ecrlink`, else (no
/// ProgramData, which Windows always sets) beside the executable.
pub fn default_home(exe_dir: &Path, program_data: Option<&Path>) -> PathBuf {
    if exe_dir.join(CONFIG_FILE).is_file() {
        return exe_dir.to_path_buf();
    }
    match program_data {
        Some(base) => base.join(SERVICE_NAME),
        None => exe_dir.to_path_buf(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn portable_install_keeps_its_home_beside_the_exe() {
        let exe = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(exe.path().join("config")).unwrap();
        std::fs::write(exe.path().join(CONFIG_FILE), "{}").unwrap();
        let data = Path::new("/ProgramData");
        assert_eq!(default_home(exe.path(), Some(data)), exe.path());
    }

    #[test]
    fn without_a_config_beside_the_exe_home_is_under_program_data() {
        let exe = tempfile::tempdir().unwrap();
        let data = tempfile::tempdir().unwrap();
        assert_eq!(
            default_home(exe.path(), Some(data.path())),
            data.path().join("ecrlink")
        );
        assert_eq!(default_home(exe.path(), None), exe.path());
    }

    #[test]
    fn only_run_logs_to_files() {
        assert!(ServiceCommand::Run { dir: "x".into() }.logs_to_files());
        assert!(!ServiceCommand::Status.logs_to_files());
    }

    #[cfg(not(windows))]
    #[test]
    fn elsewhere_than_windows_the_subcommand_points_at_systemd() {
        fn never(_: CancellationToken) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
            unreachable!("the service never runs outside Windows")
        }
        let err = run(ServiceCommand::Status, never).unwrap_err();
        assert!(matches!(err, ServiceError::WindowsOnly));
        assert!(err.to_string().contains("systemctl enable --now ecrlink"));
    }
}
