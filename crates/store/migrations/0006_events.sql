-- Lossless events (issue 12 item 7): the durable outbox of engine events, numbered per
-- domain, and the webhooks that deliver it.
--
-- Portable SQL, as 0001-0004: runs unchanged on SQLite and PostgreSQL; every integer
-- BIGINT, flags 0/1, times in ms since the Unix epoch.

-- The last sequence number handed out per domain. Appending a batch bumps it by the
-- batch's size in the same transaction as the rows, so numbers have no gaps and no
-- number is used twice.
CREATE TABLE event_counters (
    domain_id BIGINT NOT NULL PRIMARY KEY,
    last_seq  BIGINT NOT NULL
);

-- One row per engine event. `body` is the event's JSON as `/v1/events` shows it
-- (without `seq` and `ts`, which are columns).
CREATE TABLE events (
    domain_id  BIGINT NOT NULL,
    seq        BIGINT NOT NULL,
    ts_ms      BIGINT NOT NULL,
    event_type TEXT   NOT NULL,
    body       TEXT   NOT NULL,
    PRIMARY KEY (domain_id, seq)
);
-- Retention prunes by age.
CREATE INDEX events_ts ON events (ts_ms);

-- Webhooks of a domain. No secret is stored: each webhook's signing secret is derived
-- from the server's master key file, the id and `key_version` (rotation bumps it).
-- The delivery state is the cursor (last seq delivered or skipped by the filter) and
-- the retry bookkeeping, so a restart resumes where the last run stopped.
CREATE TABLE webhooks (
    id              BIGINT NOT NULL PRIMARY KEY,
    domain_id       BIGINT NOT NULL,
    url             TEXT   NOT NULL,
    event_types     TEXT   NOT NULL DEFAULT '',  -- comma-separated; '' = every type
    enabled         BIGINT NOT NULL DEFAULT 1,
    key_version     BIGINT NOT NULL DEFAULT 1,
    created_ms      BIGINT NOT NULL,
    cursor_seq      BIGINT NOT NULL,
    delivered       BIGINT NOT NULL DEFAULT 0,
    failures        BIGINT NOT NULL DEFAULT 0,
    last_attempt_ms BIGINT,
    last_status     BIGINT,
    last_error      TEXT,
    next_attempt_ms BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX webhooks_domain ON webhooks (domain_id, id);
