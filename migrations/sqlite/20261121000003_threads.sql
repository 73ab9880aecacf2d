-- The Webex message that opened a conversation's thread in the experts' space: the first
-- expert notification that was delivered. Replies about the conversation go under it.
ALTER TABLE conversations ADD COLUMN thread_message_id TEXT;
CREATE INDEX delivery_receipts_by_outbox ON delivery_receipts (outbox_id, code);
