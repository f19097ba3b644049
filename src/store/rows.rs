//! Reading the `runs` table's rows, the same for every SQL store: the columns and their
//! meaning are shared, only the driver differs.

use super::{Owner, RunSummary};
use crate::event::RunStatus;
use sqlx::{ColumnIndex, Decode, Row, Type};

/// A run's summary from a row of `runs` joined with its owner (`pid`, `host`,
/// `process_start`, `since`).
pub(super) fn summary_from<'r, R>(row: &'r R) -> Result<RunSummary, sqlx::Error>
where
    R: Row,
    &'r str: ColumnIndex<R>,
    String: Decode<'r, R::Database> + Type<R::Database>,
    i64: Decode<'r, R::Database> + Type<R::Database>,
{
    let ended_at: Option<String> = row.try_get("ended_at")?;
    let duration_ms: Option<i64> = row.try_get("duration_ms")?;
    Ok(RunSummary {
        id: row.try_get("id")?,
        runbook: row.try_get("runbook")?,
        file: row.try_get("file")?,
        status: status_from(row.try_get("status")?)?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
        // The total is kept across a resume, but is the run's duration only once it ended.
        duration_ms: ended_at
            .as_ref()
            .and(duration_ms)
            .and_then(|ms| u64::try_from(ms).ok()),
        ended_at,
        owner: owner_from(row)?,
        chain_head: row.try_get("last_chain")?,
    })
}

/// A status as the `runs` table keeps it: the name of a [`RunStatus`].
pub(super) fn status_from(name: String) -> Result<RunStatus, sqlx::Error> {
    RunStatus::from_name(&name)
        .ok_or_else(|| sqlx::Error::Decode(format!("`{name}` is not the status of a run").into()))
}

/// The owner recorded in a row's `pid`, `host`, `process_start` and `since`, if any.
pub(super) fn owner_from<'r, R>(row: &'r R) -> Result<Option<Owner>, sqlx::Error>
where
    R: Row,
    &'r str: ColumnIndex<R>,
    String: Decode<'r, R::Database> + Type<R::Database>,
    i64: Decode<'r, R::Database> + Type<R::Database>,
{
    let pid: Option<i64> = row.try_get("pid")?;
    let host: Option<String> = row.try_get("host")?;
    let process_start: Option<i64> = row.try_get("process_start")?;
    let since: Option<String> = row.try_get("since")?;
    let (Some(pid), Some(host)) = (pid.and_then(|p| u32::try_from(p).ok()), host) else {
        return Ok(None);
    };
    Ok(Some(Owner {
        pid,
        host,
        process_start: process_start.and_then(|t| u64::try_from(t).ok()),
        since: since.unwrap_or_default(),
    }))
}
