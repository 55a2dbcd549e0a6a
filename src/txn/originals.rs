//! Refunds and voids checked against the original the journal holds: the terminal is
//! not trusted to refuse a refund beyond the sale or a second void. An original the
//! journal does not know is forwarded and the terminal decides.

use crate::journal::Stored;
use crate::terminal::wire::{PaymentRequest, TxnKind, TxnResult, TxnStatus};

/// A refund or void cannot undo itself. A rule about the original (422), not a malformed
/// request: both ids are well-formed, which is all the request schema can say.
pub fn not_itself(req: &PaymentRequest) -> Result<(), String> {
    match &req.original_transaction_id {
        Some(original) if *original == req.transaction_id => Err(format!(
            "originalTransactionId {original} is this transaction's own id: name the sale to undo"
        )),
        _ => Ok(()),
    }
}

/// Whether `req` (a refund or void of `original`) may run, given the refunds and
/// voids already journaled against the same original (`undoing`). The error names
/// the rule that was broken.
pub fn check(
    kind: TxnKind,
    req: &PaymentRequest,
    original: &Stored,
    undoing: &[TxnResult],
) -> Result<(), String> {
    let o = &original.result;
    let id = &o.transaction_id;
    if o.currency_code != req.currency_code {
        return Err(format!(
            "currencyCode {} differs from the original {id}'s {}",
            req.currency_code, o.currency_code
        ));
    }
    if original.kind != TxnKind::Sale || o.status != TxnStatus::Approved {
        return Err(format!(
            "the original {id} is a {} that is {}, not an approved sale",
            original.kind.as_str(),
            o.status.as_str()
        ));
    }
    // A refund or void still in flight or unknown may yet be approved: it counts.
    let counts = |r: &&TxnResult| {
        r.transaction_id != req.transaction_id
            && (r.status == TxnStatus::Approved || !r.status.is_final())
    };
    if let Some(void) = undoing
        .iter()
        .filter(counts)
        .find(|r| r.kind == TxnKind::Void)
    {
        return Err(format!(
            "the original {id} is already voided (or being voided) by {}",
            void.transaction_id
        ));
    }
    let refunded: u64 = undoing
        .iter()
        .filter(counts)
        .filter(|r| r.kind == TxnKind::Refund)
        .map(|r| r.amount)
        .sum();
    match kind {
        TxnKind::Void if refunded > 0 => Err(format!(
            "the original {id} is already refunded in part ({refunded}, approved or open): \
             refund the rest instead of voiding it"
        )),
        TxnKind::Void if req.amount != o.amount => Err(format!(
            "a void must carry the original {id}'s amount {}, not {}",
            o.amount, req.amount
        )),
        TxnKind::Refund => {
            if refunded.saturating_add(req.amount) > o.amount {
                Err(format!(
                    "refunds of the original {id} would total {} (already {refunded}, approved \
                     or open), more than its amount {}",
                    refunded.saturating_add(req.amount),
                    o.amount
                ))
            } else {
                Ok(())
            }
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::terminal::wire::now_rfc3339;

    fn request(kind: TxnKind, id: &str, amount: u64, currency: &str) -> PaymentRequest {
        let mut v = serde_json::json!({
            "deviceId": "D1", "transactionId": id, "paymentApp": "comercia",
            "amount": amount, "currencyCode": currency
        });
        if kind.needs_original() {
            v["originalTransactionId"] = "S1".into();
        }
        serde_json::from_value(v).unwrap()
    }

    fn result(kind: TxnKind, id: &str, amount: u64, status: TxnStatus) -> TxnResult {
        let mut r = TxnResult::pending(&request(kind, id, amount, "EUR"), kind, now_rfc3339());
        r.status = status;
        r
    }

    fn sale(status: TxnStatus) -> Stored {
        let request = request(TxnKind::Sale, "S1", 1000, "EUR");
        Stored {
            kind: TxnKind::Sale,
            fingerprint: request.fingerprint(TxnKind::Sale),
            result: result(TxnKind::Sale, "S1", 1000, status),
            request,
        }
    }

    fn refund(amount: u64) -> PaymentRequest {
        request(TxnKind::Refund, "R9", amount, "EUR")
    }

    #[test]
    fn refunds_may_not_exceed_the_sale() {
        let approved = sale(TxnStatus::Approved);
        assert!(check(TxnKind::Refund, &refund(1000), &approved, &[]).is_ok());
        let err = check(TxnKind::Refund, &refund(1001), &approved, &[]).unwrap_err();
        assert!(err.contains("more than its amount 1000"), "{err}");
        let earlier = [
            result(TxnKind::Refund, "R1", 400, TxnStatus::Approved),
            result(TxnKind::Refund, "R2", 300, TxnStatus::Unknown),
            result(TxnKind::Refund, "R3", 900, TxnStatus::Declined),
        ];
        assert!(check(TxnKind::Refund, &refund(300), &approved, &earlier).is_ok());
        let err = check(TxnKind::Refund, &refund(301), &approved, &earlier).unwrap_err();
        assert!(err.contains("already 700"), "{err}");
    }

    #[test]
    fn the_original_must_be_an_approved_sale_in_the_same_currency() {
        for status in [TxnStatus::Declined, TxnStatus::Unknown, TxnStatus::Failed] {
            let err = check(TxnKind::Refund, &refund(100), &sale(status), &[]).unwrap_err();
            assert!(err.contains("not an approved sale"), "{err}");
        }
        let usd = request(TxnKind::Refund, "R9", 100, "USD");
        let err = check(TxnKind::Refund, &usd, &sale(TxnStatus::Approved), &[]).unwrap_err();
        assert!(err.contains("currencyCode USD"), "{err}");
    }

    #[test]
    fn a_void_takes_the_whole_amount_once() {
        let approved = sale(TxnStatus::Approved);
        let void = |amount| request(TxnKind::Void, "V9", amount, "EUR");
        assert!(check(TxnKind::Void, &void(1000), &approved, &[]).is_ok());
        let err = check(TxnKind::Void, &void(999), &approved, &[]).unwrap_err();
        assert!(err.contains("must carry"), "{err}");
        let voided = [result(TxnKind::Void, "V1", 1000, TxnStatus::Approved)];
        let err = check(TxnKind::Void, &void(1000), &approved, &voided).unwrap_err();
        assert!(err.contains("already voided"), "{err}");
        // A voided sale cannot be refunded either; a declined void does not count.
        assert!(check(TxnKind::Refund, &refund(1), &approved, &voided).is_err());
        let declined = [result(TxnKind::Void, "V1", 1000, TxnStatus::Declined)];
        assert!(check(TxnKind::Void, &void(1000), &approved, &declined).is_ok());
        let refunded = [result(TxnKind::Refund, "R1", 1, TxnStatus::Approved)];
        let err = check(TxnKind::Void, &void(1000), &approved, &refunded).unwrap_err();
        assert!(err.contains("refunded in part"), "{err}");
    }
}
