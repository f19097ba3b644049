-- An approval step may ask several people (`approval: {count: 2}`): the answers are kept one
-- per person and step, no longer one per step.
ALTER TABLE approvals DROP CONSTRAINT approvals_pkey;
ALTER TABLE approvals ADD PRIMARY KEY (run_id, path, "by");
