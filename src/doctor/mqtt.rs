//! The MQTT fallback's broker, when configured: TCP, TLS with the broker's address as its
//! name and the gateway's client certificate, then an MQTT CONNECT — with TLS 1.3 a broker
//! that refuses the client certificate is only heard at the first read, so the CONNACK is
//! what proves mutual TLS works. Then it subscribes to each fallback terminal's status
//! topic and reads the retained presence (`online`, its last will `offline`, or nothing).
//! Not configured is reported, never a failure.

use std::collections::HashMap;
use std::time::Duration;

use rustls::pki_types::ServerName;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use super::{Report, Verdict};
use crate::config::Config;
use crate::transport::mqtt::wire::{STATUS_OFFLINE, STATUS_ONLINE, parse_topic, status_topic};

const BROKER_DEADLINE: Duration = Duration::from_secs(5);

/// How long retained presence messages may take to arrive after the SUBACK.
const PRESENCE_WAIT: Duration = Duration::from_secs(1);

pub(super) async fn check(report: &mut Report, config: &Config) {
    let Some(mqtt) = config.mqtt_fallback() else {
        report.add(
            "gateway",
            "mqtt",
            Verdict::Skip,
            "no MQTT fallback configured: sales use the direct link only".into(),
            "",
        );
        return;
    };
    let broker = mqtt.broker.0;
    let identity = (mqtt.client_cert.as_path(), mqtt.client_key.as_path());
    let tls = match crate::tls::client_config(&mqtt.ca_cert, Some(identity)) {
        Ok(t) => t,
        Err(e) => {
            report.add("gateway", "mqtt", Verdict::Warn, format!("the fallback's TLS files cannot be used: {e}"),
                "issue the gateway's client certificate (ecrlink certs init) or correct fallback.mqtt's paths");
            return;
        }
    };
    let devices: Vec<String> = config
        .terminals
        .iter()
        .filter(|t| t.fallback)
        .map(|t| t.device_id.clone())
        .collect();
    let attempt = async {
        let tcp = TcpStream::connect(broker)
            .await
            .map_err(|e| format!("cannot connect to {broker}: {e}"))?;
        let mut tls = TlsConnector::from(tls)
            .connect(ServerName::IpAddress(broker.ip().into()), tcp)
            .await
            .map_err(|e| crate::tls::describe_handshake_error(&e))?;
        tls.write_all(&connect_packet(&format!(
            "ecrlink-doctor-{}",
            std::process::id()
        )))
        .await
        .map_err(|e| format!("CONNECT not sent: {e}"))?;
        let mut connack = [0u8; 4];
        tls.read_exact(&mut connack).await.map_err(|e| {
            format!("the broker closed the connection (client certificate refused?): {e}")
        })?;
        match connack {
            [0x20, 0x02, _, 0] => {}
            [0x20, 0x02, _, rc] => {
                return Err(format!(
                    "the broker refused the connection (CONNACK code {rc})"
                ));
            }
            other => return Err(format!("not an MQTT broker answer: {other:02x?}")),
        }
        let seen = presence(&mut tls, &devices).await;
        let _ = tls.write_all(&[0xE0, 0x00]).await;
        Ok(seen)
    };
    // The fallback is not what a sale needs first: a broken one is a warning.
    match tokio::time::timeout(BROKER_DEADLINE, attempt).await {
        Ok(Ok(seen)) => {
            report.add(
                "gateway",
                "mqtt",
                Verdict::Ok,
                format!(
                    "broker {} accepted the gateway's client certificate (mutual TLS)",
                    mqtt.broker
                ),
                "",
            );
            for device in &devices {
                presence_line(report, device, seen.get(device).map(String::as_str));
            }
        }
        Ok(Err(e)) => report.add(
            "gateway",
            "mqtt",
            Verdict::Warn,
            format!("broker {}: {e}", mqtt.broker),
            "check the broker runs, trusts this CA, and lets the gateway's certificate in (ACL)",
        ),
        Err(_) => report.add(
            "gateway",
            "mqtt",
            Verdict::Warn,
            format!("broker {} did not answer in time", mqtt.broker),
            "check the broker's address and port",
        ),
    }
}

/// MQTT 3.1.1 CONNECT with a clean session, so the gateway's own session is untouched.
fn connect_packet(client_id: &str) -> Vec<u8> {
    let mut body = vec![0x00, 0x04, b'M', b'Q', b'T', b'T', 0x04, 0x02, 0x00, 0x0A];
    body.extend_from_slice(&(client_id.len() as u16).to_be_bytes());
    body.extend_from_slice(client_id.as_bytes());
    let mut packet = vec![0x10, body.len() as u8];
    packet.extend(body);
    packet
}

/// One terminal's presence on the broker, as its retained status says.
fn presence_line(report: &mut Report, device: &str, status: Option<&str>) {
    let fix = "start the payment app's MQTT side on the terminal (it publishes a retained online)";
    match status {
        Some(STATUS_ONLINE) => report.add(
            device,
            "presence",
            Verdict::Ok,
            "online on the broker: the fallback can reach it".into(),
            "",
        ),
        Some(STATUS_OFFLINE) => report.add(
            device,
            "presence",
            Verdict::Warn,
            "offline on the broker (its last will): the fallback cannot reach it".into(),
            fix,
        ),
        Some(other) => report.add(
            device,
            "presence",
            Verdict::Warn,
            format!("unexpected status {other:?} on the broker"),
            fix,
        ),
        None => report.add(
            device,
            "presence",
            Verdict::Warn,
            "no status on the broker: the terminal never connected to it".into(),
            fix,
        ),
    }
}

/// Subscribes to each device's status topic and collects the retained payloads that
/// arrive within [`PRESENCE_WAIT`] of the SUBACK (or until every device has one).
async fn presence<S>(stream: &mut S, devices: &[String]) -> HashMap<String, String>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let mut seen = HashMap::new();
    if devices.is_empty() {
        return seen;
    }
    let topics: Vec<String> = devices.iter().map(|d| status_topic(d)).collect();
    if stream.write_all(&subscribe_packet(&topics)).await.is_err() {
        return seen;
    }
    let collect = async {
        while seen.len() < devices.len() {
            let Ok((header, body)) = read_packet(stream).await else {
                return;
            };
            if header >> 4 != 3 {
                continue; // SUBACK, PINGRESP
            }
            if let Some((topic, payload)) = publish_parts(header, &body)
                && let Some((device, "status")) = parse_topic(&topic)
            {
                seen.insert(device.to_string(), payload);
            }
        }
    };
    let _ = tokio::time::timeout(PRESENCE_WAIT, collect).await;
    seen
}

/// MQTT 3.1.1 SUBSCRIBE (packet id 1) to `topics` at QoS 0.
fn subscribe_packet(topics: &[String]) -> Vec<u8> {
    let mut body = vec![0x00, 0x01];
    for t in topics {
        body.extend_from_slice(&(t.len() as u16).to_be_bytes());
        body.extend_from_slice(t.as_bytes());
        body.push(0x00);
    }
    let mut packet = vec![0x82];
    packet.extend(remaining_length(body.len()));
    packet.extend(body);
    packet
}

fn remaining_length(mut n: usize) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let mut byte = (n % 128) as u8;
        n /= 128;
        if n > 0 {
            byte |= 0x80;
        }
        out.push(byte);
        if n == 0 {
            return out;
        }
    }
}

/// One packet: its first byte and its body (at most 64 KiB; a status is a word).
async fn read_packet<S: tokio::io::AsyncRead + Unpin>(s: &mut S) -> Result<(u8, Vec<u8>), ()> {
    let header = s.read_u8().await.map_err(drop)?;
    let (mut len, mut shift) = (0usize, 0);
    loop {
        let byte = s.read_u8().await.map_err(drop)?;
        len |= usize::from(byte & 0x7F) << shift;
        shift += 7;
        if byte & 0x80 == 0 {
            break;
        }
        if shift > 21 {
            return Err(());
        }
    }
    if len > 65_536 {
        return Err(());
    }
    let mut body = vec![0; len];
    s.read_exact(&mut body).await.map_err(drop)?;
    Ok((header, body))
}

/// The topic and payload of a PUBLISH body.
fn publish_parts(header: u8, body: &[u8]) -> Option<(String, String)> {
    let len = usize::from(u16::from_be_bytes([*body.first()?, *body.get(1)?]));
    let topic = std::str::from_utf8(body.get(2..2 + len)?).ok()?.to_string();
    let id_len = if (header >> 1) & 0x03 > 0 { 2 } else { 0 };
    let payload = body.get(2 + len + id_len..)?;
    Some((topic, String::from_utf8_lossy(payload).trim().to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packets_are_framed_as_mqtt_says() {
        assert_eq!(remaining_length(0), [0]);
        assert_eq!(remaining_length(127), [0x7F]);
        assert_eq!(remaining_length(128), [0x80, 0x01]);
        assert_eq!(remaining_length(16_383), [0xFF, 0x7F]);
        let sub = subscribe_packet(&["a/b".into()]);
        assert_eq!(sub, [0x82, 8, 0, 1, 0, 3, b'a', b'/', b'b', 0]);
        // QoS 1 PUBLISH: topic, packet id, payload.
        let body = [0, 3, b'a', b'/', b'b', 0, 7, b'o', b'n'];
        assert_eq!(
            publish_parts(0x32, &body),
            Some(("a/b".into(), "on".into()))
        );
        assert_eq!(
            publish_parts(0x30, &body[..5]),
            Some(("a/b".into(), String::new()))
        );
        assert_eq!(publish_parts(0x30, &[0, 9, b'a']), None);
    }
}
