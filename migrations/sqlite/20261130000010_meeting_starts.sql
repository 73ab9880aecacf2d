-- The hourly limit on new meetings per customer (ICB_MAX_NEW_MEETINGS_PER_HOUR) is kept
-- here rather than counted from `meetings`: a request reserves its start before it calls
-- the broker, while it holds the customer's row in `meeting_limit_locks` (an upsert locks
-- it until the transaction ends), so that concurrent requests, on any instance, cannot
-- pass the limit together. A start whose broker call failed is deleted again.
CREATE TABLE meeting_limit_locks (
    channel  TEXT NOT NULL,
    customer TEXT NOT NULL,
    PRIMARY KEY (channel, customer)
);
CREATE TABLE meeting_starts (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    channel    TEXT NOT NULL,
    customer   TEXT NOT NULL,
    claim_id   TEXT NOT NULL,
    started_at INTEGER NOT NULL
);
CREATE INDEX meeting_starts_by_customer ON meeting_starts (channel, customer, started_at);
CREATE INDEX meeting_starts_by_claim ON meeting_starts (claim_id);

-- The meetings of the last hour count against the limit after the upgrade too.
INSERT INTO meeting_starts (channel, customer, claim_id, started_at)
SELECT c.channel, c.customer, t.id, t.created_at
FROM meetings t JOIN conversations c ON c.id = t.conversation_id
WHERE t.created_at > (CAST(strftime('%s', 'now') AS INTEGER) - 3600) * 1000;

-- The meeting subject a claim calls the broker with. It outlives a claim that ended
-- without a stored meeting (the broker failed, or storing failed after the broker made the
-- meeting), so that the next attempt for the conversation asks for the same meeting again
-- instead of making a second one.
ALTER TABLE meeting_claims ADD COLUMN sub TEXT;
