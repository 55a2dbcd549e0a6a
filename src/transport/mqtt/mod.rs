//! The push fallback: the terminal's protocol carried over an MQTT broker on the shop
//! LAN. The terminal keeps an outbound connection to the broker, so this path survives
//! a dead HTTPS listener, a blocked inbound port or a changed terminal IP.
//!
//! Each call publishes one request (QoS 1, never retained, with a `requestId` and an
//! `expiresAt`) on `ecrlink/{deviceId}/req` and waits for the answer with the same
//! `requestId` on `ecrlink/{deviceId}/resp`. The first answer wins; QoS 1 may deliver a
//! request twice, so later answers are logged and dropped. The failure split is the
//! direct link's: `NotDelivered` only when nothing was handed to the broker (we are not
//! connected, or the terminal's last will says it is offline); once published, silence
//! is `NoAnswer`.

pub mod session;
pub mod wire;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rumqttc::Publish;
use serde::de::DeserializeOwned;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use super::{BoxFuture, Transport};
use crate::http::client::ClientError;
use crate::terminal::wire::{CancelAnswer, Current, ErrorBody, PaymentRequest, TxnKind, TxnResult};
use crate::terminal::{Lookup, TerminalError};
pub use session::{Session, SessionConfig};
use wire::{MqttRequest, MqttResponse, Op};

/// The longest a start request stays valid on its way to the terminal. A sale that
/// reaches a terminal later than this (a persistent session delivering it after a
/// reconnect) is dropped by the terminal rather than charged long after the fact.
pub const START_REQUEST_TTL: Duration = Duration::from_secs(30);

/// What the gateway knows of one terminal's broker presence.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Presence {
    Unknown,
    Online,
    Offline,
}

impl Presence {
    pub fn as_str(self) -> &'static str {
        match self {
            Presence::Unknown => "unknown",
            Presence::Online => "online",
            Presence::Offline => "offline",
        }
    }
}

#[derive(Default)]
struct Shared {
    /// requestId → the caller waiting for its answer.
    pending: Mutex<HashMap<String, oneshot::Sender<MqttResponse>>>,
    /// deviceId → its retained status.
    presence: Mutex<HashMap<String, Presence>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The gateway's connection to the broker, shared by the transports of every terminal.
pub struct MqttLink {
    session: Session,
    shared: Arc<Shared>,
    /// The connection and dispatch tasks, awaited by [`MqttLink::stopped`].
    tasks: Mutex<Vec<tokio::task::JoinHandle<()>>>,
}

impl MqttLink {
    /// Connects (in the background) as the gateway and subscribes to every terminal's
    /// answers and status. Tasks stop when `shutdown` fires.
    pub fn start(
        broker: wire::BrokerUrl,
        tls: Arc<rustls::ClientConfig>,
        client_id: &str,
        shutdown: CancellationToken,
    ) -> Arc<MqttLink> {
        let config = SessionConfig {
            broker,
            tls,
            client_id: client_id.to_string(),
            subscribe: vec!["ecrlink/+/resp".into(), "ecrlink/+/status".into()],
            last_will: None,
            announce: None,
        };
        let (session, incoming, connection) = Session::start(config, shutdown, None);
        let shared = Arc::new(Shared::default());
        let dispatcher = tokio::spawn(dispatch(incoming, shared.clone()));
        Arc::new(MqttLink {
            session,
            shared,
            tasks: Mutex::new(vec![connection, dispatcher]),
        })
    }

    /// Waits for the link's tasks to end (after the shutdown token fired).
    pub async fn stopped(&self) {
        let tasks = std::mem::take(&mut *lock(&self.tasks));
        for task in tasks {
            let _ = task.await;
        }
    }

    pub fn session(&self) -> &Session {
        &self.session
    }

    /// The transport reaching `device_id` through this link.
    pub fn transport(self: &Arc<Self>, device_id: &str, call_timeout: Duration) -> Mqtt {
        Mqtt {
            link: self.clone(),
            device_id: device_id.to_string(),
            call_timeout,
        }
    }

    pub fn presence(&self, device_id: &str) -> Presence {
        lock(&self.shared.presence)
            .get(device_id)
            .copied()
            .unwrap_or(Presence::Unknown)
    }
}

/// Routes answers to their waiting callers and records terminal presence.
async fn dispatch(mut incoming: mpsc::Receiver<Publish>, shared: Arc<Shared>) {
    while let Some(publish) = incoming.recv().await {
        let Some((device, leaf)) = wire::parse_topic(&publish.topic) else {
            continue;
        };
        match leaf {
            "status" => {
                let presence = match publish.payload.as_ref() {
                    b"online" => Presence::Online,
                    b"offline" => Presence::Offline,
                    _ => Presence::Unknown,
                };
                tracing::info!(
                    device_id = device,
                    status = presence.as_str(),
                    "terminal presence on the broker"
                );
                lock(&shared.presence).insert(device.to_string(), presence);
            }
            "resp" => match serde_json::from_slice::<MqttResponse>(&publish.payload) {
                Ok(answer) => {
                    let waiter = lock(&shared.pending).remove(&answer.request_id);
                    match waiter {
                        Some(tx) => {
                            let _ = tx.send(answer);
                        }
                        None => tracing::info!(
                            device_id = device,
                            request_id = %answer.request_id,
                            dup = publish.dup,
                            "duplicate or late MQTT answer dropped"
                        ),
                    }
                }
                Err(e) => {
                    tracing::warn!(device_id = device, error = %e, "unreadable MQTT answer dropped")
                }
            },
            _ => {}
        }
    }
}

/// One terminal reached through the broker.
pub struct Mqtt {
    link: Arc<MqttLink>,
    device_id: String,
    /// Deadline of the short calls (status, lookup, cancel).
    call_timeout: Duration,
}

fn request_id() -> String {
    use ring::rand::SecureRandom;
    let mut bytes = [0u8; 12];
    if ring::rand::SystemRandom::new().fill(&mut bytes).is_err() {
        // Uniqueness, not secrecy, is what matters here.
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        return format!("{nanos:x}");
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl Mqtt {
    fn broker_addr(&self) -> SocketAddr {
        self.link.session.broker().0
    }

    fn not_delivered(&self, reason: String) -> TerminalError {
        TerminalError::NotDelivered(ClientError::Unreachable {
            addr: self.broker_addr(),
            reason,
        })
    }

    /// Publishes one request and waits up to `wait` for its answer.
    async fn call(
        &self,
        op: Op,
        transaction_id: Option<&str>,
        start: Option<(TxnKind, &PaymentRequest)>,
        wait: Duration,
    ) -> Result<MqttResponse, TerminalError> {
        if !self.link.session.is_connected() {
            return Err(self.not_delivered("not connected to the MQTT broker".into()));
        }
        if self.link.presence(&self.device_id) == Presence::Offline {
            return Err(self.not_delivered(format!(
                "terminal {} is offline on the MQTT broker (its last will)",
                self.device_id
            )));
        }
        let ttl = match op {
            Op::Start => wait.min(START_REQUEST_TTL),
            _ => wait,
        };
        let request = MqttRequest {
            request_id: request_id(),
            op,
            expires_at: wire::expires_in(ttl),
            transaction_id: transaction_id.map(str::to_string),
            kind: start.map(|(kind, _)| kind),
            request: start.map(|(_, r)| r.clone()),
        };
        let payload =
            serde_json::to_vec(&request).map_err(|e| TerminalError::Protocol(e.to_string()))?;
        let (tx, rx) = oneshot::channel();
        let shared = &self.link.shared;
        lock(&shared.pending).insert(request.request_id.clone(), tx);
        if let Err(e) =
            self.link
                .session
                .publish(wire::request_topic(&self.device_id), payload, false)
        {
            lock(&shared.pending).remove(&request.request_id);
            return Err(self.not_delivered(format!("MQTT publish not queued: {e}")));
        }
        let answer = tokio::time::timeout(wait, rx).await;
        lock(&shared.pending).remove(&request.request_id);
        match answer {
            Ok(Ok(answer)) => Ok(answer),
            _ => Err(TerminalError::NoAnswer(ClientError::NoAnswer {
                addr: self.broker_addr(),
                reason: format!(
                    "no answer over MQTT within {:.1} s (request {})",
                    wait.as_secs_f64(),
                    request.request_id
                ),
            })),
        }
    }

    /// The answer read as the direct link reads an HTTP response.
    fn decode<T: DeserializeOwned>(op: Op, answer: MqttResponse) -> Result<T, TerminalError> {
        if answer.status == 200 {
            return serde_json::from_value(answer.body)
                .map_err(|e| TerminalError::Protocol(format!("MQTT {op:?} answer: {e}")));
        }
        match serde_json::from_value::<ErrorBody>(answer.body) {
            Ok(err) => Err(TerminalError::Rejected {
                status: answer.status,
                code: err.error.code,
                message: err.error.message,
            }),
            Err(_) => Err(TerminalError::Protocol(format!(
                "MQTT {op:?} answer: status {} without an error body",
                answer.status
            ))),
        }
    }
}

impl Transport for Mqtt {
    fn name(&self) -> &'static str {
        "mqtt"
    }

    fn start<'a>(
        &'a self,
        kind: TxnKind,
        request: &'a PaymentRequest,
        wait: Duration,
    ) -> BoxFuture<'a, Result<TxnResult, TerminalError>> {
        Box::pin(async move {
            let answer = self
                .call(
                    Op::Start,
                    Some(&request.transaction_id),
                    Some((kind, request)),
                    wait,
                )
                .await?;
            // The supervisor checks that the answer is about this transaction.
            Self::decode(Op::Start, answer)
        })
    }

    fn current(&self) -> BoxFuture<'_, Result<Current, TerminalError>> {
        Box::pin(async move {
            let answer = self
                .call(Op::Current, None, None, self.call_timeout)
                .await?;
            Self::decode(Op::Current, answer)
        })
    }

    fn lookup<'a>(
        &'a self,
        transaction_id: &'a str,
    ) -> BoxFuture<'a, Result<Lookup, TerminalError>> {
        Box::pin(async move {
            let answer = self
                .call(Op::Lookup, Some(transaction_id), None, self.call_timeout)
                .await?;
            match Self::decode(Op::Lookup, answer) {
                Ok(result) => Ok(Lookup::Found(result)),
                Err(e) if e.is_not_found() => Ok(Lookup::NotFound),
                Err(e) => Err(e),
            }
        })
    }

    fn cancel<'a>(
        &'a self,
        transaction_id: &'a str,
    ) -> BoxFuture<'a, Result<CancelAnswer, TerminalError>> {
        Box::pin(async move {
            let answer = self
                .call(Op::Cancel, Some(transaction_id), None, self.call_timeout)
                .await?;
            Self::decode(Op::Cancel, answer)
        })
    }

    fn usable(&self) -> bool {
        self.link.session.is_connected() && self.link.presence(&self.device_id) == Presence::Online
    }

    fn describe(&self) -> Option<serde_json::Value> {
        Some(serde_json::json!({
            "transport": "mqtt",
            "broker": self.link.session.broker().to_string(),
            "brokerConnected": self.link.session.is_connected(),
            "terminalPresence": self.link.presence(&self.device_id).as_str(),
        }))
    }
}
