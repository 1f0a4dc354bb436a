-- A tamper-evident history (src/core/chain.rs): every event carries the SHA-256 of its content
-- chained to the event before it, in one global chain in id order.
--
-- `prev_hash` / `hash` are filled in by the one event-append function (src/shell/store.rs), which
-- reads the previous event's hash in the same transaction. Events stored before this migration
-- are hashed once, in id order, by caseclerk in Rust at the first read-write open after it (SQL
-- cannot compute SHA-256 in SQLite); that step is recorded in `meta` as `event_chain`.
ALTER TABLE events ADD COLUMN prev_hash TEXT;
ALTER TABLE events ADD COLUMN hash TEXT;

-- Chain heads: the last event's id and hash, recorded once a day by the daemon (and logged at
-- info, so a copy outside the database anchors the history). Append-only, like events.
CREATE TABLE chain_heads (
    id INTEGER PRIMARY KEY,
    at TEXT NOT NULL,
    event_id BIGINT NOT NULL,
    hash TEXT NOT NULL,
    events BIGINT NOT NULL
);

-- Events are append-only: nothing in caseclerk updates or deletes one (retention erases message
-- and letter bytes and records that as a *new* event, so it needs no exception). The one update
-- allowed is hashing a row stored before this migration, once: its hash was NULL, it gets one,
-- and nothing else about it changes.
CREATE TRIGGER events_no_update BEFORE UPDATE ON events
WHEN NOT (
    OLD.hash IS NULL AND NEW.hash IS NOT NULL
    AND NEW.id IS OLD.id AND NEW.case_id IS OLD.case_id AND NEW.at IS OLD.at
    AND NEW.kind IS OLD.kind AND NEW.actor IS OLD.actor AND NEW.data IS OLD.data
)
BEGIN
    SELECT RAISE(ABORT, 'caseclerk: events are append-only; an event is never updated (record a new event instead)');
END;

CREATE TRIGGER events_no_delete BEFORE DELETE ON events
BEGIN
    SELECT RAISE(ABORT, 'caseclerk: events are append-only; an event is never deleted');
END;

CREATE TRIGGER chain_heads_no_update BEFORE UPDATE ON chain_heads
BEGIN
    SELECT RAISE(ABORT, 'caseclerk: chain heads are append-only');
END;

CREATE TRIGGER chain_heads_no_delete BEFORE DELETE ON chain_heads
BEGIN
    SELECT RAISE(ABORT, 'caseclerk: chain heads are append-only');
END;
