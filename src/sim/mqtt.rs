//! The simulator's MQTT side: connected to the broker as the terminal (its
//! `device-<id>` certificate), it takes requests from `ecrlink/{id}/req`, runs them
//! through the same protocol code as the HTTPS listener and answers on
//! `ecrlink/{id}/resp`. Its retained status is `online`, its last will `offline`.

use std::sync::Arc;

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::Method;
use tokio_util::sync::CancellationToken;

use super::{Sim, lock, routes};
use crate::transport::mqtt::session::{Session, SessionConfig};
use crate::transport::mqtt::wire::{
    self, BrokerUrl, MqttRequest, MqttResponse, Op, STATUS_OFFLINE, STATUS_ONLINE,
};

/// Where the simulator's MQTT side connects, and with which identity.
#[derive(Clone, Debug)]
pub struct SimMqtt {
    pub broker: BrokerUrl,
    /// The private CA as root, `device-<id>.pem`/`.key` as the client certificate.
    pub tls: Arc<rustls::ClientConfig>,
}

pub(super) async fn run(sim: Arc<Sim>, settings: SimMqtt, shutdown: CancellationToken) {
    let device = sim.opts.device_id.clone();
    let status = wire::status_topic(&device);
    let config = SessionConfig {
        broker: settings.broker,
        tls: settings.tls,
        client_id: device.clone(),
        subscribe: vec![wire::request_topic(&device)],
        last_will: Some((status.clone(), STATUS_OFFLINE.into())),
        announce: Some((status.clone(), STATUS_ONLINE.into())),
    };
    let (session, mut incoming, task) = Session::start(
        config,
        shutdown.clone(),
        Some((status, STATUS_OFFLINE.into())),
    );
    let mut calls = tokio::task::JoinSet::new();
    loop {
        let publish = tokio::select! {
            _ = shutdown.cancelled() => break,
            Some(_) = calls.join_next(), if !calls.is_empty() => continue,
            publish = incoming.recv() => match publish {
                Some(p) => p,
                None => break,
            },
        };
        let request: MqttRequest = match serde_json::from_slice(&publish.payload) {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(error = %e, "unreadable MQTT request dropped");
                continue;
            }
        };
        if request.is_expired(time::OffsetDateTime::now_utc()) {
            tracing::warn!(
                request_id = %request.request_id,
                op = ?request.op,
                expires_at = %request.expires_at,
                "expired MQTT request dropped"
            );
            continue;
        }
        // A start holds its answer until the payment is final: each call runs on its
        // own task so status calls are answered meanwhile.
        calls.spawn(answer(sim.clone(), session.clone(), request));
    }
    calls.shutdown().await;
    let _ = task.await;
}

async fn answer(sim: Arc<Sim>, session: Session, request: MqttRequest) {
    let device = sim.opts.device_id.clone();
    let id = request.transaction_id.clone().unwrap_or_default();
    let (method, path, body) = match request.op {
        Op::Start => {
            let (Some(kind), Some(req)) = (request.kind, &request.request) else {
                tracing::warn!(request_id = %request.request_id, "MQTT start without kind or request dropped");
                return;
            };
            let body = serde_json::to_vec(req).unwrap_or_default();
            (Method::POST, format!("/v1/{}", kind.as_str()), body)
        }
        Op::Current => (Method::GET, "/v1/transactions/current".into(), Vec::new()),
        Op::Lookup => (Method::GET, format!("/v1/transactions/{id}"), Vec::new()),
        Op::Cancel => (
            Method::POST,
            format!("/v1/transactions/{id}/cancel"),
            b"{}".to_vec(),
        ),
    };
    lock(&sim.state).requests += 1;
    let Ok(response) = routes::protocol(sim.clone(), method, &path, Bytes::from(body)).await else {
        // A fault (dropped answer, ignored poll): silence, as on the HTTPS side.
        return;
    };
    let status = response.status().as_u16();
    let bytes = match response.into_body().collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(never) => match never {},
    };
    let body = serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null);
    let answer = MqttResponse {
        request_id: request.request_id,
        status,
        body,
    };
    match serde_json::to_vec(&answer) {
        Ok(payload) => {
            if let Err(e) = session.publish(wire::response_topic(&device), payload, false) {
                tracing::warn!(error = %e, "MQTT answer not queued");
            }
        }
        Err(e) => tracing::warn!(error = %e, "MQTT answer not encoded"),
    }
}
