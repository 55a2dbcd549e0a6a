//! What the API layer itself measures for `/metrics` beyond plain counters: answers by
//! route, method and status, and how long the POS waited for a payment.

use std::time::Duration;

use crate::constants::PAYMENT_SECONDS_BUCKETS;
use crate::histogram::{Histogram, LabelledCounter};
use crate::terminal::wire::TxnKind;

#[derive(Debug)]
pub struct Observed {
    /// By route template (or `unmatched`), method and status code.
    pub http: LabelledCounter,
    /// Per kind (sale, refund, void): request received → answer, for calls that
    /// started a transaction.
    pub payment_seconds: [Histogram; 3],
}

impl Default for Observed {
    fn default() -> Self {
        Observed {
            http: LabelledCounter::default(),
            payment_seconds: std::array::from_fn(|_| Histogram::new(&PAYMENT_SECONDS_BUCKETS)),
        }
    }
}

pub const KINDS: [TxnKind; 3] = [TxnKind::Sale, TxnKind::Refund, TxnKind::Void];

impl Observed {
    pub fn payment(&self, kind: TxnKind, waited: Duration) {
        if let Some(i) = KINDS.iter().position(|k| *k == kind) {
            self.payment_seconds[i].observe(waited);
        }
    }
}

/// A method as a label: the few HTTP knows, else `other` (a client cannot grow the
/// series without bound).
pub fn method_label(method: &hyper::Method) -> &'static str {
    match method.as_str() {
        "GET" => "GET",
        "POST" => "POST",
        "PUT" => "PUT",
        "DELETE" => "DELETE",
        "PATCH" => "PATCH",
        "HEAD" => "HEAD",
        "OPTIONS" => "OPTIONS",
        _ => "other",
    }
}
