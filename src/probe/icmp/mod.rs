//! ICMP echo to a terminal. Each platform has its own way in: surge-ping's ICMP
//! sockets on Linux (needs `CAP_NET_RAW` or `ping_group_range`), `IcmpSendEcho` of the
//! IP Helper API on Windows (no administrator rights needed, where raw sockets would).
//! Both offer the same `Icmp` (`open`, `available_for`, `echo`) and say once, when
//! ICMP cannot be used, that the gateway watches the terminal with TCP/TLS only.

use std::time::Duration;

#[cfg(not(windows))]
mod surge;
#[cfg(not(windows))]
pub use surge::Icmp;

#[cfg(windows)]
mod windows;
#[cfg(windows)]
pub use windows::Icmp;

/// Echoes sent per round at most; any reply counts, so a lost packet or two under
/// random loss does not fail the round.
const ECHOES_PER_ROUND: u32 = 4;

/// One round's verdict.
#[derive(Clone, Debug, PartialEq)]
pub enum Echo {
    Reply(Duration),
    /// An ICMP error came back (e.g. destination unreachable): not a reply.
    Error(String),
    Timeout,
}
