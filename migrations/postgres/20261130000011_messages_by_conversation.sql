-- The message chains of migration 8 are no longer kept: PostgreSQL kept its index on
-- messages by conversation all along (see migrations/sqlite).
ALTER TABLE messages DROP COLUMN previous_message_id;
ALTER TABLE conversations DROP COLUMN last_message_id;
