ALTER TABLE conversations ADD COLUMN thread_message_id TEXT;
CREATE INDEX delivery_receipts_by_outbox ON delivery_receipts (outbox_id, code);
