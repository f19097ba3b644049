//! The SQLite store's own tests, and the conformance suite run against it. The appends'
//! round trips and the write-ahead log's checks have files of their own.

mod appends;
mod write_ahead_log;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use futures::future::BoxFuture;
use sha2::{Digest, Sha256};
use sqlx::sqlite::SqliteConnectOptions;

use super::errors::explain;
use super::*;
use crate::event::{Envelope, RunStatus};
use crate::store::conformance::{self, StoreFactory, ended, started, step};
use crate::store::{Owner, Store, StoreError, wal};

/// Handles on one SQLite file, as processes sharing it have; breaks it with plain SQL.
struct SqliteFactory {
    dir: tempfile::TempDir,
    admin: SqliteStore,
    /// Whether the handles write small appends on the calling thread, as `runbook run` does.
    inline: bool,
}

impl SqliteFactory {
    async fn new(inline: bool) -> SqliteFactory {
        let dir = tempfile::tempdir().unwrap();
        let admin = open(&dir).await;
        SqliteFactory { dir, admin, inline }
    }
}

impl StoreFactory for SqliteFactory {
    fn open(&self) -> BoxFuture<'_, Arc<dyn Store>> {
        Box::pin(async {
            let store = open(&self.dir).await;
            if self.inline {
                store.append_on_calling_thread().await.unwrap();
            }
            Arc::new(store) as Arc<dyn Store>
        })
    }

    fn tamper<'a>(
        &'a self,
        run_id: &'a str,
        seq: u64,
        from: &'a str,
        to: &'a str,
    ) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            sqlx::query(
                "UPDATE events SET body = replace(body, ?, ?) \
                 WHERE run = (SELECT no FROM runs WHERE id = ?) AND seq = ?",
            )
            .bind(from)
            .bind(to)
            .bind(run_id)
            .bind(to_i64(seq))
            .execute(&self.admin.pool)
            .await
            .unwrap();
        })
    }

    fn lose_event<'a>(&'a self, run_id: &'a str, seq: u64) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            sqlx::query(
                "DELETE FROM events WHERE run = (SELECT no FROM runs WHERE id = ?) AND seq = ?",
            )
            .bind(run_id)
            .bind(to_i64(seq))
            .execute(&self.admin.pool)
            .await
            .unwrap();
        })
    }

    fn expire_leases(&self) -> BoxFuture<'_, ()> {
        Box::pin(async {
            sqlx::query("UPDATE owners SET expires_at_ms = expires_at_ms - 60000")
                .execute(&self.admin.pool)
                .await
                .unwrap();
        })
    }
}

/// Run `run_id` created in `store` and appended to once, with the start of step `step_id`;
/// the lease it was created under.
async fn created_with_one_step(
    store: &SqliteStore,
    run_id: &str,
    step_id: &str,
) -> crate::store::Lease {
    let lease = store
        .create(run_id, &Owner::current(), &started(run_id))
        .await
        .unwrap();
    store
        .append(&lease, 2, &[step(run_id, step_id)])
        .await
        .unwrap();
    lease
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_sqlite_store_passes_the_conformance_suite() {
    conformance::run_all(&SqliteFactory::new(false).await).await;
}

/// The same with small appends written on the calling thread: the fencing, the chain and
/// every refusal are the same.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_sqlite_store_writing_on_the_calling_thread_passes_the_conformance_suite() {
    conformance::run_all(&SqliteFactory::new(true).await).await;
}

fn db_path(dir: &tempfile::TempDir) -> PathBuf {
    // A directory that does not exist yet: open creates it.
    dir.path().join("state").join("runbook.db")
}

async fn open(dir: &tempfile::TempDir) -> SqliteStore {
    SqliteStore::open(&db_path(dir)).await.unwrap()
}

/// What the conformance suite cannot see: the rows, and the chain formula they follow.
#[tokio::test]
async fn events_are_stored_chained_as_documented() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir).await;
    assert_eq!(
        store.location(),
        format!("sqlite:{}", db_path(&dir).display())
    );
    let lease = store
        .create("r1", &Owner::current(), &started("r1"))
        .await
        .unwrap();
    assert_eq!(lease.token.len(), 32);
    let more = [step("r1", "build"), ended("r1", RunStatus::Succeeded, 1500)];
    store.append(&lease, 2, &more).await.unwrap();

    // The chain as documented: sha256(previous + "\n" + seq + "\n" + run_id + "\n" + at +
    // "\n" + body), the body being the bare event, the run id and the time columns.
    let rows: Vec<(i64, String, String, String, String)> = sqlx::query_as(
        "SELECT seq, at, kind, body, \
         CASE typeof(chain) WHEN 'blob' THEN lower(hex(chain)) ELSE chain END \
         FROM event_rows WHERE run_id = 'r1' ORDER BY seq",
    )
    .fetch_all(&store.pool)
    .await
    .unwrap();
    let mut previous = String::new();
    for (seq, at, kind, body, link) in &rows {
        assert!(
            body.starts_with(&format!("{{\"event\":\"{kind}\",")),
            "{body}"
        );
        assert!(
            !body.contains("\"run_id\"") && !body.contains("\"at\""),
            "{body}"
        );
        let digest = Sha256::digest(format!("{previous}\n{seq}\nr1\n{at}\n{body}").as_bytes());
        let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(&hex, link);
        previous = hex;
    }
    // Stored as their 32 bytes, read back as hex.
    let stored: Vec<(String, i64)> =
        sqlx::query_as("SELECT typeof(chain), length(chain) FROM event_rows WHERE run_id = 'r1'")
            .fetch_all(&store.pool)
            .await
            .unwrap();
    assert_eq!(stored, vec![("blob".to_owned(), 32); 3]);
    let kinds: Vec<&str> = rows
        .iter()
        .map(|(_, _, kind, _, _)| kind.as_str())
        .collect();
    assert_eq!(kinds, ["run_started", "step_started", "run_ended"]);
    let (last_seq, last_chain): (i64, String) =
        sqlx::query_as("SELECT last_seq, last_chain FROM runs WHERE id = 'r1'")
            .fetch_one(&store.pool)
            .await
            .unwrap();
    assert_eq!((last_seq, last_chain.clone()), (3, previous));
    // Reports show the head as the run's summary gives it: the stored link.
    assert_eq!(store.run("r1").await.unwrap().chain_head, last_chain);
    let events = store.events("r1").await.unwrap();
    assert_eq!(events[1].at, rows[1].1);

    // The time is a column, but covered by the link all the same.
    sqlx::query("UPDATE events SET at_us = 946684800000000 WHERE seq = 2")
        .execute(&store.pool)
        .await
        .unwrap();
    let error = store.events("r1").await.unwrap_err().to_string();
    assert!(
        error.contains("event 2 is not as it was written"),
        "{error}"
    );
}

/// Rows take few bytes: the run by its number, the time as microseconds, the body without
/// the tag that `kind` holds. What the chain covers is rebuilt from them exactly.
#[tokio::test]
async fn events_are_stored_compactly() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir).await;
    let lease = created_with_one_step(&store, "r1", "build").await;
    type CompactRow = (String, Option<i64>, Option<String>, String, String);
    let rows: Vec<CompactRow> =
        sqlx::query_as("SELECT typeof(run), at_us, at_text, kind, body FROM events ORDER BY seq")
            .fetch_all(&store.pool)
            .await
            .unwrap();
    let events = store.events("r1").await.unwrap();
    for ((run, at_us, at_text, kind, body), event) in rows.iter().zip(&events) {
        assert_eq!(run, "integer");
        assert_eq!(at_text, &None);
        let at: jiff::Timestamp = event.at.parse().unwrap();
        assert_eq!(*at_us, Some(at.as_microsecond()));
        assert!(body.starts_with(','), "{kind}: {body}");
        assert!(!body.contains(kind.as_str()), "{kind}: {body}");
    }
    // A time that would not read back as the same text is kept as text.
    let mut odd = step("r1", "deploy");
    odd.at = "2026-12-03T09:17:58Z".to_owned();
    store
        .append(&lease, 3, std::slice::from_ref(&odd))
        .await
        .unwrap();
    let (at_us, at_text): (Option<i64>, Option<String>) =
        sqlx::query_as("SELECT at_us, at_text FROM events WHERE seq = 3")
            .fetch_one(&store.pool)
            .await
            .unwrap();
    assert_eq!((at_us, at_text.as_deref()), (None, Some(odd.at.as_str())));
    assert_eq!(store.events("r1").await.unwrap()[2], odd);
}

/// A store written before events were compact (version 6) is rewritten by the migration, and
/// every journal in it verifies and reads back as before: bare events with links as bytes,
/// a time kept as other text, and the whole envelopes of the oldest journals.
#[tokio::test]
async fn a_store_of_the_former_layout_is_migrated_and_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("old.db");
    let options = SqliteConnectOptions::new()
        .filename(&path)
        .create_if_missing(true)
        .journal_mode(sqlx::sqlite::SqliteJournalMode::Wal);
    let pool = SqlitePool::connect_with(options).await.unwrap();
    let mut before = sqlx::migrate!("migrations/sqlite");
    let layout = before
        .migrations
        .iter()
        .position(|migration| migration.description.contains("compact events"))
        .expect("the compact events migration");
    before.migrations = std::borrow::Cow::Owned(before.migrations[..layout].to_vec());
    before.run(&pool).await.unwrap();

    let mut odd = step("a", "deploy");
    odd.at = "2026-12-03T09:17:58Z".to_owned();
    let bare = [started("a"), step("a", "build"), odd];
    let envelopes = [started("b"), step("b", "build")];
    for (run_id, events, whole) in [("a", &bare[..], false), ("b", &envelopes[..], true)] {
        let mut previous = String::new();
        for (seq, envelope) in (1i64..).zip(events) {
            let encoded = super::journal::encode(run_id, envelope).unwrap();
            let body = if whole {
                serde_json::to_value(envelope).unwrap().to_string()
            } else {
                encoded.body
            };
            let link = super::journal::chain(&previous, seq, run_id, &envelope.at, &body);
            // The run's row first: events refer to it.
            if seq == 1 {
                sqlx::query(
                    "INSERT INTO runs (id, runbook, file, status, created_at, updated_at, \
                     last_seq, last_chain) VALUES (?, 'deploy', 'd.yaml', 'running', ?, ?, 0, '')",
                )
                .bind(run_id)
                .bind(&envelope.at)
                .bind(&envelope.at)
                .execute(&pool)
                .await
                .unwrap();
            }
            sqlx::query(
                "INSERT INTO events (run_id, seq, at, kind, body, chain) VALUES (?, ?, ?, ?, ?, ?)",
            )
            .bind(run_id)
            .bind(seq)
            .bind(&envelope.at)
            .bind(&encoded.kind)
            .bind(&body)
            .bind(super::journal::link_bytes(&link))
            .execute(&pool)
            .await
            .unwrap();
            sqlx::query("UPDATE runs SET last_seq = ?, last_chain = ? WHERE id = ?")
                .bind(seq)
                .bind(&link)
                .bind(run_id)
                .execute(&pool)
                .await
                .unwrap();
            previous = link;
        }
    }
    pool.close().await;

    let store = SqliteStore::open(&path).await.unwrap();
    assert_eq!(store.events("a").await.unwrap(), bare);
    assert_eq!(store.events("b").await.unwrap(), envelopes);
    let stored: Vec<(String, i64, Option<String>, String)> = sqlx::query_as(
        "SELECT r.id, e.seq, e.at_text, substr(e.body, 1, 1) FROM events e \
         JOIN runs r ON r.no = e.run ORDER BY r.id, e.seq",
    )
    .fetch_all(&store.pool)
    .await
    .unwrap();
    let first = |id: &str, seq: i64| {
        stored
            .iter()
            .find(|row| row.0 == id && row.1 == seq)
            .cloned()
            .unwrap()
    };
    assert_eq!(first("a", 2).2, None);
    assert_eq!(first("a", 2).3, ",");
    assert_eq!(first("a", 3).2.as_deref(), Some("2026-12-03T09:17:58Z"));
    assert_eq!(first("b", 2).3, "{");
    // The view shows them as they were.
    let body: String =
        sqlx::query_scalar("SELECT body FROM event_rows WHERE run_id = 'a' AND seq = 2")
            .fetch_one(&store.pool)
            .await
            .unwrap();
    assert!(body.starts_with("{\"event\":\"step_started\","), "{body}");

    // A migrated run goes on, and its chain with it.
    let lease = store.claim("a", &Owner::current()).await.unwrap();
    let more = step("a", "verify");
    store
        .append(&lease, 4, std::slice::from_ref(&more))
        .await
        .unwrap();
    let events = store.events("a").await.unwrap();
    assert_eq!(events[..3], bare[..]);
    assert_eq!(events[3], more);
}

/// A file left mostly free pages (by a migration that rewrote the events, or a prune cut
/// short) is compacted when the store is next opened.
#[tokio::test]
async fn a_store_mostly_free_pages_is_compacted_at_open() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir).await;
    let pages = |store: &SqliteStore| {
        let pool = store.pool.clone();
        async move {
            sqlx::query_as::<_, (i64, i64)>(
                "SELECT (SELECT page_count FROM pragma_page_count), \
                        (SELECT freelist_count FROM pragma_freelist_count)",
            )
            .fetch_one(&pool)
            .await
            .unwrap()
        }
    };
    sqlx::query(
        "CREATE TABLE filler AS WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n \
         WHERE i < 3000) SELECT randomblob(3000) AS b FROM n",
    )
    .execute(&store.pool)
    .await
    .unwrap();
    sqlx::query("DROP TABLE filler")
        .execute(&store.pool)
        .await
        .unwrap();
    let (before, free) = pages(&store).await;
    assert!(free > 2000 && free * 2 > before, "{free} of {before}");
    store.close().await.unwrap();

    let store = open(&dir).await;
    let (after, free) = pages(&store).await;
    assert!(after < before / 4, "{after} pages, {before} before");
    assert!(free < 100, "{free} free pages left");
}

/// A store opened again is found up to date in one query, and only when the migrator would
/// find nothing to do: a migration changed, failed, missing or from a newer build leaves
/// it to the migrator, which refuses the store.
#[tokio::test]
async fn a_store_is_found_up_to_date_at_opening_only_when_every_migration_is_applied_as_built() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir).await;
    let opening = store
        .look_at_opening()
        .await
        .expect("a migrated store is read");
    assert!(opening.schema_is_current());
    store.close().await.unwrap();

    let cases = [
        (
            "UPDATE _sqlx_migrations SET checksum = x'00' \
             WHERE version = (SELECT max(version) FROM _sqlx_migrations)",
            Some("modified"),
        ),
        (
            "INSERT INTO _sqlx_migrations (version, description, success, checksum, \
             execution_time) VALUES (9999, 'later', true, x'00', 0)",
            Some("a newer version of runbook"),
        ),
        (
            "UPDATE _sqlx_migrations SET success = false \
             WHERE version = (SELECT max(version) FROM _sqlx_migrations)",
            Some("partially applied"),
        ),
        // Applied again, the last migration would fail on the tables it already changed:
        // only the look is checked.
        (
            "DELETE FROM _sqlx_migrations \
             WHERE version = (SELECT max(version) FROM _sqlx_migrations)",
            None,
        ),
    ];
    for (sql, refused) in cases {
        let dir = tempfile::tempdir().unwrap();
        let store = open(&dir).await;
        sqlx::query(sql).execute(&store.pool).await.unwrap();
        let opening = store.look_at_opening().await.expect("the table is read");
        assert!(!opening.schema_is_current(), "found up to date after {sql}");
        store.close().await.unwrap();
        let Some(refused) = refused else { continue };
        let error = match SqliteStore::open(&db_path(&dir)).await {
            Ok(_) => panic!("opened after {sql}"),
            Err(error) => error.to_string(),
        };
        assert!(error.contains(refused), "after {sql}: {error}");
    }

    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir).await;
    sqlx::query("DROP TABLE _sqlx_migrations")
        .execute(&store.pool)
        .await
        .unwrap();
    assert!(store.look_at_opening().await.is_none());
}

/// Journals written before events were stored bare hold the whole envelope as each body,
/// chained over the body alone: they read back, and a run resumed from one continues its
/// chain with bare events.
#[tokio::test]
async fn a_journal_of_whole_envelopes_reads_back_and_grows() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir).await;
    let lease = created_with_one_step(&store, "old", "build").await;
    let written = store.events("old").await.unwrap();
    // Rewrite the rows as the earlier version wrote them: the envelope as JSON, chained by
    // sha256(previous + "\n" + seq + "\n" + body).
    let mut previous = String::new();
    for (seq, envelope) in (1i64..).zip(&written) {
        let body = serde_json::to_value(envelope).unwrap().to_string();
        assert!(body.starts_with("{\"run_id\":\"old\",\"at\":"), "{body}");
        let digest = Sha256::digest(format!("{previous}\n{seq}\n{body}").as_bytes());
        let link: String = digest.iter().map(|b| format!("{b:02x}")).collect();
        sqlx::query("UPDATE events SET body = ?, chain = ? WHERE run = 1 AND seq = ?")
            .bind(&body)
            .bind(&link)
            .bind(seq)
            .execute(&store.pool)
            .await
            .unwrap();
        previous = link;
    }
    sqlx::query("UPDATE runs SET last_chain = ? WHERE id = 'old'")
        .bind(&previous)
        .execute(&store.pool)
        .await
        .unwrap();
    assert_eq!(store.events("old").await.unwrap(), written);

    // The chain goes on with bare events after the old ones.
    let more = [
        step("old", "deploy"),
        ended("old", RunStatus::Succeeded, 10),
    ];
    store.append(&lease, 3, &more).await.unwrap();
    let events = store.events("old").await.unwrap();
    assert_eq!(events.len(), 4);
    assert_eq!(events[..2], written[..]);
    assert_eq!(events[2..], more[..]);
    let bodies: Vec<String> =
        sqlx::query_scalar("SELECT body FROM event_rows WHERE run_id = 'old' ORDER BY seq")
            .fetch_all(&store.pool)
            .await
            .unwrap();
    assert!(bodies[1].starts_with("{\"run_id\""), "{}", bodies[1]);
    assert!(bodies[2].starts_with("{\"event\""), "{}", bodies[2]);

    // An old body moved to another run is still refused.
    sqlx::query("UPDATE events SET body = replace(body, '\"run_id\":\"old\"', '\"run_id\":\"new\"') WHERE seq = 1")
        .execute(&store.pool)
        .await
        .unwrap();
    let error = store.events("old").await.unwrap_err().to_string();
    assert!(
        error.contains("event 1 is not as it was written"),
        "{error}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_processes_may_create_the_store_at_once() {
    for _ in 0..10 {
        let dir = tempfile::tempdir().unwrap();
        let path = db_path(&dir);
        let (one, two) = tokio::join!(SqliteStore::open(&path), SqliteStore::open(&path));
        let (one, two) = (one.unwrap(), two.unwrap());
        let lease = one
            .create("r1", &Owner::current(), &started("r1"))
            .await
            .unwrap();
        two.release(&lease).await.unwrap();
        assert_eq!(two.events("r1").await.unwrap().len(), 1);
    }
}

#[tokio::test]
async fn files_that_are_not_stores_are_refused_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notes.db");
    std::fs::write(
        &path,
        "these are not the pages you are looking for\n".repeat(100),
    )
    .unwrap();
    let error = SqliteStore::open(&path).await.err().unwrap();
    assert!(matches!(error, StoreError::Damaged { .. }), "{error}");
    let message = error.to_string();
    assert!(message.contains("notes.db"), "{message}");
    assert!(message.contains("not a SQLite database"), "{message}");

    let error = SqliteStore::open(dir.path()).await.err().unwrap();
    assert!(matches!(error, StoreError::Database { .. }), "{error}");
    assert!(
        error
            .to_string()
            .contains(&dir.path().display().to_string()),
        "{error}"
    );
}

#[tokio::test]
async fn a_full_disk_is_reported_as_such() {
    // SQLite answers SQLITE_FULL when a file reaches its page limit, as when the disk is
    // full.
    let dir = tempfile::tempdir().unwrap();
    let options = SqliteConnectOptions::new()
        .filename(dir.path().join("small.db"))
        .create_if_missing(true)
        .pragma("max_page_count", "4");
    let pool = SqlitePool::connect_with(options).await.unwrap();
    sqlx::query("CREATE TABLE t (x BLOB)")
        .execute(&pool)
        .await
        .unwrap();
    let error = sqlx::query("INSERT INTO t VALUES (zeroblob(100000))")
        .execute(&pool)
        .await
        .unwrap_err();
    let error = explain("sqlite:small.db", "appending to run `r1`", error);
    match &error {
        StoreError::Full(detail) => {
            assert!(
                detail.starts_with("sqlite:small.db could not grow while appending"),
                "{detail}"
            );
        }
        other => panic!("expected Full, got {other}"),
    }
    pool.close().await;
}
