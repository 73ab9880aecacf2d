-- A customer's messages outside any conversation are found by number through
-- `messages_without_conversation`, but without statistics (icbridge runs no ANALYZE)
-- SQLite chose `messages_by_conversation` for `conversation_id IS NULL` and walked every
-- such message of every customer: 6 ms of each export and erasure on a year's database,
-- inside the erasure's write. Holding only messages in a conversation, this index cannot
-- serve that test; every lookup by conversation still uses it.
DROP INDEX messages_by_conversation;
CREATE INDEX messages_by_conversation ON messages (conversation_id, id)
    WHERE conversation_id IS NOT NULL;
