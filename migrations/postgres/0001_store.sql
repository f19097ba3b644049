-- The PostgreSQL store: the same tables as SQLite's (see migrations/sqlite), so that a run
-- reads the same from either and a journal copied between them verifies the same. Times are
-- RFC 3339 text in UTC with fixed fractional digits (text order is time order), as the
-- events carry them; leases and lock expiries are milliseconds since the Unix epoch by the
-- database's clock.

CREATE TABLE runs (
    id          TEXT NOT NULL PRIMARY KEY,
    runbook     TEXT NOT NULL,
    file        TEXT NOT NULL,
    -- running, succeeded, failed, cancelled, interrupted or waiting
    status      TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL,
    ended_at    TEXT,
    duration_ms BIGINT,
    last_seq    BIGINT NOT NULL,
    last_chain  TEXT NOT NULL
);

CREATE INDEX runs_by_creation ON runs (created_at, id);
-- `needs: auto` reads the latest succeeded runs of a runbook.
CREATE INDEX runs_by_runbook ON runs (runbook, status, created_at);

-- `body` is the whole event as JSON text, byte for byte as it was hashed into `chain`.
CREATE TABLE events (
    run_id TEXT NOT NULL REFERENCES runs (id),
    seq    BIGINT NOT NULL,
    at     TEXT NOT NULL,
    kind   TEXT NOT NULL,
    body   TEXT NOT NULL,
    chain  TEXT NOT NULL,
    PRIMARY KEY (run_id, seq)
);

-- Who holds each run's lease. A released lease keeps its last holder with a NULL token.
CREATE TABLE owners (
    run_id        TEXT NOT NULL PRIMARY KEY REFERENCES runs (id),
    token         TEXT,
    pid           BIGINT,
    host          TEXT,
    process_start BIGINT,
    since         TEXT,
    expires_at_ms BIGINT
);

CREATE TABLE approvals (
    run_id   TEXT NOT NULL REFERENCES runs (id),
    path     TEXT NOT NULL,
    approved BOOLEAN NOT NULL,
    "by"     TEXT NOT NULL,
    comment  TEXT,
    at       TEXT NOT NULL,
    PRIMARY KEY (run_id, path)
);

CREATE TABLE records (
    name   TEXT NOT NULL,
    value  TEXT NOT NULL,
    run_id TEXT NOT NULL,
    path   TEXT NOT NULL,
    at     TEXT NOT NULL,
    PRIMARY KEY (name, value)
);

CREATE TABLE locks (
    name          TEXT NOT NULL PRIMARY KEY,
    run_id        TEXT NOT NULL,
    step          TEXT NOT NULL,
    runbook       TEXT NOT NULL,
    pid           BIGINT NOT NULL,
    host          TEXT NOT NULL,
    process_start BIGINT,
    acquired_at   TEXT NOT NULL,
    -- NULL: kept without a lease, while its run is parked waiting for an approval.
    expires_at_ms BIGINT
);

CREATE INDEX locks_by_run ON locks (run_id);
