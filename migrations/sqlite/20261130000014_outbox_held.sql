-- A WhatsApp message to a customer whose 24-hour window is closed is held, not sent
-- (WhatsApp would refuse it): it stays pending with `held` = 1, holds back nothing else of
-- its conversation, and is released, in order, when the customer writes again.
ALTER TABLE outbox ADD COLUMN held INTEGER NOT NULL DEFAULT 0;
CREATE INDEX outbox_held ON outbox (conversation_id) WHERE held = 1;
