-- Who is creating a conversation's meeting right now. The row is claimed atomically
-- (INSERT .. ON CONFLICT DO UPDATE .. WHERE the old claim ran out), so among concurrent
-- requests (in one process or several) exactly one calls the broker; the others wait for
-- its meeting. A claim that is never finished (a crash) runs out at `claimed_until`.
CREATE TABLE meeting_claims (
    channel       TEXT NOT NULL,
    customer      TEXT NOT NULL,
    business      TEXT NOT NULL,
    claim_id      TEXT NOT NULL,
    claimed_until INTEGER NOT NULL,
    -- When the last claimant gave up because the broker failed: waiters give up too.
    failed_at     INTEGER,
    PRIMARY KEY (channel, customer, business)
);

-- For the per-customer limit on new meetings.
CREATE INDEX conversations_by_customer ON conversations (channel, customer);
CREATE INDEX meetings_by_creation ON meetings (conversation_id, created_at);
