//! The journal's health as `/healthz` and `/metrics` read it: commits, write errors, the
//! last error, the writer's queue and the commit latency histogram.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

/// The journal's own view of whether it can be written, for `/healthz` and `/metrics`.
#[derive(Debug, Default)]
pub struct Health {
    write_errors: AtomicU64,
    commits: AtomicU64,
    /// Jobs queued and not yet taken up by a commit.
    queued: AtomicU64,
    /// The error of the last failed write, cleared by the next good one.
    last_error: Mutex<Option<String>>,
    /// Seconds from BEGIN to the end of COMMIT (its fsync included), per commit.
    pub commit_latency: CommitLatency,
}

/// [`Health::commit_latency`], with the buckets of `constants::JOURNAL_COMMIT_BUCKETS`.
#[derive(Debug)]
pub struct CommitLatency(pub crate::histogram::Histogram);

impl Default for CommitLatency {
    fn default() -> Self {
        CommitLatency(crate::histogram::Histogram::new(
            &crate::constants::JOURNAL_COMMIT_BUCKETS,
        ))
    }
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

    /// Writes queued and not yet taken up by a commit.
    pub fn queued(&self) -> u64 {
        self.queued.load(Ordering::Relaxed)
    }

    pub(super) fn queued_more(&self, n: u64) {
        self.queued.fetch_add(n, Ordering::Relaxed);
    }

    pub(super) fn dequeued(&self, n: usize) {
        self.queued.fetch_sub(n as u64, Ordering::Relaxed);
    }

    /// SQLite commits (each one fsync) since the journal was opened.
    pub fn commits(&self) -> u64 {
        self.commits.load(Ordering::Relaxed)
    }

    /// The writer's report of one commit (of this many jobs) or its failure.
    pub(crate) fn committed(&self, outcome: Result<usize, String>) {
        let mut last = self.last_error.lock().unwrap_or_else(|p| p.into_inner());
        match outcome {
            Ok(_) => {
                self.commits.fetch_add(1, Ordering::Relaxed);
                *last = None;
            }
            Err(e) => {
                self.write_errors.fetch_add(1, Ordering::Relaxed);
                *last = Some(e);
            }
        }
    }
}
