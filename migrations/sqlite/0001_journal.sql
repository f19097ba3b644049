-- The journal of runs. Kept to types and statements PostgreSQL shares (TEXT, INTEGER,
-- composite keys, ON CONFLICT), so that a shared store can use the same shape.

-- One row per run: its identity, the status its journal last recorded, and the end of its
-- event chain, so that an append checks its numbering and extends the chain without reading
-- the events back.
CREATE TABLE runs (
    id          TEXT NOT NULL PRIMARY KEY,
    runbook     TEXT NOT NULL,
    file        TEXT NOT NULL,
    -- running, succeeded, failed, cancelled, interrupted or waiting
    status      TEXT NOT NULL,
    -- RFC 3339, UTC, with a fixed number of fractional digits so that text order is time order
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL,
    ended_at    TEXT,
    -- The time every process spent on the run, summed over its segments.
    duration_ms INTEGER,
    last_seq    INTEGER NOT NULL,
    last_chain  TEXT NOT NULL
);

-- `runbook runs list` shows the newest first.
CREATE INDEX runs_by_creation ON runs (created_at, id);

-- Every event of every run, numbered from 1 without gaps. `body` is the whole event as
-- JSON; `chain` is the hex SHA-256 of the previous event's chain, the number and the body,
-- so that any event changed or lost after it was written is noticed when the run is read.
CREATE TABLE events (
    run_id TEXT NOT NULL REFERENCES runs (id),
    seq    INTEGER NOT NULL,
    at     TEXT NOT NULL,
    kind   TEXT NOT NULL,
    body   TEXT NOT NULL,
    chain  TEXT NOT NULL,
    PRIMARY KEY (run_id, seq)
) WITHOUT ROWID;

-- Who holds each run's lease. A released lease keeps its last holder with a NULL token.
CREATE TABLE owners (
    run_id        TEXT NOT NULL PRIMARY KEY REFERENCES runs (id),
    token         TEXT,
    pid           INTEGER,
    host          TEXT,
    -- Clock ticks since boot when the process started: tells the owner from a reused pid.
    process_start INTEGER,
    since         TEXT,
    -- Milliseconds since the Unix epoch.
    expires_at_ms INTEGER
);

-- One answer per approval step of a run.
CREATE TABLE approvals (
    run_id   TEXT NOT NULL REFERENCES runs (id),
    path     TEXT NOT NULL,
    approved INTEGER NOT NULL,
    "by"     TEXT NOT NULL,
    comment  TEXT,
    at       TEXT NOT NULL,
    PRIMARY KEY (run_id, path)
);
