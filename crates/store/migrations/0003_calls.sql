-- Two-party call records, per-user call modes and push tokens (issue 10).
--
-- Portable SQL, as 0001 and 0002: runs unchanged on SQLite and PostgreSQL; every
-- integer BIGINT, flags 0/1, times in ms since the Unix epoch.

-- One row per two-party call, written when it ends (EngineEvent::CallEnded). Keyed by
-- the engine's integer CallId, which the server seeds at start from the largest id
-- stored here (Store::next_call_id_floor), so ids stay unique across restarts; the
-- call log (reference 001 `record_id`) is ordered by it. A party's user id is NULL
-- when the party is not a directory user (a gateway number, an anonymous caller).
CREATE TABLE calls (
    call_id        BIGINT NOT NULL PRIMARY KEY,
    domain         TEXT   NOT NULL,          -- lowercase domain name
    caller_uri     TEXT   NOT NULL,
    caller_user_id BIGINT,
    caller_ext     TEXT,
    caller_name    TEXT,
    callee_uri     TEXT   NOT NULL,
    callee_user_id BIGINT,
    callee_ext     TEXT,
    callee_name    TEXT,
    started_ms     BIGINT NOT NULL,
    answered_ms    BIGINT,                   -- NULL: never answered
    ended_ms       BIGINT NOT NULL,
    disposition    TEXT   NOT NULL,          -- answered | busy | no_answer | unavailable | cancelled | failed
    hangup_by      TEXT,                     -- caller | callee; NULL: the server
    caller_codec   TEXT,
    callee_codec   TEXT,
    recordings     TEXT   NOT NULL,          -- JSON array of paths relative to the data dir
    api_originated BIGINT NOT NULL DEFAULT 0
);
-- The call log reads one user's calls as caller or as callee, in call id order.
CREATE INDEX calls_caller ON calls (caller_user_id, call_id);
CREATE INDEX calls_callee ON calls (callee_user_id, call_id);

-- Reference 001 `PATCH /calls`: how a user wants calls delivered. One row per user
-- who ever set it; the directory snapshot carries it to the engine.
CREATE TABLE call_modes (
    user_id         BIGINT NOT NULL PRIMARY KEY,
    remote          BIGINT NOT NULL,
    device          TEXT   NOT NULL,
    ring_delay_s    BIGINT NOT NULL,
    vm_delay_s      BIGINT NOT NULL,
    assigned_device TEXT,                    -- `PATCH /calls/{name}`
    updated_ms      BIGINT NOT NULL
);

-- Reference 001 `PUT /tokens/{kind}/{topic}/{token}`: a mobile app's push token. A
-- token belongs to one user at a time: registering it again moves it.
CREATE TABLE push_tokens (
    kind       TEXT   NOT NULL,              -- 'apn' | 'fcm'
    topic      TEXT   NOT NULL,              -- APNs bundle id (+ '~' for the sandbox) or FCM app id
    token      TEXT   NOT NULL,
    user_id    BIGINT NOT NULL,
    created_ms BIGINT NOT NULL,
    PRIMARY KEY (kind, topic, token)
);
CREATE INDEX push_tokens_user ON push_tokens (user_id);
