-- Pauses of upstreams that asked to slow down or refused the credential (see
-- migrations/sqlite), shared by every instance.
CREATE TABLE upstream_pauses (
    upstream           TEXT PRIMARY KEY,
    paused_until       BIGINT NOT NULL,
    credential_failing BIGINT NOT NULL DEFAULT 0,
    reason             TEXT NOT NULL,
    updated_at         BIGINT NOT NULL
);
