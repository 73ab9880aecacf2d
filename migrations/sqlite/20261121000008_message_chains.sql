-- A conversation's messages are found through a chain instead of an index: each message
-- names the one before it in its conversation, and the conversation names its last.
--
-- The index `messages_by_conversation` had one insertion point per conversation, so every
-- message put a page of its own into its commit, and SQLite's log takes whole pages: under
-- load this index was most of what the database wrote. The chain changes the row of the
-- message's conversation instead, and conversations that are active together were opened
-- at about the same time, so they share pages of the conversations table.
ALTER TABLE messages ADD COLUMN previous_message_id INTEGER REFERENCES messages (id);
ALTER TABLE conversations ADD COLUMN last_message_id INTEGER REFERENCES messages (id);

-- The messages stored so far, chained in the order of their ids (the order transcripts
-- showed them in), while the index is still there to find them.
UPDATE messages SET previous_message_id = (
    SELECT MAX(earlier.id) FROM messages earlier
    WHERE earlier.conversation_id = messages.conversation_id AND earlier.id < messages.id)
WHERE conversation_id IS NOT NULL;
UPDATE conversations SET last_message_id = (
    SELECT MAX(id) FROM messages WHERE conversation_id = conversations.id);

DROP INDEX messages_by_conversation;
