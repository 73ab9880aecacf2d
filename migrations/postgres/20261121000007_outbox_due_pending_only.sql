-- The worker looks up due rows among the pending ones only. Indexing only those keeps the
-- index as small as the backlog, and a row that is sent leaves it, rather than moving to
-- the `sent` end of an index that grew with every row ever delivered.
DROP INDEX outbox_due;
CREATE INDEX outbox_due ON outbox (next_attempt_at) WHERE state = 'pending';
