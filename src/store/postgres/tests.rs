//! The conformance suite against a real PostgreSQL: the server `RUNBOOK_TEST_POSTGRES_URL`
//! names (scripts/pg-sandbox.sh starts one and writes the variable; scripts/test-all.sh always
//! does). Each run works in a database of its own, made here and dropped at the end.

use std::str::FromStr;
use std::sync::Arc;

use futures::future::BoxFuture;
use sqlx::postgres::{PgConnectOptions, PgPool};

use super::{PostgresLocation, PostgresStore, to_i64};
use crate::store::conformance::{self, StoreFactory, ended, started, step};
use crate::store::sqlite::SqliteStore;
use crate::store::{Owner, Store};

pub(crate) const URL_VAR: &str = "RUNBOOK_TEST_POSTGRES_URL";

/// The sandbox's URL; without it the test fails, saying how to get one (never skipped).
fn server_url() -> String {
    std::env::var(URL_VAR)
        .ok()
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| {
            panic!(
                "{URL_VAR} is not set: the PostgreSQL store's tests need a server. Start one with \
             `scripts/pg-sandbox.sh start DIR` and `source DIR/env` (scripts/test-all.sh does \
             both), then run the tests again"
            )
        })
}

/// A database of its own on the sandbox server, dropped when the test ends.
struct ScratchDatabase {
    admin: PgPool,
    name: String,
    url: String,
}

impl ScratchDatabase {
    async fn new() -> ScratchDatabase {
        let server = server_url();
        let admin = PgPool::connect_with(PgConnectOptions::from_str(&server).unwrap())
            .await
            .unwrap_or_else(|error| panic!("cannot reach the server {URL_VAR} names: {error}"));
        let name = format!("runbook_test_{:016x}", rand::random::<u64>());
        // The name is made here of hex digits: nothing to escape.
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&admin)
            .await
            .unwrap();
        let mut url = url::Url::parse(&server).unwrap();
        url.set_path(&name);
        ScratchDatabase {
            admin,
            name,
            url: url.to_string(),
        }
    }

    fn location(&self) -> PostgresLocation {
        PostgresLocation::parse(&self.url).unwrap()
    }

    async fn drop_it(self) {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "DROP DATABASE {} WITH (FORCE)",
            self.name
        )))
        .execute(&self.admin)
        .await
        .unwrap();
    }
}

/// Handles on one database, as processes sharing it have; breaks it with plain SQL.
struct PostgresFactory {
    database: ScratchDatabase,
    admin: PostgresStore,
}

impl PostgresFactory {
    async fn new() -> PostgresFactory {
        let database = ScratchDatabase::new().await;
        let admin = PostgresStore::open(&database.location()).await.unwrap();
        PostgresFactory { database, admin }
    }
}

impl StoreFactory for PostgresFactory {
    fn open(&self) -> BoxFuture<'_, Arc<dyn Store>> {
        Box::pin(async {
            Arc::new(
                PostgresStore::open(&self.database.location())
                    .await
                    .unwrap(),
            ) as Arc<dyn Store>
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
                "UPDATE events SET body = replace(body, $1, $2) WHERE run_id = $3 AND seq = $4",
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
            sqlx::query("DELETE FROM events WHERE run_id = $1 AND seq = $2")
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

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_postgres_store_passes_the_conformance_suite() {
    let factory = PostgresFactory::new().await;
    conformance::run_all(&factory).await;
    factory.admin.close().await.unwrap();
    factory.database.drop_it().await;
}

/// A journal copied row for row from SQLite (as its `event_rows` view shows it: run id, time
/// and whole body) into PostgreSQL verifies there, and reads back the same events: both
/// stores hash the same chain.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_journal_copied_from_sqlite_verifies_the_same() {
    let dir = tempfile::tempdir().unwrap();
    let sqlite = SqliteStore::open(&dir.path().join("runbook.db"))
        .await
        .unwrap();
    let owner = Owner::current();
    let lease = sqlite
        .create("copied", &owner, &started("copied"))
        .await
        .unwrap();
    sqlite
        .append(
            &lease,
            2,
            &[
                step("copied", "build"),
                ended("copied", crate::event::RunStatus::Succeeded, 20),
            ],
        )
        .await
        .unwrap();
    let events = sqlite.events("copied").await.unwrap();
    let sqlite_pool = sqlx::sqlite::SqlitePool::connect_with(
        sqlx::sqlite::SqliteConnectOptions::new().filename(dir.path().join("runbook.db")),
    )
    .await
    .unwrap();
    let run: (String, String, String, String, String, String, i64, String) = sqlx::query_as(
        "SELECT id, runbook, file, status, created_at, updated_at, last_seq, last_chain \
         FROM runs WHERE id = 'copied'",
    )
    .fetch_one(&sqlite_pool)
    .await
    .unwrap();
    let rows: Vec<(i64, String, String, String, String)> = sqlx::query_as(
        "SELECT seq, at, kind, body, \
         CASE typeof(chain) WHEN 'blob' THEN lower(hex(chain)) ELSE chain END \
         FROM event_rows WHERE run_id = 'copied' ORDER BY seq",
    )
    .fetch_all(&sqlite_pool)
    .await
    .unwrap();
    sqlite_pool.close().await;

    let database = ScratchDatabase::new().await;
    let postgres = PostgresStore::open(&database.location()).await.unwrap();
    sqlx::query(
        "INSERT INTO runs (id, runbook, file, status, created_at, updated_at, last_seq, \
         last_chain) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(&run.0)
    .bind(&run.1)
    .bind(&run.2)
    .bind(&run.3)
    .bind(&run.4)
    .bind(&run.5)
    .bind(run.6)
    .bind(&run.7)
    .execute(&postgres.pool)
    .await
    .unwrap();
    for (seq, at, kind, body, chain) in &rows {
        sqlx::query(
            "INSERT INTO events (run_id, seq, at, kind, body, chain) \
             VALUES ('copied', $1, $2, $3, $4, $5)",
        )
        .bind(seq)
        .bind(at)
        .bind(kind)
        .bind(body)
        .bind(chain)
        .execute(&postgres.pool)
        .await
        .unwrap();
    }
    assert_eq!(postgres.events("copied").await.unwrap(), events);
    // And the other way round holds by the same code: a link changed in the copy is noticed.
    sqlx::query("UPDATE events SET chain = 'x' || chain WHERE run_id = 'copied' AND seq = 2")
        .execute(&postgres.pool)
        .await
        .unwrap();
    let error = postgres.events("copied").await.unwrap_err().to_string();
    assert!(
        error.contains("event 2 is not as it was written"),
        "{error}"
    );
    postgres.close().await.unwrap();
    sqlite.close().await.unwrap();
    database.drop_it().await;
}

/// Tables already up to date are found so in one query, without the migrator and its lock,
/// and only when the migrator would find nothing to do: a migration changed, failed, missing
/// or from a newer build leaves it to the migrator, which refuses the database. Each case is
/// undone before the next, and the tables found up to date again, so that each stands alone.
#[tokio::test]
async fn tables_are_found_up_to_date_only_when_every_migration_is_applied_as_built() {
    let database = ScratchDatabase::new().await;
    let store = PostgresStore::open(&database.location()).await.unwrap();
    assert!(store.schema_is_current().await);
    let execute = |sql: &'static str| {
        let pool = store.pool.clone();
        async move { sqlx::query(sql).execute(&pool).await.unwrap() }
    };
    execute("CREATE TABLE kept_migrations AS SELECT * FROM _sqlx_migrations").await;
    let cases = [
        (
            "UPDATE _sqlx_migrations SET checksum = decode('00', 'hex') \
             WHERE version = (SELECT max(version) FROM kept_migrations)",
            Some("modified"),
        ),
        (
            "INSERT INTO _sqlx_migrations (version, description, success, checksum, \
             execution_time) VALUES (9999, 'later', true, decode('00', 'hex'), 0)",
            Some("a newer version of runbook"),
        ),
        (
            "UPDATE _sqlx_migrations SET success = false \
             WHERE version = (SELECT max(version) FROM kept_migrations)",
            Some("partially applied"),
        ),
        // Applied again, the last migration would fail on the tables it already changed:
        // only the look is checked.
        (
            "DELETE FROM _sqlx_migrations \
             WHERE version = (SELECT max(version) FROM kept_migrations)",
            None,
        ),
    ];
    for (sql, refused) in cases {
        execute(sql).await;
        assert!(
            !store.schema_is_current().await,
            "found up to date after {sql}"
        );
        if let Some(refused) = refused {
            // On a connection of its own, closed after: a refusing migrator keeps its
            // advisory lock, which only the end of its session lets go of.
            let mut connection = store.pool.acquire().await.unwrap().detach();
            let error = super::MIGRATOR.run(&mut connection).await.unwrap_err();
            let _ = sqlx::Connection::close(connection).await;
            let error = store.migration_failed(error).to_string();
            assert!(error.contains(refused), "after {sql}: {error}");
        }
        execute("DELETE FROM _sqlx_migrations").await;
        execute("INSERT INTO _sqlx_migrations SELECT * FROM kept_migrations").await;
        assert!(store.schema_is_current().await, "undone after {sql}");
    }
    execute("DROP TABLE _sqlx_migrations").await;
    assert!(!store.schema_is_current().await, "no table of migrations");
    store.close().await.unwrap();
    database.drop_it().await;
}

/// A message naming the store shows the URL with its password masked, for every error it
/// can give: here a refused connection and a wrong password.
#[tokio::test]
async fn errors_name_the_store_without_its_password() {
    let server = url::Url::parse(&server_url()).unwrap();
    // A port nothing listens on: bound, read, and let go.
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let refused = format!("postgres://runbook:hunter2@127.0.0.1:{port}/runbook?sslmode=disable");
    let error = PostgresStore::open(&PostgresLocation::parse(&refused).unwrap())
        .await
        .err()
        .unwrap()
        .to_string();
    assert!(error.contains("cannot reach the server"), "{error}");
    assert!(error.contains("runbook:***@127.0.0.1"), "{error}");
    assert!(!error.contains("hunter2"), "{error}");

    let mut wrong = server.clone();
    wrong.set_password(Some("hunter2")).unwrap();
    let error = PostgresStore::open(&PostgresLocation::parse(wrong.as_str()).unwrap())
        .await
        .err()
        .unwrap()
        .to_string();
    assert!(error.contains("refused the user or password"), "{error}");
    assert!(!error.contains("hunter2"), "{error}");
}

/// A connection cut in the middle of an append (the server restarting, a failover) is waited
/// out: the append is tried again on a new connection and its events are written once. The
/// cut is made certain by holding the run's row, so that the append waits in its transaction,
/// and ending that backend with `pg_terminate_backend`, as a shutdown does (SQLSTATE 57P01).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_append_whose_connection_is_cut_is_tried_again_and_written_once() {
    let database = ScratchDatabase::new().await;
    let store = Arc::new(PostgresStore::open(&database.location()).await.unwrap());
    let owner = Owner::current();
    let lease = store.create("cut", &owner, &started("cut")).await.unwrap();
    let admin = PgPool::connect_with(PgConnectOptions::from_str(&database.url).unwrap())
        .await
        .unwrap();
    let mut holder = admin.begin().await.unwrap();
    sqlx::query("SELECT id FROM runs WHERE id = 'cut' FOR UPDATE")
        .execute(&mut *holder)
        .await
        .unwrap();
    let appending = tokio::spawn({
        let store = store.clone();
        let lease = lease.clone();
        async move { store.append(&lease, 2, &[step("cut", "build")]).await }
    });
    // The append's backend, once it waits for the row.
    let waiting = loop {
        let pids: Vec<i32> = sqlx::query_scalar(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() \
             AND wait_event_type = 'Lock' AND pid <> pg_backend_pid()",
        )
        .fetch_all(&admin)
        .await
        .unwrap();
        if let Some(pid) = pids.first() {
            break *pid;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    };
    let ended: bool = sqlx::query_scalar("SELECT pg_terminate_backend($1)")
        .bind(waiting)
        .fetch_one(&admin)
        .await
        .unwrap();
    assert!(ended, "the append's backend was ended");
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    holder.commit().await.unwrap();
    appending
        .await
        .unwrap()
        .expect("the append waits out the cut connection");
    let events = store.events("cut").await.unwrap();
    assert_eq!(events.len(), 2, "the step's event is written once");
    assert_eq!(events[1].event, step("cut", "build").event);
    admin.close().await;
    store.close().await.unwrap();
    database.drop_it().await;
}
