//! A PostgreSQL store's URL: read once, checked for a safe TLS mode, and shown only with its
//! password masked.

use std::fmt;
use std::str::FromStr;

use sqlx::postgres::{PgConnectOptions, PgSslMode};

use crate::store::StoreError;

/// The environment variable naming a file that holds the store's password, for when neither
/// the URL nor `PGPASSWORD` gives one.
pub const PASSWORD_FILE_VAR: &str = "RUNBOOK_STORE_PASSWORD_FILE";

/// Where a PostgreSQL store is: `postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE[?sslmode=...]`.
///
/// TLS is verified unless the URL says otherwise: without `sslmode` the connection uses
/// `verify-full` (encrypted, the server's certificate checked against the system's roots and
/// its name). `sslmode=disable` is accepted only for a Unix socket or this machine
/// (`localhost`, `127.0.0.1`, `::1`); `prefer` and `allow`, which fall back to plain text
/// without saying so, are refused.
#[derive(Clone, PartialEq, Eq)]
pub struct PostgresLocation {
    /// The URL as given, password included: only ever handed to the driver.
    url: String,
    /// The URL with its password replaced by `***`: what messages show.
    shown: String,
    /// The TLS mode the URL asks for; `None` when it names none (then `verify-full`).
    sslmode: Option<String>,
}

impl PostgresLocation {
    pub fn parse(url: &str) -> Result<Self, StoreError> {
        let scheme = url.split(':').next().unwrap_or("postgres");
        let parsed = url::Url::parse(url).map_err(|error| {
            // The text may hold a password: show none of it past the scheme.
            StoreError::Location(format!(
                "the store URL `{scheme}://...` cannot be read: {error}; use \
                 postgres://USER@HOST/DATABASE"
            ))
        })?;
        let shown = masked(&parsed);
        let refuse = |why: String| {
            StoreError::Location(format!("the store URL `{shown}` is refused: {why}"))
        };
        if parsed.path().trim_start_matches('/').is_empty()
            && !parsed.query_pairs().any(|(key, _)| key == "dbname")
        {
            return Err(refuse(
                "it names no database: use postgres://USER@HOST/DATABASE".to_owned(),
            ));
        }
        let sslmode = parsed
            .query_pairs()
            .find(|(key, _)| key == "sslmode" || key == "ssl-mode")
            .map(|(_, value)| value.into_owned());
        match sslmode.as_deref() {
            None | Some("verify-full" | "verify-ca" | "require") => {}
            Some("disable") => {
                if !is_local(&parsed) {
                    return Err(refuse(
                        "sslmode=disable sends the password and every run in plain text: it is \
                         accepted only for a Unix socket or this machine (localhost, 127.0.0.1, \
                         ::1); use TLS (the default, verify-full) for another host"
                            .to_owned(),
                    ));
                }
            }
            Some(mode @ ("prefer" | "allow")) => {
                return Err(refuse(format!(
                    "sslmode={mode} falls back to an unencrypted connection without saying so; \
                     say verify-full (the default), verify-ca, require, or disable (this \
                     machine only)"
                )));
            }
            Some(other) => {
                return Err(refuse(format!(
                    "`{other}` is not an sslmode; use verify-full (the default), verify-ca, \
                     require, or disable (this machine only)"
                )));
            }
        }
        // The driver reads the rest (host, port, user, database, certificates).
        PgConnectOptions::from_str(url)
            .map_err(|error| refuse(format!("the driver cannot read it: {error}")))?;
        Ok(PostgresLocation {
            url: url.to_owned(),
            shown,
            sslmode,
        })
    }

    /// The driver's options: the URL's, with `verify-full` when it names no TLS mode, and the
    /// password from the URL, else `PGPASSWORD`, else the file `RUNBOOK_STORE_PASSWORD_FILE`
    /// names (its first line).
    pub(super) fn connect_options(&self) -> Result<PgConnectOptions, StoreError> {
        let parsed = url::Url::parse(&self.url).map_err(|error| {
            StoreError::Location(format!("the store URL `{}`: {error}", self.shown))
        })?;
        let mut options = PgConnectOptions::from_str(&self.url).map_err(|error| {
            StoreError::Location(format!("the store URL `{}`: {error}", self.shown))
        })?;
        if self.sslmode.is_none() {
            options = options.ssl_mode(PgSslMode::VerifyFull);
        }
        let has_password = parsed.password().is_some()
            || parsed.query_pairs().any(|(key, _)| key == "password")
            || std::env::var_os("PGPASSWORD").is_some_and(|v| !v.is_empty());
        if !has_password
            && let Some(file) = std::env::var_os(PASSWORD_FILE_VAR).filter(|v| !v.is_empty())
        {
            let text = std::fs::read_to_string(&file).map_err(|error| {
                StoreError::Location(format!(
                    "{PASSWORD_FILE_VAR} names {}, which cannot be read: {error}",
                    std::path::Path::new(&file).display()
                ))
            })?;
            let password = text.lines().next().unwrap_or_default();
            options = options.password(password);
        }
        Ok(options)
    }
}

/// `url` with its password masked, for messages: the whole text when it is not a URL
/// with a password, only its scheme when it cannot be read as a URL at all.
pub fn masked_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(parsed) => masked(&parsed),
        Err(_) if url.contains('@') => {
            format!("{}:...", url.split(':').next().unwrap_or_default())
        }
        Err(_) => url.to_owned(),
    }
}

/// The URL with its password (in the user part or a `password=` parameter) shown as `***`.
fn masked(url: &url::Url) -> String {
    let mut shown = url.clone();
    if shown.password().is_some() {
        let _ = shown.set_password(Some("***"));
    }
    if shown.query_pairs().any(|(key, _)| key == "password") {
        let pairs: Vec<(String, String)> = shown
            .query_pairs()
            .map(|(key, value)| {
                let value = if key == "password" {
                    "***".to_owned()
                } else {
                    value.into_owned()
                };
                (key.into_owned(), value)
            })
            .collect();
        shown.query_pairs_mut().clear().extend_pairs(pairs);
    }
    // `***` in the user part is written percent-encoded; show it as typed.
    shown.to_string().replace("%2A%2A%2A", "***")
}

/// Whether the URL names a Unix socket or this machine.
fn is_local(url: &url::Url) -> bool {
    let socket = url
        .query_pairs()
        .any(|(key, value)| key == "host" && value.starts_with('/'));
    let host = url.host_str().unwrap_or("");
    // A socket's directory may also be the host, percent-encoded: `%2Frun%2Fpostgresql`.
    let socket_host = host.len() >= 3 && host[..3].eq_ignore_ascii_case("%2f");
    socket || socket_host || matches!(host, "" | "localhost" | "127.0.0.1" | "[::1]" | "::1")
}

impl fmt::Display for PostgresLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.shown)
    }
}

/// The masked URL only: a location printed for debugging shows no password either.
impl fmt::Debug for PostgresLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("PostgresLocation")
            .field(&self.shown)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_schemes_are_read_and_the_password_never_shown() {
        for url in [
            "postgres://runbook:hunter2@db.example.com/runs",
            "postgresql://runbook:hunter2@db.example.com:5433/runs?sslmode=verify-ca",
            "postgres://runbook@127.0.0.1/runs?sslmode=disable&password=hunter2",
        ] {
            let location = PostgresLocation::parse(url).unwrap();
            for shown in [location.to_string(), format!("{location:?}")] {
                assert!(!shown.contains("hunter2"), "{shown}");
                assert!(shown.contains("***"), "{shown}");
            }
        }
        let location = PostgresLocation::parse("postgres://runbook:hunter2@db/runs").unwrap();
        assert_eq!(location.to_string(), "postgres://runbook:***@db/runs");
    }

    #[test]
    fn tls_is_verified_unless_the_url_says_otherwise() {
        let location = PostgresLocation::parse("postgres://runbook@db.example.com/runs").unwrap();
        let options = location.connect_options().unwrap();
        assert!(matches!(options.get_ssl_mode(), PgSslMode::VerifyFull));
        for local in [
            "postgres://runbook@localhost/runs?sslmode=disable",
            "postgres://runbook@127.0.0.1:5432/runs?sslmode=disable",
            "postgres://runbook@[::1]/runs?sslmode=disable",
            "postgres:///runs?host=/run/postgresql&user=runbook&sslmode=disable",
            "postgres://%2Frun%2Fpostgresql/runs?sslmode=disable",
        ] {
            let options = PostgresLocation::parse(local)
                .unwrap()
                .connect_options()
                .unwrap();
            assert!(
                matches!(options.get_ssl_mode(), PgSslMode::Disable),
                "{local}"
            );
        }
        for (refused, why) in [
            (
                "postgres://runbook:hunter2@db.example.com/runs?sslmode=disable",
                "plain text",
            ),
            (
                "postgres://runbook@db.example.com/runs?sslmode=prefer",
                "falls back",
            ),
            (
                "postgres://runbook@db.example.com/runs?sslmode=allow",
                "falls back",
            ),
            (
                "postgres://runbook@db.example.com/runs?sslmode=maybe",
                "not an sslmode",
            ),
            ("postgres://runbook@db.example.com", "names no database"),
        ] {
            let error = PostgresLocation::parse(refused).unwrap_err().to_string();
            assert!(error.contains(why), "{refused}: {error}");
            assert!(!error.contains("hunter2"), "{error}");
        }
    }

    #[test]
    fn an_unreadable_url_is_not_echoed() {
        let error = PostgresLocation::parse("postgres://runbook:hunter2@db:notaport/runs")
            .unwrap_err()
            .to_string();
        assert!(!error.contains("hunter2"), "{error}");
        assert!(error.contains("postgres://..."), "{error}");
    }
}
