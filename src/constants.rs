//! Named values that more than one module relies on: the terminal's fixed TLS name,
//! default ports and ids, and the timing policies of every network step.

use std::time::Duration;

/// The DNS name every terminal certificate carries, whatever IP the terminal has.
/// The vendor's payment app presents this name; ecrlink verifies it against the private CA.
pub const TERMINAL_SERVER_NAME: &str = "instorepaymentapi.globalpayments.es";

/// The port of the terminal's REST server and of the vendor connector's API.
pub const DEFAULT_PORT: u16 = 3000;

/// The device id the simulator uses unless told otherwise; also the gateway's default `deviceId`.
pub const DEFAULT_DEVICE_ID: &str = "ECRLINK-SIM-0001";

/// Largest request body the API and the simulator read (64 KiB).
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// Deadline for a client's TLS handshake on our servers.
pub const SERVER_TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Deadline for a client to send its request head once connected.
pub const SERVER_HEADER_READ_TIMEOUT: Duration = Duration::from_secs(15);

/// Deadline for a client to send its request body.
pub const SERVER_BODY_READ_TIMEOUT: Duration = Duration::from_secs(15);

/// Most connections a server handles at once; further ones wait in the accept queue.
pub const SERVER_MAX_CONNECTIONS: usize = 512;

/// How long shutdown waits for in-flight requests before it drops them.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Deadline for a short terminal call (status poll, lookup, cancel, version) once connected.
pub const TERMINAL_SHORT_CALL_TIMEOUT: Duration = Duration::from_secs(5);

/// The longest a start request may wait on the MQTT broker and still be run: its
/// `expiresAt` (at most `transport::mqtt::START_REQUEST_TTL`, 30 s) after a resend that
/// can come up to `staticIptimeOut` (at most 120 s) after admission, plus 10 s of clock
/// skew. A transaction resumed after a restart is not declared "never arrived" sooner.
pub const MQTT_QUEUED_REQUEST_HORIZON: Duration = Duration::from_secs(160);

/// The slowest pace of background reconciliation of an `unknown` transaction.
pub const RECONCILE_MAX_BACKOFF: Duration = Duration::from_secs(30);

/// How often a transaction whose reconciliation attempts are spent is still asked
/// about (it no longer holds its terminal; an operator may settle it).
pub const ABANDONED_RECONCILE_INTERVAL: Duration = Duration::from_secs(300);

/// First wait before a failed journal write is tried again; it doubles up to
/// [`JOURNAL_RETRY_MAX`].
pub const JOURNAL_RETRY_FIRST: Duration = Duration::from_millis(50);

/// The longest wait between tries of a final result the journal did not take.
pub const JOURNAL_RETRY_MAX: Duration = Duration::from_secs(2);

/// Default `notFoundHorizonSeconds`: the least time between the two `not_found`
/// lookups that "never arrived" needs.
pub const DEFAULT_NOT_FOUND_HORIZON: Duration = Duration::from_secs(5);

/// The longest a kept-alive connection to a terminal may have been idle and still be
/// reused; servers close idle connections much later (ours: 15 s).
pub const KEEPALIVE_IDLE_MAX: Duration = Duration::from_secs(2);

/// Most idle kept-alive connections per terminal client.
pub const KEEPALIVE_MAX_IDLE_CONNECTIONS: usize = 4;

/// `comercia-pos` profile: the payment app's production port (2001 development, 2002 staging).
pub const COMERCIA_DEFAULT_PORT: u16 = 2011;

/// `comercia-pos` profile: the header that names the calling integration, and its default.
pub const COMERCIA_SOURCE_HEADER: &str = "x-source";
pub const COMERCIA_DEFAULT_SOURCE: &str = "COMERCIA";

/// `/metrics` histogram buckets (seconds) of a payment as the POS waits for it: a card
/// payment takes 30–40 s, over a minute with PIN.
pub const PAYMENT_SECONDS_BUCKETS: [f64; 14] = [
    0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 45.0, 60.0, 90.0, 120.0, 180.0,
];

/// `/metrics` histogram buckets (seconds) of a journal commit (one fsync).
pub const JOURNAL_COMMIT_BUCKETS: [f64; 11] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
];

/// The environment variable that picks the log format (`text` or `json`); main reads it
/// before the config, and the config's `ECRLINK_*` layer leaves it alone.
pub const LOG_FORMAT_ENV: &str = "ECRLINK_LOGFORMAT";

/// `ecrlink doctor`: a terminal certificate with fewer days left is a warning.
pub const DOCTOR_CERT_WARN_DAYS: f64 = 30.0;

/// `ecrlink doctor`: a terminal clock further off than this (against its `Date`) is a
/// warning — certificates and journal times are judged by clocks.
pub const DOCTOR_CLOCK_SKEW_WARN: Duration = Duration::from_secs(30);

/// `ecrlink doctor`: how long ICMP echoes may take.
pub const DOCTOR_ICMP_DEADLINE: Duration = Duration::from_secs(2);

/// How often an open event stream (SSE) sends a comment when nothing happened, so
/// proxies and load balancers with idle timeouts (often 30–60 s) keep it open.
pub const SSE_HEARTBEAT: Duration = Duration::from_secs(15);

/// The reconnection delay an event stream proposes to `EventSource` clients.
pub const SSE_RETRY: Duration = Duration::from_secs(2);

/// The simulator's card stages, as `GET /v1/transactions/current` names them, and the
/// share of the card time each takes (a hold keeps the payment at `pin`).
pub const SIM_STAGES: [(&str, f64); 3] = [
    ("waiting_for_card", 0.4),
    ("pin", 0.4),
    ("authorising", 0.2),
];

/// The status page's link history: how far back, and at most how many probe rounds.
pub const RTT_HISTORY_SPAN: Duration = Duration::from_secs(300);
pub const RTT_HISTORY_SAMPLES: usize = 600;
/// How long a browser may cache the answer to a CORS preflight (seconds).
pub const CORS_PREFLIGHT_MAX_AGE_SECS: u32 = 600;

/// How long before a certificate expires `serve` starts warning (logs, `/metrics`).
pub const CERT_EXPIRY_WARNING: time::Duration = time::Duration::days(30);

/// Default `maxConnectionsPerIp`: open API connections per client beyond loopback.
pub const DEFAULT_MAX_CONNECTIONS_PER_IP: usize = 64;

/// Default `startsPerSecondPerIp`: transaction starts per second per client beyond loopback.
pub const DEFAULT_STARTS_PER_SECOND_PER_IP: u32 = 20;

/// Clients the per-IP limits remember before idle ones are forgotten.
pub const LIMITS_TRACKED_IPS: usize = 4096;
/// Default `probeTimeoutMs`: the deadline of one probe's ICMP echo and TCP connect. A
/// LAN answers in a few ms; this bounds how long a dead link costs per probe.
pub const DEFAULT_PROBE_TIMEOUT: Duration = Duration::from_millis(250);

/// Default `probeConfirmMs`: the pause between the quick re-probes that confirm a
/// failed round (or a good one while down) instead of waiting for full rounds.
/// Detect time ≈ phase (0…`probeIntervalMs`) + `probeDownAfter` × (timeout + this).
pub const DEFAULT_PROBE_CONFIRM: Duration = Duration::from_millis(50);

/// While a start that was not delivered waits for a route (the fallback usable, or the
/// terminal found at a verified new address), the routes are looked at this often.
pub const ROUTE_CHECK_INTERVAL: Duration = Duration::from_millis(50);

/// The delivery window of a start (`staticIptimeOut`) when a lane does not set one.
pub const DEFAULT_DELIVERY_WINDOW: Duration = Duration::from_secs(5);
