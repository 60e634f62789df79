-- The directory (domains, users, their secrets, apps, API keys), registrar bindings,
-- token signing keys and revoked tokens (issue 9).
--
-- Portable SQL, as 0001: runs unchanged on SQLite and PostgreSQL. Flags are BIGINT
-- 0/1, binary values hex TEXT. Ids are not AUTOINCREMENT/SERIAL (their syntax differs):
-- every directory write first bumps directory_meta's one row, which both counts
-- versions and, in PostgreSQL, row-locks out every other directory writer until it
-- commits; ids come from last_id in the same row, so they are unique across tables
-- and never reused.

CREATE TABLE directory_meta (
    id      BIGINT NOT NULL PRIMARY KEY,   -- always 1
    version BIGINT NOT NULL,               -- bumped by every directory write
    last_id BIGINT NOT NULL                -- the last id handed out
);
INSERT INTO directory_meta (id, version, last_id) VALUES (1, 0, 0);

-- Tenants. name and aliases are lowercase hostnames (or IP literals), unique across
-- both tables (checked by the store).
CREATE TABLE domains (
    id         BIGINT NOT NULL PRIMARY KEY,
    name       TEXT   NOT NULL UNIQUE,
    realm      TEXT   NOT NULL,             -- digest realm; HA1s depend on it
    enabled    BIGINT NOT NULL DEFAULT 1,
    created_ms BIGINT NOT NULL
);

CREATE TABLE domain_aliases (
    alias     TEXT   NOT NULL PRIMARY KEY,
    domain_id BIGINT NOT NULL REFERENCES domains (id)
);
CREATE INDEX domain_aliases_domain ON domain_aliases (domain_id);

-- People. password_hash and pin_hash are argon2id PHC strings; no query of the store
-- ever returns them.
CREATE TABLE users (
    id            BIGINT NOT NULL PRIMARY KEY,
    domain_id     BIGINT NOT NULL REFERENCES domains (id),
    login         TEXT   NOT NULL,
    display_name  TEXT,
    first_name    TEXT,
    last_name     TEXT,
    ext           TEXT,
    did           TEXT,
    cell_phone    TEXT,
    home_phone    TEXT,
    email         TEXT,
    role          TEXT   NOT NULL DEFAULT 'user',   -- 'admin' | 'user'
    enabled       BIGINT NOT NULL DEFAULT 1,
    password_hash TEXT,
    pin_hash      TEXT,
    created_ms    BIGINT NOT NULL,
    UNIQUE (domain_id, login)
);
-- NULL extensions are distinct in both engines, so only set ones must be unique.
CREATE UNIQUE INDEX users_domain_ext ON users (domain_id, ext);

-- SIP digest secrets: HA1 = H(username:realm:password) per algorithm and digest
-- username (the login, and the extension when set). device_jti tags a device
-- password issued at an API login (revoked with that token).
CREATE TABLE sip_credentials (
    user_id    BIGINT NOT NULL REFERENCES users (id),
    username   TEXT   NOT NULL,
    algorithm  TEXT   NOT NULL,   -- 'MD5' | 'SHA-256'
    ha1        TEXT   NOT NULL,   -- lowercase hex
    device_jti TEXT
);
CREATE INDEX sip_credentials_user ON sip_credentials (user_id);
CREATE INDEX sip_credentials_jti ON sip_credentials (device_jti);

-- OAuth2 clients (the app's HTTP Basic credentials at POST /auth).
CREATE TABLE apps (
    id          BIGINT NOT NULL PRIMARY KEY,
    client_id   TEXT   NOT NULL UNIQUE,
    secret_hash TEXT   NOT NULL,   -- argon2id PHC
    name        TEXT,
    domain_id   BIGINT REFERENCES domains (id),   -- NULL: any domain
    enabled     BIGINT NOT NULL DEFAULT 1,
    created_ms  BIGINT NOT NULL
);

-- API keys: 256-bit random secrets, so SHA-256 (hex) is enough to keep them
-- unreadable at rest and lets a key be found by its hash.
CREATE TABLE api_keys (
    id         BIGINT NOT NULL PRIMARY KEY,
    name       TEXT   NOT NULL UNIQUE,
    domain_id  BIGINT REFERENCES domains (id),   -- NULL: every domain
    role       TEXT   NOT NULL,
    prefix     TEXT   NOT NULL,                  -- the key's first characters, to recognise it
    key_hash   TEXT   NOT NULL UNIQUE,
    created_ms BIGINT NOT NULL
);

-- Token signing keys (ES256), kept so tokens survive a restart.
CREATE TABLE signing_keys (
    kid        TEXT   NOT NULL PRIMARY KEY,
    pkcs8_hex  TEXT   NOT NULL,
    created_ms BIGINT NOT NULL
);

-- Tokens revoked before they expire (logout); purged once expired.
CREATE TABLE revoked_tokens (
    jti        TEXT   NOT NULL PRIMARY KEY,
    expires_ms BIGINT NOT NULL
);
CREATE INDEX revoked_tokens_expires ON revoked_tokens (expires_ms);

-- Registrar bindings, so registrations survive a restart.
CREATE TABLE bindings (
    user_id       BIGINT NOT NULL,
    domain_id     BIGINT NOT NULL,
    contact       TEXT   NOT NULL,
    q             BIGINT NOT NULL,
    expires_at_ms BIGINT NOT NULL,
    call_id       TEXT   NOT NULL,
    cseq          BIGINT NOT NULL,
    source        TEXT   NOT NULL,   -- ip:port the REGISTER came from
    transport     TEXT   NOT NULL,
    user_agent    TEXT,
    PRIMARY KEY (user_id, contact)
);
