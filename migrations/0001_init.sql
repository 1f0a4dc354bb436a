-- caseclerk schema, version 1.
-- Portable SQL: the same statements run on PostgreSQL with INTEGER PRIMARY KEY → BIGINT GENERATED
-- ALWAYS AS IDENTITY and BLOB → BYTEA. Instants are TEXT in fixed-width RFC 3339 UTC
-- ("2026-12-22T09:00:00.000000Z"), so they sort and compare as text on every backend.

CREATE TABLE meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

-- The IMAP watermark per mailbox folder, and its health for the digest.
CREATE TABLE mailbox_state (
    mailbox TEXT PRIMARY KEY,
    uidvalidity BIGINT NOT NULL,
    last_uid BIGINT NOT NULL,
    last_ok_at TEXT,
    last_error TEXT,
    last_error_at TEXT,
    failures BIGINT NOT NULL DEFAULT 0
);

CREATE TABLE cases (
    id INTEGER PRIMARY KEY,
    reference TEXT NOT NULL UNIQUE,
    process TEXT NOT NULL,
    area TEXT,
    status TEXT NOT NULL,
    received_at TEXT NOT NULL,
    day0 TEXT NOT NULL,
    opened_at TEXT NOT NULL,
    referrer TEXT
);

-- Every message seen in the mailbox, raw bytes first, exactly once.
CREATE TABLE messages (
    id INTEGER PRIMARY KEY,
    dedupe_key TEXT NOT NULL UNIQUE,
    body_sha256 TEXT NOT NULL,
    mailbox TEXT NOT NULL,
    uidvalidity BIGINT NOT NULL,
    uid BIGINT NOT NULL,
    internal_date TEXT NOT NULL,
    fetched_at TEXT NOT NULL,
    size BIGINT NOT NULL,
    raw BLOB NOT NULL,
    state TEXT NOT NULL,
    rule TEXT,
    verdict TEXT,
    case_id BIGINT REFERENCES cases(id),
    processed_at TEXT,
    UNIQUE (mailbox, uidvalidity, uid)
);
CREATE INDEX messages_state ON messages (state, internal_date);

-- What happened on a case, in order. `data` is JSON.
CREATE TABLE events (
    id INTEGER PRIMARY KEY,
    case_id BIGINT NOT NULL REFERENCES cases(id),
    at TEXT NOT NULL,
    kind TEXT NOT NULL,
    actor TEXT NOT NULL,
    data TEXT NOT NULL
);
CREATE INDEX events_case ON events (case_id, id);

-- Letters decided and rendered, waiting to be sent or sent. `dedupe_key` is
-- case/step/recipient: a letter is decided once, whatever happens after.
CREATE TABLE outbox (
    id INTEGER PRIMARY KEY,
    dedupe_key TEXT NOT NULL UNIQUE,
    case_id BIGINT REFERENCES cases(id),
    step TEXT NOT NULL,
    recipient TEXT NOT NULL,
    message_id TEXT NOT NULL UNIQUE,
    due_at TEXT NOT NULL,
    queued_at TEXT NOT NULL,
    envelope_from TEXT NOT NULL,
    envelope_to TEXT NOT NULL,
    raw BLOB NOT NULL,
    state TEXT NOT NULL,
    attempts BIGINT NOT NULL DEFAULT 0,
    next_attempt_at TEXT NOT NULL,
    last_error TEXT,
    sent_at TEXT
);
CREATE INDEX outbox_pending ON outbox (state, next_attempt_at);

-- Message-IDs on a case's thread (ours and received), for matching replies.
CREATE TABLE thread_ids (
    message_id TEXT PRIMARY KEY,
    case_id BIGINT NOT NULL REFERENCES cases(id),
    outbox_id BIGINT REFERENCES outbox(id),
    step TEXT,
    recipient TEXT
);
