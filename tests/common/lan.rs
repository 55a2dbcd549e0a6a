//! A fixed-IP store LAN on one machine: network namespaces joined by veth pairs, with
//! 10.x addresses inside them, faults by nftables rules and `tc`. Only these
//! namespaces (and loopback) are ever addressed; everything made is removed on drop,
//! also when the test fails. The subnets are checked against the machine's own
//! addresses and routes first (`ip -o addr`, `ip route`), so a test never shadows a
//! network the machine uses. Needs root: every test using it is `#[ignore]`d with the
//! reason and [`require`] fails it, with that reason, when it is run anyway without.

use std::collections::HashSet;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::process::Command;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};

use super::{Proc, World};

static NEXT: AtomicU32 = AtomicU32::new(1);

/// The reason every LAN test gives in `#[ignore = …]` (kept in step by hand: the
/// attribute needs a literal).
pub const NEEDS: &str =
    "needs root, iproute2 and nftables: .ci/run runs it (cargo test -- --include-ignored)";

/// Why namespaces cannot be made here, if they cannot.
pub fn missing() -> Option<String> {
    let root = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .map(|l| l.split_whitespace().nth(2) == Some("0"))
        })
        .unwrap_or(false);
    if !root {
        return Some("not root: network namespaces need root".into());
    }
    for (tool, package) in [("ip", "iproute2"), ("nft", "nftables"), ("tc", "iproute2")] {
        let found = Command::new("sh")
            .args([
                "-c",
                &format!("command -v {tool} || test -x /usr/sbin/{tool}"),
            ])
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false);
        if !found {
            return Some(format!(
                "`{tool}` is not installed (apt-get install {package})"
            ));
        }
    }
    None
}

/// Fails the test, saying why, when it cannot run here: a LAN test that was asked to
/// run (`--include-ignored`) never passes without having tested anything.
pub fn require() {
    if let Some(why) = missing() {
        panic!("cannot build the test LAN: {why}; {NEEDS}");
    }
}

fn run(args: &[&str]) {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .expect("run command");
    assert!(
        out.status.success(),
        "{args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn run_quiet(args: &[&str]) {
    let _ = Command::new(args[0]).args(&args[1..]).output();
}

/// One namespace ("host") joined to the test's namespace, or to another `Host`, by a
/// veth pair on its own /24.
pub struct Host {
    pub ns: String,
    /// The veth end inside this namespace.
    pub ifname: String,
    /// The veth end on the other side (in the test's namespace, or the peer's).
    pub peer_ifname: String,
    peer_ns: Option<String>,
    pub ip: Ipv4Addr,
    pub peer_ip: Ipv4Addr,
    /// A route the test's namespace got to reach this host through its peer.
    test_route: Option<String>,
}

/// Faults applied inside a host's namespace.
pub enum Fault {
    DropAll,
    DropIcmp,
    ResetTcp(u16),
    /// Silently drops what comes in for one TCP port (other traffic, MQTT included, flows).
    DropTcp(u16),
    /// Random loss in both directions, in percent.
    Loss(u8),
}

impl Host {
    /// A namespace linked to the test's own namespace.
    pub fn new() -> Host {
        Host::create(None)
    }

    /// A namespace linked to `peer`'s namespace, routed through it so the test can
    /// reach it too.
    pub fn linked_to(peer: &Host) -> Host {
        let mut host = Host::create(Some(peer.ns.clone()));
        host.exec(&[
            "ip",
            "route",
            "add",
            "default",
            "via",
            &host.peer_ip.to_string(),
        ]);
        peer.exec(&["sysctl", "-qw", "net.ipv4.ip_forward=1"]);
        let subnet = host.subnet();
        run(&["ip", "route", "add", &subnet, "via", &peer.ip.to_string()]);
        host.test_route = Some(subnet);
        host
    }

    fn subnet(&self) -> String {
        let o = self.ip.octets();
        format!("{}.{}.{}.0/24", o[0], o[1], o[2])
    }

    fn create(peer_ns: Option<String>) -> Host {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let pid = std::process::id();
        let tag = format!("{}{n}", pid % 100_000);
        let ns = format!("ecl{tag}");
        let ifname = format!("ec{tag}t");
        let peer_ifname = format!("ec{tag}h");
        let [_, second, third, _] = claim_subnet(pid, n).octets();
        let host = Host {
            ns: ns.clone(),
            ifname: ifname.clone(),
            peer_ifname: peer_ifname.clone(),
            peer_ns: peer_ns.clone(),
            ip: Ipv4Addr::new(10, second, third, 2),
            peer_ip: Ipv4Addr::new(10, second, third, 1),
            test_route: None,
        };
        run(&["ip", "netns", "add", &ns]);
        run(&[
            "ip",
            "link",
            "add",
            &peer_ifname,
            "type",
            "veth",
            "peer",
            "name",
            &ifname,
        ]);
        run(&["ip", "link", "set", &ifname, "netns", &ns]);
        if let Some(peer) = &peer_ns {
            run(&["ip", "link", "set", &peer_ifname, "netns", peer]);
        }
        host.on_peer(&[
            "ip",
            "addr",
            "add",
            &format!("{}/24", host.peer_ip),
            "dev",
            &peer_ifname,
        ]);
        host.on_peer(&["ip", "link", "set", &peer_ifname, "up"]);
        host.exec(&[
            "ip",
            "addr",
            "add",
            &format!("{}/24", host.ip),
            "dev",
            &ifname,
        ]);
        host.exec(&["ip", "link", "set", &ifname, "up"]);
        host.exec(&["ip", "link", "set", "lo", "up"]);
        host
    }

    fn on_peer(&self, args: &[&str]) {
        match &self.peer_ns {
            None => run(args),
            Some(peer) => {
                let mut all = vec!["ip", "netns", "exec", peer.as_str()];
                all.extend_from_slice(args);
                run(&all);
            }
        }
    }

    /// Runs a command inside this namespace.
    pub fn exec(&self, args: &[&str]) {
        let mut all = vec!["ip", "netns", "exec", self.ns.as_str()];
        all.extend_from_slice(args);
        run(&all);
    }

    /// Starts `ecrlink ARGS` inside this namespace.
    pub fn ecrlink(&self, args: &[String], log: &Path) -> Proc {
        let mut all = vec![
            "netns".to_string(),
            "exec".into(),
            self.ns.clone(),
            super::ecrlink_bin(),
        ];
        all.extend_from_slice(args);
        Proc::start_program("ip", &all, log)
    }

    /// A simulator inside this namespace, listening on this host's IP.
    pub fn sim(&self, world: &World, certs: &Path, args: &[&str]) -> Proc {
        self.sim_at(world, certs, SocketAddr::new(self.ip.into(), 0), args)
    }

    pub fn sim_at(&self, world: &World, certs: &Path, listen: SocketAddr, args: &[&str]) -> Proc {
        let mut all = vec![
            "sim".to_string(),
            "--listen".into(),
            listen.to_string(),
            "--certs".into(),
            certs.display().to_string(),
        ];
        all.extend(args.iter().map(|s| s.to_string()));
        let log = world.path(&format!(
            "sim-{}-{}.log",
            self.ns,
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        self.ecrlink(&all, &log)
    }

    /// Replaces the namespace's fault rules with `fault`.
    pub fn fault(&self, fault: Fault) {
        self.clear_faults();
        let (input, output) = match fault {
            Fault::DropAll => ("drop".to_string(), String::new()),
            Fault::DropIcmp => ("meta l4proto icmp drop".to_string(), String::new()),
            Fault::ResetTcp(port) => (
                format!("tcp dport {port} reject with tcp reset"),
                String::new(),
            ),
            Fault::DropTcp(port) => (format!("tcp dport {port} drop"), String::new()),
            Fault::Loss(pct) => {
                let rule = format!("numgen random mod 100 < {pct} drop");
                (rule.clone(), rule)
            }
        };
        let rules = format!(
            "table inet eclfault {{\n\
             chain input {{\n type filter hook input priority 0; policy accept;\n {input}\n }}\n\
             chain output {{\n type filter hook output priority 0; policy accept;\n {output}\n }}\n}}\n"
        );
        let file = std::env::temp_dir().join(format!("{}-rules.nft", self.ns));
        std::fs::write(&file, rules).unwrap();
        self.exec(&["nft", "-f", file.to_str().unwrap()]);
        let _ = std::fs::remove_file(file);
    }

    pub fn clear_faults(&self) {
        run_quiet(&[
            "ip", "netns", "exec", &self.ns, "nft", "delete", "table", "inet", "eclfault",
        ]);
    }

    /// Throttles the namespace's link (tc tbf; netem is not in this kernel).
    pub fn throttle(&self, rate: &str) {
        self.exec(&[
            "tc",
            "qdisc",
            "replace",
            "dev",
            &self.ifname,
            "root",
            "tbf",
            "rate",
            rate,
            "burst",
            "16kbit",
            "latency",
            "400ms",
        ]);
    }

    pub fn link(&self, up: bool) {
        self.exec(&[
            "ip",
            "link",
            "set",
            &self.ifname,
            if up { "up" } else { "down" },
        ]);
    }

    /// Moves this host to another address of its /24 (a technician changed the "fixed" IP).
    pub fn change_address(&mut self, last_octet: u8) {
        let o = self.ip.octets();
        let new = Ipv4Addr::new(o[0], o[1], o[2], last_octet);
        // Delete first: deleting a primary IPv4 address also deletes the secondaries
        // of its subnet, the new one included.
        self.exec(&[
            "ip",
            "addr",
            "del",
            &format!("{}/24", self.ip),
            "dev",
            &self.ifname,
        ]);
        self.exec(&[
            "ip",
            "addr",
            "add",
            &format!("{new}/24"),
            "dev",
            &self.ifname,
        ]);
        self.ip = new;
    }
}

/// The /24s this process has handed out and not yet given back (hosts of parallel
/// tests are made at the same time; the machine's tables show them only once added).
static CLAIMED: Mutex<Option<HashSet<[u8; 2]>>> = Mutex::new(None);

/// A free 10.S.T.0/24 for a new host: not claimed by this process, and overlapping no
/// address or route the machine has. Starts at 10.(100 + pid % 100).(n % 250) so
/// that parallel test processes usually stay apart, and moves on from there.
fn claim_subnet(pid: u32, n: u32) -> Ipv4Addr {
    let taken = machine_networks();
    let mut claimed = CLAIMED.lock().unwrap_or_else(|p| p.into_inner());
    let claimed = claimed.get_or_insert_with(HashSet::new);
    let start = (100 + pid % 100) * 250 + n % 250;
    for k in 0..(150 * 250) {
        let i = (start + k) % (150 * 250);
        let (second, third) = ((100 + i / 250) as u8, (i % 250) as u8);
        if claimed.contains(&[second, third]) {
            continue;
        }
        let net = Ipv4Addr::new(10, second, third, 0);
        if taken
            .iter()
            .all(|&(other, len)| !overlaps(net, 24, other, len))
        {
            claimed.insert([second, third]);
            return net;
        }
    }
    panic!(
        "no free 10.x.y.0/24 for the test LAN: every candidate overlaps an address or a \
         route of this machine ({taken:?}); refusing to shadow the machine's own networks"
    );
}

fn release_subnet(ip: Ipv4Addr) {
    let [_, second, third, _] = ip.octets();
    if let Some(claimed) = CLAIMED.lock().unwrap_or_else(|p| p.into_inner()).as_mut() {
        claimed.remove(&[second, third]);
    }
}

/// Every IPv4 network of the test's namespace: its addresses (`ip -o -4 addr`) and
/// route destinations in every table (`ip -4 route show table all`), except the
/// default route, which any more specific route may sit under.
fn machine_networks() -> Vec<(Ipv4Addr, u8)> {
    let read = |args: &[&str]| {
        let out = Command::new("ip").args(args).output().expect("run ip");
        assert!(
            out.status.success(),
            "ip {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let mut nets = Vec::new();
    for line in read(&["-o", "-4", "addr", "show"]).lines() {
        let mut words = line.split_whitespace();
        if let Some(cidr) = words.by_ref().skip_while(|w| *w != "inet").nth(1) {
            nets.extend(parse_cidr(cidr));
        }
    }
    const TYPES: [&str; 10] = [
        "unicast",
        "local",
        "broadcast",
        "multicast",
        "anycast",
        "blackhole",
        "unreachable",
        "prohibit",
        "throw",
        "nat",
    ];
    for line in read(&["-4", "route", "show", "table", "all"]).lines() {
        let mut words = line.split_whitespace();
        let mut dest = words.next().unwrap_or("default");
        if TYPES.contains(&dest) {
            dest = words.next().unwrap_or("default");
        }
        if dest != "default" {
            nets.extend(parse_cidr(dest));
        }
    }
    nets
}

/// `A.B.C.D/N` or `A.B.C.D` (a /32) as (network, prefix length).
fn parse_cidr(text: &str) -> Option<(Ipv4Addr, u8)> {
    let (ip, len) = text.split_once('/').unwrap_or((text, "32"));
    Some((ip.parse().ok()?, len.parse().ok().filter(|l| *l <= 32)?))
}

fn overlaps(a: Ipv4Addr, a_len: u8, b: Ipv4Addr, b_len: u8) -> bool {
    let len = a_len.min(b_len);
    let mask = if len == 0 { 0 } else { u32::MAX << (32 - len) };
    u32::from(a) & mask == u32::from(b) & mask
}

impl Drop for Host {
    fn drop(&mut self) {
        // Processes first: a namespace with processes in it lingers.
        if let Ok(out) = Command::new("ip")
            .args(["netns", "pids", &self.ns])
            .output()
        {
            for pid in String::from_utf8_lossy(&out.stdout).split_whitespace() {
                run_quiet(&["kill", "-9", pid]);
            }
        }
        run_quiet(&["ip", "netns", "del", &self.ns]);
        if let Some(route) = &self.test_route {
            run_quiet(&["ip", "route", "del", route]);
        }
        if self.peer_ns.is_none() {
            run_quiet(&["ip", "link", "del", &self.peer_ifname]);
        }
        release_subnet(self.ip);
    }
}
