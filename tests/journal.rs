//! The journal as an operator sees it: pruning keeps every unfinished transaction,
//! the schema is versioned, and the file is in WAL mode.

use ecrlink::journal::{Begin, Journal, JournalError};
use ecrlink::terminal::wire::{PaymentRequest, TxnKind, TxnResult, TxnStatus, now_rfc3339};
use serde_json::json;

fn request(id: &str) -> PaymentRequest {
    serde_json::from_value(json!({
        "deviceId": "ECRLINK-SIM-0001", "transactionId": id, "paymentApp": "comercia",
        "amount": 1000, "currencyCode": "EUR"
    }))
    .unwrap()
}

fn days_ago(days: i64) -> String {
    (time::OffsetDateTime::now_utc() - time::Duration::days(days))
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap()
}

/// Journals a sale created at `created_at` and moves it to `status`.
async fn put(j: &Journal, id: &str, created_at: String, status: TxnStatus) {
    let req = request(id);
    let mut result = TxnResult::pending(&req, TxnKind::Sale, created_at);
    assert!(matches!(
        j.begin(TxnKind::Sale, &req, &result).await.unwrap(),
        Begin::Created
    ));
    if status != TxnStatus::InProgress {
        result.status = status;
        j.update(&result, "test", None).await.unwrap();
    }
}

#[tokio::test]
async fn pruning_deletes_old_final_entries_only() {
    let dir = tempfile::tempdir().unwrap();
    let j = Journal::open(&dir.path().join("data/journal.db")).unwrap();
    put(&j, "OLD-APPROVED", days_ago(100), TxnStatus::Approved).await;
    put(&j, "OLD-DECLINED", days_ago(91), TxnStatus::Declined).await;
    put(&j, "OLD-UNKNOWN", days_ago(100), TxnStatus::Unknown).await;
    put(&j, "OLD-IN-PROGRESS", days_ago(100), TxnStatus::InProgress).await;
    put(&j, "RECENT-APPROVED", days_ago(89), TxnStatus::Approved).await;
    put(&j, "NEW-APPROVED", now_rfc3339(), TxnStatus::Approved).await;
    // Seconds old: kept by 90 days, and before any zero-day cutoff taken after it
    // (the cutoff counts whole seconds, so a sale of this very second is kept).
    let seconds_ago = (time::OffsetDateTime::now_utc() - time::Duration::seconds(2))
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    put(&j, "SECONDS-APPROVED", seconds_ago, TxnStatus::Approved).await;

    assert_eq!(ecrlink::serve::prune(&j, 90).await.unwrap(), 2);
    for gone in ["OLD-APPROVED", "OLD-DECLINED"] {
        assert!(j.get(gone).await.unwrap().is_none(), "{gone} kept");
        assert!(
            j.events(gone).await.unwrap().is_empty(),
            "{gone}'s events kept"
        );
    }
    for kept in [
        "OLD-UNKNOWN",
        "OLD-IN-PROGRESS",
        "RECENT-APPROVED",
        "NEW-APPROVED",
        "SECONDS-APPROVED",
    ] {
        assert!(j.get(kept).await.unwrap().is_some(), "{kept} pruned");
    }
    // Unfinished transactions survive any retention, even zero days. NEW-APPROVED may
    // share the cutoff's second (then it is kept) or not.
    let pruned = ecrlink::serve::prune(&j, 0).await.unwrap();
    assert!(j.get("SECONDS-APPROVED").await.unwrap().is_none());
    assert!(j.get("RECENT-APPROVED").await.unwrap().is_none());
    let new_kept = j.get("NEW-APPROVED").await.unwrap().is_some();
    assert_eq!(pruned, if new_kept { 2 } else { 3 });
    let open: Vec<String> = j
        .open_transactions()
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.request.transaction_id)
        .collect();
    assert_eq!(open, ["OLD-UNKNOWN", "OLD-IN-PROGRESS"]);
}

#[tokio::test]
async fn schema_version_and_wal_are_set_and_survive_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("journal.db");
    {
        let j = Journal::open(&path).unwrap();
        put(&j, "KEEP-1", now_rfc3339(), TxnStatus::Approved).await;
    }
    let j = Journal::open(&path).unwrap();
    assert_eq!(
        j.get("KEEP-1").await.unwrap().unwrap().result.status,
        TxnStatus::Approved
    );
    let other = rusqlite::Connection::open(&path).unwrap();
    let mode: String = other
        .pragma_query_value(None, "journal_mode", |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
    let version: i64 = other
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .unwrap();
    assert_eq!(
        version, 5,
        "migrations: schema, the originals index and health row, terminal_events, \
         the originals as a column, events without AUTOINCREMENT"
    );
}

/// Schema 4 keeps a refund's original in a column of its own; a journal of schema 3 (the
/// original only inside the request's JSON) is migrated and its refunds still found.
#[tokio::test]
async fn refunds_in_a_schema_3_journal_are_found_by_their_original_after_migrating() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("journal.db");
    {
        let j = Journal::open(&path).unwrap();
        put(&j, "SALE-1", now_rfc3339(), TxnStatus::Approved).await;
        let mut refund = request("REFUND-1");
        refund.original_transaction_id = Some("SALE-1".into());
        let result = TxnResult::pending(&refund, TxnKind::Refund, now_rfc3339());
        j.begin(TxnKind::Refund, &refund, &result).await.unwrap();
        assert_eq!(j.undoing("SALE-1").await.unwrap().len(), 1);
    }
    // Back to schema 3, as an older ecrlink left it.
    rusqlite::Connection::open(&path)
        .unwrap()
        .execute_batch(
            "DROP INDEX transactions_original_id; \
             ALTER TABLE transactions DROP COLUMN original_id; \
             CREATE INDEX transactions_original ON \
               transactions(json_extract(request, '$.originalTransactionId')); \
             PRAGMA user_version = 3;",
        )
        .unwrap();
    let j = Journal::open(&path).unwrap();
    let undoing = j.undoing("SALE-1").await.unwrap();
    let ids: Vec<_> = undoing.iter().map(|r| r.transaction_id.as_str()).collect();
    assert_eq!(ids, ["REFUND-1"]);
    assert!(j.undoing("REFUND-1").await.unwrap().is_empty());
}

/// Schema 5 drops AUTOINCREMENT from `events` (its `sqlite_sequence` row was written by
/// every commit): a schema-4 journal keeps its events and their ids, and a new event of a
/// transaction still comes after the ones it has.
#[tokio::test]
async fn events_of_a_schema_4_journal_keep_their_ids_and_order_after_migrating() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("journal.db");
    {
        let j = Journal::open(&path).unwrap();
        put(&j, "SALE-1", now_rfc3339(), TxnStatus::Approved).await;
        put(&j, "SALE-2", now_rfc3339(), TxnStatus::InProgress).await;
    }
    // Back to schema 4: events with AUTOINCREMENT, ids from 101 (a migration that
    // numbered them afresh would show), its counter above the largest.
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.execute_batch(
        "ALTER TABLE events RENAME TO events_v5; \
         CREATE TABLE events (id INTEGER PRIMARY KEY AUTOINCREMENT, \
           transaction_id TEXT NOT NULL REFERENCES transactions(transaction_id) ON DELETE CASCADE, \
           at TEXT NOT NULL, event TEXT NOT NULL, detail TEXT); \
         INSERT INTO events SELECT id + 100, transaction_id, at, event, detail FROM events_v5; \
         DROP TABLE events_v5; \
         CREATE INDEX events_transaction ON events(transaction_id); \
         UPDATE sqlite_sequence SET seq = seq + 100 WHERE name = 'events'; \
         PRAGMA user_version = 4;",
    )
    .unwrap();
    let before: Vec<(i64, String)> = conn
        .prepare("SELECT id, event FROM events WHERE transaction_id = 'SALE-2' ORDER BY id")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(before.len(), 1, "{before:?}");
    assert!(before[0].0 > 100, "{before:?}");
    drop(conn);
    let j = Journal::open(&path).unwrap();
    assert_eq!(j.events("SALE-1").await.unwrap().len(), 2);
    let result = j.get("SALE-2").await.unwrap().unwrap().result;
    j.update(&result, "after_migration", None).await.unwrap();
    let after = j.events("SALE-2").await.unwrap();
    assert_eq!((after[0].seq, &after[0].event), (before[0].0, &before[0].1));
    assert_eq!(after[1].event, "after_migration");
    assert!(after[1].seq > after[0].seq, "{after:?}");
    let conn = rusqlite::Connection::open(&path).unwrap();
    let schema: String = conn
        .query_row(
            "SELECT sql FROM sqlite_master WHERE name = 'events'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert!(!schema.contains("AUTOINCREMENT"), "{schema}");
    let index: i64 = conn
        .query_row(
            "SELECT COUNT(*) FROM sqlite_master WHERE name = 'events_transaction'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(index, 1, "the events' index is rebuilt");
}

#[test]
fn a_newer_schema_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("journal.db");
    drop(Journal::open(&path).unwrap());
    rusqlite::Connection::open(&path)
        .unwrap()
        .pragma_update(None, "user_version", 7)
        .unwrap();
    match Journal::open(&path) {
        Err(JournalError::TooNew {
            found, supported, ..
        }) => assert_eq!((found, supported), (7, 5)),
        other => panic!("expected TooNew, got {:?}", other.map(|_| ())),
    }
}

/// Issue 15: live readers hear which transactions a commit wrote to, lazy events
/// included, and only once they are committed (a read then sees them).
#[tokio::test]
async fn each_commit_names_the_transactions_it_wrote_to() {
    let dir = tempfile::tempdir().unwrap();
    let j = Journal::open(&dir.path().join("journal.db")).unwrap();
    let mut changes = j.changes();
    put(&j, "LIVE-1", now_rfc3339(), TxnStatus::InProgress).await;
    let ids = changes.recv().await.unwrap();
    assert_eq!(ids.as_slice(), ["LIVE-1"]);
    j.check_writable().await.unwrap();
    j.event("LIVE-1", "stage", Some("pin".into()))
        .await
        .unwrap();
    // The health write names no transaction: the next change is the lazy event's commit.
    let ids = changes.recv().await.unwrap();
    assert_eq!(ids.as_slice(), ["LIVE-1"]);
    let events = j.committed_events("LIVE-1").await.unwrap();
    assert_eq!(events.last().unwrap().event, "stage");
    assert!(events.windows(2).all(|w| w[0].seq < w[1].seq));
}
