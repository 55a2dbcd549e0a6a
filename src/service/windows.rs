//! The Windows side of `ecrlink service`: the Service Control Manager (install,
//! uninstall, start, stop, status) and the service itself (`run`, which the SCM starts).

// No `unsafe` here: `define_windows_service!` expands to the one `unsafe` block (reading
// the arguments the SCM hands to the entry point), inside windows-service's own macro,
// which the crate-level `deny(unsafe_code)` does not cover.

use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;
use windows_service::service::{
    ServiceAccess, ServiceAction, ServiceActionType, ServiceControl, ServiceControlAccept,
    ServiceErrorControl, ServiceExitCode, ServiceFailureActions, ServiceFailureResetPeriod,
    ServiceInfo, ServiceStartType, ServiceState, ServiceStatus, ServiceType,
};
use windows_service::service_control_handler::{self, ServiceControlHandlerResult};
use windows_service::service_manager::{ServiceManager, ServiceManagerAccess};
use windows_service::{define_windows_service, service_dispatcher};

use super::{
    DESCRIPTION, DISPLAY_NAME, LOG_DIR, SERVICE_NAME, ServeFn, ServiceCommand, ServiceError,
    default_home,
};

/// Win32 errors that get their own words.
const ERROR_ACCESS_DENIED: i32 = 5;
const ERROR_SERVICE_DOES_NOT_EXIST: i32 = 1060;
const ERROR_FAILED_SERVICE_CONTROLLER_CONNECT: i32 = 1063;
const ERROR_SERVICE_EXISTS: i32 = 1073;
const ERROR_SERVICE_ALREADY_RUNNING: i32 = 1056;
/// How long `start`/`stop` wait for the service to get there.
const STATE_WAIT: Duration = Duration::from_secs(30);
/// Restart after a failure: 5 s, 10 s, then every 30 s; forgiven after a day.
const RESTART_DELAYS: [u64; 3] = [5, 10, 30];
const FAILURE_RESET: Duration = Duration::from_secs(24 * 3600);
/// What the SCM is told to wait for while the gateway drains.
const STOP_WAIT_HINT: Duration = Duration::from_secs(15);

pub fn run(command: ServiceCommand, serve: ServeFn) -> Result<ExitCode, ServiceError> {
    match command {
        ServiceCommand::Install { dir } => install(dir),
        ServiceCommand::Uninstall => uninstall(),
        ServiceCommand::Start => start(),
        ServiceCommand::Stop => stop(),
        ServiceCommand::Status => status(),
        ServiceCommand::Run { dir } => run_service(&dir, serve),
    }
}

fn winerr(what: &str, e: windows_service::Error) -> ServiceError {
    let code = match &e {
        windows_service::Error::Winapi(io) => io.raw_os_error(),
        _ => None,
    };
    let hint = match code {
        Some(ERROR_ACCESS_DENIED) => {
            " (access denied: run this in a Command Prompt opened with \"Run as administrator\")"
        }
        Some(ERROR_SERVICE_DOES_NOT_EXIST) => {
            " (the service is not installed: `ecrlink service install`)"
        }
        Some(ERROR_SERVICE_ALREADY_RUNNING) => " (it is already running)",
        Some(ERROR_SERVICE_EXISTS) => {
            " (already installed: `ecrlink service uninstall` first to change it)"
        }
        _ => "",
    };
    // The crate's Display says only "IO error in winapi call": add the OS error's words.
    let cause = std::error::Error::source(&e)
        .map(|s| format!(": {s}"))
        .unwrap_or_default();
    ServiceError::Windows(format!("{what}: {e}{cause}{hint}"))
}

fn manager(access: ServiceManagerAccess) -> Result<ServiceManager, ServiceError> {
    ServiceManager::local_computer(None::<&str>, access)
        .map_err(|e| winerr("cannot open the Service Control Manager", e))
}

fn install(dir: Option<PathBuf>) -> Result<ExitCode, ServiceError> {
    let exe = std::env::current_exe().map_err(|source| ServiceError::Io {
        what: "cannot find ecrlink.exe",
        path: PathBuf::from("ecrlink.exe"),
        source,
    })?;
    let exe_dir = exe.parent().unwrap_or(Path::new(".")).to_path_buf();
    let program_data = std::env::var_os("ProgramData").map(PathBuf::from);
    let home = match dir {
        Some(d) => std::path::absolute(&d).unwrap_or(d),
        None => default_home(&exe_dir, program_data.as_deref()),
    };
    for sub in [LOG_DIR, "data", "certs", "config"] {
        let path = home.join(sub);
        std::fs::create_dir_all(&path).map_err(|source| ServiceError::Io {
            what: "cannot create",
            path,
            source,
        })?;
    }
    let scm = manager(ServiceManagerAccess::CONNECT | ServiceManagerAccess::CREATE_SERVICE)?;
    let info = ServiceInfo {
        name: SERVICE_NAME.into(),
        display_name: DISPLAY_NAME.into(),
        service_type: ServiceType::OWN_PROCESS,
        start_type: ServiceStartType::AutoStart,
        error_control: ServiceErrorControl::Normal,
        executable_path: exe.clone(),
        launch_arguments: vec![
            "service".into(),
            "run".into(),
            "--dir".into(),
            home.clone().into_os_string(),
        ],
        dependencies: vec![],
        account_name: None, // LocalSystem
        account_password: None,
    };
    let service = scm
        .create_service(
            &info,
            ServiceAccess::CHANGE_CONFIG | ServiceAccess::START | ServiceAccess::QUERY_STATUS,
        )
        .map_err(|e| winerr("cannot create the service", e))?;
    service
        .set_description(DESCRIPTION)
        .map_err(|e| winerr("cannot set the description", e))?;
    service
        .update_failure_actions(ServiceFailureActions {
            reset_period: ServiceFailureResetPeriod::After(FAILURE_RESET),
            reboot_msg: None,
            command: None,
            actions: Some(
                RESTART_DELAYS
                    .iter()
                    .map(|&s| ServiceAction {
                        action_type: ServiceActionType::Restart,
                        delay: Duration::from_secs(s),
                    })
                    .collect(),
            ),
        })
        .map_err(|e| winerr("cannot set the restart-on-failure actions", e))?;
    // An exit with an error (a bad config, a port in use) counts as a failure too, not
    // only a crash. Windows has this since Vista; wine 8 does not, so there it is a
    // warning rather than a failed install.
    if let Err(e) = service.set_failure_actions_on_non_crash_failures(true) {
        eprintln!(
            "warning: {}; the service restarts after a crash only, not after an error exit",
            winerr("cannot set restart on error exits", e)
        );
    }
    println!(
        "installed service {SERVICE_NAME} ({DISPLAY_NAME}): starts at boot, restarts on failure"
    );
    println!("  program: {}", exe.display());
    println!("  home:    {}", home.display());
    println!("  config:  {}", home.join(super::CONFIG_FILE).display());
    println!("  logs:    {}", home.join(LOG_DIR).display());
    println!("start it now with `ecrlink service start`");
    Ok(ExitCode::SUCCESS)
}

fn uninstall() -> Result<ExitCode, ServiceError> {
    let scm = manager(ServiceManagerAccess::CONNECT)?;
    let service = scm
        .open_service(
            SERVICE_NAME,
            ServiceAccess::QUERY_STATUS | ServiceAccess::STOP | ServiceAccess::DELETE,
        )
        .map_err(|e| winerr("cannot open the service", e))?;
    let state = service
        .query_status()
        .map_err(|e| winerr("cannot query the service", e))?
        .current_state;
    if state != ServiceState::Stopped {
        service
            .stop()
            .map_err(|e| winerr("cannot stop the service", e))?;
        wait_for(&service, ServiceState::Stopped)?;
    }
    service
        .delete()
        .map_err(|e| winerr("cannot delete the service", e))?;
    println!(
        "removed service {SERVICE_NAME}; its home folder (config, certs, journal, logs) is kept"
    );
    Ok(ExitCode::SUCCESS)
}

fn start() -> Result<ExitCode, ServiceError> {
    let scm = manager(ServiceManagerAccess::CONNECT)?;
    let service = scm
        .open_service(
            SERVICE_NAME,
            ServiceAccess::START | ServiceAccess::QUERY_STATUS | ServiceAccess::QUERY_CONFIG,
        )
        .map_err(|e| winerr("cannot open the service", e))?;
    service
        .start(&[] as &[&OsStr])
        .map_err(|e| winerr("cannot start the service", e))?;
    match wait_for(&service, ServiceState::Running) {
        Ok(()) => {
            println!("service {SERVICE_NAME} is running");
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => Err(ServiceError::Windows(format!(
            "{e}; the reason is in the log files under {}",
            home_of(&service).join(LOG_DIR).display()
        ))),
    }
}

fn stop() -> Result<ExitCode, ServiceError> {
    let scm = manager(ServiceManagerAccess::CONNECT)?;
    let service = scm
        .open_service(
            SERVICE_NAME,
            ServiceAccess::STOP | ServiceAccess::QUERY_STATUS,
        )
        .map_err(|e| winerr("cannot open the service", e))?;
    service
        .stop()
        .map_err(|e| winerr("cannot stop the service", e))?;
    wait_for(&service, ServiceState::Stopped)?;
    println!("service {SERVICE_NAME} stopped");
    Ok(ExitCode::SUCCESS)
}

/// Exit code like `systemctl status`: 0 running, 3 not running, 4 not installed.
fn status() -> Result<ExitCode, ServiceError> {
    let scm = manager(ServiceManagerAccess::CONNECT)?;
    let service = match scm.open_service(
        SERVICE_NAME,
        ServiceAccess::QUERY_STATUS | ServiceAccess::QUERY_CONFIG,
    ) {
        Ok(s) => s,
        Err(windows_service::Error::Winapi(e))
            if e.raw_os_error() == Some(ERROR_SERVICE_DOES_NOT_EXIST) =>
        {
            println!("service {SERVICE_NAME}: not installed (`ecrlink service install`)");
            return Ok(ExitCode::from(4));
        }
        Err(e) => return Err(winerr("cannot open the service", e)),
    };
    let status = service
        .query_status()
        .map_err(|e| winerr("cannot query the service", e))?;
    let home = home_of(&service);
    let pid = status
        .process_id
        .filter(|&p| p != 0)
        .map(|p| format!(" (pid {p})"))
        .unwrap_or_default();
    println!(
        "service {SERVICE_NAME}: {}{pid}",
        state_word(status.current_state)
    );
    println!("  home: {}", home.display());
    println!("  logs: {}", home.join(LOG_DIR).display());
    if let ServiceExitCode::ServiceSpecific(code) = status.exit_code {
        println!("  last exit: error {code} (see the logs)");
    }
    Ok(if status.current_state == ServiceState::Running {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(3)
    })
}

fn state_word(state: ServiceState) -> &'static str {
    match state {
        ServiceState::Stopped => "stopped",
        ServiceState::StartPending => "starting",
        ServiceState::StopPending => "stopping",
        ServiceState::Running => "running",
        ServiceState::ContinuePending => "resuming",
        ServiceState::PausePending => "pausing",
        ServiceState::Paused => "paused",
    }
}

/// The `--dir` the service was installed with (its command line ends with it).
fn home_of(service: &windows_service::service::Service) -> PathBuf {
    service
        .query_config()
        .ok()
        .and_then(|c| {
            let line = c.executable_path.to_string_lossy().into_owned();
            line.split_once("--dir ")
                .map(|(_, d)| PathBuf::from(d.trim().trim_matches('"')))
        })
        .unwrap_or_else(|| PathBuf::from("(unknown)"))
}

fn wait_for(
    service: &windows_service::service::Service,
    want: ServiceState,
) -> Result<(), ServiceError> {
    let started = Instant::now();
    loop {
        let status = service
            .query_status()
            .map_err(|e| winerr("cannot query the service", e))?;
        if status.current_state == want {
            return Ok(());
        }
        if want == ServiceState::Running && status.current_state == ServiceState::Stopped {
            return Err(ServiceError::Windows(format!(
                "the service stopped right after starting ({:?})",
                status.exit_code
            )));
        }
        if started.elapsed() > STATE_WAIT {
            return Err(ServiceError::Windows(format!(
                "the service is still {} after {} s",
                state_word(status.current_state),
                STATE_WAIT.as_secs()
            )));
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

// --- the service itself ----------------------------------------------------------

static SERVE: OnceLock<ServeFn> = OnceLock::new();

define_windows_service!(ffi_service_main, service_main);

fn run_service(home: &Path, serve: ServeFn) -> Result<ExitCode, ServiceError> {
    std::env::set_current_dir(home).map_err(|source| ServiceError::Io {
        what: "cannot enter the home folder",
        path: home.to_path_buf(),
        source,
    })?;
    let _flush_on_exit = super::logging::init_files(&home.join(LOG_DIR))?;
    let _ = SERVE.set(serve);
    tracing::info!(home = %home.display(), version = env!("CARGO_PKG_VERSION"), "service starting");
    match service_dispatcher::start(SERVICE_NAME, ffi_service_main) {
        Ok(()) => Ok(ExitCode::SUCCESS),
        Err(windows_service::Error::Winapi(e))
            if e.raw_os_error() == Some(ERROR_FAILED_SERVICE_CONTROLLER_CONNECT) =>
        {
            Err(ServiceError::Windows(
                "`service run` is what the Service Control Manager starts; in a terminal use \
                 `ecrlink serve`, or `ecrlink service start`"
                    .into(),
            ))
        }
        Err(e) => Err(winerr("cannot start the service dispatcher", e)),
    }
}

fn service_main(_arguments: Vec<OsString>) {
    if let Err(e) = run_until_stopped() {
        tracing::error!(error = %e, "the service failed");
    }
}

fn run_until_stopped() -> Result<(), ServiceError> {
    let shutdown = CancellationToken::new();
    let on_stop = shutdown.clone();
    let handle = service_control_handler::register(SERVICE_NAME, move |control| match control {
        ServiceControl::Stop | ServiceControl::Shutdown => {
            tracing::info!(?control, "stop requested by the Service Control Manager");
            on_stop.cancel();
            ServiceControlHandlerResult::NoError
        }
        ServiceControl::Interrogate => ServiceControlHandlerResult::NoError,
        _ => ServiceControlHandlerResult::NotImplemented,
    })
    .map_err(|e| winerr("cannot register the service control handler", e))?;
    let report = |state, accept, exit_code, wait_hint| {
        handle.set_service_status(ServiceStatus {
            service_type: ServiceType::OWN_PROCESS,
            current_state: state,
            controls_accepted: accept,
            exit_code,
            checkpoint: 0,
            wait_hint,
            process_id: None,
        })
    };
    let accept = ServiceControlAccept::STOP | ServiceControlAccept::SHUTDOWN;
    report(
        ServiceState::Running,
        accept,
        ServiceExitCode::NO_ERROR,
        Duration::ZERO,
    )
    .map_err(|e| winerr("cannot report the service running", e))?;

    let serve = SERVE
        .get()
        .copied()
        .expect("set before the dispatcher starts");
    let drain = shutdown.clone();
    let outcome = serve(shutdown);
    let _ = report(
        ServiceState::StopPending,
        ServiceControlAccept::empty(),
        ServiceExitCode::NO_ERROR,
        STOP_WAIT_HINT,
    );
    // A non-zero service-specific exit code makes the SCM apply the restart actions.
    let exit_code = match &outcome {
        Ok(()) if drain.is_cancelled() => ServiceExitCode::NO_ERROR,
        Ok(()) => {
            tracing::error!("the gateway stopped without being asked to");
            ServiceExitCode::ServiceSpecific(2)
        }
        Err(e) => {
            tracing::error!(error = %e, "the gateway stopped with an error");
            ServiceExitCode::ServiceSpecific(1)
        }
    };
    tracing::info!(?exit_code, "service stopped");
    report(
        ServiceState::Stopped,
        ServiceControlAccept::empty(),
        exit_code,
        Duration::ZERO,
    )
    .map_err(|e| winerr("cannot report the service stopped", e))
}
