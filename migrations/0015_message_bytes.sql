-- caseclerk schema, version 15: a message's bytes in a table of their own (issue 15, item 3).
--
-- SQLite rewrites a whole row when any of its columns changes. With the raw bytes (or the packed
-- skeleton) inside `messages`, filing a message — its state, rule, verdict, case and time, one
-- small UPDATE — wrote every byte of the message again, to the log and then to the database: a
-- first run over a council's mailbox wrote its mail twice more than it needed to. The bytes now
-- live in `message_bytes`, one row per message, written once when the message is stored and
-- touched again only to erase it (retention empties `raw`; secure_delete zeroes the freed pages,
-- as before). `packing` moves with them: it says how `raw` is to be read (see version 14).
CREATE TABLE message_bytes (
    message_id INTEGER PRIMARY KEY REFERENCES messages (id),
    raw BLOB NOT NULL,
    packing TEXT
);

INSERT INTO message_bytes (message_id, raw, packing) SELECT id, raw, packing FROM messages;

ALTER TABLE messages DROP COLUMN raw;
ALTER TABLE messages DROP COLUMN packing;
