//! The journal's reads: on their own connection, on the blocking pool, so a read never
//! waits behind the writer's commits.

use rusqlite::Connection;

use super::{Event, Journal, JournalError, Stored, sql};
use crate::terminal::wire::{TxnResult, TxnStatus};

impl Journal {
    /// Reads on the reader connection, on the blocking pool.
    pub(super) async fn read<T, F>(&self, f: F) -> Result<T, JournalError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, JournalError> + Send + 'static,
    {
        let conn = self.reader.clone();
        tokio::task::spawn_blocking(move || {
            let guard = conn.lock().unwrap_or_else(|p| p.into_inner());
            f(&guard)
        })
        .await
        .map_err(|e| JournalError::Task(e.to_string()))?
    }

    pub async fn get(&self, transaction_id: &str) -> Result<Option<Stored>, JournalError> {
        let id = transaction_id.to_string();
        self.read(move |conn| sql::select_one(conn, &id)).await
    }

    /// The newest `limit` transactions, newest first.
    pub async fn recent(&self, limit: usize) -> Result<Vec<TxnResult>, JournalError> {
        self.read(move |conn| sql::recent(conn, limit)).await
    }

    /// The newest `limit` transactions whose status is `status`, newest first.
    pub async fn recent_with_status(
        &self,
        limit: usize,
        status: TxnStatus,
    ) -> Result<Vec<TxnResult>, JournalError> {
        self.read(move |conn| sql::recent_with_status(conn, limit, status.as_str()))
            .await
    }

    /// The refunds and voids that name `original_id` as their original.
    pub async fn undoing(&self, original_id: &str) -> Result<Vec<TxnResult>, JournalError> {
        let id = original_id.to_string();
        self.read(move |conn| sql::undoing(conn, &id)).await
    }

    /// Every transaction without a final outcome: what recovery must resume.
    pub async fn open_transactions(&self) -> Result<Vec<Stored>, JournalError> {
        self.read(sql::open_transactions).await
    }

    /// A transaction's events, the ones still queued included.
    pub async fn events(&self, transaction_id: &str) -> Result<Vec<Event>, JournalError> {
        self.flush().await?;
        let id = transaction_id.to_string();
        self.read(move |conn| sql::events(conn, &id)).await
    }

    /// A transaction's committed events, without forcing queued ones out (the live
    /// stream reads them when [`Journal::changes`] names the transaction).
    pub async fn committed_events(&self, transaction_id: &str) -> Result<Vec<Event>, JournalError> {
        let id = transaction_id.to_string();
        self.read(move |conn| sql::events(conn, &id)).await
    }

    /// How many transactions end in each status (for `/metrics`).
    pub async fn status_counts(&self) -> Result<Vec<(TxnStatus, u64)>, JournalError> {
        self.read(sql::status_counts).await
    }
}
