-- Voicemail messages and call recordings as reference 001 lists them (issue 11).
--
-- Portable SQL, as 0001-0003: runs unchanged on SQLite and PostgreSQL; every integer
-- BIGINT, flags 0/1, times in ms since the Unix epoch.

-- One row per message in a user's mailbox: a voicemail left for the user, or a call
-- recording of a call the user took part in (001 `media=Recording`). The audio is a WAV
-- file under the data dir (`file`, relative to it); the row is written by the server's
-- shell once the file is complete, trimmed and measured. Ids are the store's own,
-- numbered above the largest so far (001 shows them as strings).
CREATE TABLE voicemails (
    id          BIGINT NOT NULL PRIMARY KEY,
    user_id     BIGINT NOT NULL,             -- the mailbox owner
    media       TEXT   NOT NULL,             -- 'VoiceMail' | 'Recording'
    from_number TEXT   NOT NULL,             -- the caller's extension or number
    from_name   TEXT,
    caller_name TEXT,
    to_number   TEXT   NOT NULL,             -- the owner's extension (or login)
    file        TEXT   NOT NULL,             -- relative to the data dir
    received_ms BIGINT NOT NULL,
    duration_ms BIGINT NOT NULL,
    is_read     BIGINT NOT NULL DEFAULT 0,
    note        TEXT
);
-- A mailbox is listed, counted (MWI) and looked into by owner.
CREATE INDEX voicemails_user ON voicemails (user_id, id);
