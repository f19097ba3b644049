-- An approval step may ask several people (`approval: {count: 2}`): the answers are kept one
-- per person and step, no longer one per step. SQLite cannot change a primary key in place,
-- so the table is copied.
CREATE TABLE approvals_by_person (
    run_id   TEXT NOT NULL REFERENCES runs (id),
    path     TEXT NOT NULL,
    approved INTEGER NOT NULL,
    "by"     TEXT NOT NULL,
    comment  TEXT,
    at       TEXT NOT NULL,
    PRIMARY KEY (run_id, path, "by")
);
INSERT INTO approvals_by_person (run_id, path, approved, "by", comment, at)
    SELECT run_id, path, approved, "by", comment, at FROM approvals;
DROP TABLE approvals;
ALTER TABLE approvals_by_person RENAME TO approvals;
