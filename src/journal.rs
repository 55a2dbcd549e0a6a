//! The durable record of every transaction: SQLite in WAL mode with
//! `synchronous=FULL`, so a committed write survives a power cut. A request is
//! committed here before a byte goes to the terminal, and every state change after.
//! All calls run on the blocking pool; the async runtime never waits on a disk.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;

use crate::terminal::wire::{PaymentRequest, TxnKind, TxnResult, TxnStatus, now_rfc3339};

#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error("journal {path}: {source}")]
    Open {
        path: String,
        source: rusqlite::Error,
    },
    #[error("cannot create the journal's folder {path}: {source}")]
    Folder {
        path: String,
        source: std::io::Error,
    },
    #[error("journal {path} has schema version {found}, newer than this ecrlink ({supported})")]
    TooNew {
        path: String,
        found: i64,
        supported: i64,
    },
    #[error("journal write failed: {0}")]
    Sql(#[from] rusqlite::Error),
    #[error("journal holds an unreadable row: {0}")]
    Corrupt(String),
    #[error("journal task failed: {0}")]
    Task(String),
}

/// One transaction as journaled.
#[derive(Clone, Debug)]
pub struct Stored {
    pub kind: TxnKind,
    pub fingerprint: String,
    pub request: PaymentRequest,
    pub result: TxnResult,
}

/// One state change of a transaction.
#[derive(Clone, Debug, Serialize)]
pub struct Event {
    pub at: String,
    pub event: String,
    pub detail: Option<String>,
}

/// What [`Journal::begin`] found.
#[derive(Debug)]
pub enum Begin {
    /// The request is now journaled; it may be sent.
    Created,
    /// The id was journaled before.
    Existing(Box<Stored>),
}

/// Each migration takes the schema from its index to index + 1.
const MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE transactions (
    transaction_id TEXT PRIMARY KEY,
    device_id      TEXT NOT NULL,
    kind           TEXT NOT NULL,
    fingerprint    TEXT NOT NULL,
    request        TEXT NOT NULL,
    status         TEXT NOT NULL,
    result         TEXT NOT NULL,
    transport      TEXT,
    created_at     TEXT NOT NULL,
    updated_at     TEXT NOT NULL
);
CREATE INDEX transactions_created ON transactions(created_at);
CREATE INDEX transactions_open ON transactions(status) WHERE status IN ('in_progress', 'unknown');
CREATE TABLE events (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    transaction_id TEXT NOT NULL REFERENCES transactions(transaction_id) ON DELETE CASCADE,
    at             TEXT NOT NULL,
    event          TEXT NOT NULL,
    detail         TEXT
);
CREATE INDEX events_transaction ON events(transaction_id);
"#,
    r#"
CREATE INDEX transactions_original ON transactions(json_extract(request, '$.originalTransactionId'));
CREATE TABLE health (id INTEGER PRIMARY KEY CHECK (id = 1), at TEXT NOT NULL);
"#,
];

/// The journal's own view of whether it can be written, for `/healthz` and `/metrics`.
#[derive(Debug, Default)]
pub struct Health {
    write_errors: AtomicU64,
    /// The error of the last failed write, cleared by the next good one.
    last_error: Mutex<Option<String>>,
}

impl Health {
    pub fn write_errors(&self) -> u64 {
        self.write_errors.load(Ordering::Relaxed)
    }

    /// `None` while the last write went through.
    pub fn last_error(&self) -> Option<String> {
        self.last_error
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn note<T>(&self, outcome: &Result<T, JournalError>) {
        let mut last = self.last_error.lock().unwrap_or_else(|p| p.into_inner());
        match outcome {
            Ok(_) => *last = None,
            Err(e) => {
                self.write_errors.fetch_add(1, Ordering::Relaxed);
                *last = Some(e.to_string());
            }
        }
    }
}

#[derive(Clone)]
pub struct Journal {
    conn: Arc<Mutex<Connection>>,
    health: Arc<Health>,
}

impl Journal {
    /// Opens (creating it and its folder if needed) and migrates the journal.
    /// Blocking: call at start-up, before serving.
    pub fn open(path: &Path) -> Result<Journal, JournalError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|source| JournalError::Folder {
                path: dir.display().to_string(),
                source,
            })?;
        }
        let shown = path.display().to_string();
        let open_err = |source| JournalError::Open {
            path: shown.clone(),
            source,
        };
        let mut conn = Connection::open(path).map_err(open_err)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))
            .map_err(open_err)?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(open_err)?;
        conn.pragma_update(None, "synchronous", "FULL")
            .map_err(open_err)?;
        conn.pragma_update(None, "foreign_keys", "ON")
            .map_err(open_err)?;
        migrate(&mut conn, &shown)?;
        Ok(Journal {
            conn: Arc::new(Mutex::new(conn)),
            health: Arc::new(Health::default()),
        })
    }

    pub fn health(&self) -> &Health {
        &self.health
    }

    /// Runs a write and records in [`Health`] whether it went through.
    async fn write<T, F>(&self, f: F) -> Result<T, JournalError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, JournalError> + Send + 'static,
    {
        let outcome = self.with(f).await;
        self.health.note(&outcome);
        outcome
    }

    /// Proves the journal can commit right now (a one-row write, fsynced like any other).
    pub async fn check_writable(&self) -> Result<(), JournalError> {
        self.write(|conn| {
            conn.execute(
                "INSERT INTO health (id, at) VALUES (1, ?1) ON CONFLICT(id) DO UPDATE SET at = ?1",
                [now_rfc3339()],
            )?;
            Ok(())
        })
        .await
    }

    async fn with<T, F>(&self, f: F) -> Result<T, JournalError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, JournalError> + Send + 'static,
    {
        let conn = self.conn.clone();
        tokio::task::spawn_blocking(move || {
            let mut guard = conn.lock().unwrap_or_else(|p| p.into_inner());
            f(&mut guard)
        })
        .await
        .map_err(|e| JournalError::Task(e.to_string()))?
    }

    /// Records a new request, or returns what the journal already holds for its id.
    pub async fn begin(
        &self,
        kind: TxnKind,
        request: &PaymentRequest,
        result: &TxnResult,
    ) -> Result<Begin, JournalError> {
        let fingerprint = request.fingerprint(kind);
        let request_json = to_json(request)?;
        let result_json = to_json(result)?;
        let id = request.transaction_id.clone();
        let device = request.device_id.clone();
        let status = result.status.as_str();
        let now = result.started_at.clone();
        self.write(move |conn| {
            let tx = conn.transaction()?;
            if let Some(stored) = select_one(&tx, &id)? {
                return Ok(Begin::Existing(Box::new(stored)));
            }
            tx.execute(
                "INSERT INTO transactions (transaction_id, device_id, kind, fingerprint, request, \
                 status, result, created_at, updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?8)",
                params![id, device, kind.as_str(), fingerprint, request_json, status, result_json, now],
            )?;
            insert_event(&tx, &id, "received", None)?;
            tx.commit()?;
            Ok(Begin::Created)
        })
        .await
    }

    /// Stores the transaction's latest result and the event that produced it.
    pub async fn update(
        &self,
        result: &TxnResult,
        event: &str,
        detail: Option<String>,
    ) -> Result<(), JournalError> {
        let result_json = to_json(result)?;
        let id = result.transaction_id.clone();
        let status = result.status.as_str();
        let transport = result.transport.clone();
        let event = event.to_string();
        self.write(move |conn| {
            let tx = conn.transaction()?;
            tx.execute(
                "UPDATE transactions SET status = ?2, result = ?3, transport = ?4, updated_at = ?5 \
                 WHERE transaction_id = ?1",
                params![id, status, result_json, transport, now_rfc3339()],
            )?;
            insert_event(&tx, &id, &event, detail.as_deref())?;
            tx.commit()?;
            Ok(())
        })
        .await
    }

    /// Records an event that does not change the result (a poll, a switch, a cancel).
    pub async fn event(
        &self,
        transaction_id: &str,
        event: &str,
        detail: Option<String>,
    ) -> Result<(), JournalError> {
        let id = transaction_id.to_string();
        let event = event.to_string();
        self.write(move |conn| insert_event(conn, &id, &event, detail.as_deref()).map(drop))
            .await
    }

    pub async fn get(&self, transaction_id: &str) -> Result<Option<Stored>, JournalError> {
        let id = transaction_id.to_string();
        self.with(move |conn| select_one(conn, &id)).await
    }

    /// The newest `limit` transactions, newest first.
    pub async fn recent(&self, limit: usize) -> Result<Vec<TxnResult>, JournalError> {
        self.with(move |conn| {
            let mut stmt = conn.prepare(
                "SELECT result FROM transactions ORDER BY created_at DESC, rowid DESC LIMIT ?1",
            )?;
            let rows = stmt.query_map([limit as i64], |row| row.get::<_, String>(0))?;
            rows.map(|r| from_json(&r?)).collect()
        })
        .await
    }

    /// The refunds and voids that name `original_id` as their original.
    pub async fn undoing(&self, original_id: &str) -> Result<Vec<TxnResult>, JournalError> {
        let id = original_id.to_string();
        self.with(move |conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT result FROM transactions \
                 WHERE json_extract(request, '$.originalTransactionId') = ?1",
            )?;
            let rows = stmt.query_map([id], |row| row.get::<_, String>(0))?;
            rows.map(|r| from_json(&r?)).collect()
        })
        .await
    }

    /// Every transaction without a final outcome: what recovery must resume.
    pub async fn open_transactions(&self) -> Result<Vec<Stored>, JournalError> {
        self.with(|conn| {
            let mut stmt = conn.prepare(&format!(
                "{SELECT} WHERE status IN ('in_progress', 'unknown') ORDER BY created_at"
            ))?;
            let rows = stmt.query_map([], row_to_parts)?;
            rows.map(|r| parts_to_stored(r?)).collect()
        })
        .await
    }

    pub async fn events(&self, transaction_id: &str) -> Result<Vec<Event>, JournalError> {
        let id = transaction_id.to_string();
        self.with(move |conn| {
            let mut stmt = conn.prepare(
                "SELECT at, event, detail FROM events WHERE transaction_id = ?1 ORDER BY id",
            )?;
            let rows = stmt.query_map([id], |row| {
                Ok(Event {
                    at: row.get(0)?,
                    event: row.get(1)?,
                    detail: row.get(2)?,
                })
            })?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
        .await
    }

    /// Deletes final transactions (and their events) created before `cutoff`
    /// (RFC 3339). Transactions without a final outcome are never pruned.
    pub async fn prune_before(&self, cutoff: String) -> Result<usize, JournalError> {
        self.with(move |conn| {
            let n = conn.execute(
                "DELETE FROM transactions WHERE created_at < ?1 \
                 AND status NOT IN ('in_progress', 'unknown')",
                [cutoff],
            )?;
            Ok(n)
        })
        .await
    }

    /// How many transactions end in each status (for `/metrics`).
    pub async fn status_counts(&self) -> Result<Vec<(TxnStatus, u64)>, JournalError> {
        self.with(|conn| {
            let mut stmt =
                conn.prepare("SELECT status, COUNT(*) FROM transactions GROUP BY status")?;
            let rows = stmt.query_map([], |row| {
                Ok((row.get::<_, String>(0)?, row.get::<_, i64>(1)?))
            })?;
            let mut out = Vec::new();
            for row in rows {
                let (status, n) = row?;
                if let Some(st) = TxnStatus::parse(&status) {
                    out.push((st, n as u64));
                }
            }
            Ok(out)
        })
        .await
    }
}

fn migrate(conn: &mut Connection, path: &str) -> Result<(), JournalError> {
    let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    let supported = MIGRATIONS.len() as i64;
    if version > supported {
        return Err(JournalError::TooNew {
            path: path.to_string(),
            found: version,
            supported,
        });
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(version as usize) {
        let tx = conn.transaction()?;
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", (i + 1) as i64)?;
        tx.commit()?;
    }
    Ok(())
}

const SELECT: &str = "SELECT kind, fingerprint, request, result FROM transactions";

type Parts = (String, String, String, String);

fn row_to_parts(row: &rusqlite::Row<'_>) -> rusqlite::Result<Parts> {
    Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?))
}

fn parts_to_stored((kind, fingerprint, request, result): Parts) -> Result<Stored, JournalError> {
    Ok(Stored {
        kind: TxnKind::parse(&kind).ok_or_else(|| JournalError::Corrupt(format!("kind {kind}")))?,
        fingerprint,
        request: from_json(&request)?,
        result: from_json(&result)?,
    })
}

fn select_one(conn: &Connection, id: &str) -> Result<Option<Stored>, JournalError> {
    let parts = conn
        .query_row(
            &format!("{SELECT} WHERE transaction_id = ?1"),
            [id],
            row_to_parts,
        )
        .optional()?;
    parts.map(parts_to_stored).transpose()
}

fn insert_event(
    conn: &Connection,
    id: &str,
    event: &str,
    detail: Option<&str>,
) -> Result<usize, JournalError> {
    Ok(conn.execute(
        "INSERT INTO events (transaction_id, at, event, detail) VALUES (?1, ?2, ?3, ?4)",
        params![id, now_rfc3339(), event, detail],
    )?)
}

fn to_json<T: Serialize>(value: &T) -> Result<String, JournalError> {
    serde_json::to_string(value).map_err(|e| JournalError::Corrupt(e.to_string()))
}

fn from_json<T: serde::de::DeserializeOwned>(text: &str) -> Result<T, JournalError> {
    serde_json::from_str(text).map_err(|e| JournalError::Corrupt(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `synchronous` is per connection, so only the journal's own can show it.
    #[test]
    fn journal_connection_is_wal_with_full_sync() {
        let dir = tempfile::tempdir().unwrap();
        let journal = Journal::open(&dir.path().join("j.db")).unwrap();
        let conn = journal.conn.lock().unwrap();
        let sync: i64 = conn
            .pragma_query_value(None, "synchronous", |r| r.get(0))
            .unwrap();
        assert_eq!(sync, 2, "synchronous=FULL");
        let mode: String = conn
            .pragma_query_value(None, "journal_mode", |r| r.get(0))
            .unwrap();
        assert_eq!(mode, "wal");
        let fk: i64 = conn
            .pragma_query_value(None, "foreign_keys", |r| r.get(0))
            .unwrap();
        assert_eq!(fk, 1, "events are deleted with their transaction");
    }
}
