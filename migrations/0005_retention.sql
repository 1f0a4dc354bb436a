-- caseclerk schema, version 5: retention and erasure (issue 14).
--
-- `erasures` records every erasure of content that belongs to no case (triage items, automatic
-- replies and delivery reports on no case, the digest's and the tracker report's letters): when,
-- under which rule, what class, how many rows and how many bytes — never the content. An erasure
-- of a case's content is recorded as a `content_erased` event on the case instead (`case_id` here
-- stays NULL for those; the column is for a future record that names one). The table is
-- append-only: the triggers below refuse every UPDATE and DELETE (SQLite triggers; PostgreSQL
-- would use a rule or a trigger function to the same effect).
CREATE TABLE erasures (
    id INTEGER PRIMARY KEY,
    at TEXT NOT NULL,
    rule TEXT NOT NULL,
    class TEXT NOT NULL,
    count BIGINT NOT NULL,
    bytes BIGINT NOT NULL,
    case_id BIGINT NULL
);
CREATE TRIGGER erasures_no_update BEFORE UPDATE ON erasures
BEGIN
    SELECT RAISE(ABORT, 'erasures is append-only: an erasure record is never changed');
END;
CREATE TRIGGER erasures_no_delete BEFORE DELETE ON erasures
BEGIN
    SELECT RAISE(ABORT, 'erasures is append-only: an erasure record is never deleted');
END;

-- When a row's content was erased. An erased message keeps its id, dedupe key, fingerprint,
-- folder/UID, dates, size, state, rule and case (so it is never fetched and stored again, and the
-- history's references to it still resolve); its `raw` becomes empty and its `verdict` (which can
-- hold the addresses a delivery report names) NULL. An erased letter keeps its step, recipient key,
-- Message-ID, envelope, dates and state; its `raw` becomes empty and its `last_error` NULL.
ALTER TABLE messages ADD COLUMN erased_at TEXT;
ALTER TABLE outbox ADD COLUMN erased_at TEXT;
