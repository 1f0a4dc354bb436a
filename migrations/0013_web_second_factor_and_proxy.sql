-- The web workspace's optional second factor, sign-in through a trusted reverse proxy, and the
-- retention of sign-in records (issue 17).
--
-- totp_secret: the account's TOTP secret sealed with AES-256-GCM under the key in the file beside
-- the database (`<database>.web-key`, 0600): the database alone does not give it. NULL: no second
-- factor. totp_last_step: the step of the last code accepted, so the same code is refused again.
-- proxy_name: the name the council's identity provider gives this person in the trusted proxy's
-- header (an email address or UPN, lowercased); NULL: not signed in that way.
ALTER TABLE web_users ADD COLUMN totp_secret TEXT;
ALTER TABLE web_users ADD COLUMN totp_last_step INTEGER;
ALTER TABLE web_users ADD COLUMN proxy_name TEXT;
CREATE UNIQUE INDEX web_users_proxy_name ON web_users(proxy_name);

-- A sign-in half done: the password was right, the code is still to come. The browser holds a
-- random token; only its SHA-256 is kept. It lasts five minutes and is used once.
CREATE TABLE web_second_steps (
    token_sha256 TEXT PRIMARY KEY,
    user_id INTEGER NOT NULL REFERENCES web_users(id),
    created_at TEXT NOT NULL
);

-- Retention erases sign-in records by age.
CREATE INDEX web_signins_at ON web_signins(at);
