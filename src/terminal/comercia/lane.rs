//! Wiring of a `comercia-pos` lane for `serve`: its own TLS trust (only the vendor CA
//! of its `caCert`, for its `serverName`), its transport, and the journal view the
//! transport reads requests and originals from.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::ServerName;

use super::{Comercia, ComerciaClient, Records};
use crate::config::{ComerciaLane, Terminal};
use crate::journal::Journal;
use crate::terminal::TerminalClient;
use crate::tls::{self, TlsError};
use crate::transport::Transport;

/// A lane's vendor CA could not be loaded.
#[derive(Debug, thiserror::Error)]
#[error("terminals {device}: caCert {path}: {reason}")]
pub struct LaneTlsError {
    pub device: String,
    pub path: String,
    pub reason: TlsError,
}

/// Each `comercia-pos` terminal's client TLS config, trusting only its `caCert`.
pub fn lane_tls(
    terminals: &[Terminal],
) -> Result<HashMap<String, Arc<rustls::ClientConfig>>, LaneTlsError> {
    let mut all = HashMap::new();
    for t in terminals {
        let Some(c) = &t.comercia else { continue };
        let config = tls::client_config(&c.ca_cert, None).map_err(|reason| LaneTlsError {
            device: t.device_id.clone(),
            path: c.ca_cert.display().to_string(),
            reason,
        })?;
        all.insert(t.device_id.clone(), config);
    }
    Ok(all)
}

/// The client verifies the lane's `serverName` instead of the InStore name.
pub fn with_name(client: TerminalClient, lane: &ComerciaLane) -> TerminalClient {
    match ServerName::try_from(lane.server_name.clone()) {
        Ok(name) => client.with_server_name(name),
        // Validated by the config; a bad name would verify nothing, so keep the default.
        Err(_) => client,
    }
}

/// The lane's one transport (the MQTT fallback speaks the InStore protocol only).
pub fn transport(
    client: &TerminalClient,
    terminal: &Terminal,
    lane: &ComerciaLane,
    call_timeout: Duration,
    records: Records,
) -> (ComerciaClient, Arc<dyn Transport>) {
    let api = ComerciaClient::new(
        client.clone(),
        &lane.source,
        &terminal.device_id,
        call_timeout,
    );
    let transport = Comercia::new(api.clone(), terminal.poll_interval, records);
    (api, Arc::new(transport))
}

/// The journal's record of a transaction, for lookups and refunds.
pub fn records(journal: Journal) -> Records {
    Arc::new(move |id: String| {
        let journal = journal.clone();
        Box::pin(async move { journal.get(&id).await.ok().flatten() })
    })
}
