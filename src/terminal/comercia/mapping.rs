//! The one table between ecrlink and the payment app's own REST API ("comercia-pos"):
//! result codes ↔ statuses, integer cents ↔ decimal euros, the ticket ↔ the result's
//! card fields. Field details are the best public knowledge of that API; correct them
//! here and nowhere else. README's "comercia-pos" section shows the same table.

use serde::Deserialize;
use serde_json::{Map, Value};

use crate::terminal::wire::{PaymentRequest, TxnKind, TxnResult, TxnStatus, mask_pan, now_rfc3339};

/// The profile's name in config, results and error messages.
pub const PROFILE: &str = "comercia-pos";

/// The only currency whose amounts this API takes: decimal euros with two decimals.
pub const CURRENCY: &str = "EUR";

/// What a `resultCode` means, before it is turned into a result.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Code {
    /// `0`: approved; the ticket carries the details.
    Approved,
    /// `1001`: an operation is in progress (ours, or another order's on a payment call).
    InProgress,
    /// `602`: the terminal knows no such order.
    NotFound,
    /// `913`: the host already has this `orderId`: it exists, never charge again.
    Duplicate,
    /// `1010`: `X-SOURCE` missing or wrong: refused before anything ran.
    SourceRejected,
    /// A final verdict.
    Final(TxnStatus),
}

/// The table. Declines are the issuer's and the acquirer's (100–202, 9xxx); `16`/`9915`
/// are cancellations at the terminal; `17`/`10000` a timeout at the terminal (no card,
/// no host answer: not approved, nothing charged); any other code is a final
/// non-approval of the payment app and reads `failed`.
pub fn code(result_code: i64) -> Code {
    match result_code {
        0 => Code::Approved,
        1001 => Code::InProgress,
        602 => Code::NotFound,
        913 => Code::Duplicate,
        1010 => Code::SourceRejected,
        16 | 9915 => Code::Final(TxnStatus::Cancelled),
        17 | 10000 => Code::Final(TxnStatus::Failed),
        100..=202 | 9000..=9999 => Code::Final(TxnStatus::Declined),
        _ => Code::Final(TxnStatus::Failed),
    }
}

/// `resultCode` arrives as a number or as a string of digits.
pub fn read_code(value: &Value) -> Option<i64> {
    match value {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// Integer cents as two-decimal euros: `1050` → `"10.50"`. Exact: no float involved.
pub fn euros(cents: u64) -> String {
    format!("{}.{:02}", cents / 100, cents % 100)
}

/// Decimal euros back to cents, exactly: `"10.50"`, `"10.5"`, `"10"` or the JSON number
/// `10.5` (read through its decimal text, never multiplied as a float). More than two
/// decimals, signs, exponents or anything else: `None`.
pub fn cents(value: &Value) -> Option<u64> {
    let text = match value {
        Value::String(s) => s.trim().to_string(),
        Value::Number(n) => n.to_string(),
        _ => return None,
    };
    let (whole, frac) = match text.split_once('.') {
        Some((_, "")) => return None,
        Some(parts) => parts,
        None => (text.as_str(), ""),
    };
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(whole) || (!frac.is_empty() && !digits(frac)) || frac.len() > 2 {
        return None;
    }
    let frac = format!("{frac:0<2}");
    let whole: u64 = whole.parse().ok()?;
    whole.checked_mul(100)?.checked_add(frac.parse().ok()?)
}

/// Why this profile cannot carry the request, before anything is journaled or sent.
pub fn refusal(kind: TxnKind, req: &PaymentRequest) -> Option<Refusal> {
    if kind == TxnKind::Void {
        return Some(Refusal::Unsupported(format!(
            "the {PROFILE} terminal {} offers no void: refund the sale instead",
            req.device_id
        )));
    }
    if req.currency_code != CURRENCY {
        return Some(Refusal::Currency(format!(
            "currencyCode {:?}: the {PROFILE} terminal {} takes only {CURRENCY} (amounts in \
             two-decimal euros)",
            req.currency_code, req.device_id
        )));
    }
    None
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// 422 `unsupported_by_terminal`.
    Unsupported(String),
    /// 400 `invalid_request`.
    Currency(String),
}

/// An answer of `payment`, `refund`, `status` or `last`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Answer {
    #[serde(default)]
    pub order_id: Option<String>,
    #[serde(default)]
    pub result_code: Value,
    #[serde(default)]
    pub result_message: Option<String>,
    #[serde(default)]
    pub ticket: Option<Map<String, Value>>,
}

impl Answer {
    /// The code's meaning; an answer without a readable code is `None`.
    pub fn meaning(&self) -> Option<Code> {
        read_code(&self.result_code).map(code)
    }

    pub fn message(&self) -> String {
        self.result_message.clone().unwrap_or_default()
    }
}

/// A final answer about `req` as ecrlink's result. The `orderId` answered and the
/// ticket's `Amount` are what the supervisor cross-checks against the request, so a
/// ticket of another order is never adopted. The receipt keeps the whole ticket, its
/// card number masked.
pub fn result(
    kind: TxnKind,
    req: &PaymentRequest,
    answer: &Answer,
    status: TxnStatus,
) -> TxnResult {
    let mut r = TxnResult::pending(req, kind, now_rfc3339());
    // An answer naming another order is a mismatch; one naming none is about the order
    // asked for (the ticket's amount is still checked).
    r.transaction_id = answer
        .order_id
        .clone()
        .unwrap_or_else(|| req.transaction_id.clone());
    r.status = status;
    r.result_code =
        Some(read_code(&answer.result_code).map_or_else(String::new, |c| c.to_string()));
    r.result_message = answer.result_message.clone();
    r.finished_at = Some(now_rfc3339());
    if let Some(ticket) = &answer.ticket {
        let text = |key: &str| ticket.get(key).and_then(Value::as_str).map(str::to_string);
        r.authorization_code = text("Authorization").filter(|a| !a.is_empty());
        r.card_brand = text("CardType").filter(|a| !a.is_empty());
        r.masked_pan = text("CardNumber").map(|p| masked(&p));
        if let Some(amount) = ticket.get("Amount") {
            // An unreadable amount never matches the request: the cross-check refuses it.
            r.amount = cents(amount).unwrap_or(u64::MAX);
        }
        r.receipt = Some(Value::Object(receipt(ticket)));
    }
    r
}

/// The ticket as it may be kept: its card number masked to first 6 / last 4.
pub fn receipt(ticket: &Map<String, Value>) -> Map<String, Value> {
    let mut kept = ticket.clone();
    if let Some(Value::String(pan)) = kept.get_mut("CardNumber") {
        *pan = masked(pan);
    }
    kept
}

/// Masks every `CardNumber` anywhere in `value` (the session report passed through to
/// the POS): no more than first 6 / last 4 digits leave the gateway, whatever the
/// terminal wrote.
pub fn mask_card_numbers(value: &mut Value) {
    match value {
        Value::Object(map) => {
            for (key, v) in map.iter_mut() {
                match v {
                    Value::String(pan) if key == "CardNumber" => *pan = masked(pan),
                    other => mask_card_numbers(other),
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(mask_card_numbers),
        _ => {}
    }
}

/// `pan` when it shows no more than the first six and last four digits, else masked
/// to that: a terminal that sends a full number never gets it into a log or journal.
pub fn masked(pan: &str) -> String {
    if is_masked(pan) {
        pan.to_string()
    } else {
        mask_pan(pan)
    }
}

/// True when the visible digits are at most six at the start and four at the end,
/// with masking in between.
pub fn is_masked(pan: &str) -> bool {
    let chars: Vec<char> = pan.chars().collect();
    let head = chars.iter().take_while(|c| c.is_ascii_digit()).count();
    let tail = chars
        .iter()
        .rev()
        .take_while(|c| c.is_ascii_digit())
        .count();
    let digits = chars.iter().filter(|c| c.is_ascii_digit()).count();
    head <= 6 && tail <= 4 && digits == head + tail && head + tail < chars.len()
}

/// The terminal-side id of a transaction, from its receipt (what a refund names).
pub fn terminal_id(receipt: &Value) -> Option<String> {
    match receipt.get("Id")? {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

#[cfg(test)]
#[path = "mapping_tests.rs"]
mod tests;
