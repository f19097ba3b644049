//! Which store to use: `--store URL`, else `RUNBOOK_STORE`, else SQLite in the state
//! directory (`$XDG_STATE_HOME/runbook/runbook.db`, by default
//! `~/.local/state/runbook/runbook.db`).

use super::{Store, StoreError};
use std::path::PathBuf;
use std::sync::Arc;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreLocation {
    Sqlite(PathBuf),
}

impl StoreLocation {
    /// Reads `sqlite:PATH` (also `sqlite://PATH`).
    pub fn parse(url: &str) -> Result<Self, StoreError> {
        if let Some(path) = url.strip_prefix("sqlite:") {
            let path = path.strip_prefix("//").unwrap_or(path);
            if path.is_empty() {
                return Err(StoreError::Location(format!(
                    "the store URL `{url}` names no file: use sqlite:PATH"
                )));
            }
            return Ok(StoreLocation::Sqlite(PathBuf::from(path)));
        }
        let scheme = url.split(':').next().unwrap_or(url);
        Err(StoreError::Location(format!(
            "unknown store `{url}`: `{scheme}` is not a kind of store this version knows; use sqlite:PATH"
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
        }
    }
}

/// Opens (creating if needed) the store at `location`.
pub async fn open(location: &StoreLocation) -> Result<Arc<dyn Store>, StoreError> {
    match location {
        StoreLocation::Sqlite(path) => Ok(Arc::new(super::sqlite::SqliteStore::open(path).await?)),
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
        let error = StoreLocation::parse("postgres://db/runs").unwrap_err();
        assert!(error.to_string().contains("`postgres`"), "{error}");
    }
}
