-- caseclerk schema, version 10: the digest's and the tracker's reads at tens of thousands of cases.

-- Every letter's summary, oldest first (the digest, the tracker, `cases`), from the index alone:
-- read from the table, the scan walked every letter's row, the first kilobytes of its bytes
-- included (a page or more a letter: 160 MB at 10,000 cases), to take a hundred bytes of each.
CREATE INDEX IF NOT EXISTS outbox_summary
    ON outbox (id, case_id, step, recipient, due_at, queued_at, state, attempts, sent_at);
