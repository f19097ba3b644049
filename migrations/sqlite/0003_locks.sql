-- Locks that runs take across runs (`locks:` on a runbook or a step): one row per lock name
-- while some run holds it. Kept to what PostgreSQL shares: acquiring is one upsert whose
-- condition compares the lease with the database's own clock.
CREATE TABLE locks (
    name          TEXT NOT NULL PRIMARY KEY,
    run_id        TEXT NOT NULL,
    -- The step instance path holding it; '' when the whole run holds it.
    step          TEXT NOT NULL,
    runbook       TEXT NOT NULL,
    pid           INTEGER NOT NULL,
    host          TEXT NOT NULL,
    process_start INTEGER,
    -- RFC 3339, UTC: when this holder took it.
    acquired_at   TEXT NOT NULL,
    -- Milliseconds since the Unix epoch, by the database's clock. NULL: kept without a
    -- lease, while its run is parked waiting for an approval.
    expires_at_ms INTEGER
);

-- Renewing and releasing go by run.
CREATE INDEX locks_by_run ON locks (run_id);
