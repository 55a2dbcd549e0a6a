//! Never invent an outcome (issue 8), through `Payments` under paused tokio time with
//! a scripted terminal: answers that are not about this transaction, failures that
//! may follow a charge, "never arrived" only with evidence, cancels that hang,
//! several open transactions on one terminal, giving up, and operator resolution.

mod scripted;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use ecrlink::journal::Journal;
use ecrlink::terminal::TerminalError;
use ecrlink::terminal::wire::{TxnKind, TxnResult, TxnStatus, now_rfc3339};
use ecrlink::txn::supervisor::ResolveRefused;
use ecrlink::txn::{Admission, ResolveError, SubmitError, Timing, wait_result};
use scripted::*;
use tokio::time::Instant;

fn error_after_charge(status: u16) -> TerminalError {
    TerminalError::Rejected {
        status,
        code: "internal_error".into(),
        message: "something broke after the charge".into(),
    }
}

#[tokio::test(start_paused = true)]
async fn an_error_status_after_the_charge_is_looked_up_not_failed() {
    for status in [500, 503, 404, 401] {
        let dir = tempfile::tempdir().unwrap();
        let id = format!("ERR-{status}");
        let script = Arc::new(Script {
            start_error: Some(error_after_charge(status)),
            ..Script::default()
        });
        script.record(approved(&id));
        let p = payments(&dir, &script);
        let r = wait_result(start(&p, &id).await, TIME_STOP, true).await;
        assert_eq!(r.status, TxnStatus::Approved, "{status}: {r:?}");
        assert_eq!(script.starts.load(Ordering::SeqCst), 1, "never resent");
        let stored = p.journal().get(&id).await.unwrap().unwrap();
        assert_eq!(stored.result.status, TxnStatus::Approved);
        assert!(
            event_names(&p, &id)
                .await
                .contains(&"answer_lost".to_string())
        );
    }
}

#[tokio::test(start_paused = true)]
async fn an_answer_about_another_transaction_is_never_adopted() {
    let dir = tempfile::tempdir().unwrap();
    let mut other = with_status("OTHER-1", TxnStatus::Declined);
    other.amount = 5000;
    let script = Arc::new(Script {
        start_answer: Some(other),
        idle: true,
        ..Script::default()
    });
    // Lookups, too, first answer with the other record; then the terminal writes ours.
    *script.truth.lock().unwrap() = Some(with_status("OTHER-1", TxnStatus::Declined));
    let p = payments(&dir, &script);
    let rx = start(&p, "MINE-1").await;
    // Paused time: two poll rounds pass without real waiting.
    tokio::time::sleep(POLL * 2).await;
    assert_eq!(
        p.get("MINE-1").await.unwrap().unwrap().status,
        TxnStatus::InProgress,
        "neither mismatched answer was believed"
    );
    script.record(approved("MINE-1"));
    let r = wait_result(rx, TIME_STOP, true).await;
    assert_eq!(r.status, TxnStatus::Approved, "{r:?}");
    assert_eq!(r.transaction_id, "MINE-1");
    let events = event_names(&p, "MINE-1").await;
    let mismatches = events.iter().filter(|e| *e == "answer_mismatch").count();
    assert!(mismatches >= 2, "start and lookup answers: {events:?}");
    assert!(
        p.counters().answer_mismatches.load(Ordering::Relaxed) >= 2,
        "counted for /metrics"
    );
    let detail = p
        .journal()
        .events("MINE-1")
        .await
        .unwrap()
        .into_iter()
        .find(|e| e.event == "answer_mismatch")
        .and_then(|e| e.detail)
        .unwrap();
    assert!(
        detail.contains("transactionId") && detail.contains("amount"),
        "the differing fields are named: {detail}"
    );
}

#[tokio::test(start_paused = true)]
async fn never_arrived_takes_two_not_found_a_horizon_apart_and_an_idle_terminal() {
    let dir = tempfile::tempdir().unwrap();
    let script = Arc::new(Script {
        start_error: Some(silence()),
        not_found: true,
        idle: true,
        ..Script::default()
    });
    let p = payments(&dir, &script);
    let t0 = Instant::now();
    let r = wait_result(start(&p, "GONE-1").await, TIME_STOP, true).await;
    assert_eq!(r.status, TxnStatus::Failed, "{r:?}");
    assert_eq!(r.result_code.as_deref(), Some("not_received"));
    assert!(
        t0.elapsed() >= NOT_FOUND_HORIZON,
        "concluded after {:?}, before the horizon",
        t0.elapsed()
    );
    assert!(script.lookups.load(Ordering::SeqCst) >= 2);
    assert!(script.polls.load(Ordering::SeqCst) >= 1);
}

#[tokio::test(start_paused = true)]
async fn a_record_written_late_is_still_found() {
    let dir = tempfile::tempdir().unwrap();
    let script = Arc::new(Script {
        start_error: Some(silence()),
        not_found: true,
        idle: true,
        ..Script::default()
    });
    let p = payments(&dir, &script);
    let rx = start(&p, "LATE-1").await;
    // The first `not_found` has been seen; the record appears within the horizon.
    let s = script.clone();
    wait_until(&p, "LATE-1", TIME_STOP, move |_| {
        s.lookups.load(Ordering::SeqCst) >= 1
    })
    .await;
    script.record(approved("LATE-1"));
    let r = wait_result(rx, TIME_STOP, true).await;
    assert_eq!(r.status, TxnStatus::Approved, "{r:?}");
}

#[tokio::test(start_paused = true)]
async fn a_hung_cancel_never_holds_up_the_deadline() {
    let dir = tempfile::tempdir().unwrap();
    let script = Arc::new(Script {
        hang_cancel: true,
        ..Script::default()
    });
    let p = payments(&dir, &script);
    let t0 = Instant::now();
    let rx = start(&p, "CAN-1").await;
    let p2 = p.clone();
    let cancel = tokio::spawn(async move { p2.cancel("CAN-1").await });
    let r = wait_result(rx, TIME_STOP + Duration::from_secs(2), true).await;
    assert_eq!(r.status, TxnStatus::Unknown, "{r:?}");
    assert!(t0.elapsed() < TIME_STOP + POLL, "at {:?}", t0.elapsed());
    assert_eq!(script.cancels.load(Ordering::SeqCst), 1);
    assert!(!cancel.is_finished(), "the cancel is still outstanding");
    // Polls went on while the cancel hung.
    assert!(script.polls.load(Ordering::SeqCst) >= 5);
    cancel.abort();
}

#[tokio::test(start_paused = true)]
async fn every_open_transaction_is_recovered_and_holds_the_terminal() {
    let dir = tempfile::tempdir().unwrap();
    {
        let journal = Journal::open(&dir.path().join("journal.db")).unwrap();
        for id in ["OPEN-A", "OPEN-B"] {
            let req = request(id);
            let result = TxnResult::pending(&req, TxnKind::Sale, now_rfc3339());
            journal.begin(TxnKind::Sale, &req, &result).await.unwrap();
        }
    }
    let script = Arc::new(Script::default());
    let p = payments(&dir, &script);
    assert_eq!(p.recover().await.unwrap(), 2);
    script.record(approved("OPEN-A"));
    wait_until(&p, "OPEN-A", Duration::from_secs(600), |r| {
        r.status.is_final()
    })
    .await;
    match p.submit(TxnKind::Sale, request("NEW-1")).await {
        Err(SubmitError::Busy { busy_with, .. }) => assert_eq!(busy_with, "OPEN-B"),
        _ => panic!("OPEN-B may still be running on the terminal"),
    }
    script.record(with_status("OPEN-B", TxnStatus::Declined));
    wait_until(&p, "OPEN-B", Duration::from_secs(600), |r| {
        r.status.is_final()
    })
    .await;
    let _new = start(&p, "NEW-1").await;
    let t = Instant::now();
    while script.starts.load(Ordering::SeqCst) == 0 {
        assert!(t.elapsed() < POLL, "NEW-1 never sent");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(
        script.starts.load(Ordering::SeqCst),
        1,
        "only NEW-1 was sent"
    );
}

#[tokio::test(start_paused = true)]
async fn a_transaction_that_gave_up_frees_the_terminal_and_is_still_reconciled() {
    let dir = tempfile::tempdir().unwrap();
    let script = Arc::new(Script::default());
    let p = payments_with(
        &dir,
        &[&script],
        Timing {
            retries: 2,
            ..timing()
        },
    );
    let rx = start(&p, "GIVE-1").await;
    let r = wait_result(rx.clone(), TIME_STOP + Duration::from_secs(2), true).await;
    assert_eq!(r.status, TxnStatus::Unknown);
    // Two attempts later it no longer holds the terminal.
    let t = Instant::now();
    while p.busy_with(DEVICE).is_some() {
        assert!(t.elapsed() < Duration::from_secs(600), "never released");
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    assert!(
        event_names(&p, "GIVE-1")
            .await
            .contains(&"reconcile_gave_up".to_string())
    );
    assert_eq!(
        p.get("GIVE-1").await.unwrap().unwrap().status,
        TxnStatus::Unknown
    );
    assert!(matches!(
        p.submit(TxnKind::Sale, request("NEXT-1")).await,
        Ok(Admission::Started(_))
    ));
    // The truth still arrives, at the slow pace.
    script.record(approved("GIVE-1"));
    let r = wait_result(rx, Duration::from_secs(900), false).await;
    assert_eq!(r.status, TxnStatus::Approved, "{r:?}");
}

#[tokio::test(start_paused = true)]
async fn an_operator_settles_only_an_unknown_transaction() {
    let dir = tempfile::tempdir().unwrap();
    let script = Arc::new(Script::default());
    let p = payments(&dir, &script);
    let rx = start(&p, "OP-1").await;
    match p.resolve("OP-1", TxnStatus::Approved, "early".into()).await {
        Err(ResolveError::Refused(ResolveRefused::NotUnknown(status))) => {
            assert_eq!(status, "in_progress")
        }
        other => panic!("the POS still waits for the terminal: {other:?}"),
    }
    let r = wait_result(rx.clone(), TIME_STOP + Duration::from_secs(2), true).await;
    assert_eq!(r.status, TxnStatus::Unknown);
    let r = p
        .resolve("OP-1", TxnStatus::Declined, "receipt shows decline".into())
        .await
        .unwrap();
    assert_eq!(r.status, TxnStatus::Declined);
    assert_eq!(r.result_code.as_deref(), Some("resolved_by_operator"));
    let stored = p.journal().get("OP-1").await.unwrap().unwrap();
    assert_eq!(stored.result.status, TxnStatus::Declined);
    let events = p.journal().events("OP-1").await.unwrap();
    let last = events.last().unwrap();
    assert_eq!(last.event, "resolved_by_operator");
    assert_eq!(last.detail.as_deref(), Some("receipt shows decline"));
    // Settled is settled.
    wait_until(&p, "OP-1", Duration::from_secs(5), |r| r.status.is_final()).await;
    let again = p.resolve("OP-1", TxnStatus::Approved, "x".into()).await;
    assert!(
        matches!(
            again,
            Err(ResolveError::Refused(ResolveRefused::NotUnknown(_)))
        ),
        "{again:?}"
    );
    assert!(matches!(
        p.resolve("NOPE", TxnStatus::Approved, "x".into()).await,
        Err(ResolveError::NotFound(_))
    ));
}
