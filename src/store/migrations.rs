//! Whether a store's tables are already what this build's migrations make them, from one
//! read of sqlx's table of migrations.
//!
//! Every command that opens a store waits for that answer. sqlx's migrator finds it in
//! three queries (its table made if missing, a failed migration looked for, the applied
//! ones listed), and PostgreSQL's takes and gives back an advisory lock around them: five
//! round trips to the server, or to SQLite's connection thread, before it finds nothing to
//! do. One query of the same rows tells the same when the tables are up to date; in every
//! other case the migrator runs as before, and applies what is missing or says what is
//! wrong.

use sqlx::migrate::Migrator;

/// One row of sqlx's table of migrations: version, checksum, success.
pub(crate) type AppliedMigration = (i64, Vec<u8>, bool);

/// The query of the rows [`is_current`] looks at, in the order of their versions.
pub(crate) fn applied_query(migrator: &Migrator) -> String {
    format!(
        "SELECT version, checksum, success FROM {} ORDER BY version",
        migrator.table_name
    )
}

/// Whether the migrator would find nothing to do and nothing wrong in `applied` (the rows of
/// its table, in the order of their versions): every migration of `migrator` applied,
/// successfully and with its checksum, and no other. Anything else (a migration to apply, a
/// failed or changed one, one of a newer build) is for the migrator.
pub(crate) fn is_current(migrator: &Migrator, applied: &[AppliedMigration]) -> bool {
    let mut expected: Vec<(i64, &[u8])> = migrator
        .iter()
        .filter(|migration| !migration.migration_type.is_down_migration())
        .map(|migration| (migration.version, &migration.checksum[..]))
        .collect();
    expected.sort_by_key(|&(version, _)| version);
    applied.len() == expected.len()
        && applied.iter().zip(&expected).all(
            |((version, checksum, success), (want_version, want_checksum))| {
                *success && version == want_version && checksum[..] == **want_checksum
            },
        )
}
