-- Call detail records and room history (milestone 1).
--
-- Portable SQL: runs unchanged on SQLite and PostgreSQL. Times are milliseconds since
-- the Unix epoch in BIGINT; every integer is BIGINT so both engines decode it as i64.
-- Never edit this file once released: the checksum of every applied migration is
-- stored in _sqlx_migrations and a changed file refuses to open. Add 0002_... instead.

-- One row per leg, written when the leg ends.
--
-- Keyed by (started_ms, leg_id), not by leg_id alone: leg ids are random, and a
-- B-tree on random keys dirties about one page per inserted row once it outgrows the
-- cache (measured: ~8 KB written per leg), while start times grow, so this key's
-- inserts land in the same few pages at the tail. The same index serves recent_calls
-- (newest first, paged by started_ms). A leg's start never changes, so the key still
-- names one leg for the recorder's upserts. A lookup by leg id alone would need its
-- own index, with that write cost.
CREATE TABLE call_records (
    leg_id      TEXT    NOT NULL,
    call_id     TEXT    NOT NULL,
    direction   TEXT    NOT NULL,   -- 'inbound' | 'outbound'
    service     TEXT    NOT NULL,   -- the engine's service name, e.g. 'echo'
    remote_uri  TEXT    NOT NULL,
    local_uri   TEXT    NOT NULL,
    local_tag   TEXT,
    remote_tag  TEXT,
    started_ms  BIGINT  NOT NULL,
    answered_ms BIGINT,             -- NULL: never answered
    ended_ms    BIGINT,             -- NULL: still up when recorded (e.g. at shutdown)
    end_status  BIGINT,             -- SIP status of the end, or 0 for a local hang-up
    end_reason  TEXT,
    codec       TEXT,
    confid      TEXT,               -- the room the leg was in, if any
    PRIMARY KEY (started_ms, leg_id)
);

-- One row per room. confid is unique only while the server runs, so a later run may
-- reuse one: the key includes the start time.
CREATE TABLE rooms (
    confid           TEXT    NOT NULL,
    confnumber       TEXT    NOT NULL,
    confroomnum      TEXT    NOT NULL,
    confuri          TEXT    NOT NULL,
    site             TEXT    NOT NULL,
    startts          BIGINT  NOT NULL,
    ended_ms         BIGINT,             -- NULL: open (or the server stopped first)
    max_participants BIGINT  NOT NULL DEFAULT 0,
    PRIMARY KEY (confid, startts)
);
CREATE INDEX rooms_startts ON rooms (startts);
