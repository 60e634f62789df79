-- Web Call Server event hooks (issue 12 item 7, "the machinery under the 004 hooks that
-- only notify"): each `…StatusEvent` POST of a WCS session waits here until its
-- backend answers, so a backend that is down, or a `kill -9` of the server, loses
-- none. Invocations (`connect`, `call`, …) are never queued: they wait for their
-- answer inline.
--
-- Portable SQL, as 0006: every integer BIGINT, times in ms since the Unix epoch.
-- `queue` orders delivery (the app key: one backend sees its events in the order they
-- happened); `id` is the order within it. A delivered row is deleted.
CREATE TABLE wcs_hook_outbox (
    id              BIGINT NOT NULL PRIMARY KEY,
    queue           TEXT   NOT NULL,
    url             TEXT   NOT NULL,
    method          TEXT   NOT NULL,
    body            TEXT   NOT NULL,
    created_ms      BIGINT NOT NULL,
    attempts        BIGINT NOT NULL DEFAULT 0,
    next_attempt_ms BIGINT NOT NULL DEFAULT 0,
    last_status     BIGINT,
    last_error      TEXT
);
CREATE INDEX wcs_hook_outbox_queue ON wcs_hook_outbox (queue, id);
