use serde_json::json;

use super::*;

fn req(amount: u64) -> PaymentRequest {
    PaymentRequest {
        device_id: "LANE-2".into(),
        transaction_id: "T1".into(),
        payment_app: "comercia".into(),
        amount,
        currency_code: "EUR".into(),
        other_data: Value::Null,
        original_transaction_id: None,
    }
}

#[test]
fn amounts_convert_exactly_around_rounding_edges() {
    let edges = [
        (0, "0.00"),
        (1, "0.01"),
        (10, "0.10"),
        (99, "0.99"),
        (100, "1.00"),
        (101, "1.01"),
        (999_999, "9999.99"),
        (1_000_000, "10000.00"),
    ];
    for (cents_in, text) in edges {
        assert_eq!(euros(cents_in), text);
        assert_eq!(cents(&json!(text)), Some(cents_in), "{text}");
    }
    // Every cent value round-trips, including those a float would round (0.29, 0.57, …).
    for c in (0..=100_000).chain(999_000..=1_000_100) {
        assert_eq!(cents(&json!(euros(c))), Some(c));
    }
    // JSON numbers are read through their decimal text.
    for (n, c) in [
        (json!(0.29), 29),
        (json!(10.5), 1050),
        (json!(1.01), 101),
        (json!(7), 700),
    ] {
        assert_eq!(cents(&n), Some(c), "{n}");
    }
    assert_eq!(cents(&json!(0.57)), Some(57));
}

#[test]
fn malformed_amounts_are_refused() {
    for bad in [
        "", ".", "1.", "-1.00", "1.001", "1,00", "1e2", " 1.0 0", "abc", "+1",
    ] {
        assert_eq!(cents(&json!(bad)), None, "{bad:?}");
    }
    assert_eq!(cents(&json!(null)), None);
    assert_eq!(cents(&json!(-1.5)), None);
    assert_eq!(cents(&json!("184467440737095516.16")), None);
}

#[test]
fn result_codes_follow_the_table() {
    assert_eq!(code(0), Code::Approved);
    assert_eq!(code(1001), Code::InProgress);
    assert_eq!(code(602), Code::NotFound);
    assert_eq!(code(913), Code::Duplicate);
    assert_eq!(code(1010), Code::SourceRejected);
    for c in [16, 9915] {
        assert_eq!(code(c), Code::Final(TxnStatus::Cancelled));
    }
    for c in [17, 10000] {
        assert_eq!(code(c), Code::Final(TxnStatus::Failed));
    }
    for c in [100, 150, 190, 202, 9000, 9914, 9916, 9999] {
        assert_eq!(code(c), Code::Final(TxnStatus::Declined), "{c}");
    }
    for c in [1, 99, 203, 8999, 10001, -1] {
        assert_eq!(code(c), Code::Final(TxnStatus::Failed), "{c}");
    }
    // No code other than 0 approves.
    for c in -10..20_000 {
        assert_eq!(code(c) == Code::Approved, c == 0);
    }
    assert_eq!(read_code(&json!("1001")), Some(1001));
    assert_eq!(read_code(&json!(null)), None);
}

#[test]
fn the_ticket_fills_the_card_fields_and_the_receipt() {
    let answer: Answer = serde_json::from_value(json!({
        "orderId": "T1", "resultCode": 0, "resultMessage": "Aprobada",
        "ticket": {"Authorization": "123456", "CardNumber": "4761739001010010",
                   "CardType": "VISA", "Amount": "10.50", "Id": "000042", "TerminalId": "T-9"}
    }))
    .unwrap();
    let r = result(TxnKind::Sale, &req(1050), &answer, TxnStatus::Approved);
    assert_eq!(r.transaction_id, "T1");
    assert_eq!(r.amount, 1050);
    assert_eq!(r.authorization_code.as_deref(), Some("123456"));
    assert_eq!(r.card_brand.as_deref(), Some("VISA"));
    // A full number from the terminal never goes further: masked in result and receipt.
    assert_eq!(r.masked_pan.as_deref(), Some("476173******0010"));
    let receipt = r.receipt.clone().unwrap();
    assert_eq!(receipt["CardNumber"], "476173******0010");
    assert_eq!(receipt["TerminalId"], "T-9");
    assert_eq!(terminal_id(&receipt).as_deref(), Some("000042"));
    assert_eq!(r.result_code.as_deref(), Some("0"));
    assert_eq!(r.result_message.as_deref(), Some("Aprobada"));
}

#[test]
fn an_unreadable_ticket_amount_never_matches() {
    let answer: Answer = serde_json::from_value(json!({
        "orderId": "T1", "resultCode": 0, "ticket": {"Amount": "10,50"}
    }))
    .unwrap();
    assert_eq!(
        result(TxnKind::Sale, &req(1050), &answer, TxnStatus::Approved).amount,
        u64::MAX
    );
}

#[test]
fn mask_check_keeps_at_most_first_six_and_last_four() {
    for ok in [
        "476173******0010",
        "4761********0010",
        "************0010",
        "476173******",
    ] {
        assert!(is_masked(ok), "{ok}");
        assert_eq!(masked(ok), ok);
    }
    for bad in [
        "4761739******010",
        "4761739001010010",
        "47617300****00100",
        "1234",
    ] {
        assert!(!is_masked(bad), "{bad}");
        assert!(
            is_masked(&masked(bad)) || masked(bad).chars().all(|c| c == '*'),
            "{bad}"
        );
    }
}

#[test]
fn voids_and_other_currencies_are_refused_naming_the_profile() {
    let Some(Refusal::Unsupported(m)) = refusal(TxnKind::Void, &req(100)) else {
        panic!("void must be refused");
    };
    assert!(m.contains(PROFILE) && m.contains("LANE-2"), "{m}");
    let mut usd = req(100);
    usd.currency_code = "USD".into();
    let Some(Refusal::Currency(m)) = refusal(TxnKind::Sale, &usd) else {
        panic!("USD must be refused");
    };
    assert!(m.contains(PROFILE) && m.contains("USD"), "{m}");
    assert_eq!(refusal(TxnKind::Sale, &req(100)), None);
    assert_eq!(refusal(TxnKind::Refund, &req(100)), None);
}

#[test]
fn an_answer_about_another_order_keeps_that_orders_id() {
    let other: Answer = serde_json::from_value(json!({"orderId": "T9", "resultCode": 0})).unwrap();
    assert_eq!(
        result(TxnKind::Sale, &req(100), &other, TxnStatus::Approved).transaction_id,
        "T9"
    );
    let unnamed: Answer = serde_json::from_value(json!({"resultCode": 190})).unwrap();
    let r = result(TxnKind::Sale, &req(100), &unnamed, TxnStatus::Declined);
    assert_eq!(
        (r.transaction_id.as_str(), r.result_code.as_deref()),
        ("T1", Some("190"))
    );
}

#[test]
fn a_report_never_passes_a_full_card_number_on() {
    let mut report = json!({"payments": [{"CardNumber": "4761739001010010", "Amount": "1.00"}],
                            "refunds": [{"CardNumber": "476173******0010"}], "CardNumber": 7});
    mask_card_numbers(&mut report);
    assert_eq!(report["payments"][0]["CardNumber"], "476173******0010");
    assert_eq!(report["payments"][0]["Amount"], "1.00");
    assert_eq!(report["refunds"][0]["CardNumber"], "476173******0010");
}
