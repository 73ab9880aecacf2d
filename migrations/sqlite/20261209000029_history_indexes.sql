-- A year of history (issue 39): no statement scans a table that grows with it. Each
-- index below serves statements that read the whole table before (the query-plan test,
-- tests/query_plans.rs, finds them).

-- A customer is found by their number alone, in both its forms (export, erasure): the
-- number leads these indexes, which also serve every lookup by channel and number.
DROP INDEX conversations_by_customer;
CREATE INDEX conversations_by_customer ON conversations (customer, channel);
DROP INDEX meeting_starts_by_customer;
CREATE INDEX meeting_starts_by_customer ON meeting_starts (customer, channel, started_at);
DROP INDEX appointments_by_customer;
CREATE INDEX appointments_by_customer ON appointments (customer, channel, business, ends_at);
CREATE INDEX opt_outs_by_customer ON opt_outs (customer);
CREATE INDEX meeting_claims_by_customer ON meeting_claims (customer);
-- Messages outside any conversation (stored before there were conversations) by number;
-- the others are found through their conversation.
CREATE INDEX messages_without_conversation ON messages (customer) WHERE conversation_id IS NULL;
-- A customer's deliveries, through their conversations.
CREATE INDEX outbox_by_conversation ON outbox (conversation_id) WHERE conversation_id IS NOT NULL;

-- The console's and the admin API's list of conversations, newest first.
CREATE INDEX conversations_by_time ON conversations (created_at);

-- Retention: what is still to erase, by age. The partial indexes hold only what retention
-- has not cleared yet, so that each hourly purge does not walk what earlier ones did.
CREATE INDEX messages_with_text ON messages (received_at) WHERE body != '' OR media IS NOT NULL;
CREATE INDEX outbox_with_payload ON outbox (created_at) WHERE payload != '{}';
CREATE INDEX delivery_receipts_by_time ON delivery_receipts (received_at);
CREATE INDEX webex_events_by_time ON webex_events (received_at);
CREATE INDEX meeting_starts_by_time ON meeting_starts (started_at);

-- Deliveries given up (dead) or cancelled (an opt-out, an erasure): few, listed and
-- revived by state.
CREATE INDEX outbox_dead ON outbox (id) WHERE state = 'dead';
CREATE INDEX outbox_cancelled ON outbox (id) WHERE state = 'cancelled';

-- A receipt matched to no delivery can be attributed to no customer, so no erasure could
-- find it: it is kept without the body Webex Connect sent (which names the number).
UPDATE delivery_receipts SET payload = '{}' WHERE outbox_id IS NULL AND payload != '{}';

-- Conversations closed and not anonymised yet, in the order they closed (`closed_at` is
-- set only when a conversation closes; `erased` is the number retention writes in place
-- of the customer's: src/store/retention.rs spells it the same).
CREATE INDEX conversations_to_anonymise ON conversations (closed_at, id)
    WHERE customer != 'erased';

-- A meeting's appointment (a customer's export lists each meeting with it).
CREATE INDEX appointments_by_meeting ON appointments (meeting_id);
