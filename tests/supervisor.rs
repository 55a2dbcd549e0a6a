//! The async supervision driver under paused tokio time, through the public API
//! (`Payments::submit`, `wait_result`), with a scripted `Transport`: `timeStop`,
//! `unknown` and background reconciliation happen without any real waiting.

mod scripted;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use ecrlink::journal::Journal;
use ecrlink::probe::{Health, LinkState};
use ecrlink::terminal::wire::{TxnKind, TxnResult, TxnStatus, now_rfc3339};
use ecrlink::transport::Transport;
use ecrlink::txn::{Admission, Payments, TerminalLink, wait_result};
use scripted::*;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

#[tokio::test(start_paused = true)]
async fn silent_terminal_gives_unknown_at_time_stop_then_the_looked_up_truth() {
    let dir = tempfile::tempdir().unwrap();
    let script = Arc::new(Script::default());
    let p = payments(&dir, &script);
    let wall = std::time::Instant::now();
    let t0 = Instant::now();
    let rx = start(&p, "SUP-1").await;

    let r = wait_result(rx.clone(), TIME_STOP + Duration::from_secs(2), true).await;
    let at = t0.elapsed();
    assert_eq!(r.status, TxnStatus::Unknown, "{r:?}");
    assert!(
        at >= TIME_STOP && at < TIME_STOP + POLL,
        "unknown at {at:?}"
    );
    let stored = p.journal().get("SUP-1").await.unwrap().unwrap();
    assert_eq!(stored.result.status, TxnStatus::Unknown);
    assert_eq!(script.starts.load(Ordering::SeqCst), 1);
    // Polled every pollSeconds while waiting: about timeStop / pollSeconds times.
    let polls = script.polls.load(Ordering::SeqCst);
    assert!((5..=7).contains(&polls), "{polls} polls");
    assert_eq!(p.busy_with(DEVICE).as_deref(), Some("SUP-1"), "still held");

    // A second sale waits for the truth about the first: the terminal stays held.
    match p.submit(TxnKind::Sale, request("SUP-2")).await {
        Err(ecrlink::txn::SubmitError::Busy { busy_with, .. }) => assert_eq!(busy_with, "SUP-1"),
        _ => panic!("terminal must be busy while SUP-1 is unknown"),
    }

    // The terminal answers again, with an approval.
    let mut truth = TxnResult::pending(&request("SUP-1"), TxnKind::Sale, now_rfc3339());
    truth.status = TxnStatus::Approved;
    truth.authorization_code = Some("123456".into());
    truth.result_code = Some("00".into());
    *script.truth.lock().unwrap() = Some(truth);
    let answered_from = Instant::now();
    let r = wait_result(rx, Duration::from_secs(3600), false).await;
    assert_eq!(r.status, TxnStatus::Approved, "{r:?}");
    assert_eq!(r.authorization_code.as_deref(), Some("123456"));
    // Reconciliation backs off, but never beyond its cap.
    assert!(
        answered_from.elapsed() <= ecrlink::constants::RECONCILE_MAX_BACKOFF,
        "reconciled after {:?}",
        answered_from.elapsed()
    );
    assert!(script.lookups_answered.load(Ordering::SeqCst));
    let stored = p.journal().get("SUP-1").await.unwrap().unwrap();
    assert_eq!(stored.result.status, TxnStatus::Approved);
    let events: Vec<String> = p
        .journal()
        .events("SUP-1")
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.event)
        .collect();
    assert!(events.contains(&"unknown".to_string()), "{events:?}");
    assert_eq!(
        events.last().map(String::as_str),
        Some("reconciled"),
        "{events:?}"
    );
    assert_eq!(script.starts.load(Ordering::SeqCst), 1, "never sent twice");
    assert!(
        wall.elapsed() < Duration::from_secs(10),
        "paused time: no real waiting ({:?})",
        wall.elapsed()
    );
}

#[tokio::test(start_paused = true)]
async fn undelivered_start_fails_at_once_without_asking_anything() {
    let dir = tempfile::tempdir().unwrap();
    let script = Arc::new(Script {
        refuse_start: true,
        ..Script::default()
    });
    let p = payments(&dir, &script);
    let t0 = Instant::now();
    let rx = start(&p, "SUP-3").await;
    let r = wait_result(rx, TIME_STOP, true).await;
    assert_eq!(r.status, TxnStatus::Failed, "{r:?}");
    assert_eq!(r.result_code.as_deref(), Some("terminal_unreachable"));
    assert!(t0.elapsed() < POLL, "failed at once, not after polls");
    assert_eq!(script.lookups.load(Ordering::SeqCst), 0);
    let stored = p.journal().get("SUP-3").await.unwrap().unwrap();
    assert_eq!(stored.result.status, TxnStatus::Failed);
}

#[tokio::test(start_paused = true)]
async fn recovered_transaction_is_reconciled_without_a_new_start() {
    let dir = tempfile::tempdir().unwrap();
    let script = Arc::new(Script::default());
    // A journal left by a crashed gateway: SUP-4 journaled, never finished.
    {
        let journal = Journal::open(&dir.path().join("journal.db")).unwrap();
        let req = request("SUP-4");
        let result = TxnResult::pending(&req, TxnKind::Sale, now_rfc3339());
        journal.begin(TxnKind::Sale, &req, &result).await.unwrap();
    }
    let p = payments(&dir, &script);
    assert_eq!(p.recover().await.unwrap(), 1);
    assert_eq!(p.busy_with(DEVICE).as_deref(), Some("SUP-4"));
    let mut truth = TxnResult::pending(&request("SUP-4"), TxnKind::Sale, now_rfc3339());
    truth.status = TxnStatus::Declined;
    truth.result_code = Some("05".into());
    *script.truth.lock().unwrap() = Some(truth);
    let done = async {
        loop {
            let r = p.get("SUP-4").await.unwrap().unwrap();
            if r.status.is_final() {
                return r;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    let r = tokio::time::timeout(Duration::from_secs(600), done)
        .await
        .expect("reconciled");
    assert_eq!(r.status, TxnStatus::Declined);
    assert_eq!(
        script.starts.load(Ordering::SeqCst),
        0,
        "recovery never resends"
    );
    // The admission replays the reconciled result for a retrying POS.
    match p.submit(TxnKind::Sale, request("SUP-4")).await.unwrap() {
        Admission::Replay(r) => assert_eq!(r.status, TxnStatus::Declined),
        Admission::Joined(rx) => assert_eq!(rx.borrow().status, TxnStatus::Declined),
        Admission::Started(_) => panic!("a journaled id must never start again"),
    }
}

#[tokio::test(start_paused = true)]
async fn undelivered_start_is_resent_on_the_fallback() {
    let dir = tempfile::tempdir().unwrap();
    let direct = Arc::new(Script {
        name: "direct",
        refuse_start: true,
        ..Script::default()
    });
    let fallback = Arc::new(Script {
        name: "fallback",
        start_answer: Some(approved("SUP-5")),
        ..Script::default()
    });
    let p = payments_over(&dir, &[&direct, &fallback]);
    let rx = start(&p, "SUP-5").await;
    let r = wait_result(rx, TIME_STOP, true).await;
    assert_eq!(r.status, TxnStatus::Approved, "{r:?}");
    assert_eq!(r.transport.as_deref(), Some("fallback"));
    assert_eq!(direct.starts.load(Ordering::SeqCst), 1);
    assert_eq!(fallback.starts.load(Ordering::SeqCst), 1);
    let events = event_names(&p, "SUP-5").await;
    assert!(
        events.contains(&"transport_switch".to_string()),
        "{events:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn missed_polls_switch_to_the_fallback_which_finds_the_outcome() {
    let dir = tempfile::tempdir().unwrap();
    // The direct link delivered the start, then went silent.
    let direct = Arc::new(Script {
        name: "direct",
        ..Script::default()
    });
    let fallback = Arc::new(Script {
        name: "fallback",
        idle: true,
        ..Script::default()
    });
    *fallback.truth.lock().unwrap() = Some(approved("SUP-6"));
    let p = payments_over(&dir, &[&direct, &fallback]);
    let t0 = Instant::now();
    let rx = start(&p, "SUP-6").await;
    let r = wait_result(rx, TIME_STOP, true).await;
    assert_eq!(r.status, TxnStatus::Approved, "{r:?}");
    assert_eq!(r.transport.as_deref(), Some("fallback"));
    // loopsBefore (3) unanswered polls, then the first poll on the fallback.
    let at = t0.elapsed();
    assert!(
        at >= POLL * 3 && at < POLL * 5,
        "switched and found at {at:?}"
    );
    assert_eq!(direct.polls.load(Ordering::SeqCst), 3);
    assert_eq!(
        fallback.starts.load(Ordering::SeqCst),
        0,
        "delivered once: never resent"
    );
    let events = event_names(&p, "SUP-6").await;
    assert!(
        events.contains(&"transport_switch".to_string()),
        "{events:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn link_down_from_the_probe_monitor_switches_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let direct = Arc::new(Script {
        name: "direct",
        ..Script::default()
    });
    let fallback = Arc::new(Script {
        name: "fallback",
        idle: true,
        ..Script::default()
    });
    *fallback.truth.lock().unwrap() = Some(approved("SUP-7"));
    let (health_tx, health_rx) = tokio::sync::watch::channel(Health::initial(DEVICE, addr()));
    let journal = Journal::open(&dir.path().join("journal.db")).unwrap();
    let p = Payments::new(
        journal,
        timing(),
        vec![
            TerminalLink::new(
                DEVICE,
                vec![
                    Arc::new(Scripted(direct.clone())) as Arc<dyn Transport>,
                    Arc::new(Scripted(fallback.clone())),
                ],
            )
            .with_health(health_rx),
        ],
        CancellationToken::new(),
    );
    let rx = start(&p, "SUP-7").await;
    // One second into the sale the monitor declares the link down.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let t_down = Instant::now();
    health_tx.send_modify(|h| h.state = LinkState::Down);
    let r = wait_result(rx, TIME_STOP, true).await;
    assert_eq!(r.status, TxnStatus::Approved, "{r:?}");
    assert_eq!(r.transport.as_deref(), Some("fallback"));
    assert!(
        t_down.elapsed() < POLL,
        "switched and found {:?} after the link died, before any poll was missed",
        t_down.elapsed()
    );
    assert_eq!(direct.polls.load(Ordering::SeqCst), 0);
    assert_eq!(
        fallback.starts.load(Ordering::SeqCst),
        0,
        "delivered once: never resent"
    );
    assert!(
        event_names(&p, "SUP-7")
            .await
            .contains(&"transport_switch".to_string())
    );
}
