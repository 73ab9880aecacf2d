-- Customers who opted out (STOP) of messages from a business address: icbridge sends them
-- nothing until they opt back in (START), which deletes the row.
CREATE TABLE opt_outs (
    channel      TEXT NOT NULL,
    customer     TEXT NOT NULL,
    business     TEXT NOT NULL,
    opted_out_at INTEGER NOT NULL,
    PRIMARY KEY (channel, customer, business)
);

-- Deliveries to a customer who opted out are `cancelled`: never sent, and not a failure.
-- SQLite cannot change a CHECK constraint in place, so the outbox is rebuilt, ids and their
-- sequence kept (receipts and correlation ids name rows by id). sqlx runs this in a
-- transaction, where foreign keys cannot be switched off: the receipts, the outbox's only
-- children, are rebuilt first and refer to the new outbox, so that dropping the old one
-- deletes nothing anything refers to; renaming the new one renames the reference with it.
CREATE TABLE outbox_rebuilt (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    kind            TEXT NOT NULL,
    conversation_id TEXT REFERENCES conversations (id),
    payload         TEXT NOT NULL,
    state           TEXT NOT NULL DEFAULT 'pending'
                    CHECK (state IN ('pending', 'sent', 'dead', 'cancelled')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL,
    leased_until    INTEGER,
    last_error      TEXT,
    upstream_id     TEXT,
    delivery_status TEXT,
    delivery_code   TEXT,
    created_at      INTEGER NOT NULL,
    sent_at         INTEGER,
    held            INTEGER NOT NULL DEFAULT 0
);
INSERT INTO outbox_rebuilt (id, kind, conversation_id, payload, state, attempts,
                            next_attempt_at, leased_until, last_error, upstream_id,
                            delivery_status, delivery_code, created_at, sent_at, held)
    SELECT id, kind, conversation_id, payload, state, attempts, next_attempt_at,
           leased_until, last_error, upstream_id, delivery_status, delivery_code, created_at,
           sent_at, held
    FROM outbox;

CREATE TABLE delivery_receipts_rebuilt (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    correlation_id TEXT,
    transid        TEXT,
    code           TEXT,
    status         TEXT,
    channel        TEXT,
    outbox_id      INTEGER REFERENCES outbox_rebuilt (id),
    payload        TEXT NOT NULL,
    received_at    INTEGER NOT NULL
);
INSERT INTO delivery_receipts_rebuilt (id, correlation_id, transid, code, status, channel,
                                       outbox_id, payload, received_at)
    SELECT id, correlation_id, transid, code, status, channel, outbox_id, payload, received_at
    FROM delivery_receipts;

-- AUTOINCREMENT never hands out an id again, also one whose row is gone: keep the sequences.
DELETE FROM sqlite_sequence WHERE name IN ('outbox_rebuilt', 'delivery_receipts_rebuilt');
INSERT INTO sqlite_sequence (name, seq)
    SELECT name || '_rebuilt', seq FROM sqlite_sequence
    WHERE name IN ('outbox', 'delivery_receipts');

DROP TABLE delivery_receipts;
DROP TABLE outbox;
ALTER TABLE outbox_rebuilt RENAME TO outbox;
ALTER TABLE delivery_receipts_rebuilt RENAME TO delivery_receipts;

CREATE INDEX outbox_due ON outbox (next_attempt_at) WHERE state = 'pending';
CREATE INDEX outbox_held ON outbox (conversation_id) WHERE held = 1;
CREATE INDEX outbox_notifications_by_upstream_id ON outbox (upstream_id)
    WHERE kind = 'expert_notification';
CREATE INDEX outbox_replies_by_upstream_id ON outbox (upstream_id)
    WHERE kind = 'customer_reply';
CREATE INDEX delivery_receipts_by_outbox ON delivery_receipts (outbox_id, code);
