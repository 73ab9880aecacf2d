-- icbridge schema. Timestamps are Unix milliseconds (UTC) in INTEGER columns.

-- A conversation is one customer writing to one business address on one channel.
-- At most one is open per (channel, customer, business).
CREATE TABLE conversations (
    id            TEXT PRIMARY KEY,
    channel       TEXT NOT NULL,
    customer      TEXT NOT NULL,
    business      TEXT NOT NULL,
    customer_name TEXT,
    state         TEXT NOT NULL DEFAULT 'open' CHECK (state IN ('open', 'closed')),
    created_at    INTEGER NOT NULL,
    closed_at     INTEGER
);
CREATE UNIQUE INDEX conversations_one_open
    ON conversations (channel, customer, business) WHERE state = 'open';

-- Instant Connect meetings; a conversation gets a new one when its links run out.
CREATE TABLE meetings (
    id              TEXT PRIMARY KEY,
    conversation_id TEXT NOT NULL REFERENCES conversations (id),
    sub             TEXT NOT NULL UNIQUE,
    host_url        TEXT NOT NULL,
    guest_url       TEXT NOT NULL,
    expires_at      INTEGER NOT NULL,
    created_at      INTEGER NOT NULL
);
CREATE INDEX meetings_by_conversation ON meetings (conversation_id, expires_at);

-- Every customer message, stored before anything else happens to it.
CREATE TABLE messages (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    channel         TEXT NOT NULL,
    customer        TEXT NOT NULL,
    business        TEXT NOT NULL,
    -- The sender's id (flow `messageId`, Connect `tid`); NULL when none was given.
    external_id     TEXT,
    body            TEXT NOT NULL,
    received_at     INTEGER NOT NULL,
    -- Set once the message is answered: the meeting its answer carried, and whether
    -- this message opened that meeting.
    conversation_id TEXT REFERENCES conversations (id),
    meeting_id      TEXT REFERENCES meetings (id),
    opened_meeting  INTEGER NOT NULL DEFAULT 0
);
CREATE UNIQUE INDEX messages_once ON messages (channel, external_id) WHERE external_id IS NOT NULL;
CREATE INDEX messages_by_conversation ON messages (conversation_id, id);

-- Every outbound side effect, written in the same transaction as its cause and
-- delivered by the outbox worker.
CREATE TABLE outbox (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    kind            TEXT NOT NULL,
    conversation_id TEXT REFERENCES conversations (id),
    payload         TEXT NOT NULL,
    state           TEXT NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'sent', 'dead')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL,
    leased_until    INTEGER,
    last_error      TEXT,
    upstream_id     TEXT,
    delivery_status TEXT,
    delivery_code   TEXT,
    created_at      INTEGER NOT NULL,
    sent_at         INTEGER
);
CREATE INDEX outbox_due ON outbox (state, next_attempt_at);
CREATE INDEX outbox_by_upstream_id ON outbox (upstream_id);

-- Delivery receipts from Webex Connect, as received.
CREATE TABLE delivery_receipts (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    correlation_id TEXT,
    transid        TEXT,
    code           TEXT,
    status         TEXT,
    channel        TEXT,
    outbox_id      INTEGER REFERENCES outbox (id),
    payload        TEXT NOT NULL,
    received_at    INTEGER NOT NULL
);
