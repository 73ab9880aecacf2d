-- A conversation's messages are found through an ordinary index again, in place of the
-- chain of migration 8 (each message naming the one before it): the chain saved SQLite
-- log pages under a load fifty times a real desk's, at the price of a compare-and-set on
-- every message and a recursive query for every transcript. The messages stored so far
-- already carry their conversation, so the index finds them all.
CREATE INDEX messages_by_conversation ON messages (conversation_id, id);
ALTER TABLE messages DROP COLUMN previous_message_id;
ALTER TABLE conversations DROP COLUMN last_message_id;
