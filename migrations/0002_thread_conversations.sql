-- caseclerk schema, version 2: Outlook conversations (Thread-Index header blocks, hex) of the
-- messages filed on a case, so that a reply whose only link is its Thread-Index (a colleague's
-- answer to a forwarded message, with her own subject) finds the case. The conversations of our
-- own letters are derived from the case reference (core::conversation) and not stored.
CREATE TABLE thread_conversations (
    conversation TEXT NOT NULL,
    case_id BIGINT NOT NULL REFERENCES cases(id),
    PRIMARY KEY (conversation, case_id)
);
