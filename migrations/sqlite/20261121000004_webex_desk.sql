-- Events from the Webex webhook (new messages, card button presses), recorded before they
-- are answered and processed from here; `id` is the event's `data.id`, so a delivery that
-- Webex repeats is recorded once.
CREATE TABLE webex_events (
    id              TEXT PRIMARY KEY,
    resource        TEXT NOT NULL,
    payload         TEXT NOT NULL,
    state           TEXT NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'done', 'failed')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL,
    leased_until    INTEGER,
    last_error      TEXT,
    received_at     INTEGER NOT NULL
);
CREATE INDEX webex_events_due ON webex_events (state, next_attempt_at);

-- The transcript holds the experts' replies too.
ALTER TABLE messages ADD COLUMN author TEXT NOT NULL DEFAULT 'customer';
ALTER TABLE messages ADD COLUMN author_email TEXT;
ALTER TABLE conversations ADD COLUMN closed_by TEXT;
CREATE INDEX conversations_by_thread ON conversations (thread_message_id);
CREATE INDEX conversations_by_state ON conversations (state, created_at);
