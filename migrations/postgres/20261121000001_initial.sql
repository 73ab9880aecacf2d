-- icbridge schema for PostgreSQL; the same tables as migrations/sqlite, version for version.
-- Timestamps are Unix milliseconds (UTC) in BIGINT columns; flags are 0/1 BIGINTs, so the
-- same queries read them on both databases.

CREATE TABLE conversations (
    id            TEXT PRIMARY KEY,
    channel       TEXT NOT NULL,
    customer      TEXT NOT NULL,
    business      TEXT NOT NULL,
    customer_name TEXT,
    state         TEXT NOT NULL DEFAULT 'open' CHECK (state IN ('open', 'closed')),
    created_at    BIGINT NOT NULL,
    closed_at     BIGINT
);
CREATE UNIQUE INDEX conversations_one_open
    ON conversations (channel, customer, business) WHERE state = 'open';

CREATE TABLE meetings (
    id              TEXT PRIMARY KEY,
    conversation_id TEXT NOT NULL REFERENCES conversations (id),
    sub             TEXT NOT NULL UNIQUE,
    host_url        TEXT NOT NULL,
    guest_url       TEXT NOT NULL,
    expires_at      BIGINT NOT NULL,
    created_at      BIGINT NOT NULL
);
CREATE INDEX meetings_by_conversation ON meetings (conversation_id, expires_at);

CREATE TABLE messages (
    id              BIGSERIAL PRIMARY KEY,
    channel         TEXT NOT NULL,
    customer        TEXT NOT NULL,
    business        TEXT NOT NULL,
    external_id     TEXT,
    body            TEXT NOT NULL,
    received_at     BIGINT NOT NULL,
    conversation_id TEXT REFERENCES conversations (id),
    meeting_id      TEXT REFERENCES meetings (id),
    opened_meeting  BIGINT NOT NULL DEFAULT 0
);
CREATE UNIQUE INDEX messages_once ON messages (channel, external_id) WHERE external_id IS NOT NULL;
CREATE INDEX messages_by_conversation ON messages (conversation_id, id);

CREATE TABLE outbox (
    id              BIGSERIAL PRIMARY KEY,
    kind            TEXT NOT NULL,
    conversation_id TEXT REFERENCES conversations (id),
    payload         TEXT NOT NULL,
    state           TEXT NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'sent', 'dead')),
    attempts        BIGINT NOT NULL DEFAULT 0,
    next_attempt_at BIGINT NOT NULL,
    leased_until    BIGINT,
    last_error      TEXT,
    upstream_id     TEXT,
    delivery_status TEXT,
    delivery_code   TEXT,
    created_at      BIGINT NOT NULL,
    sent_at         BIGINT
);
CREATE INDEX outbox_due ON outbox (state, next_attempt_at);
CREATE INDEX outbox_by_upstream_id ON outbox (upstream_id);

CREATE TABLE delivery_receipts (
    id             BIGSERIAL PRIMARY KEY,
    correlation_id TEXT,
    transid        TEXT,
    code           TEXT,
    status         TEXT,
    channel        TEXT,
    outbox_id      BIGINT REFERENCES outbox (id),
    payload        TEXT NOT NULL,
    received_at    BIGINT NOT NULL
);
