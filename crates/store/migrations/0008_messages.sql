-- Instant messages (SIP MESSAGE, issue 12): what phones and the API sent to users,
-- kept until a device of the recipient takes them. Portable SQL, as 0001-0007.
--
-- `id` is the engine's (`msg_…`), so the row can be written after the fact from the
-- engine's event. `state`: 'pending' (not yet taken: sent again when the user next
-- registers), 'delivered', 'failed' (every device refused it).
CREATE TABLE messages (
    id           TEXT   NOT NULL PRIMARY KEY,
    domain_id    BIGINT NOT NULL,
    user_id      BIGINT NOT NULL,             -- the recipient
    to_uri       TEXT   NOT NULL,
    from_uri     TEXT   NOT NULL,
    from_user_id BIGINT,                      -- an authenticated sender of ours
    content_type TEXT   NOT NULL,
    body         TEXT   NOT NULL,
    origin       TEXT   NOT NULL,             -- 'sip' | 'api'
    state        TEXT   NOT NULL,
    attempts     BIGINT NOT NULL DEFAULT 0,
    last_status  BIGINT,
    last_error   TEXT,
    created_ms   BIGINT NOT NULL,
    updated_ms   BIGINT NOT NULL
);
-- A user's messages are listed newest first, and the pending ones sent oldest first.
CREATE INDEX messages_user ON messages (user_id, state, created_ms);
