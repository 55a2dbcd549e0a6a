//! The `terminals` list (or the one-lane shorthand): each entry's keys, the `comercia-pos`
//! profile's own keys, the terminal client identity.

use std::path::PathBuf;

use super::*;
use crate::config::ComerciaLane;
use crate::config::schema::{LANE, RawTerminal};
use crate::constants::{COMERCIA_DEFAULT_PORT, COMERCIA_DEFAULT_SOURCE};

/// A lane's top-level settings and `timeStop`, which its polls must be shorter than.
type Top<'a> = (&'a Terminal, Option<Duration>);

/// `terminals`, or the shorthand's (`terminalIp`, `deviceId`) one terminal.
pub(super) fn lanes(
    r: &mut Reader,
    list: Opt<Vec<Value>>,
    (ip, id): (Opt<SocketAddr>, Opt<String>),
    (lane, stop): Top,
    poll: Option<Duration>,
) -> Option<Vec<Terminal>> {
    // The top-level pollSeconds counts only where a terminal uses it.
    let too_long = stop.and_then(|stop| poll.filter(|p| *p >= stop).map(|_| longer(stop)));
    let poll_problem = |r: &mut Reader| {
        if let (Some(message), Some(poll)) = (&too_long, poll) {
            r.problem("pollSeconds", Some(&poll.as_secs_f64().into()), message);
        }
    };
    // `None` for the shorthand; a list that is not one was reported and reads as empty.
    let Some(list) = r.opt("terminals", list, &ok).unwrap_or(Some(Vec::new())) else {
        poll_problem(r);
        let device_id = r.opt("deviceId", id, &|t| name(t));
        let missing = "the terminal's fixed IP address, like \"192.168.1.20\" or \
                       \"192.168.1.20:3000\" (or \"terminals\", a list of one per lane)";
        let address = r.need("terminalIp", ip.unwrap_or_default(), missing, &ok);
        let mut one = lane.clone();
        one.device_id = device_id?.unwrap_or(one.device_id);
        one.address = address?;
        return Some(vec![one]);
    };
    let both = [
        ("\"terminalIp\"", ip.is_some()),
        ("\"deviceId\"", id.is_some()),
    ];
    let keys: Vec<&str> = both
        .iter()
        .filter(|(_, given)| *given)
        .map(|(k, _)| *k)
        .collect();
    if !keys.is_empty() {
        let message = format!(
            "cannot be used together with the top-level {}, the shorthand for a one-entry \
             list: move them into \"terminals\"",
            keys.join(" and ")
        );
        r.problem("terminals", None, message);
    }
    if list.is_empty() && !r.problems.iter().any(|p| p.key == "terminals") {
        let message = format!("must list at least one terminal, like [{LANE}]");
        r.problem("terminals", Some(&Value::Array(Vec::new())), message);
    }
    let (n, mut read, mut top_poll_used) = (list.len(), Vec::new(), false);
    for (i, entry) in list.into_iter().enumerate() {
        let Value::Object(map) = entry else {
            let message = format!("must be an object like {LANE}");
            r.problem(&format!("terminals[{i}]"), Some(&entry), message);
            continue;
        };
        let raw: RawTerminal = r.strict(&format!("terminals[{i}]"), map);
        top_poll_used |= raw.poll_seconds.is_none();
        read.extend(terminal(r, i, raw, (lane, stop)).map(|t| (i, t)));
    }
    if top_poll_used {
        poll_problem(r);
    }
    for (j, (i, terminal)) in read.iter().enumerate() {
        let twin = |same: &dyn Fn(&Terminal) -> bool| read[..j].iter().find(|(_, t)| same(t));
        if let Some((first, _)) = twin(&|t| t.device_id == terminal.device_id) {
            let message = format!("is also the deviceId of terminals[{first}]: each needs its own");
            let id = Value::from(terminal.device_id.clone());
            r.problem(&format!("terminals[{i}].deviceId"), Some(&id), message);
        }
        if let Some((first, _)) = twin(&|t| t.address == terminal.address) {
            let message = format!("is also the address of terminals[{first}]: each has its own");
            let addr = Value::from(terminal.address.to_string());
            r.problem(&format!("terminals[{i}].terminalIp"), Some(&addr), message);
        }
    }
    (read.len() == n).then(|| read.into_iter().map(|(_, t)| t).collect())
}

fn terminal(r: &mut Reader, i: usize, raw: RawTerminal, (lane, stop): Top) -> Option<Terminal> {
    let at = |key: &str| format!("terminals[{i}].{key}");
    let missing = "the deviceId the POS names this lane's terminal by";
    let device_id = r.need(&at("deviceId"), raw.device_id, missing, &|t| name(t));
    let port_given = match &raw.terminal_ip {
        Lenient::Given(Value::String(t), _) => t.trim().parse::<SocketAddr>().is_ok(),
        _ => true,
    };
    let missing = "the terminal's fixed IP address, like \"192.168.1.21\"";
    let address = r.need(&at("terminalIp"), raw.terminal_ip, missing, &ok);
    let profile = r.get(&at("profile"), raw.profile, Profile::Instore, &ok);
    let is_comercia = profile == Some(Profile::ComerciaPos);
    let comercia = comercia_lane(r, &at, profile, (raw.server_name, raw.ca_cert, raw.source));
    // A comercia-pos terminal listens on its own default port.
    let address = address.map(|a| match is_comercia && !port_given {
        true => SocketAddr::new(a.ip(), COMERCIA_DEFAULT_PORT),
        false => a,
    });
    let timeout = r.opt(&at("staticIptimeOut"), raw.timeout, &secs(120.0));
    let poll = r.opt(&at("pollSeconds"), raw.poll_seconds, &|poll| match stop {
        Some(stop) if *poll >= stop => Err(longer(stop)),
        _ => secs(300.0)(poll),
    });
    let fallback = r.opt(&at("fallback"), raw.fallback, &ok);
    let pins = r.opt(&at("terminalPin"), raw.terminal_pin, &ok);
    let identity = (raw.terminal_client_cert, raw.terminal_client_key);
    let identity = client_identity(r, &format!("terminals[{i}]."), identity);
    Some(Terminal {
        device_id: device_id?,
        address: address?,
        profile: profile?,
        static_ip_timeout: timeout?.unwrap_or(lane.static_ip_timeout),
        poll_interval: poll?.unwrap_or(lane.poll_interval),
        // The MQTT fallback speaks the InStore protocol only.
        fallback: lane.fallback && fallback?.unwrap_or(true) && !is_comercia,
        comercia: comercia?,
        pins: pins?.map(|p| p.0).unwrap_or_else(|| lane.pins.clone()),
        client_identity: identity?.or_else(|| lane.client_identity.clone()),
    })
}

/// A poll at least as long as `timeStop`.
fn longer(stop: Duration) -> String {
    let stop = stop.as_secs_f64();
    format!("must be shorter than timeStop ({stop} s): a sale would time out before its first poll")
}

/// `serverName` and `caCert` are required for a `comercia-pos` terminal and refused for an
/// `instore` one (its name and CA are fixed); `source` defaults to `COMERCIA`.
fn comercia_lane(
    r: &mut Reader,
    at: &dyn Fn(&str) -> String,
    profile: Option<Profile>,
    (name, ca, source): (Opt<String>, Opt<PathBuf>, Opt<String>),
) -> Option<Option<ComerciaLane>> {
    if profile != Some(Profile::ComerciaPos) {
        let given = [
            ("serverName", name.is_some()),
            ("caCert", ca.is_some()),
            ("source", source.is_some()),
        ];
        for (key, _) in given.into_iter().filter(|(_, given)| *given) {
            let why = "is only for \"profile\": \"comercia-pos\" (an instore terminal's name and \
                       CA are fixed)";
            r.problem(&at(key), None, why);
        }
        return profile.map(|_| None);
    }
    let dns = |t: &String| match rustls::pki_types::ServerName::try_from(t.as_str()) {
        Ok(rustls::pki_types::ServerName::DnsName(_)) => Ok(()),
        _ => Err("must be the DNS name the terminal's certificate carries".to_string()),
    };
    let header = |t: &String| match (1..=64).contains(&t.len())
        && t.bytes().all(|b| b.is_ascii_graphic())
    {
        true => Ok(()),
        false => Err("must be 1 to 64 visible ASCII characters (the X-SOURCE header)".to_string()),
    };
    let missing = "the name in the terminal's certificate";
    let name = r.need(&at("serverName"), name.unwrap_or_default(), missing, &dns);
    let missing = "the vendor SDK's CA file (PEM)";
    let ca = r.need(&at("caCert"), ca.unwrap_or_default(), missing, &ok);
    let source = r.opt(&at("source"), source, &header);
    Some(Some(ComerciaLane {
        server_name: name?,
        ca_cert: ca?,
        source: source?.unwrap_or_else(|| COMERCIA_DEFAULT_SOURCE.into()),
    }))
}

/// `terminalClientCert` and `terminalClientKey`: both or neither.
pub(super) fn client_identity(
    r: &mut Reader,
    at: &str,
    (cert, key): (Opt<PathBuf>, Opt<PathBuf>),
) -> Option<Option<(PathBuf, PathBuf)>> {
    let cert = r.opt(&format!("{at}terminalClientCert"), cert, &ok)?;
    let key = r.opt(&format!("{at}terminalClientKey"), key, &ok)?;
    let (given, missing) = match (cert, key) {
        (Some(cert), Some(key)) => return Some(Some((cert, key))),
        (None, None) => return Some(None),
        (Some(_), None) => ("terminalClientCert", "terminalClientKey"),
        (None, Some(_)) => ("terminalClientKey", "terminalClientCert"),
    };
    let message = format!("is required with {at}{given}: the certificate and its key go together");
    r.problem(&format!("{at}{missing}"), None, message);
    None
}
