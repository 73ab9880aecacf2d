-- Events for the customer's systems of record (Standard Webhooks): what happened to each
-- consultation, with everything a subscription may be sent (`data`, JSON); each
-- subscription's body is rendered from it when sent. Kept for `GET /api/events` and
-- `icbridge events resend` until ICB_RETENTION; an erasure deletes its customer's
-- (`customer`, or one of their conversations).
CREATE TABLE events (
    id              BIGSERIAL PRIMARY KEY,
    type            TEXT NOT NULL,
    occurred_at     BIGINT NOT NULL,
    conversation_id TEXT,
    customer        TEXT,
    desk            TEXT,
    data            TEXT NOT NULL
);
CREATE INDEX events_by_time ON events (occurred_at);
CREATE INDEX events_by_conversation ON events (conversation_id) WHERE conversation_id IS NOT NULL;
-- Events about a conversation are found (erased) by it; only those about a customer alone
-- (opt-outs) by the customer: one index fewer for every message.
CREATE INDEX events_by_customer ON events (customer) WHERE conversation_id IS NULL;

-- An event's delivery to one subscription is an outbox row (`kind = 'event'`,
-- `event_id`). Its `lane` (subscription and conversation) orders it as a conversation
-- orders the other rows: a receiver that is down holds back only its own events, never a
-- customer's answer or another receiver's.
ALTER TABLE outbox ADD COLUMN lane TEXT;
ALTER TABLE outbox ADD COLUMN event_id BIGINT;
CREATE INDEX outbox_by_event ON outbox (event_id) WHERE event_id IS NOT NULL;

-- The configured subscriptions, written at start-up from the configuration: what each
-- takes (`types` and `desks`, each `,a,b,` or NULL for all), so that an event is queued for
-- the subscriptions that want it in the transaction that records it. A receiver that
-- answers `410 Gone` disables its subscription (`disabled_at`): nothing is queued for it
-- until an operator enables it again (`icbridge events enable NAME`) or its URL changes.
CREATE TABLE event_subscriptions (
    name        TEXT PRIMARY KEY,
    url         TEXT NOT NULL,
    types       TEXT,
    desks       TEXT,
    disabled_at BIGINT,
    reason      TEXT
);

-- An event is queued for every enabled subscription that takes its type and desk as it is
-- stored, in the same statement (and so the same transaction): one outbox row per
-- subscription, in the lane of its subscription and conversation (`customers` for events
-- about a customer alone, which share one lane per subscription and carry no number).
CREATE FUNCTION events_queue() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO outbox (kind, payload, next_attempt_at, created_at, lane, event_id)
    SELECT 'event', '{"subscription":"' || s.name || '"}', NEW.occurred_at, NEW.occurred_at,
           s.name || ':' || COALESCE(NEW.conversation_id, 'customers'), NEW.id
    FROM event_subscriptions s
    WHERE s.disabled_at IS NULL
      AND (s.types IS NULL OR s.types LIKE '%,' || NEW.type || ',%')
      AND (s.desks IS NULL OR NEW.conversation_id IS NULL
           OR s.desks LIKE '%,' || COALESCE(NEW.desk, 'default') || ',%')
    ORDER BY s.name;
    RETURN NULL;
END;
$$;
CREATE TRIGGER events_queue AFTER INSERT ON events
    FOR EACH ROW EXECUTE FUNCTION events_queue();
