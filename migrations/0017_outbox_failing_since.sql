-- caseclerk schema, version 17: `outbox.failing_since`.
--
-- When a letter's sending first failed for a reason that may pass (a timeout, a `4xx`). A letter
-- is given up as undelivered after a day of such failures counted from then, not from when it
-- fell due: a letter due while the mail server refused our login for a weekend, or while the
-- daemon was stopped, is retried with backoff like any other instead of being given up at its
-- first temporary failure. Empty for a letter that has not failed that way (and for rows from
-- before this version, which then count their day from their next failure).
ALTER TABLE outbox ADD COLUMN failing_since TEXT;
