-- Events in fewer bytes: a journal of many small events (a `for_each` of 500,000 items writes
-- a million) spent most of each row on what every row repeated.
--
-- - Each run gets a number (`runs.no`), and an event names its run by that number instead of
--   the run's id (22 characters).
-- - The time is an integer, microseconds since the Unix epoch (`at_us`), instead of 27
--   characters of text. A time that does not read back as the same text (none that runbook
--   wrote, which always writes six fractional digits) keeps its text in `at_text`.
-- - The body leaves out its tag, which `kind` holds: `{"event":"step_ended","path":...}` is
--   stored as `,"path":...}`. A body that does not begin with its tag (the whole envelopes of
--   the oldest journals) is stored as it is, and begins with `{`.
--
-- Nothing is computed anew: the chain links cover the run id, the time's text and the whole
-- body, and each is rebuilt exactly as it was when a run is read, so every link of every
-- journal verifies as before. The view `event_rows` shows the events in their former shape,
-- for queries and for a person with the sqlite3 shell.

ALTER TABLE runs ADD COLUMN no INTEGER;
UPDATE runs SET no = rowid;
CREATE UNIQUE INDEX runs_by_no ON runs (no);

CREATE TABLE compact_events (
    run     INTEGER NOT NULL REFERENCES runs (no),
    seq     INTEGER NOT NULL,
    at_us   INTEGER,
    at_text TEXT,
    kind    TEXT NOT NULL,
    body    TEXT NOT NULL,
    chain   NOT NULL,
    PRIMARY KEY (run, seq)
) WITHOUT ROWID;

INSERT INTO compact_events (run, seq, at_us, at_text, kind, body, chain)
SELECT r.no, e.seq,
       CASE WHEN e.at = strftime('%Y-%m-%dT%H:%M:%S', e.at_us / 1000000, 'unixepoch') || '.'
                        || printf('%06d', e.at_us % 1000000) || 'Z'
            THEN e.at_us END,
       CASE WHEN e.at = strftime('%Y-%m-%dT%H:%M:%S', e.at_us / 1000000, 'unixepoch') || '.'
                        || printf('%06d', e.at_us % 1000000) || 'Z'
            THEN NULL ELSE e.at END,
       e.kind,
       CASE WHEN substr(e.body, 1, length(e.tag)) = e.tag
            THEN substr(e.body, length(e.tag) + 1) ELSE e.body END,
       e.chain
FROM (SELECT run_id, seq, at, kind, body, chain,
             '{"event":"' || kind || '"' AS tag,
             CASE WHEN length(at) = 27 AND substr(at, 20, 1) = '.' AND substr(at, 27, 1) = 'Z'
                  THEN unixepoch(substr(at, 1, 19)) * 1000000 + CAST(substr(at, 21, 6) AS INTEGER)
             END AS at_us
      FROM events) AS e
JOIN runs r ON r.id = e.run_id;

DROP TABLE events;
ALTER TABLE compact_events RENAME TO events;

-- The events as they were stored before: run id, time as text, whole body.
CREATE VIEW event_rows AS
SELECT r.id AS run_id,
       e.seq,
       coalesce(e.at_text,
                strftime('%Y-%m-%dT%H:%M:%S', e.at_us / 1000000, 'unixepoch') || '.'
                || printf('%06d', e.at_us % 1000000) || 'Z') AS at,
       e.at_us,
       e.kind,
       CASE WHEN substr(e.body, 1, 1) = '{' THEN e.body
            ELSE '{"event":"' || e.kind || '"' || e.body END AS body,
       e.chain
FROM events e JOIN runs r ON r.no = e.run;
