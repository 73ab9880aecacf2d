-- A conversation's messages are found through a chain: each message names the one before
-- it in its conversation, and the conversation names its last (see the SQLite migration
-- of the same name for why). PostgreSQL keeps `messages_by_conversation`: its log records
-- an index entry, not the whole page, and retention finds an erased conversation's
-- messages through it.
ALTER TABLE messages ADD COLUMN previous_message_id BIGINT REFERENCES messages (id);
ALTER TABLE conversations ADD COLUMN last_message_id BIGINT REFERENCES messages (id);

UPDATE messages SET previous_message_id = (
    SELECT MAX(earlier.id) FROM messages earlier
    WHERE earlier.conversation_id = messages.conversation_id AND earlier.id < messages.id)
WHERE conversation_id IS NOT NULL;
UPDATE conversations SET last_message_id = (
    SELECT MAX(id) FROM messages WHERE conversation_id = conversations.id);
