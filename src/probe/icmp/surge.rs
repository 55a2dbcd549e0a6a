//! ICMP echo through surge-ping (Linux and other Unixes). Without the privilege to open
//! an ICMP socket the gateway works on TCP/TLS probes alone and says once how to enable
//! ICMP.

use std::net::IpAddr;
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::Duration;

use super::{ECHOES_PER_ROUND, Echo};
use surge_ping::{Client, Config, ICMP, IcmpPacket, PingIdentifier, PingSequence, SurgeError};

pub struct Icmp {
    v4: Option<Client>,
    v6: Option<Client>,
    ident: AtomicU16,
}

impl Icmp {
    /// Opens the ICMP sockets, or logs once why ICMP is off.
    pub fn open() -> Icmp {
        let v4 = open(ICMP::V4);
        let v6 = open(ICMP::V6);
        if v4.is_none() {
            tracing::warn!(
                "ICMP probes are off: no permission to open an ICMP socket. The gateway \
                 watches the terminal with TCP and TLS probes only. To enable ICMP, run \
                 `sudo setcap cap_net_raw+ep $(which ecrlink)` or allow unprivileged ping \
                 with `sudo sysctl -w net.ipv4.ping_group_range=\"0 2147483647\"`."
            );
        }
        let seed = std::process::id() as u16 ^ 0x5eed;
        Icmp {
            v4,
            v6,
            ident: AtomicU16::new(seed),
        }
    }

    pub fn available_for(&self, ip: IpAddr) -> bool {
        self.client(ip).is_some()
    }

    fn client(&self, ip: IpAddr) -> Option<&Client> {
        match ip {
            IpAddr::V4(_) => self.v4.as_ref(),
            IpAddr::V6(_) => self.v6.as_ref(),
        }
    }

    /// Up to [`ECHOES_PER_ROUND`] echoes within `deadline`; `None` when ICMP is off.
    pub async fn echo(&self, ip: IpAddr, deadline: Duration) -> Option<Echo> {
        let client = self.client(ip)?;
        let ident = PingIdentifier(self.ident.fetch_add(1, Ordering::Relaxed));
        let mut pinger = client.pinger(ip, ident).await;
        pinger.timeout(deadline / ECHOES_PER_ROUND);
        let mut last = Echo::Timeout;
        for seq in 0..ECHOES_PER_ROUND {
            match pinger.ping(PingSequence(seq as u16), &[0; 16]).await {
                Ok((packet, rtt)) if is_echo_reply(&packet) => return Some(Echo::Reply(rtt)),
                Ok((packet, _)) => last = Echo::Error(describe(&packet)),
                Err(SurgeError::Timeout { .. }) => {}
                Err(e) => last = Echo::Error(e.to_string()),
            }
        }
        Some(last)
    }
}

fn open(kind: ICMP) -> Option<Client> {
    match Client::new(&Config::builder().kind(kind).build()) {
        Ok(client) => Some(client),
        Err(e) => {
            tracing::debug!(?kind, error = %e, "ICMP socket not available");
            None
        }
    }
}

/// Echo reply is type 0 (ICMPv4) or 129 (ICMPv6); anything else is an error report.
fn is_echo_reply(packet: &IcmpPacket) -> bool {
    match packet {
        IcmpPacket::V4(p) => p.get_icmp_type().0 == 0,
        IcmpPacket::V6(p) => p.get_icmpv6_type().0 == 129,
    }
}

fn describe(packet: &IcmpPacket) -> String {
    match packet {
        IcmpPacket::V4(p) => format!(
            "ICMP type {} code {}",
            p.get_icmp_type().0,
            p.get_icmp_code().0
        ),
        IcmpPacket::V6(p) => format!(
            "ICMPv6 type {} code {}",
            p.get_icmpv6_type().0,
            p.get_icmpv6_code().0
        ),
    }
}
