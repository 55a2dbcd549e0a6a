//! The `terminals` list (or the one-lane shorthand): each entry's keys, the `comercia-pos`
//! profile's own keys, the terminal client identity.

use super::*;

/// A lane's top-level settings and `timeStop`, which its polls must be shorter than.
type Top<'a> = (&'a Terminal, Option<Duration>);

/// `terminals`, or the shorthand's (`terminalIp`, `deviceId`) one terminal.
pub(super) fn lanes(
    r: &mut Reader,
    list: Lenient<Vec<Value>>,
    (ip, id): (Lenient<SocketAddr>, Lenient<String>),
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
    let Some(list) = r.opt(list, &ok).unwrap_or(Some(Vec::new())) else {
        poll_problem(r);
        let device_id = r.opt(id, &|t| name(t));
        let missing = "the terminal's fixed IP address, like \"192.168.1.20\" or \
                       \"192.168.1.20:3000\" (or \"terminals\", a list of one per lane)";
        let address = r.need(ip, missing, &ok);
        let mut one = lane.clone();
        one.device_id = device_id?.unwrap_or(one.device_id);
        one.address = address?;
        return Some(vec![one]);
    };
    let keys = match (ip.given(), id.given()) {
        (true, true) => Some("\"terminalIp\" and \"deviceId\""),
        (true, false) => Some("\"terminalIp\""),
        (false, true) => Some("\"deviceId\""),
        (false, false) => None,
    };
    if let Some(keys) = keys {
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
        top_poll_used |= !raw.poll_seconds.given();
        read.extend(terminal(r, raw, (lane, stop)).map(|t| (i, t)));
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

fn terminal(r: &mut Reader, raw: RawTerminal, (lane, stop): Top) -> Option<Terminal> {
    let missing = "the deviceId the POS names this lane's terminal by";
    let device_id = r.need(raw.device_id, missing, &|t| name(t));
    let port_given = match &raw.terminal_ip {
        Lenient::Given(_, Value::String(t), _) => t.trim().parse::<SocketAddr>().is_ok(),
        _ => true,
    };
    let missing = "the terminal's fixed IP address, like \"192.168.1.21\"";
    let address = r.need(raw.terminal_ip, missing, &ok);
    let profile = r.try_get(raw.profile, Profile::Instore, &ok);
    let is_comercia = profile == Some(Profile::ComerciaPos);
    let comercia = comercia_lane(r, profile, (raw.server_name, raw.ca_cert, raw.source));
    // A comercia-pos terminal listens on its own default port.
    let address = address.map(|a| match is_comercia && !port_given {
        true => SocketAddr::new(a.ip(), COMERCIA_DEFAULT_PORT),
        false => a,
    });
    let timeout = r.opt(raw.static_ip_timeout, &secs(120.0));
    let poll = r.opt(raw.poll_seconds, &|poll| match stop {
        Some(stop) if *poll >= stop => Err(longer(stop)),
        _ => secs(300.0)(poll),
    });
    let fallback = r.opt(raw.fallback, &ok);
    let pins = r.opt(raw.terminal_pin, &ok);
    let identity = (raw.terminal_client_cert, raw.terminal_client_key);
    let identity = client_identity(r, identity);
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
    profile: Option<Profile>,
    (name, ca, source): (Lenient<String>, Lenient<PathBuf>, Lenient<String>),
) -> Option<Option<ComerciaLane>> {
    if profile != Some(Profile::ComerciaPos) {
        let given = [(name.path(), name.given()), (ca.path(), ca.given())];
        for (path, _) in given
            .into_iter()
            .chain([(source.path(), source.given())])
            .filter(|g| g.1)
        {
            let why = "is only for \"profile\": \"comercia-pos\" (an instore terminal's name and \
                       CA are fixed)";
            r.problem(path, None, why);
        }
        return profile.map(|_| None);
    }
    let dns = |t: &String| match rustls::pki_types::ServerName::try_from(t.as_str()) {
        Ok(rustls::pki_types::ServerName::DnsName(_)) => Ok(()),
        _ => Err("must be the DNS name the terminal's certificate carries".to_string()),
    };
    let header = |t: &String| {
        let fits = (1..=64).contains(&t.len()) && t.bytes().all(|b| b.is_ascii_graphic());
        let why = "must be 1 to 64 visible ASCII characters (the X-SOURCE header)";
        fits.then_some(()).ok_or(why.to_string())
    };
    let missing = "the name in the terminal's certificate";
    let name = r.need(name, missing, &dns);
    let missing = "the vendor SDK's CA file (PEM)";
    let ca = r.need(ca, missing, &ok);
    let source = r.opt(source, &header);
    Some(Some(ComerciaLane {
        server_name: name?,
        ca_cert: ca?,
        source: source?.unwrap_or_else(|| COMERCIA_DEFAULT_SOURCE.into()),
    }))
}

/// `terminalClientCert` and `terminalClientKey`: both or neither.
pub(super) fn client_identity(
    r: &mut Reader,
    (cert, key): (Lenient<PathBuf>, Lenient<PathBuf>),
) -> Option<Option<(PathBuf, PathBuf)>> {
    let at = (cert.path().to_string(), key.path().to_string());
    let cert = r.opt(cert, &ok)?;
    let key = r.opt(key, &ok)?;
    let (given, missing) = match (cert, key) {
        (Some(cert), Some(key)) => return Some(Some((cert, key))),
        (None, None) => return Some(None),
        (Some(_), None) => at,
        (None, Some(_)) => (at.1, at.0),
    };
    let message = format!("is required with {given}: the certificate and its key go together");
    r.problem(&missing, None, message);
    None
}
