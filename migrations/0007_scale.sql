-- caseclerk schema, version 7: what the daily work needs at tens of thousands of cases.

-- The last reference number given in each year, per reference prefix: opening a case reads and
-- bumps one row in the transaction that creates the case, instead of scanning every reference.
-- `year` is the four-digit year of the case's day 0, as in its reference (`RR-2026-0001`).
CREATE TABLE case_counters (
    prefix TEXT NOT NULL,
    year TEXT NOT NULL,
    last BIGINT NOT NULL,
    PRIMARY KEY (prefix, year)
);

-- Seeded from the cases already opened: a reference is `{prefix}-{year}-{number}` with the year
-- of the case's day 0, so the prefix is what comes before `-{year}-` and the number what comes
-- after. (A year with no row is seeded again at its first case from a scan of the references
-- — see `Store::create_case` — so nothing is lost if a reference does not fit this shape.)
INSERT INTO case_counters (prefix, year, last)
SELECT substr(reference, 1, p - 1), year, MAX(CAST(substr(reference, p + 6) AS INTEGER))
FROM (
    SELECT reference, substr(day0, 1, 4) AS year,
           instr(reference, '-' || substr(day0, 1, 4) || '-') AS p
    FROM cases
)
WHERE p > 1
GROUP BY substr(reference, 1, p - 1), year;

-- A case's letters (`caseclerk case`, the report), without reading the whole outbox.
CREATE INDEX IF NOT EXISTS outbox_case ON outbox (case_id, id);
-- Letters of a step queued since an instant, with their recipients (the answer cap, checked for
-- every message answered: the index alone answers it, no letter's bytes are read), and the
-- latest letter of a step (the digest's "since the last digest").
CREATE INDEX IF NOT EXISTS outbox_step ON outbox (step, queued_at, envelope_to);
-- Cases opened for a referrer since an instant (the case cap, checked for every referral).
CREATE INDEX IF NOT EXISTS cases_referrer ON cases (lower(referrer), received_at);
