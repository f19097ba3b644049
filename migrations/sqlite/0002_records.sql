-- Named records that runs share: values a step added (`record` action), each kept once per
-- record with the run and step that added it first. Not tied to a run's lifetime: a record
-- is what later runs check (a snapshot restored once must not be restored again).
CREATE TABLE records (
    name   TEXT NOT NULL,
    value  TEXT NOT NULL,
    run_id TEXT NOT NULL,
    path   TEXT NOT NULL,
    -- RFC 3339, UTC, fixed fractional digits: text order is time order
    at     TEXT NOT NULL,
    PRIMARY KEY (name, value)
);
