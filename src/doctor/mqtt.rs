//! The MQTT fallback's broker, when configured: TCP, TLS with the broker's address as its
//! name and the gateway's client certificate, then an MQTT CONNECT — with TLS 1.3 a broker
//! that refuses the client certificate is only heard at the first read, so the CONNACK is
//! what proves mutual TLS works. Not configured is reported, never a failure.

use std::time::Duration;

use rustls::pki_types::ServerName;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use super::{Report, Verdict};
use crate::config::Config;

const BROKER_DEADLINE: Duration = Duration::from_secs(5);

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
        let _ = tls.write_all(&[0xE0, 0x00]).await;
        match connack {
            [0x20, 0x02, _, 0] => Ok(()),
            [0x20, 0x02, _, rc] => Err(format!(
                "the broker refused the connection (CONNACK code {rc})"
            )),
            other => Err(format!("not an MQTT broker answer: {other:02x?}")),
        }
    };
    // The fallback is not what a sale needs first: a broken one is a warning.
    match tokio::time::timeout(BROKER_DEADLINE, attempt).await {
        Ok(Ok(())) => report.add(
            "gateway",
            "mqtt",
            Verdict::Ok,
            format!(
                "broker {} accepted the gateway's client certificate (mutual TLS)",
                mqtt.broker
            ),
            "",
        ),
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
