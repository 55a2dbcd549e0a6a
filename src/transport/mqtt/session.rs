//! One MQTT connection to the broker, kept up by its own task: mutual TLS with the
//! project's PKI, a persistent session (`clean_session = false`), (re)subscription and
//! the retained "online" announcement on every connect, reconnection with backoff.
//! Incoming publishes come out of a channel; [`Session::connected`] says whether the
//! broker link is up right now.

use std::sync::Arc;
use std::time::Duration;

use rumqttc::{AsyncClient, Event, EventLoop, LastWill, MqttOptions, Packet, Publish, QoS};
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use super::wire::BrokerUrl;

/// Keep-alive: how soon the broker notices a dead client (and fires its last will,
/// after 1.5 times this).
pub const KEEP_ALIVE: Duration = Duration::from_secs(5);
/// Deadline of TCP connect + TLS + CONNECT/CONNACK.
pub const CONNECT_TIMEOUT_SECS: u64 = 5;
/// First and longest pause between reconnection attempts.
pub const RECONNECT_MIN: Duration = Duration::from_millis(100);
pub const RECONNECT_MAX: Duration = Duration::from_secs(2);
/// Largest packet either way (a result object is well under 4 KiB).
const MAX_PACKET: usize = 64 * 1024;

/// How to connect and what to do on each (re)connect.
#[derive(Clone, Debug)]
pub struct SessionConfig {
    pub broker: BrokerUrl,
    /// Client config with the private CA as the only root and our client certificate.
    pub tls: Arc<rustls::ClientConfig>,
    pub client_id: String,
    /// Topic filters subscribed (QoS 1) on every connect.
    pub subscribe: Vec<String>,
    /// (topic, payload) the broker publishes retained when we vanish.
    pub last_will: Option<(String, String)>,
    /// (topic, payload) we publish retained on every connect.
    pub announce: Option<(String, String)>,
}

/// The handle to a running connection.
#[derive(Clone)]
pub struct Session {
    client: AsyncClient,
    connected: watch::Receiver<bool>,
    broker: BrokerUrl,
}

impl Session {
    /// Starts the connection task. It runs until `shutdown` fires, then publishes the
    /// retained `shutdown_status` (if any) and disconnects cleanly.
    pub fn start(
        config: SessionConfig,
        shutdown: CancellationToken,
        shutdown_status: Option<(String, String)>,
    ) -> (
        Session,
        mpsc::Receiver<Publish>,
        tokio::task::JoinHandle<()>,
    ) {
        let mut options = MqttOptions::new(
            config.client_id.clone(),
            config.broker.0.ip().to_string(),
            config.broker.0.port(),
        );
        options
            .set_clean_session(false)
            .set_keep_alive(KEEP_ALIVE)
            .set_max_packet_size(MAX_PACKET, MAX_PACKET);
        // The terminal link offers ALPN http/1.1; a broker must not see it.
        let mut tls = (*config.tls).clone();
        tls.alpn_protocols.clear();
        options.set_transport(rumqttc::Transport::tls_with_config(
            rumqttc::TlsConfiguration::Rustls(Arc::new(tls)),
        ));
        if let Some((topic, payload)) = &config.last_will {
            options.set_last_will(LastWill::new(
                topic.clone(),
                payload.clone().into_bytes(),
                QoS::AtLeastOnce,
                true,
            ));
        }
        let (client, mut eventloop) = AsyncClient::new(options, 64);
        eventloop
            .network_options
            .set_connection_timeout(CONNECT_TIMEOUT_SECS);
        // Small request/answer packets: Nagle + delayed ACK would add ~40 ms per hop.
        eventloop.network_options.set_tcp_nodelay(true);
        let (connected_tx, connected) = watch::channel(false);
        let (incoming_tx, incoming) = mpsc::channel(256);
        let session = Session {
            client: client.clone(),
            connected,
            broker: config.broker,
        };
        let task = tokio::spawn(drive(
            eventloop,
            client,
            config,
            connected_tx,
            incoming_tx,
            shutdown,
            shutdown_status,
        ));
        (session, incoming, task)
    }

    pub fn is_connected(&self) -> bool {
        *self.connected.borrow()
    }

    /// Waits until connected, for at most `within`.
    pub async fn wait_connected(&self, within: Duration) -> bool {
        let mut rx = self.connected.clone();
        tokio::time::timeout(within, rx.wait_for(|c| *c))
            .await
            .is_ok_and(|r| r.is_ok())
    }

    pub fn broker(&self) -> BrokerUrl {
        self.broker
    }

    /// Queues a QoS 1 publish. `Err` means it was not even queued. Payment requests
    /// are never retained.
    pub fn publish(&self, topic: String, payload: Vec<u8>, retain: bool) -> Result<(), String> {
        self.client
            .try_publish(topic, QoS::AtLeastOnce, retain, payload)
            .map_err(|e| e.to_string())
    }
}

async fn drive(
    mut eventloop: EventLoop,
    client: AsyncClient,
    config: SessionConfig,
    connected: watch::Sender<bool>,
    incoming: mpsc::Sender<Publish>,
    shutdown: CancellationToken,
    shutdown_status: Option<(String, String)>,
) {
    let mut backoff = RECONNECT_MIN;
    let mut last_error = String::new();
    loop {
        let event = tokio::select! {
            _ = shutdown.cancelled() => break,
            event = eventloop.poll() => event,
        };
        match event {
            Ok(Event::Incoming(Packet::ConnAck(ack))) => {
                backoff = RECONNECT_MIN;
                last_error.clear();
                tracing::info!(
                    broker = %config.broker,
                    client_id = %config.client_id,
                    session_present = ack.session_present,
                    "connected to the MQTT broker"
                );
                for filter in &config.subscribe {
                    if let Err(e) = client.try_subscribe(filter.clone(), QoS::AtLeastOnce) {
                        tracing::warn!(filter, error = %e, "MQTT subscribe not queued");
                    }
                }
                if let Some((topic, payload)) = &config.announce {
                    let _ = client.try_publish(
                        topic.clone(),
                        QoS::AtLeastOnce,
                        true,
                        payload.clone().into_bytes(),
                    );
                }
                connected.send_replace(true);
            }
            Ok(Event::Incoming(Packet::SubAck(ack))) => {
                if ack
                    .return_codes
                    .iter()
                    .any(|c| matches!(c, rumqttc::SubscribeReasonCode::Failure))
                {
                    tracing::error!(
                        client_id = %config.client_id,
                        "the broker refused a subscription (check its ACL)"
                    );
                }
            }
            Ok(Event::Incoming(Packet::Publish(publish))) => {
                if incoming.send(publish).await.is_err() {
                    break;
                }
            }
            Ok(Event::Incoming(Packet::Disconnect)) => {
                connected.send_replace(false);
            }
            Ok(_) => {}
            Err(e) => {
                connected.send_replace(false);
                let text = e.to_string();
                if text != last_error {
                    tracing::warn!(broker = %config.broker, error = %text, "MQTT broker link down; reconnecting");
                    last_error = text;
                }
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    _ = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(RECONNECT_MAX);
            }
        }
    }
    // Leave cleanly: a retained status first (the last will only fires on a lost
    // connection), then DISCONNECT, flushed with a short deadline.
    if *connected.borrow() {
        if let Some((topic, payload)) = shutdown_status {
            let _ = client.try_publish(topic, QoS::AtLeastOnce, true, payload.into_bytes());
        }
        let _ = client.try_disconnect();
        let _ = tokio::time::timeout(Duration::from_secs(1), async {
            while let Ok(event) = eventloop.poll().await {
                if matches!(event, Event::Outgoing(rumqttc::Outgoing::Disconnect)) {
                    break;
                }
            }
        })
        .await;
    }
    connected.send_replace(false);
}
