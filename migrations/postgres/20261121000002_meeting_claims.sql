-- Who is creating a conversation's meeting right now (see migrations/sqlite).
CREATE TABLE meeting_claims (
    channel       TEXT NOT NULL,
    customer      TEXT NOT NULL,
    business      TEXT NOT NULL,
    claim_id      TEXT NOT NULL,
    claimed_until BIGINT NOT NULL,
    failed_at     BIGINT,
    PRIMARY KEY (channel, customer, business)
);

CREATE INDEX conversations_by_customer ON conversations (channel, customer);
CREATE INDEX meetings_by_creation ON meetings (conversation_id, created_at);
