-- As on SQLite (where, without statistics, the planner used this index for
-- `conversation_id IS NULL` and walked every message outside a conversation): the index
-- holds only messages in a conversation; those outside one are found by number through
-- `messages_without_conversation`.
DROP INDEX messages_by_conversation;
CREATE INDEX messages_by_conversation ON messages (conversation_id, id)
    WHERE conversation_id IS NOT NULL;
