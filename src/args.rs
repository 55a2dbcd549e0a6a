//! The command line of the `ecrlink` binary, as clap reads it: the commands and their
//! options. Only `main.rs` uses it (it is not part of the library).

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use ecrlink::constants::DEFAULT_DEVICE_ID;

#[derive(Parser)]
#[command(
    name = "ecrlink",
    version,
    about = "Cloud-free gateway between a cash register and a payment terminal"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    /// Log format on stderr: text, or json (one object per line) for log shippers; also
    /// ECRLINK_LOGFORMAT
    #[arg(long = "log-format", global = true, value_enum)]
    pub log_format: Option<ecrlink::log_format::LogFormat>,
}

#[derive(Subcommand)]
pub enum Command {
    /// Create and inspect the private PKI (CA, terminal, gateway and client certificates).
    #[command(subcommand)]
    Certs(CertsCommand),
    /// Run the terminal simulator ("dummy mode") over HTTPS, and over MQTT with --mqtt.
    Sim(SimArgs),
    /// Run the gateway.
    Serve(ServeArgs),
    /// Simulated terminal + gateway on loopback with a throwaway PKI, and a real sale.
    Demo {
        /// Run one sale, print it, and exit 0 only if it was approved end to end.
        #[arg(long)]
        smoke: bool,
    },
    /// Check a configuration.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Check each terminal layer by layer (config, ICMP, TCP, TLS, certificate, clock,
    /// version call, MQTT broker), each with a verdict and a fix; exit 0 only when a sale
    /// can work.
    Doctor {
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Send a sale (or refund, void) to a running gateway and show it live; exit 0
    /// approved, 1 declined or cancelled, 2 failed, 3 unknown, 4 usage or connection error.
    Pay(PayArgs),
    /// The gateway as a Windows service: install, uninstall, start, stop, status.
    #[command(subcommand)]
    Service(ecrlink::service::ServiceCommand),
}

#[derive(Subcommand)]
pub enum CertsCommand {
    /// Write ca.pem, ca.key, caroot.cer, terminal.*, gateway.* and client.* into DIR.
    Init {
        #[arg(long)]
        dir: PathBuf,
        /// An IP address the terminal certificate also names (repeatable).
        #[arg(long = "terminal-ip")]
        terminal_ips: Vec<IpAddr>,
        /// An extra DNS name or IP for the gateway's API certificate (repeatable).
        #[arg(long = "gateway-name")]
        gateway_names: Vec<String>,
        /// Overwrite existing files (this replaces the CA: re-issue every certificate).
        #[arg(long)]
        force: bool,
        /// Write ca.key (with a copy of ca.pem) into this folder instead of DIR: keep it off
        /// the gateway, e.g. on a USB stick, and bring it back for `certs renew --ca-dir`.
        #[arg(long = "ca-out")]
        ca_out: Option<PathBuf>,
    },
    /// Issue every leaf in DIR again (same names, fresh key, a new year) under the same CA.
    Renew {
        #[arg(long)]
        dir: PathBuf,
        /// The folder holding ca.pem and ca.key, when not DIR (see `init --ca-out`).
        #[arg(long = "ca-dir")]
        ca_dir: Option<PathBuf>,
    },
    /// Print subject, SANs, expiry and SHA-256 fingerprint of every certificate in DIR.
    Show {
        #[arg(long)]
        dir: PathBuf,
    },
    /// Issue broker.pem/broker.key for an MQTT broker, signed by DIR's CA.
    Broker {
        #[arg(long)]
        dir: PathBuf,
        #[arg(long = "ip")]
        ips: Vec<IpAddr>,
        #[arg(long = "name")]
        names: Vec<String>,
        #[arg(long)]
        force: bool,
    },
    /// Write a CA that is not ecrlink's (ca.pem, ca.key) and terminal.pem/.key for NAME
    /// into DIR: a stand-in for the vendor SDK's CA, for `sim --profile comercia-pos`.
    VendorCa {
        #[arg(long)]
        dir: PathBuf,
        #[arg(long)]
        name: String,
        #[arg(long = "ip")]
        ips: Vec<IpAddr>,
        #[arg(long)]
        force: bool,
    },
    /// Issue device-ID.pem/device-ID.key (a terminal's MQTT client certificate).
    Device {
        #[arg(long)]
        dir: PathBuf,
        #[arg(long = "device-id")]
        device_id: String,
        #[arg(long)]
        force: bool,
    },
}

#[derive(Subcommand)]
pub enum ConfigCommand {
    /// Print the effective configuration (secrets masked) or every problem found.
    Check {
        #[arg(long)]
        config: Option<PathBuf>,
    },
}

#[derive(Args)]
pub struct SimArgs {
    /// The terminal protocol to serve: the InStore API, or the payment app's own
    /// (`comercia-pos`: /v1/transactions/payment + status, decimal euros, X-SOURCE).
    #[arg(long, value_enum, default_value = "instore")]
    pub profile: ecrlink::sim::SimProfile,
    /// Address to listen on; port 0 picks a free port (the bound address is printed).
    /// The default is where config/config.json looks for it (the gateway has 3000).
    #[arg(long, default_value = "127.0.0.1:3001")]
    pub listen: SocketAddr,
    /// Folder with terminal.pem and terminal.key.
    #[arg(long)]
    pub certs: PathBuf,
    /// The (first) terminal's deviceId; with --devices the others count up from it.
    #[arg(long = "device-id", default_value = DEFAULT_DEVICE_ID)]
    pub device_id: String,
    /// Simulate N terminals in this process: device i (from 0) listens on the first
    /// port + i (a free run of N ports when --listen has port 0), its deviceId counted
    /// up from --device-id (ECRLINK-SIM-0001, -0002, …). Only the first address is printed.
    #[arg(long, default_value_t = 1)]
    pub devices: u16,
    /// Seconds the cardholder takes (fractions allowed; 0 answers at once).
    #[arg(long = "card-time", default_value_t = 2.0)]
    pub card_time: f64,
    /// JSON file that keeps every transaction across restarts (with --devices,
    /// one per device: FILE's stem + "-<deviceId>").
    #[arg(long)]
    pub state: Option<PathBuf>,
    /// Fault: complete the next N payments but drop their answers.
    #[arg(long = "drop-responses", default_value_t = 0)]
    pub drop_responses: u32,
    /// Fault: answer nothing over HTTPS (a frozen REST listener; the MQTT side still answers).
    #[arg(long)]
    pub hang: bool,
    /// Fault: leave the next N status calls unanswered.
    #[arg(long = "ignore-polls", default_value_t = 0)]
    pub ignore_polls: u32,
    /// Fault: exit right after recording the next outcome, before answering.
    #[arg(long = "crash-after-outcome")]
    pub crash_after_outcome: bool,
    /// Fault: keep every payment in progress after its card time until
    /// `POST /sim/faults` clears holdPayments.
    #[arg(long = "hold-payments")]
    pub hold_payments: bool,
    /// Fault: complete and record the next payment, then answer its start call with
    /// this HTTP status and an error body (0 = off).
    #[arg(
        long = "error-after-charge",
        value_name = "STATUS",
        default_value_t = 0
    )]
    pub error_after_charge: u16,
    /// Fault: complete the next payment, then answer its start call with the record of
    /// the transaction run before it.
    #[arg(long = "wrong-answer")]
    pub wrong_answer: bool,
    /// Fault: lookups of a transaction answer 404 not_found until N ms after its
    /// payment request arrived (0 = off).
    #[arg(long = "late-record-ms", value_name = "N", default_value_t = 0)]
    pub late_record_ms: u64,
    /// Fault: answer the next N lookups with 503 and an error body.
    #[arg(long = "lookup-errors", value_name = "N", default_value_t = 0)]
    pub lookup_errors: u32,
    /// Announce the terminal over mDNS as _instorepay._tcp.local. (run it inside a
    /// network namespace of its own, or name interfaces with --mdns-interface).
    #[arg(long)]
    pub mdns: bool,
    /// Limit the mDNS announcement to this interface (repeatable).
    #[arg(long = "mdns-interface")]
    pub mdns_interfaces: Vec<String>,
    /// Also serve over MQTT through this broker (mqtts://IP:PORT), as the terminal, with
    /// device-<device-id>.pem/.key and ca.pem from --certs.
    #[arg(long)]
    pub mqtt: Option<String>,
}

#[derive(Args)]
pub struct PayArgs {
    /// Amount in major units, e.g. 10.00.
    #[arg(long)]
    pub amount: String,
    #[arg(long, default_value = "EUR")]
    pub currency: String,
    /// Terminal (deviceId); default: the configuration's first terminal.
    #[arg(long)]
    pub device: Option<String>,
    /// Refund the transaction with this id.
    #[arg(long, conflicts_with = "void")]
    pub refund: Option<String>,
    /// Void the transaction with this id.
    #[arg(long)]
    pub void: Option<String>,
    /// The transactionId (default: a new PAY-… id). Repeating one never charges twice.
    #[arg(long)]
    pub id: Option<String>,
    /// Gateway URL (default from the configuration: https://localhost:PORT).
    #[arg(long)]
    pub url: Option<String>,
    /// CA certificate to verify the gateway with (default: certsDir/ca.pem).
    #[arg(long)]
    pub cacert: Option<PathBuf>,
    /// API key (default: the configuration's apiKey).
    #[arg(long = "api-key")]
    pub api_key: Option<String>,
    /// The gateway's configuration file, for the defaults (default config/config.json).
    #[arg(long)]
    pub config: Option<PathBuf>,
}

#[derive(Args, Default)]
pub struct ServeArgs {
    /// Configuration file (default config/config.json).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Override `port` (0 picks a free port; the bound address is printed).
    #[arg(long)]
    pub port: Option<u16>,
    /// Override `terminalIp` (the one-terminal shorthand; an error with `terminals`).
    #[arg(long = "terminal-ip")]
    pub terminal_ip: Option<String>,
    /// Override `journal`.
    #[arg(long)]
    pub journal: Option<PathBuf>,
    /// Override `certsDir`.
    #[arg(long = "certs-dir")]
    pub certs_dir: Option<PathBuf>,
}
