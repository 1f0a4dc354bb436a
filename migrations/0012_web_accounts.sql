-- The web workspace (issue 17): personal accounts, their sessions, and every sign-in.
-- Passwords are argon2id hashes (PHC strings); a session is stored as the SHA-256 of its cookie's
-- token, never the token itself.

CREATE TABLE web_users (
    id INTEGER PRIMARY KEY,
    username TEXT NOT NULL UNIQUE,
    display_name TEXT NOT NULL,
    role TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    failed_signins INTEGER NOT NULL DEFAULT 0,
    locked_until TEXT,
    disabled_at TEXT,
    created_at TEXT NOT NULL
);

CREATE TABLE web_sessions (
    token_sha256 TEXT PRIMARY KEY,
    user_id INTEGER NOT NULL REFERENCES web_users(id),
    csrf TEXT NOT NULL,
    created_at TEXT NOT NULL,
    last_seen_at TEXT NOT NULL,
    ended_at TEXT
);

CREATE INDEX web_sessions_user ON web_sessions(user_id);

-- Every sign-in attempt and sign-out: what happened, to which account (none when the name matched
-- no account: the name typed is not kept), from which address.
CREATE TABLE web_signins (
    id INTEGER PRIMARY KEY,
    at TEXT NOT NULL,
    user_id INTEGER REFERENCES web_users(id),
    outcome TEXT NOT NULL,
    remote TEXT NOT NULL
);
