-- The links of the hash chain are stored as their 32 bytes (a BLOB in `events.chain`) from
-- this version on, instead of 64 hex digits: a sixth of a journal of many small events.
-- The link is computed as before, over the previous link's hex text; only its storage
-- changes. `runs.last_chain`, the head a report shows, stays hex text.
--
-- Rows written before keep their hex links, and are read and verified as they are, so
-- nothing is rewritten here. This version exists so that an older runbook, which cannot
-- read links stored as bytes, refuses the store with a clear message instead of calling its
-- journals corrupt.
SELECT 1;
