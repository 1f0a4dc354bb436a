-- caseclerk schema, version 4: filing sent letters in the shared mailbox's sent folder
-- ([mailbox] sent_folder, default "Sent Items"). filed_at is set once the letter is in that folder
-- (found there by its Message-ID, or appended); a letter sent but not yet filed (a crash between
-- the two, the folder unreachable) is filed by a later pass. Letters sent before this version
-- count as filed: the folder is not back-filled with old correspondence.
ALTER TABLE outbox ADD COLUMN filed_at TEXT;
UPDATE outbox SET filed_at = sent_at WHERE sent_at IS NOT NULL;
CREATE INDEX outbox_unfiled ON outbox (sent_at) WHERE filed_at IS NULL AND sent_at IS NOT NULL;
