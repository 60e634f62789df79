-- Scheduled conferences (issue 11, reference 001 §7 "conferences"): a room a user
-- books for a time window, entered by keying its access id at the conference number.
--
-- Portable SQL, as 0001-0004: runs unchanged on SQLite and PostgreSQL; every integer
-- BIGINT, flags 0/1, times in ms since the Unix epoch (start_s: Unix seconds, as MX's
-- startDate). These rows are part of the directory: every write bumps directory_meta
-- first, ids come from its last_id, and the snapshot carries them to the engine. As for
-- call_modes and push_tokens, there are no foreign keys: deleting a user or a domain
-- deletes its conferences in the same transaction (crate::directory).
CREATE TABLE scheduled_conferences (
    id                 BIGINT NOT NULL PRIMARY KEY,
    domain_id          BIGINT NOT NULL,             -- the owner's domain
    owner_id           BIGINT NOT NULL,             -- the user who booked it (MX ownerId)
    name               TEXT   NOT NULL,
    description        TEXT,
    access_id          BIGINT NOT NULL,             -- the participant code, 1..99999999999
    kind               TEXT   NOT NULL,             -- 'Once' | 'Daily' | 'Weekly' | 'Permanent'
    start_s            BIGINT NOT NULL,             -- Unix seconds
    duration_min       BIGINT NOT NULL,
    wait_for_owner     BIGINT NOT NULL DEFAULT 0,
    del_on_owner_leave BIGINT NOT NULL DEFAULT 0,
    ws                 TEXT   NOT NULL,             -- MX web sharing, kept and echoed ('None')
    ws_type            TEXT   NOT NULL,             -- ('Undefined')
    created_ms         BIGINT NOT NULL,
    updated_ms         BIGINT NOT NULL,
    UNIQUE (domain_id, access_id)
);
-- MX lists one owner's conferences.
CREATE INDEX scheduled_conferences_owner ON scheduled_conferences (owner_id, id);
