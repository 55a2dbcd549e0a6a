//! The durable record of every transaction: SQLite in WAL mode with
//! `synchronous=FULL`, so a committed write survives a power cut. A request is
//! committed here before a byte goes to the terminal, and every state change after.
//! Writes are queued and committed in groups on the blocking pool (`writer`); reads use
//! their own connection beside it (WAL lets readers run beside the writer), on the
//! blocking pool. The async runtime never waits on a disk.

mod health;
mod reads;
mod sql;
mod terminal_events;
mod writer;

pub use health::{CommitLatency, Health};

use std::path::Path;
use std::sync::{Arc, Mutex};

use rusqlite::Connection;
use serde::Serialize;
use tokio::sync::{broadcast, oneshot};

use crate::terminal::wire::{PaymentRequest, TxnKind, TxnResult};
pub use terminal_events::TerminalEvent;
pub use writer::LAZY_FLUSH;
use writer::{Job, Value};

#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error("journal {path}: {source}")]
    Open {
        path: String,
        source: rusqlite::Error,
    },
    #[error("cannot create the journal {path}: {source}")]
    Create {
        path: String,
        source: std::io::Error,
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
    #[error("journal write failed: {0}")]
    Write(String),
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
    /// Its place in the journal (ascending across all transactions): the SSE event id.
    #[serde(skip)]
    pub seq: i64,
    pub at: String,
    pub event: String,
    pub detail: Option<String>,
}

/// The transactions one commit wrote to.
pub type Changed = Arc<Vec<String>>;

/// Commits a live reader may fall behind by before it must re-read.
const CHANGES_QUEUE: usize = 256;

/// What [`Journal::begin`] found.
#[derive(Debug)]
pub enum Begin {
    /// The request is now journaled; it may be sent.
    Created,
    /// The id was journaled before.
    Existing(Box<Stored>),
}

#[derive(Clone)]
pub struct Journal {
    /// The write connection and its queue of jobs (`writer`).
    writer: Arc<writer::Writer>,
    reader: Arc<Mutex<Connection>>,
    health: Arc<Health>,
    /// After each commit, the transactions it wrote to, so live readers (SSE) learn
    /// that new events of theirs are durable.
    changes: broadcast::Sender<Changed>,
}

/// Creates the journal file owner-only (0600) if it is not there yet: it holds every
/// transaction of the shop. SQLite gives its `-wal` and `-shm` files the same mode.
fn create_private(path: &Path) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    match options.open(path) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e),
    }
}

impl Journal {
    /// Opens (creating it and its folder if needed) and migrates the journal, and
    /// readies its writer. Blocking: call at start-up, before serving.
    pub fn open(path: &Path) -> Result<Journal, JournalError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|source| JournalError::Folder {
                path: dir.display().to_string(),
                source,
            })?;
        }
        create_private(path).map_err(|source| JournalError::Create {
            path: path.display().to_string(),
            source,
        })?;
        let shown = path.display().to_string();
        let open_err = |source| JournalError::Open {
            path: shown.clone(),
            source,
        };
        let connect = || -> Result<Connection, JournalError> {
            let conn = Connection::open(path).map_err(open_err)?;
            conn.busy_timeout(std::time::Duration::from_secs(5))
                .map_err(open_err)?;
            conn.pragma_update(None, "journal_mode", "WAL")
                .map_err(open_err)?;
            conn.pragma_update(None, "synchronous", "FULL")
                .map_err(open_err)?;
            conn.pragma_update(None, "foreign_keys", "ON")
                .map_err(open_err)?;
            Ok(conn)
        };
        let mut conn = connect()?;
        sql::migrate(&mut conn, &shown)?;
        let reader = connect()?;
        let (health, changes) = (
            Arc::new(Health::default()),
            broadcast::channel(CHANGES_QUEUE).0,
        );
        let writer =
            writer::Writer::new(Arc::new(Mutex::new(conn)), health.clone(), changes.clone());
        Ok(Journal {
            writer,
            reader: Arc::new(Mutex::new(reader)),
            health,
            changes,
        })
    }

    fn enqueue(&self, job: Job) {
        self.writer.submit(job);
    }

    pub fn health(&self) -> &Health {
        &self.health
    }

    /// Runs a write in the writer's next commit; returns once it is committed.
    async fn write<T, F>(&self, f: F) -> Result<T, JournalError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, JournalError> + Send + 'static,
    {
        self.write_for(None, f).await
    }

    /// [`Journal::write`] of transaction `txn`'s rows: live readers hear of it.
    async fn write_for<T, F>(&self, txn: Option<String>, f: F) -> Result<T, JournalError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, JournalError> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        let op = Box::new(move |conn: &Connection| f(conn).map(|v| Box::new(v) as Value));
        self.enqueue(Job::Durable { op, reply, txn });
        let value = answer
            .await
            .map_err(|_| JournalError::Task("the journal writer has stopped".into()))??;
        value
            .downcast::<T>()
            .map(|v| *v)
            .map_err(|_| JournalError::Task("journal writer answered the wrong type".into()))
    }

    /// Proves the journal can commit right now (a one-row write, fsynced like any other).
    pub async fn check_writable(&self) -> Result<(), JournalError> {
        self.write(sql::touch_health).await
    }

    /// Records a new request, or returns what the journal already holds for its id.
    pub async fn begin(
        &self,
        kind: TxnKind,
        request: &PaymentRequest,
        result: &TxnResult,
    ) -> Result<Begin, JournalError> {
        let new = sql::NewTransaction {
            id: request.transaction_id.clone(),
            device: request.device_id.clone(),
            kind,
            original: request.original_transaction_id.clone(),
            fingerprint: request.fingerprint(kind),
            request: sql::to_json(request)?,
            status: result.status.as_str(),
            result: sql::to_json(result)?,
            at: result.started_at.clone(),
        };
        let id = self.followed().then(|| new.id.clone());
        let existing = self
            .write_for(id, move |conn| sql::insert(conn, &new))
            .await?;
        Ok(match existing {
            Some(stored) => Begin::Existing(Box::new(stored)),
            None => Begin::Created,
        })
    }

    /// Stores the transaction's latest result and the event that produced it.
    pub async fn update(
        &self,
        result: &TxnResult,
        event: &str,
        detail: Option<String>,
    ) -> Result<(), JournalError> {
        let result_json = sql::to_json(result)?;
        let result = result.clone();
        let event = event.to_string();
        let id = self.followed().then(|| result.transaction_id.clone());
        self.write_for(id, move |conn| {
            sql::update(conn, &result, &result_json, &event, detail.as_deref())
        })
        .await
    }

    /// Records an event that does not change the result (a poll, a stage, a cancel).
    /// Nothing waits for it: it is committed with the next write, within
    /// [`LAZY_FLUSH`] at the latest (or by [`Journal::flush`]), and lost if the process
    /// dies before.
    pub async fn event(
        &self,
        transaction_id: &str,
        event: &str,
        detail: Option<String>,
    ) -> Result<(), JournalError> {
        let id = transaction_id.to_string();
        let txn = self.followed().then(|| id.clone());
        let event = event.to_string();
        let op = Box::new(move |conn: &Connection| {
            sql::insert_event(conn, &id, &event, detail.as_deref()).map(|()| Box::new(()) as Value)
        });
        self.enqueue(Job::Lazy { op, txn });
        Ok(())
    }

    /// Commits the events queued so far (an fsync only if there are any).
    pub async fn flush(&self) -> Result<(), JournalError> {
        let (reply, done) = oneshot::channel();
        self.enqueue(Job::Flush { reply });
        done.await
            .map_err(|_| JournalError::Task("the journal writer has stopped".into()))
    }

    /// Whether anyone follows the journal live. A write queued while nobody does is not
    /// named to a later subscriber, which is safe: a subscriber reads the history after
    /// subscribing, through [`Journal::events`], which commits what is queued first.
    fn followed(&self) -> bool {
        self.changes.receiver_count() > 0
    }

    /// After every commit, the ids of the transactions it wrote to. A receiver that
    /// lags behind (`RecvError::Lagged`) must re-read what it follows.
    pub fn changes(&self) -> broadcast::Receiver<Changed> {
        self.changes.subscribe()
    }

    /// Deletes final transactions (and their events) created before `cutoff`
    /// (RFC 3339). Transactions without a final outcome are never pruned.
    pub async fn prune_before(&self, cutoff: String) -> Result<usize, JournalError> {
        self.write(move |conn| sql::prune_before(conn, &cutoff))
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `synchronous` is per connection: the writer's own is the one that matters.
    #[tokio::test]
    async fn journal_writes_are_wal_with_full_sync() {
        let dir = tempfile::tempdir().unwrap();
        let journal = Journal::open(&dir.path().join("j.db")).unwrap();
        let (sync, mode, fk) = journal
            .write(|conn| {
                let int = |name| conn.pragma_query_value(None, name, |r| r.get::<_, i64>(0));
                let mode: String = conn.pragma_query_value(None, "journal_mode", |r| r.get(0))?;
                Ok((int("synchronous")?, mode, int("foreign_keys")?))
            })
            .await
            .unwrap();
        assert_eq!(sync, 2, "synchronous=FULL");
        assert_eq!(mode, "wal");
        assert_eq!(fk, 1, "events go with their transaction");
    }

    /// A job alone runs without a savepoint: when it fails or panics, its whole
    /// transaction is rolled back, and the next write goes through.
    #[tokio::test]
    async fn a_lone_write_that_fails_or_panics_leaves_no_trace() {
        let dir = tempfile::tempdir().unwrap();
        let journal = Journal::open(&dir.path().join("j.db")).unwrap();
        let failed = journal
            .write(|conn| {
                sql::touch_health(conn)?;
                Err::<(), _>(JournalError::Corrupt("refused by the test".into()))
            })
            .await;
        assert!(
            matches!(failed, Err(JournalError::Corrupt(_))),
            "{failed:?}"
        );
        let panicked = journal
            .write(|conn| -> Result<(), JournalError> {
                sql::touch_health(conn)?;
                panic!("a bug in a journal write")
            })
            .await;
        assert!(
            matches!(panicked, Err(JournalError::Task(_))),
            "{panicked:?}"
        );
        let rows: i64 = journal
            .write(|conn| Ok(conn.query_row("SELECT COUNT(*) FROM health", [], |r| r.get(0))?))
            .await
            .unwrap();
        assert_eq!(rows, 0, "a failed write's row was committed");
        journal.check_writable().await.unwrap();
        assert!(journal.health().last_error().is_none());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn writes_waiting_together_share_one_commit_and_a_failing_one_fails_alone() {
        let dir = tempfile::tempdir().unwrap();
        let journal = Journal::open(&dir.path().join("j.db")).unwrap();
        journal.check_writable().await.unwrap();
        let before = journal.health().commits();
        // Hold the writer inside one job so that the next twenty queue up behind it.
        let (release, held) = std::sync::mpsc::channel::<()>();
        let (started_tx, started) = tokio::sync::oneshot::channel::<()>();
        let blocker = {
            let journal = journal.clone();
            tokio::spawn(async move {
                journal
                    .write(move |_| {
                        let _ = started_tx.send(());
                        let _ = held.recv();
                        Ok(())
                    })
                    .await
            })
        };
        started.await.unwrap();
        let writes: Vec<_> = (0..20)
            .map(|i| {
                let journal = journal.clone();
                tokio::spawn(async move {
                    if i == 7 {
                        // An event for an id that is not journaled breaks the foreign key.
                        journal
                            .write(|conn| sql::insert_event(conn, "NOBODY-7", "x", None))
                            .await
                    } else {
                        journal.check_writable().await
                    }
                })
            })
            .collect();
        // Every write is queued (the writer holds the first job) before it is let go.
        let waiting = std::time::Instant::now();
        while journal.health().queued() < 20 {
            assert!(
                waiting.elapsed() < std::time::Duration::from_secs(30),
                "writes not queued"
            );
            tokio::task::yield_now().await;
        }
        release.send(()).unwrap();
        blocker.await.unwrap().unwrap();
        let mut outcomes = Vec::new();
        for w in writes {
            outcomes.push(w.await.unwrap());
        }
        assert!(outcomes[7].is_err(), "{:?}", outcomes[7]);
        assert_eq!(outcomes.iter().filter(|o| o.is_ok()).count(), 19);
        let commits = journal.health().commits() - before;
        assert!(commits <= 3, "{commits} commits for 21 writes");
        assert!(journal.health().last_error().is_none());
    }
}
