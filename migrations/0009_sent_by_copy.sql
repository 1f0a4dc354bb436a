-- A letter in doubt settled by the server's own copy (issue 11): with `[mailbox] sent_copy =
-- "server"`, a letter whose intent was recorded but whose outcome never was is looked up in the
-- sent folder once the grace has passed; found there, it is recorded sent *without* being sent
-- again, and `confirmed_by_copy` says so (1). Letters re-sent in doubt keep counting in `in_doubt`.
ALTER TABLE outbox ADD COLUMN confirmed_by_copy BIGINT NOT NULL DEFAULT 0;
