//! Validation of the POS's request bodies: every problem is reported, each naming
//! its field, before anything is journaled or sent.

use serde_json::{Map, Value};

use crate::terminal::wire::{PaymentRequest, TxnKind, TxnStatus};

/// The largest amount accepted, in minor units (9,999,999.99).
pub const MAX_AMOUNT: u64 = 999_999_999;

const FIELDS: [&str; 7] = [
    "deviceId",
    "transactionId",
    "paymentApp",
    "amount",
    "currencyCode",
    "otherData",
    "originalTransactionId",
];

/// Active ISO 4217 alpha-3 codes for money and funds (precious metals, bond units
/// and the test/no-currency codes are left out: nobody pays with them).
const ISO_4217: &str = "AED AFN ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BHD BIF BMD BND \
BOB BOV BRL BSD BTN BWP BYN BZD CAD CDF CHE CHF CHW CLF CLP CNY COP COU CRC CUP CVE CZK DJF DKK \
DOP DZD EGP ERN ETB EUR FJD FKP GBP GEL GHS GIP GMD GNF GTQ GYD HKD HNL HTG HUF IDR ILS INR IQD \
IRR ISK JMD JOD JPY KES KGS KHR KMF KPW KRW KWD KYD KZT LAK LBP LKR LRD LSL LYD MAD MDL MGA MKD \
MMK MNT MOP MRU MUR MVR MWK MXN MXV MYR MZN NAD NGN NIO NOK NPR NZD OMR PAB PEN PGK PHP PKR PLN \
PYG QAR RON RSD RUB RWF SAR SBD SCR SDG SEK SGD SHP SLE SOS SRD SSP STN SVC SYP SZL THB TJS TMT \
TND TOP TRY TTD TWD TZS UAH UGX USD USN UYI UYU UYW UZS VED VES VND VUV WST XAF XCD XCG XOF XPF \
YER ZAR ZMW ZWG";

pub fn is_currency(code: &str) -> bool {
    code.len() == 3 && ISO_4217.split_ascii_whitespace().any(|c| c == code)
}

/// A transaction id: 1–64 characters from `[A-Za-z0-9._-]`.
pub fn check_transaction_id(id: &str) -> Result<(), String> {
    if id.is_empty() {
        return Err("must not be empty".into());
    }
    if id.len() > 64 {
        return Err(format!("must be at most 64 characters, got {}", id.len()));
    }
    if let Some(bad) = id
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        return Err(format!("may only hold A-Z a-z 0-9 . _ -, found {bad:?}"));
    }
    Ok(())
}

/// Parses and checks a payment body for `kind`.
pub fn parse_payment(kind: TxnKind, body: &[u8]) -> Result<PaymentRequest, String> {
    let value: Value =
        serde_json::from_slice(body).map_err(|e| format!("request body is not valid JSON: {e}"))?;
    let Value::Object(obj) = value else {
        return Err("request body must be a JSON object".into());
    };
    let mut problems = Vec::new();
    for key in obj.keys() {
        if !FIELDS.contains(&key.as_str()) {
            problems.push(format!(
                "{key}: unknown field (allowed: {})",
                FIELDS.join(", ")
            ));
        }
    }
    let device_id = text(&obj, "deviceId", MAX_TEXT_CHARS, &mut problems);
    let payment_app = text(&obj, "paymentApp", MAX_TEXT_CHARS, &mut problems);
    let transaction_id = id_field(&obj, "transactionId", true, &mut problems);
    let amount = match obj.get("amount") {
        None | Some(Value::Null) => {
            problems
                .push("amount: required (a positive integer in cents, e.g. 1000 for 10.00)".into());
            None
        }
        Some(Value::Number(n)) if whole_amount(n).is_some() => whole_amount(n),
        Some(other) => {
            problems.push(format!(
                "amount: must be a positive integer number of cents from 1 to {MAX_AMOUNT} (e.g. 1000 for 10.00), got {other}"
            ));
            None
        }
    };
    let currency_code = match obj.get("currencyCode") {
        Some(Value::String(c)) if is_currency(c) => Some(c.clone()),
        Some(Value::String(c)) => {
            problems.push(format!(
                "currencyCode: {c:?} is not an ISO 4217 alpha-3 currency code (e.g. \"EUR\")"
            ));
            None
        }
        None | Some(Value::Null) => {
            problems.push("currencyCode: required (ISO 4217 alpha-3, e.g. \"EUR\")".into());
            None
        }
        Some(other) => {
            problems.push(format!(
                "currencyCode: must be a string like \"EUR\", got {other}"
            ));
            None
        }
    };
    let other_data = match obj.get("otherData") {
        None | Some(Value::Null) => Value::Null,
        Some(v @ Value::Object(_)) => v.clone(),
        Some(other) => {
            problems.push(format!(
                "otherData: must be a JSON object, got {}",
                kind_of(other)
            ));
            Value::Null
        }
    };
    let original = id_field(
        &obj,
        "originalTransactionId",
        kind.needs_original(),
        &mut problems,
    );
    if !kind.needs_original() && original.is_some() {
        problems.push(
            "originalTransactionId: only refund and void name an original transaction".into(),
        );
    }
    if !problems.is_empty() {
        return Err(problems.join("; "));
    }
    match (
        device_id,
        transaction_id,
        payment_app,
        amount,
        currency_code,
    ) {
        (
            Some(device_id),
            Some(transaction_id),
            Some(payment_app),
            Some(amount),
            Some(currency_code),
        ) => Ok(PaymentRequest {
            device_id,
            transaction_id,
            payment_app,
            amount,
            currency_code,
            other_data,
            original_transaction_id: if kind.needs_original() {
                original
            } else {
                None
            },
        }),
        _ => Err("request body is incomplete".into()),
    }
}

/// An amount in range written as a whole number: `1000`, or `1000.0` (JSON Schema's
/// `integer` counts it as one, and so does the request schema).
fn whole_amount(n: &serde_json::Number) -> Option<u64> {
    let whole = match n.as_u64() {
        Some(a) => a,
        None => {
            let f = n.as_f64()?;
            if f.fract() != 0.0 || !(1.0..=MAX_AMOUNT as f64).contains(&f) {
                return None;
            }
            f as u64
        }
    };
    (1..=MAX_AMOUNT).contains(&whole).then_some(whole)
}

fn text(
    obj: &Map<String, Value>,
    key: &str,
    max: usize,
    problems: &mut Vec<String>,
) -> Option<String> {
    match obj.get(key) {
        Some(Value::String(s)) if !is_blank(s) && s.chars().count() <= max => Some(s.clone()),
        Some(Value::String(s)) if s.chars().count() > max => {
            problems.push(format!("{key}: must be at most {max} characters"));
            None
        }
        Some(Value::String(_)) => {
            problems.push(format!("{key}: must not be empty or only spaces"));
            None
        }
        None | Some(Value::Null) => {
            problems.push(format!("{key}: required"));
            None
        }
        Some(other) => {
            problems.push(format!("{key}: must be a string, got {}", kind_of(other)));
            None
        }
    }
}

/// JSON's own whitespace only (space, tab, CR, LF), so `openapi.json` can say the same
/// thing as a pattern every regex engine reads alike: [`NOT_BLANK_PATTERN`].
pub fn is_blank(s: &str) -> bool {
    s.chars().all(|c| matches!(c, ' ' | '\t' | '\r' | '\n'))
}

/// The pattern `openapi.json` gives every text that must not be blank.
pub const NOT_BLANK_PATTERN: &str = "[^ \t\r\n]";

/// The longest `deviceId` and `paymentApp`, in characters.
pub const MAX_TEXT_CHARS: usize = 64;

/// The ISO 4217 codes accepted as `currencyCode`, as `openapi.json` lists them.
pub fn currencies() -> impl Iterator<Item = &'static str> {
    ISO_4217.split_ascii_whitespace()
}

fn id_field(
    obj: &Map<String, Value>,
    key: &str,
    required: bool,
    problems: &mut Vec<String>,
) -> Option<String> {
    match obj.get(key) {
        Some(Value::String(s)) => match check_transaction_id(s) {
            Ok(()) => Some(s.clone()),
            Err(why) => {
                problems.push(format!("{key}: {why}"));
                None
            }
        },
        None | Some(Value::Null) if !required => None,
        None | Some(Value::Null) => {
            problems.push(format!("{key}: required"));
            None
        }
        Some(other) => {
            problems.push(format!("{key}: must be a string, got {}", kind_of(other)));
            None
        }
    }
}

fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// The body of `POST /v1/transactions/{id}/resolve`: `{"status", "reason"}`, where
/// `status` is a final one and `reason` says why the operator may decide it.
pub fn parse_resolution(body: &[u8]) -> Result<(TxnStatus, String), String> {
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Resolution {
        status: String,
        reason: String,
    }
    let r: Resolution = serde_json::from_slice(body).map_err(|e| {
        format!("request body must be {{\"status\": \"approved\"|\"declined\"|\"cancelled\"|\"failed\", \"reason\": \"…\"}}: {e}")
    })?;
    let mut problems = Vec::new();
    let status = TxnStatus::parse(&r.status).filter(|s| s.is_final());
    if status.is_none() {
        problems.push(format!(
            "status: must be approved, declined, cancelled or failed, got {:?}",
            r.status
        ));
    }
    // Counted as sent and blank by JSON's whitespace, as the schema says.
    let reason = r.reason.trim_matches([' ', '\t', '\r', '\n']);
    if reason.is_empty() || r.reason.chars().count() > MAX_REASON_CHARS {
        problems.push(format!(
            "reason: required, 1 to {MAX_REASON_CHARS} characters (who checked what, e.g. \"receipt 4711 shows approved\")"
        ));
    }
    match status {
        Some(status) if problems.is_empty() => Ok((status, reason.to_string())),
        _ => Err(problems.join("; ")),
    }
}

/// The longest operator's reason kept in the journal.
pub const MAX_REASON_CHARS: usize = 500;

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn body(v: Value) -> Vec<u8> {
        serde_json::to_vec(&v).unwrap()
    }

    fn sale() -> Value {
        json!({"deviceId":"D1","transactionId":"T-1.a_b","paymentApp":"comercia","amount":1000,
               "currencyCode":"EUR","otherData":{"printReceipt":0}})
    }

    #[test]
    fn the_vendor_example_is_accepted() {
        let req = parse_payment(TxnKind::Sale, &body(sale())).unwrap();
        assert_eq!(req.amount, 1000);
        assert_eq!(req.other_data, json!({"printReceipt":0}));
        let mut whole = sale();
        whole["amount"] = json!(1000.0);
        assert_eq!(
            parse_payment(TxnKind::Sale, &body(whole)).unwrap().amount,
            1000
        );
    }

    #[test]
    fn each_bad_field_is_named() {
        let cases: Vec<(&str, Value, &str)> = vec![
            ("amount", json!(10.5), "amount"),
            ("amount", json!(1e9), "amount"),
            ("amount", json!(0), "amount"),
            ("amount", json!(-5), "amount"),
            ("amount", json!("1000"), "amount"),
            ("currencyCode", json!("eur"), "currencyCode"),
            ("currencyCode", json!("EURO"), "currencyCode"),
            ("currencyCode", json!("ZZZ"), "currencyCode"),
            ("transactionId", json!(""), "transactionId"),
            ("transactionId", json!("a b"), "transactionId"),
            ("transactionId", json!("x".repeat(65)), "transactionId"),
            ("transactionId", json!(12), "transactionId"),
            ("otherData", json!([1]), "otherData"),
            ("deviceId", json!(""), "deviceId"),
        ];
        for (field, value, named) in cases {
            let mut b = sale();
            b[field] = value.clone();
            let err = parse_payment(TxnKind::Sale, &body(b)).unwrap_err();
            assert!(err.starts_with(named), "{field}={value}: {err}");
        }
    }

    #[test]
    fn missing_fields_unknown_fields_and_all_problems_are_reported() {
        let err = parse_payment(TxnKind::Sale, &body(json!({"ammount": 5}))).unwrap_err();
        for key in [
            "ammount: unknown field",
            "deviceId: required",
            "transactionId: required",
            "paymentApp: required",
            "amount: required",
            "currencyCode: required",
        ] {
            assert!(err.contains(key), "{key} missing in {err}");
        }
    }

    #[test]
    fn refunds_need_an_original_and_sales_must_not_name_one() {
        let err = parse_payment(TxnKind::Refund, &body(sale())).unwrap_err();
        assert!(err.contains("originalTransactionId: required"), "{err}");
        let mut b = sale();
        b["originalTransactionId"] = json!("S-1");
        assert!(parse_payment(TxnKind::Refund, &body(b.clone())).is_ok());
        assert!(
            parse_payment(TxnKind::Sale, &body(b))
                .unwrap_err()
                .contains("originalTransactionId")
        );
    }

    #[test]
    fn not_json_or_not_an_object() {
        assert!(
            parse_payment(TxnKind::Sale, b"{")
                .unwrap_err()
                .contains("not valid JSON")
        );
        assert!(
            parse_payment(TxnKind::Sale, b"[1]")
                .unwrap_err()
                .contains("JSON object")
        );
    }
}
