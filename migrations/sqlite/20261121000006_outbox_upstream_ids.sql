-- Outbox rows are looked up by their upstream id only when they are expert notifications
-- (a reply in a thread names the message that opened it) or customer replies (a receipt
-- names Webex Connect's transaction id). Relays to the experts' threads, most of the
-- outbox, stay out of the index: each of them put a random page of it into its commit.
DROP INDEX outbox_by_upstream_id;
CREATE INDEX outbox_notifications_by_upstream_id ON outbox (upstream_id)
    WHERE kind = 'expert_notification';
CREATE INDEX outbox_replies_by_upstream_id ON outbox (upstream_id)
    WHERE kind = 'customer_reply';
