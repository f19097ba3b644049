//! A shared store: one PostgreSQL database that several processes, on several hosts, use at
//! once.
//!
//! The tables and the hash chain are SQLite's: a run reads the same from either, and a
//! journal copied between them verifies the same. What differs is where time comes from:
//! leases and locks are compared with the database's clock (`now()`), since the processes
//! sharing it run on machines whose clocks disagree. Every append is one transaction that
//! locks the run's row, then renews the writer's lease in it: a process whose lease was taken
//! over is refused (fencing), and nothing it meant to write is kept.

use super::StoreError;
use super::migrations::{self, AppliedMigration};
use super::sqlite::errors::Failure;

use sqlx::postgres::PgPool;
use sqlx::{ConnectOptions, Connection};
use std::time::Duration;

mod errors;
mod journal;
mod listen;
mod location;
mod queries;
mod queue;
#[cfg(test)]
mod tests;

pub(crate) use listen::listen;
pub use location::{PASSWORD_FILE_VAR, PostgresLocation, masked_url};

/// Connections per process: appends of one run are sequential, and the rest are reads.
const MAX_CONNECTIONS: u32 = 4;

/// The notification channel an enqueue notifies (the payload is the run id): `serve`
/// workers listening on it claim the run at once instead of at their next look.
pub const QUEUE_CHANNEL: &str = "runbook_queue";

/// The notification channel an answer to an approval notifies (the payload is the run id):
/// a `serve` worker resumes the parked run at once.
pub const APPROVALS_CHANNEL: &str = "runbook_approvals";

/// How long opening waits for the server before saying it cannot be reached.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Now by the database's clock, in milliseconds since the Unix epoch (a macro, so that
/// queries stay static text). `now()` is the start of the transaction: one instant for all
/// the statements of an append.
macro_rules! db_now_ms {
    () => {
        "(extract(epoch from now()) * 1000)::bigint"
    };
}
pub(crate) use db_now_ms;

/// A run with its current lease holder, if any.
macro_rules! summary {
    () => {
        "SELECT r.id, r.runbook, r.file, r.status, r.created_at, r.updated_at, r.ended_at, \
         r.duration_ms, r.last_chain, o.pid, o.host, o.process_start, o.since \
         FROM runs r LEFT JOIN owners o ON o.run_id = r.id AND o.token IS NOT NULL"
    };
}
pub(crate) use summary;

pub struct PostgresStore {
    pool: PgPool,
    location: String,
}

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("migrations/postgres");

/// The databases (by their URL as shown, password masked) this process has opened and
/// brought up to date.
static OPENED: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());

fn opened_before(shown: &str) -> bool {
    OPENED
        .lock()
        .expect("opened lock")
        .iter()
        .any(|url| url == shown)
}

fn remember_opened(shown: &str) {
    let mut opened = OPENED.lock().expect("opened lock");
    if !opened.iter().any(|url| url == shown) {
        opened.push(shown.to_owned());
    }
}

fn pool_options() -> sqlx::postgres::PgPoolOptions {
    sqlx::postgres::PgPoolOptions::new()
        .max_connections(MAX_CONNECTIONS)
        .acquire_timeout(CONNECT_TIMEOUT)
}

impl PostgresStore {
    /// Appends go to the server and back whatever thread sends them: nothing to change.
    async fn write_appends_inline(&self) {}

    /// Closes the pool's connections.
    async fn close_connections(&self) {
        self.pool.close().await;
    }

    /// Connects and brings the tables up to date: one query finds them so when every
    /// migration of this build is applied; otherwise the migrator runs, under PostgreSQL's
    /// advisory lock, which lets one process at a time apply them. The database itself must
    /// exist: its administrator makes it, with the user runbook connects as.
    pub async fn open(location: &PostgresLocation) -> Result<Self, StoreError> {
        let shown = location.to_string();
        let options = location.connect_options()?;
        // A database this process has already opened and brought up to date: a `serve`
        // worker opens a store per run, and must not pay a probe and the migrations' advisory
        // lock (which every worker takes in turn) for each.
        if opened_before(&shown) {
            let store = PostgresStore {
                pool: pool_options().connect_lazy_with(options),
                location: shown,
            };
            // One connection made now, as the migrations would: a server gone since is
            // reported here, and the first statement finds the connection ready.
            sqlx::query("SELECT 1")
                .execute(&store.pool)
                .await
                .map_err(|error| errors::explain(&store.location, "connecting to it", error))?;
            return Ok(store);
        }
        // One connection first, on its own: the pool would retry a refused connection until
        // its timeout and then say only that none came, where this says why.
        let probe = tokio::time::timeout(CONNECT_TIMEOUT, options.connect())
            .await
            .map_err(|_| StoreError::Database {
                location: shown.clone(),
                detail: format!(
                    "connecting to it: no answer within {} s; check that PostgreSQL runs there \
                     and that no firewall drops the connection",
                    CONNECT_TIMEOUT.as_secs()
                ),
            })?
            .map_err(|error| errors::explain(&shown, "connecting to it", error))?;
        let _ = probe.close().await;
        let pool = pool_options().connect_lazy_with(options);
        let store = PostgresStore {
            pool,
            location: shown,
        };
        // Tables already up to date need neither the migrator's queries nor its lock.
        if !store.schema_is_current().await {
            MIGRATOR
                .run(&store.pool)
                .await
                .map_err(|error| store.migration_failed(error))?;
        }
        remember_opened(&store.location);
        Ok(store)
    }

    /// Whether every migration of this build is applied already, in one query (see
    /// [`migrations`]); `false` when that cannot be read (no table of migrations yet).
    async fn schema_is_current(&self) -> bool {
        let applied: Vec<AppliedMigration> =
            match sqlx::query_as(sqlx::AssertSqlSafe(migrations::applied_query(&MIGRATOR)))
                .fetch_all(&self.pool)
                .await
            {
                Ok(rows) => rows,
                Err(_) => return false,
            };
        migrations::is_current(&MIGRATOR, &applied)
    }

    fn migration_failed(&self, error: sqlx::migrate::MigrateError) -> StoreError {
        use sqlx::migrate::MigrateError;
        let doing = "updating its tables";
        match error {
            MigrateError::Execute(error) | MigrateError::ExecuteMigration(error, _) => {
                errors::explain(&self.location, doing, error)
            }
            MigrateError::VersionMissing(version) | MigrateError::VersionTooNew(version, _) => {
                StoreError::Database {
                    location: self.location.clone(),
                    detail: format!(
                        "a newer version of runbook has changed its tables (to version \
                         {version}); use that version, or another store"
                    ),
                }
            }
            other => StoreError::Database {
                location: self.location.clone(),
                detail: format!("{doing}: {other}"),
            },
        }
    }

    /// Turns a failure into the error callers see, saying what the store was doing.
    fn explain(&self, failure: Failure, doing: impl FnOnce() -> String) -> StoreError {
        match failure {
            Failure::Store(error) => error,
            Failure::Sql(error) => errors::explain(&self.location, &doing(), error),
        }
    }
}

crate::store::forward::forward_store!(PostgresStore);

/// Integers are signed in PostgreSQL; the values stored here (tick counts, milliseconds) are
/// far below the limit, and a larger one is kept at the limit rather than wrapped.
fn to_i64(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

fn lease_ms() -> i64 {
    to_i64(u64::try_from(super::run_lease().as_millis()).unwrap_or(u64::MAX))
}

fn corrupt(run_id: &str, detail: String) -> Failure {
    Failure::Store(StoreError::Corrupt {
        run_id: run_id.to_owned(),
        detail,
    })
}
