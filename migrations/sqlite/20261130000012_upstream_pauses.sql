-- An upstream that asked icbridge to slow down (a 429 or 503 with Retry-After, Webex
-- Connect's tenant rate limit 7020) or refused its credential (401, ...): deliveries to it
-- wait until `paused_until`, and while `credential_failing` is 1 until a probe succeeds.
-- Kept in the database, so that every instance sharing it respects the pause.
CREATE TABLE upstream_pauses (
    upstream           TEXT PRIMARY KEY,
    paused_until       INTEGER NOT NULL,
    credential_failing INTEGER NOT NULL DEFAULT 0,
    reason             TEXT NOT NULL,
    updated_at         INTEGER NOT NULL
);
