-- Since when (Unix ms) a conversation has waited for its desk to open: a message that
-- needed a meeting came out of hours, and the desk queues such conversations. NULL once its
-- desk got it (at the opening) or a meeting was made. Waiting conversations are few: the
-- partial index finds them without reading the others.
ALTER TABLE conversations ADD COLUMN waiting_since BIGINT;
CREATE INDEX conversations_waiting ON conversations (desk, waiting_since)
    WHERE waiting_since IS NOT NULL;
