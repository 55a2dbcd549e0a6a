//! Wire types of the terminal protocol. The gateway's integrator API uses the same
//! shapes, so a POS written against the terminal works against ecrlink unchanged.

use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

/// What the POS asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TxnKind {
    Sale,
    Refund,
    Void,
}

impl TxnKind {
    pub fn as_str(self) -> &'static str {
        match self {
            TxnKind::Sale => "sale",
            TxnKind::Refund => "refund",
            TxnKind::Void => "void",
        }
    }

    pub fn parse(s: &str) -> Option<TxnKind> {
        match s {
            "sale" => Some(TxnKind::Sale),
            "refund" => Some(TxnKind::Refund),
            "void" => Some(TxnKind::Void),
            _ => None,
        }
    }

    /// Refunds and voids name the sale they undo.
    pub fn needs_original(self) -> bool {
        !matches!(self, TxnKind::Sale)
    }
}

/// Where a transaction stands. `Unknown` is a real state: no final answer yet, and
/// nobody may guess one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TxnStatus {
    Approved,
    Declined,
    Cancelled,
    Failed,
    InProgress,
    Unknown,
}

impl TxnStatus {
    pub const ALL: [TxnStatus; 6] = [
        TxnStatus::Approved,
        TxnStatus::Declined,
        TxnStatus::Cancelled,
        TxnStatus::Failed,
        TxnStatus::InProgress,
        TxnStatus::Unknown,
    ];

    pub fn is_final(self) -> bool {
        matches!(
            self,
            TxnStatus::Approved | TxnStatus::Declined | TxnStatus::Cancelled | TxnStatus::Failed
        )
    }

    pub fn as_str(self) -> &'static str {
        match self {
            TxnStatus::Approved => "approved",
            TxnStatus::Declined => "declined",
            TxnStatus::Cancelled => "cancelled",
            TxnStatus::Failed => "failed",
            TxnStatus::InProgress => "in_progress",
            TxnStatus::Unknown => "unknown",
        }
    }

    pub fn parse(s: &str) -> Option<TxnStatus> {
        TxnStatus::ALL.into_iter().find(|st| st.as_str() == s)
    }
}

/// The POS's request body, as the vendor connector defines it. `otherData` is passed
/// through untouched; it is never logged.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PaymentRequest {
    pub device_id: String,
    pub transaction_id: String,
    pub payment_app: String,
    pub amount: u64,
    pub currency_code: String,
    #[serde(default, skip_serializing_if = "serde_json::Value::is_null")]
    pub other_data: serde_json::Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub original_transaction_id: Option<String>,
}

impl PaymentRequest {
    /// A digest of everything that defines the payment, kind included: two requests
    /// with the same id are "the same request" exactly when their fingerprints match.
    pub fn fingerprint(&self, kind: TxnKind) -> String {
        // serde_json keeps struct field order and sorts object keys (no
        // preserve_order feature), so this serialisation is canonical.
        let canonical = serde_json::to_vec(&(kind, self)).unwrap_or_default();
        let digest = ring::digest::digest(&ring::digest::SHA256, &canonical);
        let mut hex = String::with_capacity(64);
        for b in digest.as_ref() {
            // Writing to a String cannot fail.
            let _ = write!(hex, "{b:02x}");
        }
        hex
    }
}

/// The result object, the same on the terminal and the gateway.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TxnResult {
    pub transaction_id: String,
    /// Empty when the terminal's answer names no device.
    #[serde(default)]
    pub device_id: String,
    #[serde(rename = "type")]
    pub kind: TxnKind,
    pub status: TxnStatus,
    pub amount: u64,
    pub currency_code: String,
    #[serde(default)]
    pub authorization_code: Option<String>,
    #[serde(default)]
    pub masked_pan: Option<String>,
    #[serde(default)]
    pub card_brand: Option<String>,
    #[serde(default)]
    pub result_code: Option<String>,
    #[serde(default)]
    pub result_message: Option<String>,
    pub started_at: String,
    #[serde(default)]
    pub finished_at: Option<String>,
    /// Which link carried the transaction (`direct`, later `mqtt`); set by the gateway.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transport: Option<String>,
    /// The terminal's own ticket, card number masked (the `comercia-pos` profile).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub receipt: Option<serde_json::Value>,
}

impl TxnResult {
    /// A result with no outcome yet, for a request that has just arrived.
    pub fn pending(req: &PaymentRequest, kind: TxnKind, started_at: String) -> TxnResult {
        TxnResult {
            transaction_id: req.transaction_id.clone(),
            device_id: req.device_id.clone(),
            kind,
            status: TxnStatus::InProgress,
            amount: req.amount,
            currency_code: req.currency_code.clone(),
            authorization_code: None,
            masked_pan: None,
            card_brand: None,
            result_code: None,
            result_message: None,
            started_at,
            finished_at: None,
            transport: None,
            receipt: None,
        }
    }
}

/// `GET /v1/transactions/current`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum Current {
    #[serde(rename_all = "camelCase")]
    InProgress {
        transaction_id: String,
        #[serde(default)]
        stage: Option<String>,
    },
    Idle,
}

/// `POST /v1/transactions/{id}/cancel`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CancelAnswer {
    pub transaction_id: String,
    pub cancelled: bool,
    pub message: String,
}

/// `GET /v1/getVersion`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Version {
    pub version: String,
}

/// `{ "error": { "code", "message" } }`, the error body of both the terminal and the gateway.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ErrorDetail {
    pub code: String,
    pub message: String,
    /// The transaction the error concerns, when one was recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transaction: Option<Box<TxnResult>>,
}

/// Masks a card number to the first six and last four digits, the most that may leave
/// the terminal boundary.
pub fn mask_pan(pan: &str) -> String {
    let digits: Vec<char> = pan.chars().filter(char::is_ascii_digit).collect();
    if digits.len() < 13 {
        return "*".repeat(digits.len());
    }
    let head: String = digits[..6].iter().collect();
    let tail: String = digits[digits.len() - 4..].iter().collect();
    format!("{head}{}{tail}", "*".repeat(digits.len() - 10))
}

/// Now, as RFC 3339 UTC with exactly three fraction digits: fixed width, so the
/// journal's text order of timestamps (`created_at`, prune cutoffs) is their time order.
pub fn now_rfc3339() -> String {
    rfc3339_millis(time::OffsetDateTime::now_utc())
}

fn rfc3339_millis(at: time::OffsetDateTime) -> String {
    let format = time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
    );
    at.to_offset(time::UtcOffset::UTC)
        .format(&format)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_fixed_width_so_text_order_is_time_order() {
        let base = time::macros::datetime!(2026-12-03 01:59:58 UTC);
        let at = |ms: i64| rfc3339_millis(base + time::Duration::milliseconds(ms));
        assert_eq!(at(0), "2026-12-03T01:59:58.000Z");
        assert_eq!(at(100), "2026-12-03T01:59:58.100Z");
        assert_eq!(at(150), "2026-12-03T01:59:58.150Z");
        // Trimmed digits (".1Z", ".15Z") sorted 58.1 after 58.15; these never do.
        let texts: Vec<String> = [0, 100, 150, 999, 1000].into_iter().map(at).collect();
        assert!(texts.windows(2).all(|w| w[0] < w[1]), "{texts:?}");
        let parsed = time::OffsetDateTime::parse(
            &now_rfc3339(),
            &time::format_description::well_known::Rfc3339,
        );
        assert!(parsed.is_ok(), "{parsed:?}");
    }

    fn req() -> PaymentRequest {
        PaymentRequest {
            device_id: "D1".into(),
            transaction_id: "T1".into(),
            payment_app: "comercia".into(),
            amount: 1000,
            currency_code: "EUR".into(),
            other_data: serde_json::json!({"printReceipt": 0, "b": 1}),
            original_transaction_id: None,
        }
    }

    #[test]
    fn fingerprint_depends_on_body_and_kind_only() {
        let a = req();
        let mut b = req();
        b.other_data = serde_json::json!({"b": 1, "printReceipt": 0});
        assert_eq!(a.fingerprint(TxnKind::Sale), b.fingerprint(TxnKind::Sale));
        assert_ne!(a.fingerprint(TxnKind::Sale), a.fingerprint(TxnKind::Refund));
        b.amount = 1001;
        assert_ne!(a.fingerprint(TxnKind::Sale), b.fingerprint(TxnKind::Sale));
    }

    #[test]
    fn current_serialises_as_the_protocol_says() {
        let busy = Current::InProgress {
            transaction_id: "T1".into(),
            stage: Some("card".into()),
        };
        assert_eq!(
            serde_json::to_value(&busy).unwrap(),
            serde_json::json!({"status":"in_progress","transactionId":"T1","stage":"card"})
        );
        assert_eq!(
            serde_json::to_value(Current::Idle).unwrap(),
            serde_json::json!({"status":"idle"})
        );
    }

    #[test]
    fn statuses_round_trip_and_finality() {
        for st in TxnStatus::ALL {
            assert_eq!(TxnStatus::parse(st.as_str()), Some(st));
        }
        assert!(!TxnStatus::Unknown.is_final());
        assert!(!TxnStatus::InProgress.is_final());
        assert!(TxnStatus::Cancelled.is_final());
    }

    #[test]
    fn pan_masking_keeps_at_most_six_and_four() {
        assert_eq!(mask_pan("4761 7390 0101 0010"), "476173******0010");
        assert_eq!(mask_pan("1234"), "****");
    }
}
