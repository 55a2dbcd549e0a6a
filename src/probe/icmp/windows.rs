//! ICMP echo on Windows through `IcmpSendEcho` (IP Helper, iphlpapi.dll). Raw ICMP
//! sockets need administrator rights on Windows and a service should not need them;
//! `IcmpSendEcho` works for any user. It blocks, so each round runs on tokio's
//! blocking pool with its own handle (a handle per round costs nothing at one round a
//! second, and no handle is ever shared between threads).
//!
//! IPv4 only: the IPv6 variant (`Icmp6SendEcho2`) is not wired up yet, so an IPv6
//! terminal is watched with TCP/TLS probes alone (`available_for` says so).

// The one place in ecrlink with `unsafe`: calling the IP Helper C API. Each block
// passes buffers that live across the call and whose sizes are given to it.
#![allow(unsafe_code)]

use std::net::{IpAddr, Ipv4Addr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use windows_sys::Win32::Foundation::{GetLastError, HANDLE, INVALID_HANDLE_VALUE};
use windows_sys::Win32::NetworkManagement::IpHelper::{
    ICMP_ECHO_REPLY, IP_REQ_TIMED_OUT, IP_SUCCESS, IcmpCloseHandle, IcmpCreateFile, IcmpSendEcho,
};

use super::{ECHOES_PER_ROUND, Echo};

const PAYLOAD: [u8; 16] = [0; 16];
/// Room for the reply header, the echoed payload, 8 bytes for an ICMP error and the
/// IO_STATUS_BLOCK that Windows may add; u64 words keep the header aligned.
const REPLY_WORDS: usize = 64;
const ERROR_ACCESS_DENIED: u32 = 5;

pub struct Icmp {
    /// Turned off for good when Windows refuses the echo itself (access denied: a
    /// policy, or wine without an ICMP socket), so the link is not shown `degraded` for
    /// a missing right.
    v4: AtomicBool,
}

/// What one echo came to; `Denied` switches ICMP off.
enum Sent {
    Echo(Echo),
    Denied,
}

impl Icmp {
    /// Checks once that an ICMP handle can be opened, or logs why ICMP is off.
    pub fn open() -> Icmp {
        let v4 = match IcmpFile::open() {
            Ok(_) => true,
            Err(code) => {
                warn_off(&format!("IcmpCreateFile failed (Windows error {code})"));
                false
            }
        };
        Icmp {
            v4: AtomicBool::new(v4),
        }
    }

    pub fn available_for(&self, ip: IpAddr) -> bool {
        matches!(ip, IpAddr::V4(_)) && self.v4.load(Ordering::Relaxed)
    }

    /// Up to [`ECHOES_PER_ROUND`] echoes within `deadline`; `None` when ICMP is off
    /// for this address family.
    pub async fn echo(&self, ip: IpAddr, deadline: Duration) -> Option<Echo> {
        let IpAddr::V4(v4) = ip else { return None };
        if !self.v4.load(Ordering::Relaxed) {
            return None;
        }
        let per_echo = (deadline / ECHOES_PER_ROUND).max(Duration::from_millis(1));
        let round = tokio::task::spawn_blocking(move || echo_round(v4, per_echo));
        match round.await {
            Ok(Sent::Echo(echo)) => Some(echo),
            Ok(Sent::Denied) => {
                if self.v4.swap(false, Ordering::Relaxed) {
                    warn_off("IcmpSendEcho was denied (Windows error 5)");
                }
                None
            }
            Err(e) => Some(Echo::Error(e.to_string())),
        }
    }
}

fn warn_off(why: &str) {
    tracing::warn!(
        "ICMP probes are off: {why}. The gateway watches the terminal with TCP and TLS \
         probes only."
    );
}

fn echo_round(ip: Ipv4Addr, per_echo: Duration) -> Sent {
    let file = match IcmpFile::open() {
        Ok(f) => f,
        Err(code) => {
            return Sent::Echo(Echo::Error(format!(
                "IcmpCreateFile failed (Windows error {code})"
            )));
        }
    };
    let mut last = Echo::Timeout;
    for _ in 0..ECHOES_PER_ROUND {
        match file.send(ip, per_echo) {
            Sent::Echo(Echo::Reply(rtt)) => return Sent::Echo(Echo::Reply(rtt)),
            Sent::Echo(Echo::Timeout) => {}
            Sent::Echo(error) => last = error,
            Sent::Denied => return Sent::Denied,
        }
    }
    Sent::Echo(last)
}

/// An open ICMP handle, closed on drop.
struct IcmpFile(HANDLE);

impl IcmpFile {
    fn open() -> Result<IcmpFile, u32> {
        // SAFETY: no arguments; the result is checked before use.
        let handle = unsafe { IcmpCreateFile() };
        if handle == INVALID_HANDLE_VALUE || handle.is_null() {
            // SAFETY: reads the calling thread's last error code.
            return Err(unsafe { GetLastError() });
        }
        Ok(IcmpFile(handle))
    }

    fn send(&self, ip: Ipv4Addr, timeout: Duration) -> Sent {
        let mut reply = [0u64; REPLY_WORDS];
        let timeout_ms = u32::try_from(timeout.as_millis()).unwrap_or(u32::MAX);
        // SAFETY: the handle is open; the payload and reply buffers outlive the call
        // and their true sizes are passed; no IP options (null).
        let count = unsafe {
            IcmpSendEcho(
                self.0,
                u32::from_ne_bytes(ip.octets()),
                PAYLOAD.as_ptr().cast(),
                PAYLOAD.len() as u16,
                std::ptr::null(),
                reply.as_mut_ptr().cast(),
                std::mem::size_of_val(&reply) as u32,
                timeout_ms,
            )
        };
        if count == 0 {
            // SAFETY: reads the calling thread's last error code.
            let code = unsafe { GetLastError() };
            return match code {
                IP_REQ_TIMED_OUT => Sent::Echo(Echo::Timeout),
                ERROR_ACCESS_DENIED => Sent::Denied,
                code => Sent::Echo(Echo::Error(describe(code))),
            };
        }
        // SAFETY: with count > 0 the buffer starts with an ICMP_ECHO_REPLY; the buffer
        // is larger than the struct and u64-aligned.
        let header: ICMP_ECHO_REPLY = unsafe { std::ptr::read(reply.as_ptr().cast()) };
        Sent::Echo(if header.Status == IP_SUCCESS {
            Echo::Reply(Duration::from_millis(u64::from(header.RoundTripTime)))
        } else {
            Echo::Error(describe(header.Status))
        })
    }
}

impl Drop for IcmpFile {
    fn drop(&mut self) {
        // SAFETY: the handle came from IcmpCreateFile and is closed once.
        unsafe { IcmpCloseHandle(self.0) };
    }
}

/// IP_STATUS codes (11000 + n) as words; anything else is a Win32 error code.
fn describe(code: u32) -> String {
    let what = match code {
        11002 => "destination net unreachable",
        11003 => "destination host unreachable",
        11004 => "destination protocol unreachable",
        11005 => "destination port unreachable",
        11013 => "TTL expired in transit",
        11050 => "general failure",
        _ => "error",
    };
    format!("{what} (Windows status {code})")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_codes_read_as_words() {
        assert!(describe(11003).starts_with("destination host unreachable"));
        assert!(describe(42).contains("42"));
    }

    /// Loopback only: the echo never leaves the machine. Under wine it needs root (wine
    /// opens an ICMP socket on the Linux side); .ci/windows.sh skips it otherwise.
    #[tokio::test]
    async fn loopback_answers_an_echo() {
        let icmp = Icmp::open();
        assert!(icmp.available_for("127.0.0.1".parse().unwrap()));
        assert!(!icmp.available_for("::1".parse().unwrap()));
        let echo = icmp
            .echo("127.0.0.1".parse().unwrap(), Duration::from_secs(2))
            .await;
        assert!(matches!(echo, Some(Echo::Reply(_))), "got {echo:?}");
    }
}
