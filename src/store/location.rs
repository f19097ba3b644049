//! Which store to use: `--store URL`, else `RUNBOOK_STORE`, else SQLite in the state
//! directory (`$XDG_STATE_HOME/runbook/runbook.db`, by default
//! `~/.local/state/runbook/runbook.db`). `postgres://` (or `postgresql://`) URLs name a
//! shared PostgreSQL database.

use super::postgres::PostgresLocation;
use super::{Store, StoreError};
use std::path::PathBuf;
use std::sync::Arc;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreLocation {
    Sqlite(PathBuf),
    /// Its password, if the URL holds one, is never shown (see [`PostgresLocation`]).
    Postgres(PostgresLocation),
}

impl StoreLocation {
    /// Reads `sqlite:PATH` (also `sqlite://PATH`). PATH is a file on disk: SQLite's URI
    /// forms (`file:...`), query parameters (`?mode=memory`, `?nolock=1`) and in-memory
    /// databases are refused, since the journal's promise is a file that survives the
    /// process, safely locked against the other processes that share it.
    ///
    /// Reads `postgres://` and `postgresql://` URLs as [`PostgresLocation::parse`] does.
    pub fn parse(url: &str) -> Result<Self, StoreError> {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            return PostgresLocation::parse(url).map(StoreLocation::Postgres);
        }
        if let Some(path) = url.strip_prefix("sqlite:") {
            let path = path.strip_prefix("//").unwrap_or(path);
            if path.is_empty() {
                return Err(StoreError::Location(format!(
                    "the store URL `{url}` names no file: use sqlite:PATH"
                )));
            }
            let refused = if path.starts_with(":memory:") || path.contains("mode=memory") {
                Some("an in-memory database keeps nothing once the process ends")
            } else if path.starts_with("file:") {
                Some("SQLite URI forms (`file:...`) are not accepted")
            } else if path.contains('?') {
                Some("query parameters are not accepted")
            } else {
                None
            };
            if let Some(reason) = refused {
                return Err(StoreError::Location(format!(
                    "the store URL `{url}` is refused: {reason}; name the database file with \
                     sqlite:PATH (a path on disk, without `?`)"
                )));
            }
            return Ok(StoreLocation::Sqlite(PathBuf::from(path)));
        }
        let scheme = url.split(':').next().unwrap_or(url);
        // Its password, if it holds one, masked.
        let shown = super::postgres::masked_url(url);
        Err(StoreError::Location(format!(
            "unknown store `{shown}`: `{scheme}` is not a kind of store this version knows; use \
             sqlite:PATH or postgres://USER@HOST/DATABASE"
        )))
    }

    /// The default: SQLite in the state directory.
    pub fn default_location() -> Result<Self, StoreError> {
        let state = std::env::var_os("XDG_STATE_HOME")
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
            .or_else(|| {
                std::env::var_os("HOME")
                    .filter(|v| !v.is_empty())
                    .map(|home| PathBuf::from(home).join(".local/state"))
            })
            .ok_or_else(|| {
                StoreError::Location(
                    "no state directory: set XDG_STATE_HOME or HOME, or name a store with --store sqlite:PATH"
                        .to_owned(),
                )
            })?;
        Ok(StoreLocation::Sqlite(
            state.join("runbook").join("runbook.db"),
        ))
    }

    /// `--store` (or `RUNBOOK_STORE`) when given, else the default.
    pub fn resolve(url: Option<&str>) -> Result<Self, StoreError> {
        match url {
            Some(url) => Self::parse(url),
            None => Self::default_location(),
        }
    }
}

impl std::fmt::Display for StoreLocation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StoreLocation::Sqlite(path) => write!(f, "sqlite:{}", path.display()),
            StoreLocation::Postgres(location) => write!(f, "{location}"),
        }
    }
}

/// Opens (creating if needed) the store at `location`.
pub async fn open(location: &StoreLocation) -> Result<Arc<dyn Store>, StoreError> {
    match location {
        StoreLocation::Sqlite(path) => Ok(Arc::new(super::sqlite::SqliteStore::open(path).await?)),
        StoreLocation::Postgres(location) => Ok(Arc::new(
            super::postgres::PostgresStore::open(location).await?,
        )),
    }
}

/// Opens the store at `location` only if it exists ([`StoreError::Missing`] otherwise): for
/// commands that read or answer runs, which have nothing to do in a new store.
pub async fn open_existing(location: &StoreLocation) -> Result<Arc<dyn Store>, StoreError> {
    match location {
        StoreLocation::Sqlite(path) => Ok(Arc::new(
            super::sqlite::SqliteStore::open_existing(path).await?,
        )),
        // A database is made by its administrator, not by runbook: opening it only adds the
        // tables, which an empty store shows as no runs.
        StoreLocation::Postgres(location) => Ok(Arc::new(
            super::postgres::PostgresStore::open(location).await?,
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_urls() {
        assert_eq!(
            StoreLocation::parse("sqlite:/tmp/x.db").unwrap(),
            StoreLocation::Sqlite("/tmp/x.db".into())
        );
        assert_eq!(
            StoreLocation::parse("sqlite://rel/x.db").unwrap(),
            StoreLocation::Sqlite("rel/x.db".into())
        );
        assert!(StoreLocation::parse("sqlite:").is_err());
        for refused in [
            "sqlite:file:m?mode=memory",
            "sqlite::memory:",
            "sqlite:/tmp/x.db?nolock=1",
            "sqlite://file:/tmp/x.db",
        ] {
            let error = StoreLocation::parse(refused).unwrap_err();
            assert!(
                error.to_string().contains("is refused"),
                "{refused}: {error}"
            );
        }
        let error = StoreLocation::parse("mysql://me:hunter2@db/runs").unwrap_err();
        assert!(error.to_string().contains("`mysql`"), "{error}");
        assert!(!error.to_string().contains("hunter2"), "{error}");
    }
}
