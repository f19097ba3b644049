//! Opening a store: the file and its directories, connecting, migrating the schema.

use std::path::Path;
use std::time::Duration;

use sqlx::migrate::{MigrateError, Migrator};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};

use super::errors::{explain, is_busy};
use super::{ATTEMPTS, BUSY_TIMEOUT, MAX_CONNECTIONS, SqliteStore};
use crate::store::migrations::{self, AppliedMigration};
use crate::store::{StoreError, wal};

static MIGRATOR: Migrator = sqlx::migrate!("migrations/sqlite");

/// The database files (device and inode) SQLite has opened in this process. The write-ahead
/// log check reads the `-wal` and `-shm` files with descriptors of its own, and closing a
/// descriptor drops every POSIX lock the process holds on that file, SQLite's included
/// (<https://www.sqlite.org/howtocorrupt.html>, section 2.2). Once this process's
/// connections hold the wal-index's locks, another process opening the store would find them
/// gone, take itself for the first, and reset the wal-index under this one: its mapped `-shm`
/// then faults (SIGBUS) or, worse, it reads a wrong index. So the check, which matters only
/// before the first connection anyway, runs once per file in a process.
static OPENED_HERE: std::sync::Mutex<std::collections::BTreeSet<(u64, u64)>> =
    std::sync::Mutex::new(std::collections::BTreeSet::new());

/// The device and inode of a file, by `stat` (which opens no descriptor).
fn file_id(path: &Path) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path)
        .ok()
        .map(|meta| (meta.dev(), meta.ino()))
}

/// Whether SQLite in this process may hold locks on `file`: it was opened here, and a
/// descriptor of this process still has it open. The second half matters because a file
/// number is reused: once a store's last connection closed (SQLite keeps a descriptor open
/// for as long as any connection, and so any lock, lives), its file may be deleted and its
/// number given to another file, or the files restored from a copy; that file was never
/// checked. Where the descriptors cannot be listed, having opened it is taken as holding it.
fn opened_here(file: (u64, u64)) -> bool {
    let opened = OPENED_HERE
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .contains(&file);
    opened && open_in_this_process(file).unwrap_or(true)
}

/// Whether one of this process's descriptors refers to `file`; `None` if they cannot be
/// listed. `stat` on a `/proc/self/fd` entry reaches the file itself, deleted or not.
fn open_in_this_process(file: (u64, u64)) -> Option<bool> {
    use std::os::unix::fs::MetadataExt;
    let descriptors = std::fs::read_dir("/proc/self/fd").ok()?;
    Some(descriptors.flatten().any(|descriptor| {
        std::fs::metadata(descriptor.path()).is_ok_and(|meta| (meta.dev(), meta.ino()) == file)
    }))
}

impl SqliteStore {
    /// Opens the store at `path`, creating the file and its directory if needed: the
    /// directories owner-only (0700) and the file owner-only (0600), since the journal holds
    /// runbook sources, inputs and outputs. SQLite gives its `-wal` and `-shm` files the
    /// database file's mode.
    pub async fn open(path: &Path) -> Result<Self, StoreError> {
        let location = format!("sqlite:{}", path.display());
        let (db, at) = (path.to_owned(), location.clone());
        tokio::task::spawn_blocking(move || create_private(&db, &at))
            .await
            .map_err(|error| StoreError::Database {
                location: location.clone(),
                detail: format!("creating it failed: {error}"),
            })??;
        Self::connect(path, location).await
    }

    /// Opens a store that must already exist, for commands that only read or answer runs:
    /// [`StoreError::Missing`] rather than a new, empty store.
    pub async fn open_existing(path: &Path) -> Result<Self, StoreError> {
        let location = format!("sqlite:{}", path.display());
        match tokio::fs::metadata(path).await {
            Ok(_) => Self::connect(path, location).await,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                Err(StoreError::Missing(location))
            }
            Err(error) => Err(StoreError::Database {
                location,
                detail: format!("cannot look at the file: {error}"),
            }),
        }
    }

    async fn connect(path: &Path, location: String) -> Result<Self, StoreError> {
        // Before any connection: the first one SQLite opens discards the evidence. Only
        // before this process's first: see `OPENED_HERE`.
        let file = file_id(path);
        if file.is_none_or(|file| !opened_here(file)) {
            let (db, at) = (path.to_owned(), location.clone());
            tokio::task::spawn_blocking(move || wal::check(&db, &at))
                .await
                .map_err(|error| StoreError::Database {
                    location: location.clone(),
                    detail: format!("checking the write-ahead log failed: {error}"),
                })??;
        }
        let options = SqliteConnectOptions::new()
            .filename(path)
            // The file exists by now (`open` made it with its mode); a file that vanished
            // since is not silently replaced by an empty store.
            .create_if_missing(false)
            .journal_mode(SqliteJournalMode::Wal)
            // In WAL mode FULL syncs the log at every commit: a commit that returns survives
            // a power cut, which the journal's promise rests on.
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(BUSY_TIMEOUT)
            .foreign_keys(true);
        // Turning a new file to WAL mode needs the file to itself, and SQLite does not wait
        // for that as it waits for writes: when two processes create the store at once, one
        // is refused at once, and tries again here.
        let deadline = std::time::Instant::now() + BUSY_TIMEOUT;
        let pool = loop {
            let connected = SqlitePoolOptions::new()
                .max_connections(MAX_CONNECTIONS)
                // A connection to a local file does not go stale while it sits in the pool:
                // no ping before each use (a round trip to its thread, on every append).
                .test_before_acquire(false)
                .connect_with(options.clone())
                .await;
            match connected {
                Ok(pool) => break pool,
                Err(error) if is_busy(&error) && std::time::Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                Err(error) => return Err(explain(&location, "opening it", error)),
            }
        };
        if let Some(file) = file {
            OPENED_HERE
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .insert(file);
        }
        let store = SqliteStore {
            pool,
            writer: Default::default(),
            path: path.to_owned(),
            location,
        };
        let opening = match store.look_at_opening().await {
            Some(opening) if opening.schema_is_current() => Some(opening),
            _ => {
                store.migrate().await?;
                store.look_at_opening().await
            }
        };
        if let Some(opening) = opening {
            store.compact_if_mostly_free(opening.pages).await;
        }
        Ok(store)
    }

    /// What the file says of itself when it is opened, in one query (a round trip to the
    /// connection's thread, which every command that opens the store waits for): the
    /// migrations applied to it (see [`migrations`]) and its pages, once a query of their
    /// own. `None` when that cannot be read (a new file, with no table of migrations yet):
    /// the migrator makes the table, and the look is taken again after it.
    pub(super) async fn look_at_opening(&self) -> Option<Opening> {
        let rows: Vec<(i64, Vec<u8>, bool, i64, i64)> =
            sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "SELECT version, checksum, success, \
                    (SELECT freelist_count FROM pragma_freelist_count), \
                    (SELECT page_count FROM pragma_page_count) \
             FROM {} ORDER BY version",
                MIGRATOR.table_name
            )))
            .fetch_all(&self.pool)
            .await
            .ok()?;
        let &(_, _, _, free, total) = rows.first()?;
        Some(Opening {
            applied: rows
                .into_iter()
                .map(|(version, checksum, success, _, _)| (version, checksum, success))
                .collect(),
            pages: Pages { free, total },
        })
    }

    /// Gives back the space of a file that is mostly free pages: after a migration that
    /// rewrote the events (version 7 rewrote them in half the bytes, and SQLite keeps the
    /// freed pages inside the file), or a prune stopped before its own VACUUM. Best effort:
    /// another process using the store may keep it from happening now, and it happens at a
    /// later open.
    async fn compact_if_mostly_free(&self, pages: Pages) {
        /// Below this (4 MB of pages), free pages are not worth a rewrite.
        const WORTH_IT: i64 = 1024;
        if pages.free < WORTH_IT || pages.free * 2 < pages.total {
            return;
        }
        let _ = self.give_space_back().await;
    }

    /// Rewrites the file without its free pages (VACUUM), then folds that back from the
    /// write-ahead log (the checkpoint), so that the file itself shrinks.
    pub(super) async fn give_space_back(&self) -> Result<(), sqlx::Error> {
        sqlx::query("VACUUM").execute(&self.pool).await?;
        sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Brings the schema up to date. SQLite has no lock for migrations: two processes that
    /// create a new file at once both try the first migration, and the loser's transaction
    /// fails; it then finds the migration applied and has nothing left to do.
    async fn migrate(&self) -> Result<(), StoreError> {
        let mut attempt = 1;
        loop {
            let error = match MIGRATOR.run(&self.pool).await {
                Ok(()) => return Ok(()),
                Err(error) => error,
            };
            let retry = matches!(
                error,
                MigrateError::Execute(_) | MigrateError::ExecuteMigration(..)
            );
            if !retry || attempt >= ATTEMPTS {
                return Err(self.migration_failed(error));
            }
            tokio::time::sleep(Duration::from_millis(50 * u64::from(attempt))).await;
            attempt += 1;
        }
    }

    fn migration_failed(&self, error: MigrateError) -> StoreError {
        let doing = "updating its tables";
        match error {
            MigrateError::Execute(error) | MigrateError::ExecuteMigration(error, _) => {
                explain(&self.location, doing, error)
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
}

/// What [`SqliteStore::look_at_opening`] reads.
pub(super) struct Opening {
    applied: Vec<AppliedMigration>,
    pages: Pages,
}

impl Opening {
    /// Whether the migrator would find nothing to do (see [`migrations::is_current`]).
    pub(super) fn schema_is_current(&self) -> bool {
        migrations::is_current(&MIGRATOR, &self.applied)
    }
}

/// A file's pages: how many there are, and how many of them are free.
#[derive(Debug, Clone, Copy)]
struct Pages {
    free: i64,
    total: i64,
}

/// Creates the missing directories of `db` (0700) and the file itself (0600), whatever the
/// umask; existing ones are left as they are.
fn create_private(db: &Path, location: &str) -> Result<(), StoreError> {
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
    let failed = |what: String, error: std::io::Error| StoreError::Database {
        location: location.to_owned(),
        detail: format!("cannot create {what}: {error}"),
    };
    if let Some(parent) = db.parent().filter(|p| !p.as_os_str().is_empty()) {
        let mut missing = Vec::new();
        let mut dir = Some(parent);
        while let Some(at) = dir.filter(|d| !d.as_os_str().is_empty() && !d.exists()) {
            missing.push(at.to_owned());
            dir = at.parent();
        }
        for dir in missing.iter().rev() {
            match std::fs::DirBuilder::new().mode(0o700).create(dir) {
                Ok(()) => std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
                    .map_err(|e| failed(format!("the directory {}", dir.display()), e))?,
                // Another process made it in the meantime.
                Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(error) => {
                    return Err(failed(format!("the directory {}", dir.display()), error));
                }
            }
        }
    }
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(db)
    {
        Ok(file) => file
            .set_permissions(std::fs::Permissions::from_mode(0o600))
            .map_err(|e| failed(format!("the file {}", db.display()), e)),
        Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(error) => Err(failed(format!("the file {}", db.display()), error)),
    }
}
