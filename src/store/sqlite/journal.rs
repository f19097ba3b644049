//! The journal: creating a run, appending events to its hash chain, reading them back.

use sha2::{Digest, Sha256};
use sqlx::Row;

use super::errors::{Failure, Outcome};
use super::leases::{new_token, set_owner};
use super::{SqliteStore, now};
use crate::event::{Envelope, RunEvent, RunFold};
use crate::store::{Lease, NewRun, QUEUE_PATH, QUEUE_RECORD, StoreError};

/// The `chain` column of `events` read as lower-case hex text, whichever form it is
/// stored in (bytes since the store's fifth version, hex text before): see [`link_bytes`].
macro_rules! link_hex {
    () => {
        "CASE typeof(chain) WHEN 'blob' THEN lower(hex(chain)) ELSE chain END AS chain"
    };
}

impl SqliteStore {
    /// Creates a run with its first event: owned (its lease returned), or queued (no owner,
    /// listed in the queue's record).
    pub(super) async fn insert_run(
        &self,
        run_id: &str,
        new: NewRun<'_>,
        first: &Envelope,
    ) -> Outcome<Option<Lease>> {
        let RunEvent::RunStarted { runbook, file, .. } = &first.event else {
            return Err(corrupt(
                run_id,
                format!(
                    "its first event must be `run_started`, not `{}`",
                    encode(run_id, first)?.kind
                ),
            ));
        };
        if first.run_id != run_id {
            return Err(corrupt(
                run_id,
                format!("its first event belongs to run `{}`", first.run_id),
            ));
        }
        let event = encode(run_id, first)?;
        let chain = chain("", 1, run_id, &first.at, &event.body);
        let token = new_token();
        let now = now();
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        // Before the lease's end is reckoned: the tail kept below takes the lease for
        // renewed no later than it was.
        let renewed_at = std::time::Instant::now();
        // The run's number, which its events name it by, is the next one: under the write
        // lock, no other process takes it meanwhile.
        let number: Option<i64> = sqlx::query_scalar(
            "INSERT INTO runs (no, id, runbook, file, status, created_at, updated_at, \
             last_seq, last_chain) \
             VALUES ((SELECT coalesce(max(no), 0) + 1 FROM runs), ?, ?, ?, ?, ?, ?, 1, ?) \
             ON CONFLICT (id) DO NOTHING RETURNING no",
        )
        .bind(run_id)
        .bind(runbook)
        .bind(file)
        .bind(new.status().name())
        .bind(&now)
        .bind(&now)
        .bind(&chain)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(number) = number else {
            return Err(StoreError::Exists(run_id.to_owned()).into());
        };
        match new {
            NewRun::Owned(owner) => set_owner(&mut tx, run_id, &token, owner).await?,
            NewRun::Queued => {
                sqlx::query(
                    "INSERT INTO records (name, value, run_id, path, at) VALUES (?, ?, ?, ?, ?) \
                     ON CONFLICT (name, value) DO NOTHING",
                )
                .bind(QUEUE_RECORD)
                .bind(run_id)
                .bind(run_id)
                .bind(QUEUE_PATH)
                .bind(&now)
                .execute(&mut *tx)
                .await?;
            }
        }
        let at = StoredTime::of(&first.at);
        sqlx::query(
            "INSERT INTO events (run, seq, at_us, at_text, kind, body, chain) \
             VALUES (?, 1, ?, ?, ?, ?, ?)",
        )
        .bind(number)
        .bind(at.micros)
        .bind(at.text)
        .bind(&event.kind)
        .bind(stored_body(&event.kind, &event.body))
        .bind(link_bytes(&chain))
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(match new {
            NewRun::Owned(owner) => {
                let lease = Lease {
                    run_id: run_id.to_owned(),
                    token,
                    owner: owner.clone(),
                };
                self.writer
                    .lock()
                    .await
                    .created(&lease, number, chain, renewed_at);
                Some(lease)
            }
            NewRun::Queued => None,
        })
    }

    pub(super) async fn read_events(&self, run_id: &str) -> Outcome<Vec<Envelope>> {
        // One read transaction, so that the run's row and its events are the same snapshot
        // even while another process appends.
        let mut tx = self.pool.begin().await?;
        let run = sqlx::query("SELECT no, last_seq, last_chain FROM runs WHERE id = ?")
            .bind(run_id)
            .fetch_optional(&mut *tx)
            .await?
            .ok_or_else(|| StoreError::NotFound(run_id.to_owned()))?;
        let number: i64 = run.try_get("no")?;
        let last_seq: i64 = run.try_get("last_seq")?;
        let last_chain: String = run.try_get("last_chain")?;
        let rows = sqlx::query(concat!(
            "SELECT seq, at_us, at_text, kind, body, ",
            link_hex!(),
            " FROM events WHERE run = ? ORDER BY seq"
        ))
        .bind(number)
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;

        let mut stored = Vec::with_capacity(rows.len());
        for row in &rows {
            let seq: i64 = row.try_get("seq")?;
            let at = StoredTime {
                micros: row.try_get("at_us")?,
                text: row.try_get("at_text")?,
            };
            let Some(at) = at.into_text() else {
                return Err(corrupt(
                    run_id,
                    format!("event {seq} has no time that can be read"),
                ));
            };
            let kind: &str = row.try_get("kind")?;
            stored.push(StoredEvent {
                seq,
                at,
                body: whole_body(kind, row.try_get("body")?),
                chain: row.try_get("chain")?,
            });
        }
        Ok(verify(run_id, last_seq, &last_chain, stored)?)
    }
}

/// An event as read back from a store: its number, its time, its JSON, its chain link.
pub(in crate::store) struct StoredEvent {
    pub seq: i64,
    pub at: String,
    pub body: String,
    pub chain: String,
}

/// Checks a run's events as read back (numbers without gaps from 1, each link following
/// from the one before, the last matching the run's recorded head) and decodes them: the
/// same check for every store, so that a journal copied between stores verifies the same.
pub(in crate::store) fn verify(
    run_id: &str,
    last_seq: i64,
    last_chain: &str,
    rows: Vec<StoredEvent>,
) -> Result<Vec<Envelope>, StoreError> {
    let corrupt = |detail: String| StoreError::Corrupt {
        run_id: run_id.to_owned(),
        detail,
    };
    let mut events = Vec::with_capacity(rows.len());
    let mut previous = String::new();
    for (expected, row) in (1i64..).zip(rows) {
        let StoredEvent {
            seq,
            at,
            body,
            chain: stored,
        } = row;
        if seq != expected {
            return Err(corrupt(format!(
                "event {expected} is missing (the next one stored is number {seq})"
            )));
        }
        if seq > last_seq {
            return Err(corrupt(format!(
                "event {seq} is stored, but the run records only {last_seq} events"
            )));
        }
        let computed = chain(&previous, seq, run_id, &at, &body);
        if computed != stored {
            return Err(corrupt(format!(
                "event {seq} is not as it was written: its hash does not follow from its \
                 content and the events before it"
            )));
        }
        let cannot_read =
            |error: serde_json::Error| corrupt(format!("event {seq} cannot be read: {error}"));
        let envelope = if is_bare(&body) {
            Envelope {
                run_id: run_id.to_owned(),
                at,
                event: serde_json::from_str(&body).map_err(cannot_read)?,
            }
        } else {
            let envelope: Envelope = serde_json::from_str(&body).map_err(cannot_read)?;
            if envelope.run_id != run_id {
                return Err(corrupt(format!(
                    "event {seq} belongs to run `{}`",
                    envelope.run_id
                )));
            }
            envelope
        };
        events.push(envelope);
        previous = computed;
    }
    let stored = events.len() as i64;
    if stored < last_seq {
        return Err(corrupt(format!(
            "event {} is missing: the run records {last_seq} events, but only {stored} are \
             stored",
            stored + 1
        )));
    }
    if previous != last_chain {
        return Err(corrupt(format!(
            "event {last_seq}, the last, does not match the hash the run recorded for it"
        )));
    }
    Ok(events)
}

/// The events of one append, checked to belong to the run and encoded, before any database
/// work: the write lock is then held briefly.
pub(in crate::store) fn encode_batch(
    run_id: &str,
    first_seq: u64,
    events: &[Envelope],
) -> Result<Vec<Encoded>, StoreError> {
    let mut encoded = Vec::with_capacity(events.len());
    for (n, envelope) in events.iter().enumerate() {
        if envelope.run_id != run_id {
            return Err(StoreError::Corrupt {
                run_id: run_id.to_owned(),
                detail: format!(
                    "event {} to append belongs to run `{}`",
                    first_seq.saturating_add(n as u64),
                    envelope.run_id
                ),
            });
        }
        encoded.push(encode(run_id, envelope)?);
    }
    Ok(encoded)
}

/// A row of the `events` table: number, time, kind, body and chain link.
pub(in crate::store) type EventRow = (i64, String, String, String, String);

/// Numbers and chains an append's events after the run's last (`last_seq`, `*last_chain`,
/// which it moves on), and folds them into the run's summary. Refuses a `first_seq` that
/// does not follow: the writer's view of the journal is stale.
pub(in crate::store) fn link(
    run_id: &str,
    first_seq: u64,
    last_seq: i64,
    last_chain: &mut String,
    fold: &mut RunFold,
    encoded: Vec<Encoded>,
    events: &[Envelope],
) -> Result<Vec<EventRow>, StoreError> {
    if i64::try_from(first_seq).ok() != last_seq.checked_add(1) {
        return Err(StoreError::Corrupt {
            run_id: run_id.to_owned(),
            detail: format!(
                "the next event is number {}, but this process was about to write number \
                 {first_seq}: its view of the journal is stale",
                last_seq.saturating_add(1)
            ),
        });
    }
    let mut rows = Vec::with_capacity(encoded.len());
    for (seq, (event, envelope)) in (last_seq + 1..).zip(encoded.into_iter().zip(events)) {
        *last_chain = chain(last_chain, seq, run_id, &envelope.at, &event.body);
        rows.push((
            seq,
            envelope.at.clone(),
            event.kind,
            event.body,
            last_chain.clone(),
        ));
        fold.apply(&envelope.event, &envelope.at);
    }
    Ok(rows)
}

/// An event as stored: its tag and its body.
pub(in crate::store) struct Encoded {
    pub kind: String,
    pub body: String,
}

/// The body of an event as journaled: the event alone, its tag first (`{"event":"step_ended",
/// ...}`). The run id and the time are the row's columns, and the chain link covers them there
/// (see [`chain`]): written again inside every body they made a third of the journal.
///
/// Journals written before kept the whole envelope as the body (`{"run_id":...,"at":...,
/// "event":...}`); they are read and verified as they are, and an old run that is resumed
/// continues its chain with bare events.
pub(in crate::store) fn encode(run_id: &str, envelope: &Envelope) -> Result<Encoded, StoreError> {
    let body = serde_json::to_string(&envelope.event).map_err(|error| StoreError::Corrupt {
        run_id: run_id.to_owned(),
        detail: format!("an event cannot be written as JSON: {error}"),
    })?;
    // serde writes the tag of an internally tagged enum before the fields.
    let kind = body
        .strip_prefix(BARE_PREFIX)
        .and_then(|rest| rest.split_once('"'))
        .map_or("unknown", |(kind, _)| kind)
        .to_owned();
    Ok(Encoded { kind, body })
}

/// An event's body as the `events` table keeps it: without its tag, which the row's `kind`
/// holds (`{"event":"step_ended","path":...}` is stored as `,"path":...}`). A body that does
/// not begin with its tag (an envelope of an older journal) is kept whole, and begins with
/// `{`, which a body without its tag never does.
pub(super) fn stored_body<'a>(kind: &str, body: &'a str) -> &'a str {
    body.strip_prefix(BARE_PREFIX)
        .and_then(|rest| rest.strip_prefix(kind))
        .and_then(|rest| rest.strip_prefix('"'))
        .unwrap_or(body)
}

/// A body as it was written, from its stored form (see [`stored_body`]).
fn whole_body(kind: &str, stored: &str) -> String {
    if stored.starts_with('{') {
        return stored.to_owned();
    }
    let mut body = String::with_capacity(BARE_PREFIX.len() + kind.len() + 1 + stored.len());
    body.push_str(BARE_PREFIX);
    body.push_str(kind);
    body.push('"');
    body.push_str(stored);
    body
}

/// An event's time as the `events` table keeps it: microseconds since the Unix epoch when
/// they read back as the very text (which is how runbook writes every time, see
/// [`crate::event::timestamp`]), else the text. The text is what the chain link covers, so
/// it must come back byte for byte.
pub(super) struct StoredTime<'a> {
    pub micros: Option<i64>,
    pub text: Option<&'a str>,
}

impl<'a> StoredTime<'a> {
    pub fn of(at: &'a str) -> Self {
        let micros = at
            .parse::<jiff::Timestamp>()
            .ok()
            .map(jiff::Timestamp::as_microsecond)
            .filter(|&micros| time_text(micros).as_deref() == Some(at));
        match micros {
            Some(micros) => StoredTime {
                micros: Some(micros),
                text: None,
            },
            None => StoredTime {
                micros: None,
                text: Some(at),
            },
        }
    }

    fn into_text(self) -> Option<String> {
        match self {
            StoredTime {
                text: Some(text), ..
            } => Some(text.to_owned()),
            StoredTime {
                micros: Some(micros),
                ..
            } => time_text(micros),
            StoredTime { .. } => None,
        }
    }
}

fn time_text(micros: i64) -> Option<String> {
    jiff::Timestamp::from_microsecond(micros)
        .ok()
        .map(crate::event::timestamp::format)
}

/// How a bare event's body begins; an envelope's body begins with its run id.
const BARE_PREFIX: &str = "{\"event\":\"";

/// Whether a stored body is a bare event (the current form) rather than a whole envelope.
fn is_bare(body: &str) -> bool {
    body.starts_with(BARE_PREFIX)
}

/// The hash chain: each event's link covers the one before, its number and its content, so
/// that an event changed, moved or dropped breaks every link from there on.
///
/// `sha256(previous + "\n" + seq + "\n" + run_id + "\n" + at + "\n" + body)` for a bare
/// event, whose body leaves the run id and the time to the row; `sha256(previous + "\n" +
/// seq + "\n" + body)` for an envelope body of an older journal, which holds them itself.
/// Either way the link covers the run, the time and the event.
pub(in crate::store) fn chain(
    previous: &str,
    seq: i64,
    run_id: &str,
    at: &str,
    body: &str,
) -> String {
    let mut digest = Sha256::new()
        .chain_update(previous.as_bytes())
        .chain_update(b"\n")
        .chain_update(seq.to_string().as_bytes())
        .chain_update(b"\n");
    if is_bare(body) {
        digest = digest
            .chain_update(run_id.as_bytes())
            .chain_update(b"\n")
            .chain_update(at.as_bytes())
            .chain_update(b"\n");
    }
    hex::encode(digest.chain_update(body.as_bytes()).finalize())
}

/// A link as the `events` table keeps it: its 32 bytes, not its 64 hex digits. Links of
/// older journals are kept as hex text; both read back as hex through [`link_hex`]. The run's
/// head (`runs.last_chain`) stays hex text: reports show it, and it is one a run.
pub(super) fn link_bytes(link: &str) -> Vec<u8> {
    hex::decode(link).expect("links are written by `chain`, in hex")
}

fn corrupt(run_id: &str, detail: String) -> Failure {
    Failure::Store(StoreError::Corrupt {
        run_id: run_id.to_owned(),
        detail,
    })
}
