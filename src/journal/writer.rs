//! Group commit: one task owns the journal's write connection. Every write is a job
//! on its queue; the task runs all jobs waiting at that moment in one SQLite
//! transaction (each in its own savepoint, so one failing job fails alone) and
//! commits once — one fsync for many transactions' writes when lanes sell at once.
//! A durable job's caller hears back only after the commit; a lazy job (a journal
//! event nothing waits on) rides along with the next commit, or is committed
//! [`LAZY_FLUSH`] after it was queued at the latest.

use std::any::Any;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rusqlite::Connection;
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender};
use tokio::sync::{broadcast, oneshot};
use tokio::time::Instant;

use super::{Changed, Health, JournalError};

/// The longest a lazy event waits for a commit to ride along with.
pub const LAZY_FLUSH: Duration = Duration::from_millis(100);

/// Most jobs in one commit.
const MAX_BATCH: usize = 512;

pub(super) type Value = Box<dyn Any + Send>;
pub(super) type Op = Box<dyn FnOnce(&Connection) -> Result<Value, JournalError> + Send>;

pub(super) enum Job {
    /// Its caller hears the outcome once it is committed.
    Durable {
        op: Op,
        reply: oneshot::Sender<Result<Value, JournalError>>,
        /// The transaction it writes to, for [`Journal::changes`](super::Journal::changes).
        txn: Option<String>,
    },
    /// Committed with the next commit; nobody waits for it.
    Lazy { op: Op, txn: Option<String> },
    /// Commits the lazy jobs queued before it (nothing when there are none); its
    /// caller hears back after that, so a read after it sees them.
    Flush { reply: oneshot::Sender<()> },
}

/// Starts the writer task on `conn` (on the current runtime); it ends when every
/// sender is gone, after committing what is queued. Each commit runs on the blocking
/// pool, one hand-off for the whole group.
pub(super) fn start(
    conn: Arc<Mutex<Connection>>,
    health: Arc<Health>,
    changes: broadcast::Sender<Changed>,
) -> UnboundedSender<Job> {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(run(conn, rx, health, changes));
    tx
}

async fn run(
    conn: Arc<Mutex<Connection>>,
    mut rx: UnboundedReceiver<Job>,
    health: Arc<Health>,
    changes: broadcast::Sender<Changed>,
) {
    let mut batch: Vec<Job> = Vec::new();
    // When the oldest lazy job of `batch` must be committed.
    let mut lazy_due: Option<Instant> = None;
    loop {
        // `None` when the lazy jobs' time is up, `Some(None)` when every sender is gone.
        let next = match lazy_due {
            None => Some(rx.recv().await),
            Some(due) => tokio::time::timeout_at(due, rx.recv()).await.ok(),
        };
        let closed = matches!(next, Some(None));
        if let Some(Some(job)) = next {
            health.dequeued();
            batch.push(job);
        }
        while batch.len() < MAX_BATCH
            && let Ok(job) = rx.try_recv()
        {
            health.dequeued();
            batch.push(job);
        }
        let durable = batch
            .iter()
            .any(|j| matches!(j, Job::Durable { .. } | Job::Flush { .. }));
        let lazy_over = lazy_due.is_some_and(|due| Instant::now() >= due);
        if (durable || lazy_over || closed) && !batch.is_empty() {
            let jobs = std::mem::take(&mut batch);
            let (conn, health) = (conn.clone(), health.clone());
            let committed = tokio::task::spawn_blocking(move || {
                let conn = conn.lock().unwrap_or_else(|p| p.into_inner());
                commit(&conn, jobs, &health)
            })
            .await;
            match committed {
                // Nobody follows a transaction live most of the time: no allocation then.
                Ok(touched) if !touched.is_empty() && changes.receiver_count() > 0 => {
                    let _ = changes.send(Arc::new(touched));
                }
                Ok(_) => {}
                Err(e) => tracing::error!(error = %e, "journal commit task failed"),
            }
            lazy_due = None;
        } else if lazy_due.is_none() && !batch.is_empty() {
            lazy_due = Some(Instant::now() + LAZY_FLUSH);
        }
        if closed {
            return;
        }
    }
}

/// Runs `batch` in one transaction and tells each durable job how it went; returns
/// the transactions written to, when the commit went through.
fn commit(conn: &Connection, batch: Vec<Job>, health: &Health) -> Vec<String> {
    let mut flushes = Vec::new();
    let mut jobs = Vec::with_capacity(batch.len());
    let mut touched = Vec::new();
    for job in batch {
        match job {
            Job::Durable { op, reply, txn } => {
                touched.extend(txn);
                jobs.push((op, Some(reply)));
            }
            Job::Lazy { op, txn } => {
                touched.extend(txn);
                jobs.push((op, None));
            }
            Job::Flush { reply } => flushes.push(reply),
        }
    }
    let committed = !jobs.is_empty() && write(conn, jobs, health);
    for reply in flushes {
        let _ = reply.send(());
    }
    if committed { touched } else { Vec::new() }
}

type Reply = Option<oneshot::Sender<Result<Value, JournalError>>>;

/// True when the commit went through.
fn write(conn: &Connection, jobs: Vec<(Op, Reply)>, health: &Health) -> bool {
    let mut outcomes = Vec::with_capacity(jobs.len());
    let started = std::time::Instant::now();
    let begun = conn.execute_batch("BEGIN IMMEDIATE");
    for (op, reply) in jobs {
        let outcome = match &begun {
            Ok(()) => in_savepoint(conn, op),
            Err(e) => Err(JournalError::Write(e.to_string())),
        };
        outcomes.push((reply, outcome));
    }
    let committed = begun
        .and_then(|()| conn.execute_batch("COMMIT"))
        .map_err(|e| {
            let _ = conn.execute_batch("ROLLBACK");
            e.to_string()
        });
    if committed.is_ok() {
        health.commit_latency.0.observe(started.elapsed());
    }
    health.committed(committed.clone().map(|()| outcomes.len()));
    for (reply, outcome) in outcomes {
        let Some(reply) = reply else { continue };
        let outcome = match &committed {
            Ok(()) => outcome,
            Err(e) => Err(JournalError::Write(e.clone())),
        };
        let _ = reply.send(outcome);
    }
    committed.is_ok()
}

fn in_savepoint(conn: &Connection, op: Op) -> Result<Value, JournalError> {
    conn.execute_batch("SAVEPOINT job")?;
    let outcome = op(conn);
    let closed = match &outcome {
        Ok(_) => conn.execute_batch("RELEASE job"),
        Err(_) => conn.execute_batch("ROLLBACK TO job; RELEASE job"),
    };
    match (outcome, closed) {
        (Ok(v), Ok(())) => Ok(v),
        (Err(e), _) => Err(e),
        (Ok(_), Err(e)) => Err(e.into()),
    }
}
