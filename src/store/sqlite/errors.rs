//! Failures in words: SQLite's result codes turned into errors a person can act on.

use super::{BUSY_TIMEOUT, SqliteStore};
use crate::store::StoreError;

// SQLite's primary result codes (https://www.sqlite.org/rescode.html): the low byte of an
// extended code.
const SQLITE_PERM: i32 = 3;
const SQLITE_BUSY: i32 = 5;
const SQLITE_LOCKED: i32 = 6;
const SQLITE_READONLY: i32 = 8;
const SQLITE_IOERR: i32 = 10;
const SQLITE_CORRUPT: i32 = 11;
pub(super) const SQLITE_FULL: i32 = 13;
const SQLITE_CANTOPEN: i32 = 14;
const SQLITE_AUTH: i32 = 23;
/// SQLITE_IOERR_SHMSIZE: the wal-index (`-shm`) could not be grown, which on Linux means the
/// disk (or the tmpfs) has no room left.
const SQLITE_IOERR_SHMSIZE: i32 = SQLITE_IOERR | (19 << 8);
const SQLITE_NOTADB: i32 = 26;

/// Why an operation failed, before it is put into words: an answer of the store's own, or a
/// database error that still needs to say what the store was doing.
pub(in crate::store) enum Failure {
    Store(StoreError),
    Sql(sqlx::Error),
}

impl From<StoreError> for Failure {
    fn from(error: StoreError) -> Self {
        Failure::Store(error)
    }
}

impl From<sqlx::Error> for Failure {
    fn from(error: sqlx::Error) -> Self {
        Failure::Sql(error)
    }
}

pub(in crate::store) type Outcome<T> = Result<T, Failure>;

impl SqliteStore {
    /// Turns a failure into the error callers see, saying what the store was doing.
    pub(super) fn explain(&self, failure: Failure, doing: impl FnOnce() -> String) -> StoreError {
        match failure {
            Failure::Store(error) => error,
            Failure::Sql(error) => explain(&self.location, &doing(), error),
        }
    }
}

/// Whether SQLite refused because another connection held a lock.
pub(super) fn is_busy(error: &sqlx::Error) -> bool {
    let sqlx::Error::Database(error) = error else {
        return false;
    };
    let code: i32 = error.code().and_then(|c| c.parse().ok()).unwrap_or(0);
    matches!(code & 0xff, SQLITE_BUSY | SQLITE_LOCKED)
}

/// A database error in words: what the store was doing, and what went wrong in terms a
/// person can act on.
pub(super) fn explain(location: &str, doing: &str, error: sqlx::Error) -> StoreError {
    let database = |detail: String| StoreError::Database {
        location: location.to_owned(),
        detail,
    };
    match error {
        sqlx::Error::Database(error) => {
            let code: i32 = error.code().and_then(|c| c.parse().ok()).unwrap_or(0);
            explain_code(location, doing, code, error.message())
        }
        sqlx::Error::Io(error) if error.kind() == std::io::ErrorKind::StorageFull => {
            StoreError::Full(format!("{location} could not grow while {doing} ({error})"))
        }
        sqlx::Error::Io(error) => database(format!("{doing}: {error}")),
        sqlx::Error::PoolTimedOut => {
            database(format!("{doing}: no connection to it became free in time"))
        }
        other => database(format!("{doing}: {other}")),
    }
}

/// The same for an error of a connection of the appends made on the caller's thread.
pub(super) fn explain_inline(location: &str, doing: &str, error: rusqlite::Error) -> StoreError {
    match error {
        rusqlite::Error::SqliteFailure(failure, message) => {
            let message = message.unwrap_or_else(|| failure.to_string());
            explain_code(location, doing, failure.extended_code, &message)
        }
        other => StoreError::Database {
            location: location.to_owned(),
            detail: format!("{doing}: {other}"),
        },
    }
}

/// SQLite's result code `code` (extended) and its message, in words.
fn explain_code(location: &str, doing: &str, code: i32, message: &str) -> StoreError {
    let database = |detail: String| StoreError::Database {
        location: location.to_owned(),
        detail,
    };
    let full = code & 0xff == SQLITE_FULL || code == SQLITE_IOERR_SHMSIZE;
    match code & 0xff {
        _ if full => {
            // SQLite calls a -shm file it cannot grow a "disk I/O error"; say what it is.
            let cause = if code == SQLITE_IOERR_SHMSIZE {
                "no room left for its -shm file"
            } else {
                message
            };
            StoreError::Full(format!(
                "{location} could not grow while {doing} ({cause}): the disk is full; \
                         free some space on it"
            ))
        }
        SQLITE_CORRUPT => StoreError::Damaged {
            location: location.to_owned(),
            detail: format!(
                "{doing}: SQLite reports that {message}. Keep a copy of the file and its \
                         -wal and -shm files for inspection, and restore it from a backup"
            ),
        },
        SQLITE_NOTADB => StoreError::Damaged {
            location: location.to_owned(),
            detail: format!(
                "{doing}: the file is not a SQLite database, or its header is damaged \
                         ({message})"
            ),
        },
        SQLITE_BUSY | SQLITE_LOCKED => database(format!(
            "{doing}: another process kept it locked for more than {} s ({message})",
            BUSY_TIMEOUT.as_secs()
        )),
        SQLITE_PERM | SQLITE_AUTH => database(format!("{doing}: permission denied ({message})")),
        SQLITE_READONLY => database(format!(
            "{doing}: it cannot be written: the file or its directory is read-only for \
                     this user ({message})"
        )),
        SQLITE_CANTOPEN => database(format!(
            "{doing}: the file cannot be opened: check that it is a file, not a \
                     directory, and that this user may read and write both it and its \
                     directory ({message})"
        )),
        SQLITE_IOERR => database(format!(
            "{doing}: input/output error ({message}, SQLite code {code})"
        )),
        _ => database(format!("{doing}: {message} (SQLite code {code})")),
    }
}
