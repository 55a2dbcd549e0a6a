//! Events of a terminal rather than of one transaction (its active transport moving to
//! the fallback and back): kept in `terminal_events`, apart from the transactions, so
//! pruning old sales never loses a link's history and no sale owns a terminal's switch.

use rusqlite::{Connection, params};
use serde::Serialize;

use super::writer::{Job, Value};
use super::{Journal, JournalError};
use crate::terminal::wire::now_rfc3339;

/// One row of `terminal_events`.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct TerminalEvent {
    pub at: String,
    pub event: String,
    pub detail: Option<String>,
}

impl Journal {
    /// Journals an event of terminal `device_id`, in the writer's next commit.
    pub async fn terminal_event(
        &self,
        device_id: &str,
        event: &str,
        detail: Option<String>,
    ) -> Result<(), JournalError> {
        let (device, event) = (device_id.to_string(), event.to_string());
        let op = Box::new(move |conn: &Connection| {
            conn.prepare_cached(
                "INSERT INTO terminal_events (device_id, at, event, detail) VALUES (?1, ?2, ?3, ?4)",
            )?
            .execute(params![device, now_rfc3339(), event, detail])?;
            Ok(Box::new(()) as Value)
        });
        self.enqueue(Job::Lazy { op, txn: None });
        Ok(())
    }

    /// The newest `limit` events of `device_id`, oldest first.
    pub async fn terminal_events(
        &self,
        device_id: &str,
        limit: usize,
    ) -> Result<Vec<TerminalEvent>, JournalError> {
        self.flush().await?;
        let device = device_id.to_string();
        self.read(move |conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT at, event, detail FROM (SELECT id, at, event, detail FROM terminal_events \
                 WHERE device_id = ?1 ORDER BY id DESC LIMIT ?2) ORDER BY id",
            )?;
            let rows = stmt.query_map(params![device, limit as i64], |r| {
                Ok(TerminalEvent {
                    at: r.get(0)?,
                    event: r.get(1)?,
                    detail: r.get(2)?,
                })
            })?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn terminal_events_are_kept_per_terminal_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let journal = Journal::open(&dir.path().join("j.db")).unwrap();
        journal
            .terminal_event("T1", "transport_switch", Some("direct -> mqtt".into()))
            .await
            .unwrap();
        journal
            .terminal_event("T2", "transport_switch", None)
            .await
            .unwrap();
        journal
            .terminal_event("T1", "transport_switch", Some("mqtt -> direct".into()))
            .await
            .unwrap();
        let t1 = journal.terminal_events("T1", 10).await.unwrap();
        let details: Vec<_> = t1.iter().map(|e| e.detail.as_deref()).collect();
        assert_eq!(
            details,
            vec![Some("direct -> mqtt"), Some("mqtt -> direct")]
        );
        assert_eq!(journal.terminal_events("T1", 1).await.unwrap().len(), 1);
        assert_eq!(journal.terminal_events("T2", 10).await.unwrap().len(), 1);
    }
}
