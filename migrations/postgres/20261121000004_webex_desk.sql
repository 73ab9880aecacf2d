CREATE TABLE webex_events (
    id              TEXT PRIMARY KEY,
    resource        TEXT NOT NULL,
    payload         TEXT NOT NULL,
    state           TEXT NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'done', 'failed')),
    attempts        BIGINT NOT NULL DEFAULT 0,
    next_attempt_at BIGINT NOT NULL,
    leased_until    BIGINT,
    last_error      TEXT,
    received_at     BIGINT NOT NULL
);
CREATE INDEX webex_events_due ON webex_events (state, next_attempt_at);

ALTER TABLE messages ADD COLUMN author TEXT NOT NULL DEFAULT 'customer';
ALTER TABLE messages ADD COLUMN author_email TEXT;
ALTER TABLE conversations ADD COLUMN closed_by TEXT;
CREATE INDEX conversations_by_thread ON conversations (thread_message_id);
CREATE INDEX conversations_by_state ON conversations (state, created_at);
