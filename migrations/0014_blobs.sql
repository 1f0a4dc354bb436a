-- caseclerk schema, version 14: attachments stored once (issue 15, item 6).
--
-- A large base64-encoded part of a message or a letter (an attached file) is stored once, as its
-- decoded content in `blobs`, named by the SHA-256 of that content: the referral's attached form
-- is one row whether it came in the referral or goes out in every panel member's letter. The
-- row's `raw` then holds a *skeleton* (src/core/packing.rs, format named in `packing`): the bytes
-- around the parts, and for each part the blob's SHA-256 and how it was encoded (line length,
-- line ending). Reading a row puts the exact bytes back together; `packing` NULL means `raw`
-- holds the bytes whole, as every row stored before this version does (and any message whose
-- parts would not re-encode to exactly their bytes).
--
-- `message_blobs` and `letter_blobs` say which rows use which blob: retention erases a row's
-- skeleton and its references, then each blob nothing refers to any more (secure_delete zeroes
-- its pages). A blob is never deleted while a reference to it exists (foreign keys).
CREATE TABLE blobs (
    id INTEGER PRIMARY KEY,
    sha256 TEXT NOT NULL UNIQUE,
    size BIGINT NOT NULL,
    data BLOB NOT NULL
);

CREATE TABLE message_blobs (
    message_id BIGINT NOT NULL REFERENCES messages (id),
    blob_id BIGINT NOT NULL REFERENCES blobs (id),
    PRIMARY KEY (message_id, blob_id)
);
CREATE INDEX message_blobs_blob ON message_blobs (blob_id);

CREATE TABLE letter_blobs (
    outbox_id BIGINT NOT NULL REFERENCES outbox (id),
    blob_id BIGINT NOT NULL REFERENCES blobs (id),
    PRIMARY KEY (outbox_id, blob_id)
);
CREATE INDEX letter_blobs_blob ON letter_blobs (blob_id);

ALTER TABLE messages ADD COLUMN packing TEXT;
ALTER TABLE outbox ADD COLUMN packing TEXT;
-- A letter's size in bytes as sent (its skeleton is smaller); NULL for letters stored before
-- this version, whose `raw` is whole (its length is the size).
ALTER TABLE outbox ADD COLUMN size BIGINT;
