-- The outbox's intent before action (issue 11): `sending_since` is set, and committed, before a
-- letter is handed to the SMTP server, and cleared in the same write that records the outcome
-- (sent, retrying, undelivered). A pending letter whose `sending_since` is set and old was being
-- sent when the daemon stopped or could not record the outcome: it is "in doubt" (the server may
-- or may not have accepted it). `in_doubt` counts how often the letter was found so and sent
-- again (with the same Message-ID), so a possible duplicate is visible to a person and to health.
ALTER TABLE outbox ADD COLUMN sending_since TEXT;
ALTER TABLE outbox ADD COLUMN in_doubt BIGINT NOT NULL DEFAULT 0;
