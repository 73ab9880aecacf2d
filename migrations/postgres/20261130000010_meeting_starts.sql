-- The hourly limit on new meetings per customer, reserved under a per-customer row lock,
-- and the meeting subject a claim keeps for its next attempt (see migrations/sqlite).
CREATE TABLE meeting_limit_locks (
    channel  TEXT NOT NULL,
    customer TEXT NOT NULL,
    PRIMARY KEY (channel, customer)
);
CREATE TABLE meeting_starts (
    id         BIGSERIAL PRIMARY KEY,
    channel    TEXT NOT NULL,
    customer   TEXT NOT NULL,
    claim_id   TEXT NOT NULL,
    started_at BIGINT NOT NULL
);
CREATE INDEX meeting_starts_by_customer ON meeting_starts (channel, customer, started_at);
CREATE INDEX meeting_starts_by_claim ON meeting_starts (claim_id);

INSERT INTO meeting_starts (channel, customer, claim_id, started_at)
SELECT c.channel, c.customer, t.id, t.created_at
FROM meetings t JOIN conversations c ON c.id = t.conversation_id
WHERE t.created_at > (EXTRACT(EPOCH FROM now())::BIGINT - 3600) * 1000;

ALTER TABLE meeting_claims ADD COLUMN sub TEXT;
