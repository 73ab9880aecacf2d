-- The customer number or WhatsApp id a delivery goes to (NULL for deliveries to the
-- experts): its recipient's opt-out and WhatsApp window are judged when it is sent, and a
-- customer's export and erasure find it, whichever conversation it belongs to (an
-- `add guest` invitation belongs to the inviting customer's). Rows queued before have
-- none: they went to their conversation's customer.
ALTER TABLE outbox ADD COLUMN recipient TEXT;
CREATE INDEX outbox_by_recipient ON outbox (recipient) WHERE recipient IS NOT NULL;
