-- caseclerk schema, version 18: `web_signins.repeats` and `web_signins.last_at`.
--
-- The same attempt again — the same account (or none), the same outcome, from the same address —
-- within a minute of a recorded one is counted on that row (`repeats`, and when the last came:
-- `last_at`) instead of being written as a row of its own. Anyone who can reach the workspace
-- could otherwise add a row, kept for a year, with each request that costs them nothing (a name
-- that matches no account, a proxy's header from an address not trusted), burying the real
-- attempts a data protection officer reads. Rows from before this version count once.
ALTER TABLE web_signins ADD COLUMN repeats INTEGER NOT NULL DEFAULT 1;
ALTER TABLE web_signins ADD COLUMN last_at TEXT;
