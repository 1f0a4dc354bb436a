-- caseclerk schema, version 19: `web_reads`, who opened what in the web workspace.
--
-- A person's reading of case data: a case's page, a letter, a file of a message, the triage list,
-- the tracker (the page or a download). When, which account, and what — the case reference and
-- which letter or file, never content. The same read again by the same account within a minute
-- is counted on its row (`repeats`, `last_at`: a reload is not a row of its own). Erased with the
-- sign-in records, after `[retention] signin_days`.
CREATE TABLE web_reads (
    id INTEGER PRIMARY KEY,
    at TEXT NOT NULL,
    user_id INTEGER NOT NULL REFERENCES web_users(id),
    what TEXT NOT NULL,
    repeats INTEGER NOT NULL DEFAULT 1,
    last_at TEXT
);
CREATE INDEX web_reads_at ON web_reads(at);
