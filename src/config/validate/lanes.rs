//! The `terminals` list (or the one-lane shorthand) of the validation pass: each entry's
//! keys, the `comercia-pos` profile's own keys, the terminal client identity.

use super::*;

type Shorthand = (Option<Lenient<SocketAddr>>, Option<Lenient<String>>);
/// A lane's top-level settings and `timeStop`, which its polls must be shorter than.
type Top<'a> = (&'a Terminal, Option<Duration>);

/// `terminals`, or the shorthand's one terminal; `lane` has the top-level settings.
pub(super) fn lanes(
    r: &mut Reader,
    list: Option<Lenient<Vec<Value>>>,
    (ip, id): Shorthand,
    (lane, stop): Top,
    poll: Option<Duration>,
) -> Option<Vec<Terminal>> {
    let poll_too_long = stop.and_then(|stop| poll.filter(|p| *p >= stop).map(|_| longer(stop)));
    let poll_problem = |r: &mut Reader| {
        if let Some(message) = &poll_too_long {
            r.problem("pollSeconds", Some(&poll?.as_secs_f64().into()), message);
        }
        Some(())
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
    let mut keys = Vec::new();
    keys.extend(ip.is_some().then_some("\"terminalIp\""));
    keys.extend(id.is_some().then_some("\"deviceId\""));
    if !keys.is_empty() {
        let keys = keys.join(" and ");
        let message = format!(
            "cannot be used together with the top-level {keys}, the shorthand for a one-entry \
             list: move them into \"terminals\""
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

pub(super) fn terminal(
    r: &mut Reader,
    i: usize,
    raw: RawTerminal,
    (lane, stop): Top,
) -> Option<Terminal> {
    let at = |key: &str| format!("terminals[{i}].{key}");
    let missing_id = "the deviceId the POS names this lane's terminal by";
    let device_id = r.need(&at("deviceId"), raw.device_id, missing_id, &|t| name(t));
    let missing_ip = "the terminal's fixed IP address, like \"192.168.1.21\"";
    let port_given = match &raw.terminal_ip {
        Lenient::Given(Value::String(t), _) => t.trim().parse::<SocketAddr>().is_ok(),
        _ => true,
    };
    let address = r.need(&at("terminalIp"), raw.terminal_ip, missing_ip, &ok);
    let profile = r.get(&at("profile"), raw.profile, Profile::Instore, &ok);
    let is_comercia = profile == Some(Profile::ComerciaPos);
    let comercia = comercia_lane(r, i, profile, (raw.server_name, raw.ca_cert, raw.source));
    let address = match (address, profile) {
        (Some(a), Some(Profile::ComerciaPos)) if !port_given => Some(SocketAddr::new(
            a.ip(),
            crate::constants::COMERCIA_DEFAULT_PORT,
        )),
        (a, _) => a,
    };
    let timeout = r.opt(&at("staticIptimeOut"), raw.static_ip_timeout, &secs(120.0));
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

type ComerciaKeys = (
    Option<Lenient<String>>,
    Option<Lenient<std::path::PathBuf>>,
    Option<Lenient<String>>,
);

/// `serverName` and `caCert` are required for a `comercia-pos` terminal and refused for
/// an `instore` one (its name and CA are fixed); `source` defaults to `COMERCIA`.
fn comercia_lane(
    r: &mut Reader,
    i: usize,
    profile: Option<Profile>,
    keys: ComerciaKeys,
) -> Option<Option<ComerciaLane>> {
    let at = |key: &str| format!("terminals[{i}].{key}");
    let (name, ca, source) = keys;
    if profile != Some(Profile::ComerciaPos) {
        for (key, given) in [
            ("serverName", name.is_some()),
            ("caCert", ca.is_some()),
            ("source", source.is_some()),
        ] {
            if given {
                r.problem(&at(key), None, "is only for \"profile\": \"comercia-pos\" (an instore terminal's name and CA are fixed)");
            }
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
    let missing = Lenient::Missing;
    let name = r.need(
        &at("serverName"),
        name.unwrap_or(Lenient::Missing),
        "the name in the terminal's certificate",
        &dns,
    );
    let ca = r.need(
        &at("caCert"),
        ca.unwrap_or(missing),
        "the vendor SDK's CA file (PEM)",
        &ok,
    );
    let source = r.opt(&at("source"), source, &header);
    Some(Some(ComerciaLane {
        server_name: name?,
        ca_cert: ca?,
        source: source?.unwrap_or_else(|| crate::constants::COMERCIA_DEFAULT_SOURCE.into()),
    }))
}

pub(super) type Identity = (Option<Lenient<PathBuf>>, Option<Lenient<PathBuf>>);

/// `terminalClientCert` and `terminalClientKey`: both or neither.
pub(super) fn client_identity(
    r: &mut Reader,
    at: &str,
    (cert, key): Identity,
) -> Option<Option<(PathBuf, PathBuf)>> {
    let cert = r.opt(&format!("{at}terminalClientCert"), cert, &ok)?;
    let key = r.opt(&format!("{at}terminalClientKey"), key, &ok)?;
    match (cert, key) {
        (Some(cert), Some(key)) => Some(Some((cert, key))),
        (None, None) => Some(None),
        (cert, _) => {
            let (given, missing) = match cert {
                Some(_) => ("terminalClientCert", "terminalClientKey"),
                None => ("terminalClientKey", "terminalClientCert"),
            };
            let message =
                format!("is required with {at}{given}: the certificate and its key go together");
            r.problem(&format!("{at}{missing}"), None, message);
            None
        }
    }
}
