//! Group commit, with the committer chosen on the spot: a write is queued, and when no
//! commit is running the write that found the queue idle starts one on the blocking pool.
//! That commit runs every job waiting at that moment in one SQLite transaction (each in its
//! own savepoint, so one failing job fails alone), commits once — one fsync for many
//! transactions' writes when lanes sell at once — and, before it ends, takes the jobs queued
//! while it ran. A durable job's caller hears back only after the commit, straight from the
//! blocking thread (no writer task in between: two thread hand-offs per commit, not four).
//! A lazy job (a journal event nothing waits on) rides along with the next commit, or is
//! committed [`LAZY_FLUSH`] after it was queued at the latest.

use std::any::Any;
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use rusqlite::Connection;
use tokio::sync::{broadcast, oneshot};

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

impl Job {
    /// Someone waits for it: it starts a commit.
    fn urgent(&self) -> bool {
        !matches!(self, Job::Lazy { .. })
    }
}

/// The journal's write side: the connection, the queue, and who commits next.
pub(super) struct Writer {
    conn: Arc<Mutex<Connection>>,
    health: Arc<Health>,
    changes: broadcast::Sender<Changed>,
    queue: Mutex<Queue>,
}

#[derive(Default)]
struct Queue {
    jobs: Vec<Job>,
    /// A commit is running; it takes what is queued when it ends.
    committing: bool,
    /// A lazy job waits, and a timer will start a commit for it.
    timer_armed: bool,
}

impl Writer {
    pub(super) fn new(
        conn: Arc<Mutex<Connection>>,
        health: Arc<Health>,
        changes: broadcast::Sender<Changed>,
    ) -> Arc<Writer> {
        let queue = Mutex::default();
        Arc::new(Writer {
            conn,
            health,
            changes,
            queue,
        })
    }

    fn queue(&self) -> MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Queues `job`; starts a commit when it is urgent and none is running, or arms the
    /// lazy timer. Call on a runtime (the commit runs on its blocking pool).
    pub(super) fn submit(self: &Arc<Self>, job: Job) {
        let urgent = job.urgent();
        let mut queue = self.queue();
        queue.jobs.push(job);
        self.health.queued_more(1);
        if queue.committing {
            return;
        }
        if urgent {
            self.start_commit(queue);
        } else {
            self.arm_timer(&mut queue);
        }
    }

    /// Marks a commit running (the caller found none) and starts it.
    fn start_commit(self: &Arc<Self>, mut queue: MutexGuard<'_, Queue>) {
        queue.committing = true;
        drop(queue);
        let this = self.clone();
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => drop(runtime.spawn_blocking(move || this.drain())),
            // Outside a runtime (a program's last drop): commit right here.
            Err(_) => this.drain(),
        }
    }

    fn arm_timer(self: &Arc<Self>, queue: &mut Queue) {
        if queue.timer_armed || queue.jobs.is_empty() {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return; // Drop commits what is left
        };
        queue.timer_armed = true;
        let writer: Weak<Writer> = Arc::downgrade(self);
        runtime.spawn(async move {
            tokio::time::sleep(LAZY_FLUSH).await;
            let Some(writer) = writer.upgrade() else {
                return;
            };
            let mut queue = writer.queue();
            queue.timer_armed = false;
            if !queue.committing && !queue.jobs.is_empty() {
                writer.start_commit(queue);
            }
        });
    }

    /// Commits batch after batch until no urgent job is left (blocking).
    fn drain(self: &Arc<Self>) {
        let mut queue = self.queue();
        loop {
            let n = queue.jobs.len().min(MAX_BATCH);
            let batch: Vec<Job> = queue.jobs.drain(..n).collect();
            drop(queue);
            self.health.dequeued(n);
            let touched = {
                let conn = self.conn.lock().unwrap_or_else(|p| p.into_inner());
                commit(&conn, batch, &self.health)
            };
            // Nobody follows a transaction live most of the time: no allocation then.
            if !touched.is_empty() && self.changes.receiver_count() > 0 {
                let _ = self.changes.send(Arc::new(touched));
            }
            queue = self.queue();
            if !queue.jobs.iter().any(Job::urgent) {
                break;
            }
        }
        queue.committing = false;
        self.arm_timer(&mut queue);
    }
}

impl Drop for Writer {
    /// The last handle is gone: what is still queued (lazy events) is committed.
    fn drop(&mut self) {
        let jobs = std::mem::take(&mut self.queue().jobs);
        if !jobs.is_empty() {
            let conn = self.conn.lock().unwrap_or_else(|p| p.into_inner());
            commit(&conn, jobs, &self.health);
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
    // A job alone needs no savepoint: if it fails, its whole transaction is rolled back.
    let alone = jobs.len() == 1;
    let begun = exec(conn, "BEGIN IMMEDIATE");
    for (op, reply) in jobs {
        let outcome = match &begun {
            Ok(()) if alone => run(conn, op),
            Ok(()) => in_savepoint(conn, op),
            Err(e) => Err(JournalError::Write(e.to_string())),
        };
        outcomes.push((reply, outcome));
    }
    let end = match alone && outcomes.iter().any(|(_, o)| o.is_err()) {
        true => "ROLLBACK",
        false => "COMMIT",
    };
    let committed = begun.and_then(|()| exec(conn, end)).map_err(|e| {
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

/// Runs `op`; a panic is its error.
fn run(conn: &Connection, op: Op) -> Result<Value, JournalError> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| op(conn)))
        .unwrap_or_else(|_| Err(JournalError::Task("a journal write panicked".into())))
}

/// Runs `op` in its own savepoint: a failing (or panicking) job leaves no trace and fails
/// alone. The statements are prepared once per connection.
fn in_savepoint(conn: &Connection, op: Op) -> Result<Value, JournalError> {
    let sql = |sql| exec(conn, sql);
    sql("SAVEPOINT job")?;
    let outcome = run(conn, op);
    let closed = match &outcome {
        Ok(_) => sql("RELEASE job"),
        Err(_) => sql("ROLLBACK TO job").and_then(|_| sql("RELEASE job")),
    };
    match (outcome, closed) {
        (Ok(v), Ok(())) => Ok(v),
        (Err(e), _) => Err(e),
        (Ok(_), Err(e)) => Err(e.into()),
    }
}

/// A statement without parameters or rows, prepared once per connection.
fn exec(conn: &Connection, sql: &str) -> rusqlite::Result<()> {
    conn.prepare_cached(sql)?.execute([]).map(drop)
}
