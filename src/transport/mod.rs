//! The links a transaction can travel over. `direct` (HTTPS to the terminal's IP) is
//! primary; a push fallback plugs in beside it through the same trait.

pub mod direct;
pub mod mqtt;

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use crate::terminal::wire::{CancelAnswer, Current, PaymentRequest, TxnKind, TxnResult};
use crate::terminal::{Lookup, TerminalError};

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// One way of reaching a terminal. Every operation is idempotent on the terminal's
/// side (keyed by `transactionId`), which is what makes retries and switches safe.
pub trait Transport: Send + Sync {
    /// A short name shown in results and `/v1/terminals` (`direct`, `mqtt`).
    fn name(&self) -> &'static str;

    /// Starts a payment and waits up to `wait` for its final answer.
    fn start<'a>(
        &'a self,
        kind: TxnKind,
        request: &'a PaymentRequest,
        wait: Duration,
    ) -> BoxFuture<'a, Result<TxnResult, TerminalError>>;

    /// Is a payment in progress, and which?
    fn current(&self) -> BoxFuture<'_, Result<Current, TerminalError>>;

    /// The terminal's own record of one transaction.
    fn lookup<'a>(
        &'a self,
        transaction_id: &'a str,
    ) -> BoxFuture<'a, Result<Lookup, TerminalError>>;

    /// Asks the terminal to abort a payment before authorisation.
    fn cancel<'a>(
        &'a self,
        transaction_id: &'a str,
    ) -> BoxFuture<'a, Result<CancelAnswer, TerminalError>>;

    /// Prepares the link for a start call that may follow soon (a verified connection
    /// opened ahead); sends nothing. Errors are left to the call itself.
    fn warm(&self) -> BoxFuture<'_, ()> {
        Box::pin(async {})
    }

    /// Would a start be delivered now? The router moves new work only to a usable link.
    fn usable(&self) -> bool {
        true
    }

    /// What `/v1/terminals` shows about this link beyond its name (broker, presence).
    fn describe(&self) -> Option<serde_json::Value> {
        None
    }
}
