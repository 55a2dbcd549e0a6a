//! The journal's schema, its migrations and the statements on it. Plain functions on
//! a connection: the writer's commits and the readers call them.

use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;

use super::{Event, JournalError, Stored};
use crate::terminal::wire::{TxnKind, TxnResult, TxnStatus, now_rfc3339};

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
    r#"
CREATE TABLE terminal_events (
    id        INTEGER PRIMARY KEY AUTOINCREMENT,
    device_id TEXT NOT NULL,
    at        TEXT NOT NULL,
    event     TEXT NOT NULL,
    detail    TEXT
);
CREATE INDEX terminal_events_device ON terminal_events(device_id, id);
"#,
    // The original a refund or void undoes, as a column: the expression index made every
    // insert parse the request's JSON; a partial index leaves sales out of it altogether.
    r#"
ALTER TABLE transactions ADD COLUMN original_id TEXT;
UPDATE transactions SET original_id = json_extract(request, '$.originalTransactionId');
DROP INDEX transactions_original;
CREATE INDEX transactions_original_id ON transactions(original_id) WHERE original_id IS NOT NULL;
"#,
    // Events without AUTOINCREMENT: its `sqlite_sequence` row was one more page written
    // by every commit. Ids are kept; a new event still gets an id above every event of
    // its transaction (those rows exist, and the new rowid is above the largest), which
    // is all the SSE `Last-Event-ID` of a transaction's stream relies on.
    r#"
CREATE TABLE events_v5 (
    id             INTEGER PRIMARY KEY,
    transaction_id TEXT NOT NULL REFERENCES transactions(transaction_id) ON DELETE CASCADE,
    at             TEXT NOT NULL,
    event          TEXT NOT NULL,
    detail         TEXT
);
INSERT INTO events_v5 (id, transaction_id, at, event, detail)
    SELECT id, transaction_id, at, event, detail FROM events;
DROP TABLE events;
ALTER TABLE events_v5 RENAME TO events;
CREATE INDEX events_transaction ON events(transaction_id);
"#,
];

pub(super) fn migrate(conn: &mut Connection, path: &str) -> Result<(), JournalError> {
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

pub(super) fn select_one(conn: &Connection, id: &str) -> Result<Option<Stored>, JournalError> {
    let mut stmt = conn.prepare_cached(&format!("{SELECT} WHERE transaction_id = ?1"))?;
    let parts = stmt.query_row([id], row_to_parts).optional()?;
    parts.map(parts_to_stored).transpose()
}

/// What [`insert`] writes: one new transaction.
pub(super) struct NewTransaction {
    pub id: String,
    pub device: String,
    pub kind: TxnKind,
    /// `originalTransactionId` of a refund or void.
    pub original: Option<String>,
    pub fingerprint: String,
    pub request: String,
    pub status: &'static str,
    pub result: String,
    pub at: String,
}

/// Inserts a new transaction with its `received` event, or returns the stored one
/// (one statement when the id is new, which is nearly always).
pub(super) fn insert(
    conn: &Connection,
    t: &NewTransaction,
) -> Result<Option<Stored>, JournalError> {
    let inserted = conn
        .prepare_cached(
            "INSERT INTO transactions (transaction_id, device_id, kind, fingerprint, request, \
             status, result, created_at, updated_at, original_id) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?8, ?9) \
             ON CONFLICT (transaction_id) DO NOTHING",
        )?
        .execute(params![
            t.id,
            t.device,
            t.kind.as_str(),
            t.fingerprint,
            t.request,
            t.status,
            t.result,
            t.at,
            t.original
        ])?;
    if inserted == 0 {
        return select_one(conn, &t.id)?
            .map(Some)
            .ok_or_else(|| JournalError::Corrupt(format!("transaction {} vanished", t.id)));
    }
    insert_event(conn, &t.id, "received", None)?;
    Ok(None)
}

/// Stores a transaction's latest result and the event that produced it.
pub(super) fn update(
    conn: &Connection,
    result: &TxnResult,
    result_json: &str,
    event: &str,
    detail: Option<&str>,
) -> Result<(), JournalError> {
    conn.prepare_cached(
        "UPDATE transactions SET status = ?2, result = ?3, transport = ?4, updated_at = ?5 \
         WHERE transaction_id = ?1",
    )?
    .execute(params![
        result.transaction_id,
        result.status.as_str(),
        result_json,
        result.transport,
        now_rfc3339()
    ])?;
    insert_event(conn, &result.transaction_id, event, detail)
}

pub(super) fn insert_event(
    conn: &Connection,
    id: &str,
    event: &str,
    detail: Option<&str>,
) -> Result<(), JournalError> {
    conn.prepare_cached(
        "INSERT INTO events (transaction_id, at, event, detail) VALUES (?1, ?2, ?3, ?4)",
    )?
    .execute(params![id, now_rfc3339(), event, detail])?;
    Ok(())
}

pub(super) fn touch_health(conn: &Connection) -> Result<(), JournalError> {
    conn.prepare_cached(
        "INSERT INTO health (id, at) VALUES (1, ?1) ON CONFLICT(id) DO UPDATE SET at = ?1",
    )?
    .execute([now_rfc3339()])?;
    Ok(())
}

pub(super) fn prune_before(conn: &Connection, cutoff: &str) -> Result<usize, JournalError> {
    Ok(conn.execute(
        "DELETE FROM transactions WHERE created_at < ?1 \
         AND status NOT IN ('in_progress', 'unknown')",
        [cutoff],
    )?)
}

pub(super) fn recent(conn: &Connection, limit: usize) -> Result<Vec<TxnResult>, JournalError> {
    let mut stmt = conn.prepare_cached(
        "SELECT result FROM transactions ORDER BY created_at DESC, rowid DESC LIMIT ?1",
    )?;
    let rows = stmt.query_map([limit as i64], |row| row.get::<_, String>(0))?;
    rows.map(|r| from_json(&r?)).collect()
}

pub(super) fn recent_with_status(
    conn: &Connection,
    limit: usize,
    status: &str,
) -> Result<Vec<TxnResult>, JournalError> {
    let mut stmt = conn.prepare_cached(
        "SELECT result FROM transactions WHERE status = ?2 \
         ORDER BY created_at DESC, rowid DESC LIMIT ?1",
    )?;
    let rows = stmt.query_map(params![limit as i64, status], |row| row.get::<_, String>(0))?;
    rows.map(|r| from_json(&r?)).collect()
}

pub(super) fn undoing(
    conn: &Connection,
    original_id: &str,
) -> Result<Vec<TxnResult>, JournalError> {
    let mut stmt = conn.prepare_cached("SELECT result FROM transactions WHERE original_id = ?1")?;
    let rows = stmt.query_map([original_id], |row| row.get::<_, String>(0))?;
    rows.map(|r| from_json(&r?)).collect()
}

pub(super) fn open_transactions(conn: &Connection) -> Result<Vec<Stored>, JournalError> {
    let mut stmt = conn.prepare_cached(&format!(
        "{SELECT} WHERE status IN ('in_progress', 'unknown') ORDER BY created_at"
    ))?;
    let rows = stmt.query_map([], row_to_parts)?;
    rows.map(|r| parts_to_stored(r?)).collect()
}

pub(super) fn events(conn: &Connection, id: &str) -> Result<Vec<Event>, JournalError> {
    let mut stmt = conn.prepare_cached(
        "SELECT id, at, event, detail FROM events WHERE transaction_id = ?1 ORDER BY id",
    )?;
    let rows = stmt.query_map([id], |row| {
        Ok(Event {
            seq: row.get(0)?,
            at: row.get(1)?,
            event: row.get(2)?,
            detail: row.get(3)?,
        })
    })?;
    Ok(rows.collect::<Result<Vec<_>, _>>()?)
}

pub(super) fn status_counts(conn: &Connection) -> Result<Vec<(TxnStatus, u64)>, JournalError> {
    let mut stmt =
        conn.prepare_cached("SELECT status, COUNT(*) FROM transactions GROUP BY status")?;
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
}

pub(super) fn to_json<T: Serialize>(value: &T) -> Result<String, JournalError> {
    serde_json::to_string(value).map_err(|e| JournalError::Corrupt(e.to_string()))
}

fn from_json<T: serde::de::DeserializeOwned>(text: &str) -> Result<T, JournalError> {
    serde_json::from_str(text).map_err(|e| JournalError::Corrupt(e.to_string()))
}
