-- A conversation's booked appointment is looked up when it closes, and for every open
-- conversation of the console's queue: by its conversation, not by walking every
-- appointment in the order of their starts.
CREATE INDEX appointments_by_conversation ON appointments (conversation_id, starts_at);
