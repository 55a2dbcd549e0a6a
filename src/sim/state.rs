//! The simulated terminal's memory: every transaction it ran, the one in progress,
//! and the state file that lets a restarted terminal still know its outcomes.

use std::collections::HashMap;
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tokio::sync::{Notify, watch};

use crate::terminal::wire::{PaymentRequest, TxnKind, TxnResult, TxnStatus, now_rfc3339};

/// One transaction as the terminal remembers it.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Record {
    pub fingerprint: String,
    pub request: PaymentRequest,
    pub result: TxnResult,
}

#[derive(Default, Serialize, Deserialize)]
struct StateFile {
    transactions: Vec<Record>,
}

/// A transaction being run: who waits for it, and how to cancel it.
pub struct Running {
    pub done: watch::Receiver<Option<TxnResult>>,
    pub cancel: Arc<Notify>,
}

#[derive(Default)]
pub struct SimState {
    records: Vec<Record>,
    index: HashMap<String, usize>,
    /// Id of the transaction in progress, if any: one at a time.
    pub current: Option<String>,
    pub stage: Option<String>,
    pub running: HashMap<String, Running>,
    /// Start requests received per transaction id (for tests: one charge, one start).
    pub starts: HashMap<String, u32>,
    /// Lookups received per transaction id.
    pub lookups: HashMap<String, u32>,
    /// Answers told about another transaction (`wrongAnswer`), per id asked about: a
    /// test sees the fault fired even when another call's true answer won the race.
    pub wrong_answers: HashMap<String, u32>,
    /// When each payment request of this run arrived (for `lateRecordMs`); records
    /// loaded from the state file have none and are visible at once.
    pub arrived: HashMap<String, Instant>,
    /// Protocol requests received (the `/sim/*` admin calls are not counted).
    pub requests: u64,
    state_file: Option<PathBuf>,
}

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("cannot read the state file {path}: {reason}")]
    Read { path: String, reason: String },
    #[error("cannot write the state file {path}: {reason}")]
    Write { path: String, reason: String },
}

impl SimState {
    /// Loads the state file if there is one. A transaction that was in progress when
    /// the terminal stopped never reached authorisation: it ends `cancelled`.
    pub fn open(state_file: Option<PathBuf>) -> Result<SimState, StateError> {
        let mut state = SimState {
            state_file,
            ..SimState::default()
        };
        let Some(path) = state.state_file.clone() else {
            return Ok(state);
        };
        let loaded: StateFile = match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| StateError::Read {
                path: path.display().to_string(),
                reason: e.to_string(),
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => StateFile::default(),
            Err(e) => {
                return Err(StateError::Read {
                    path: path.display().to_string(),
                    reason: e.to_string(),
                });
            }
        };
        let mut interrupted = false;
        for mut record in loaded.transactions {
            if !record.result.status.is_final() {
                record.result.status = TxnStatus::Cancelled;
                record.result.result_code = Some("terminal_restart".into());
                record.result.result_message = Some(
                    "interrupted by a terminal restart before authorisation; nothing charged"
                        .into(),
                );
                record.result.finished_at = Some(now_rfc3339());
                interrupted = true;
            }
            state.insert(record);
        }
        if interrupted {
            state.persist()?;
        }
        Ok(state)
    }

    pub fn get(&self, id: &str) -> Option<&Record> {
        self.index.get(id).map(|&i| &self.records[i])
    }

    pub fn records(&self) -> &[Record] {
        &self.records
    }

    /// The transaction run before `id`, if any.
    pub fn previous(&self, id: &str) -> Option<&Record> {
        let &i = self.index.get(id)?;
        i.checked_sub(1).map(|p| &self.records[p])
    }

    /// False while `id`'s record is still "being written": less than `late` since its
    /// payment request arrived.
    pub fn written(&self, id: &str, late: Duration) -> bool {
        self.arrived.get(id).is_none_or(|at| at.elapsed() >= late)
    }

    pub fn insert(&mut self, record: Record) {
        let id = record.result.transaction_id.clone();
        match self.index.get(&id) {
            Some(&i) => self.records[i] = record,
            None => {
                self.index.insert(id, self.records.len());
                self.records.push(record);
            }
        }
    }

    pub fn set_result(&mut self, result: TxnResult) {
        if let Some(&i) = self.index.get(&result.transaction_id) {
            self.records[i].result = result;
        }
    }

    /// Writes the whole state durably (temp file, fsync, rename) so a crash leaves
    /// either the old or the new file, never half of one.
    pub fn persist(&self) -> Result<(), StateError> {
        let Some(path) = &self.state_file else {
            return Ok(());
        };
        let err = |e: std::io::Error| StateError::Write {
            path: path.display().to_string(),
            reason: e.to_string(),
        };
        let body = serde_json::to_vec_pretty(&StateFile {
            transactions: self.records.clone(),
        })
        .map_err(|e| err(std::io::Error::other(e)))?;
        let tmp = path.with_extension("tmp");
        // Owner-only, like every key and the journal (issue 16).
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut file = options.open(&tmp).map_err(err)?;
        file.write_all(&body).map_err(err)?;
        file.sync_all().map_err(err)?;
        std::fs::rename(&tmp, path).map_err(err)?;
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::File::open(dir)
                .and_then(|d| d.sync_all())
                .map_err(err)?;
        }
        Ok(())
    }
}

/// What the card and the acquirer do, decided by the amount's last two digits:
/// `01` declined, `02` cancelled by the cardholder, `03` card read error, else approved.
pub fn card_outcome(kind: TxnKind, req: &PaymentRequest, mut result: TxnResult) -> TxnResult {
    let (status, code, message) = match req.amount % 100 {
        1 => (
            TxnStatus::Declined,
            "05",
            "declined by the issuer (do not honour)",
        ),
        2 => (
            TxnStatus::Cancelled,
            "cancelled",
            "cancelled by the cardholder",
        ),
        3 => (
            TxnStatus::Failed,
            "card_read_error",
            "card could not be read",
        ),
        _ => (TxnStatus::Approved, "00", "approved"),
    };
    if status != TxnStatus::Failed {
        result.masked_pan = Some(masked(CARD_PAN));
        result.card_brand = Some("VISA".into());
    }
    if status == TxnStatus::Approved {
        result.authorization_code = Some(authorization_code(kind, &req.transaction_id));
    }
    result.status = status;
    result.result_code = Some(code.into());
    result.result_message = Some(message.into());
    result.finished_at = Some(now_rfc3339());
    result
}

/// Deterministic per transaction, so a replayed answer is byte-for-byte the same.
fn authorization_code(kind: TxnKind, id: &str) -> String {
    let digest = ring::digest::digest(
        &ring::digest::SHA256,
        format!("{}:{id}", kind.as_str()).as_bytes(),
    );
    let n = u32::from_be_bytes([
        digest.as_ref()[0],
        digest.as_ref()[1],
        digest.as_ref()[2],
        0,
    ]);
    format!("{:06}", n % 1_000_000)
}

/// Why a refund or void cannot run, if it cannot.
pub fn check_original(state: &SimState, kind: TxnKind, req: &PaymentRequest) -> Option<String> {
    let original_id = req.original_transaction_id.as_deref()?;
    let Some(original) = state.get(original_id) else {
        return Some(format!(
            "original transaction {original_id} is not known to this terminal"
        ));
    };
    if original.result.kind != TxnKind::Sale || original.result.status != TxnStatus::Approved {
        return Some(format!(
            "original transaction {original_id} is not an approved sale"
        ));
    }
    if req.amount > original.result.amount {
        return Some(format!(
            "amount {} exceeds the original sale's {}",
            req.amount, original.result.amount
        ));
    }
    if kind == TxnKind::Void {
        let already = state.records().iter().any(|r| {
            r.result.kind == TxnKind::Void
                && r.result.status == TxnStatus::Approved
                && r.request.original_transaction_id.as_deref() == Some(original_id)
        });
        if already {
            return Some(format!(
                "original transaction {original_id} is already voided"
            ));
        }
    }
    None
}

/// The card number the simulator "reads" (a Visa test number). Only its masked form leaves
/// the simulator; `tests/logs.rs` scans every log line for the full one.
pub const CARD_PAN: &str = "4761730000010010";

/// First 6 and last 4 digits, the rest as `*`.
fn masked(pan: &str) -> String {
    let n = pan.len();
    format!("{}{}{}", &pan[..6], "*".repeat(n - 10), &pan[n - 4..])
}
