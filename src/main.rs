//! The `ecrlink` command: parse the command line, set up logging, load the
//! configuration and hand over to the library. A fatal error is one clear line on
//! stderr and a non-zero exit.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::Parser;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use ecrlink::config::{self, Overrides};
use ecrlink::pki::{self, InitOptions};
use ecrlink::serve::Gateway;
use ecrlink::sim::{Faults, Fleet, FleetOptions};
use ecrlink::transport::mqtt::wire::BrokerUrl;

mod args;

const DEFAULT_CONFIG: &str = "config/config.json";

use args::*;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let log_format = match ecrlink::log_format::LogFormat::choose(cli.log_format) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("ecrlink: {e}");
            return ExitCode::FAILURE;
        }
    };
    let command = match cli.command {
        Command::Service(cmd) => return service(cmd),
        other => other,
    };
    ecrlink::log_format::init(log_format);
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("ecrlink: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(command)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("ecrlink: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(command: Command) -> Result<ExitCode> {
    match command {
        Command::Certs(cmd) => certs(cmd),
        Command::Config(ConfigCommand::Check { config }) => config_check(config),
        Command::Doctor { config } => {
            let report = ecrlink::doctor::run(load_config(config, &Overrides::default())).await;
            print!("{}", report.render());
            Ok(if report.healthy() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        Command::Sim(args) => sim(args).await,
        Command::Serve(args) => serve(args, shutdown_on_signal()).await,
        Command::Pay(args) => Ok(pay(args).await),
        Command::Service(_) => unreachable!("dispatched in main, outside the runtime"),
        Command::Demo { smoke } => {
            let shutdown = shutdown_on_signal();
            match ecrlink::demo::run(smoke, shutdown).await {
                Ok(_) if smoke => {
                    println!(
                        "smoke test passed: a sale on each lane was approved end to end over verified TLS"
                    );
                    Ok(ExitCode::SUCCESS)
                }
                Ok(_) => Ok(ExitCode::SUCCESS),
                Err(e) => bail!(e),
            }
        }
    }
}

fn certs(cmd: CertsCommand) -> Result<ExitCode> {
    let written = match cmd {
        CertsCommand::Init {
            dir,
            terminal_ips,
            gateway_names,
            force,
            ca_out,
        } => pki::init_with_ca_out(
            &InitOptions {
                dir,
                terminal_ips,
                gateway_names,
                force,
            },
            ca_out.as_deref(),
        )?,
        CertsCommand::Renew { dir, ca_dir } => pki::renew(&dir, ca_dir.as_deref())?,
        CertsCommand::Show { dir } => {
            for summary in pki::show(&dir)? {
                println!("{summary}\n");
            }
            return Ok(ExitCode::SUCCESS);
        }
        CertsCommand::Broker {
            dir,
            ips,
            names,
            force,
        } => pki::issue_broker(&dir, &ips, &names, force)?,
        CertsCommand::Device {
            dir,
            device_id,
            force,
        } => pki::issue_device(&dir, &device_id, force)?,
        CertsCommand::VendorCa {
            dir,
            name,
            ips,
            force,
        } => pki::vendor_ca(&dir, &name, &ips, force)?,
    };
    for path in written {
        println!("wrote {}", path.display());
    }
    Ok(ExitCode::SUCCESS)
}

fn load_config(
    path: Option<PathBuf>,
    overrides: &Overrides,
) -> Result<config::Config, config::ConfigError> {
    let explicit = path.is_some();
    let path = path.unwrap_or_else(|| PathBuf::from(DEFAULT_CONFIG));
    if !explicit && !path.exists() {
        tracing::info!(path = %path.display(), "no configuration file; using defaults and ECRLINK_* variables");
    }
    config::load(&path, explicit, overrides)
}

async fn pay(args: PayArgs) -> ExitCode {
    use ecrlink::pay::{Defaults, Exit, Gateway, PayRequest};
    let usage = |msg: String| {
        eprintln!("ecrlink pay: {msg}");
        ExitCode::from(Exit::Usage as u8)
    };
    let explicit = args.config.is_some();
    let defaults = match load_config(args.config, &Overrides::default()) {
        Ok(config) => Defaults::from_config(&config),
        Err(e) if explicit => return usage(format!("the configuration is not valid:\n{e}")),
        // No usable config/config.json: the options given, else the built-in defaults.
        Err(_) => Defaults::builtin(),
    };
    let amount = match ecrlink::pay::parse_amount(&args.amount) {
        Ok(a) => a,
        Err(e) => return usage(e),
    };
    let url = args.url.unwrap_or(defaults.url);
    let tls = if url.starts_with("https://") {
        let ca = args.cacert.unwrap_or(defaults.ca_cert);
        match ecrlink::tls::client_config(&ca, None) {
            Ok(t) => Some(t),
            Err(e) => return usage(format!("--cacert {}: {e}", ca.display())),
        }
    } else {
        None
    };
    let gw = match Gateway::new(&url, tls, args.api_key.or(defaults.api_key)) {
        Ok(g) => g,
        Err(e) => return usage(e.to_string()),
    };
    let (kind, original) = match (args.refund, args.void) {
        (Some(id), _) => ("refund", Some(id)),
        (None, Some(id)) => ("void", Some(id)),
        (None, None) => ("sale", None),
    };
    let request = PayRequest {
        kind,
        device_id: args.device.unwrap_or(defaults.device_id),
        transaction_id: args.id.unwrap_or_else(ecrlink::pay::generated_id),
        amount_minor: amount,
        currency: args.currency,
        original,
    };
    ExitCode::from(ecrlink::pay::run(&gw, &request).await as u8)
}

fn config_check(path: Option<PathBuf>) -> Result<ExitCode> {
    match load_config(path, &Overrides::default()) {
        Ok(config) => {
            println!("{}", serde_json::to_string_pretty(&config.effective())?);
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            eprintln!("ecrlink: the configuration is not valid:\n{e}");
            Ok(ExitCode::from(2))
        }
    }
}

async fn sim(args: SimArgs) -> Result<ExitCode> {
    if !args.card_time.is_finite() || args.card_time < 0.0 {
        bail!(
            "--card-time must be a number of seconds ≥ 0, got {}",
            args.card_time
        );
    }
    let mqtt = match &args.mqtt {
        Some(url) => Some(BrokerUrl::parse(url).map_err(|e| anyhow::anyhow!("--mqtt {e}"))?),
        None => None,
    };
    let faults = Faults {
        drop_responses: args.drop_responses,
        hang: args.hang,
        ignore_polls: args.ignore_polls,
        crash_after_outcome: args.crash_after_outcome,
        hold_payments: args.hold_payments,
        error_after_charge: args.error_after_charge,
        wrong_answer: args.wrong_answer,
        late_record_ms: args.late_record_ms,
        lookup_errors: args.lookup_errors,
    };
    faults
        .check()
        .map_err(|e| anyhow::anyhow!("--error-after-charge: {e}"))?;
    let fleet = Fleet::bind(FleetOptions {
        listen: args.listen,
        devices: args.devices,
        certs: args.certs,
        device_id: args.device_id,
        card_time: Duration::from_secs_f64(args.card_time),
        state: args.state,
        faults,
        mdns: args.mdns.then_some(args.mdns_interfaces),
        mqtt,
        profile: args.profile,
    })
    .await?;
    let terminals = fleet.terminals();
    announce(&format!("listening on {}", terminals[0].1));
    for (device_id, addr) in &terminals {
        tracing::info!(%device_id, %addr, "terminal simulator ready");
    }
    fleet.run(shutdown_on_signal()).await;
    Ok(ExitCode::SUCCESS)
}

async fn serve(args: ServeArgs, shutdown: CancellationToken) -> Result<ExitCode> {
    let overrides = Overrides {
        port: args.port,
        terminal_ip: args.terminal_ip,
        journal: args.journal,
        certs_dir: args.certs_dir,
        values: Vec::new(),
    };
    let config = match load_config(args.config, &overrides) {
        Ok(c) => c,
        Err(e) => bail!("the configuration is not valid:\n{e}"),
    };
    // Before binding: a refused exposure never opens the port.
    ecrlink::api::client_auth::check_exposure(&config)?;
    let listener = TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    let gateway = Gateway::prepare(&config, shutdown.clone()).await?;
    let scheme = if gateway.is_https() { "https" } else { "http" };
    announce(&format!(
        "listening on {scheme}://{}",
        listener.local_addr()?
    ));
    for terminal in &config.terminals {
        tracing::info!(device_id = %terminal.device_id, terminal = %terminal.address, "lane ready");
    }
    tracing::info!(lanes = config.terminals.len(), "gateway ready");
    gateway.run(listener, shutdown).await;
    Ok(ExitCode::SUCCESS)
}

/// `ecrlink service …` (Windows only). It runs outside the async runtime: the Service
/// Control Manager calls `serve_as_service` on a thread of its own, and `service run`
/// logs to files instead of the console.
fn service(cmd: ecrlink::service::ServiceCommand) -> ExitCode {
    if !cmd.logs_to_files() {
        ecrlink::log_format::init(ecrlink::log_format::LogFormat::choose(None).unwrap_or_default());
    }
    match ecrlink::service::run(cmd, serve_as_service) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("ecrlink: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `serve` with the service's home as the current folder, its config file required,
/// until the Service Control Manager stops the service.
fn serve_as_service(
    shutdown: CancellationToken,
) -> std::result::Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let runtime = tokio::runtime::Runtime::new()?;
    let args = ServeArgs {
        config: Some(PathBuf::from(ecrlink::service::CONFIG_FILE)),
        ..ServeArgs::default()
    };
    runtime.block_on(serve(args, shutdown))?;
    Ok(())
}

/// The first line on stdout: scripts and tests read the bound address from it.
fn announce(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

/// A token cancelled on SIGINT or SIGTERM.
fn shutdown_on_signal() -> CancellationToken {
    let token = CancellationToken::new();
    let trigger = token.clone();
    tokio::spawn(async move {
        wait_for_signal().await;
        tracing::info!("shutting down");
        trigger.cancel();
    });
    token
}

#[cfg(unix)]
async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

#[cfg(not(unix))]
async fn wait_for_signal() {
    let _ = tokio::signal::ctrl_c().await;
}
