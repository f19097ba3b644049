//! Failures in words: PostgreSQL's SQLSTATE codes and connection errors turned into errors a
//! person can act on.

use crate::store::StoreError;

/// A database error in words: what the store was doing, and what went wrong. `location` is
/// the store's URL with its password masked; the driver's messages never hold the password.
pub(super) fn explain(location: &str, doing: &str, error: sqlx::Error) -> StoreError {
    let database = |detail: String| StoreError::Database {
        location: location.to_owned(),
        detail,
    };
    match error {
        sqlx::Error::Database(error) => {
            let code = error.code().map(|c| c.into_owned()).unwrap_or_default();
            let message = error.message();
            match code.as_str() {
                // disk_full, out_of_memory, insufficient_resources
                "53100" => StoreError::Full(format!(
                    "{location} could not grow while {doing} ({message}): the server's disk is \
                     full"
                )),
                // invalid_password, invalid_authorization_specification
                "28P01" | "28000" => database(format!(
                    "{doing}: the server refused the user or password ({message}); give the \
                     password in the URL, PGPASSWORD or the file RUNBOOK_STORE_PASSWORD_FILE \
                     names"
                )),
                // invalid_catalog_name
                "3D000" => database(format!(
                    "{doing}: {message}; create the database first (see the deployment guide)"
                )),
                // insufficient_privilege
                "42501" => database(format!(
                    "{doing}: permission denied ({message}); the user needs to own the \
                     database, or be granted CREATE on its schema"
                )),
                // data_corrupted, index_corrupted
                "XX001" | "XX002" => StoreError::Damaged {
                    location: location.to_owned(),
                    detail: format!("{doing}: PostgreSQL reports that {message}"),
                },
                _ => database(format!("{doing}: {message} (SQLSTATE {code})")),
            }
        }
        sqlx::Error::Io(error) => database(format!(
            "{doing}: cannot reach the server ({error}); check that PostgreSQL runs there and \
             accepts connections on that host and port"
        )),
        sqlx::Error::Tls(error) => database(format!(
            "{doing}: TLS failed ({error}); the server's certificate must be valid for its \
             name (sslmode=verify-full, the default), or name the CA with sslrootcert="
        )),
        sqlx::Error::PoolTimedOut => database(format!(
            "{doing}: no connection to the server within the time allowed; check that \
             PostgreSQL runs there and accepts connections"
        )),
        other => database(format!("{doing}: {other}")),
    }
}
