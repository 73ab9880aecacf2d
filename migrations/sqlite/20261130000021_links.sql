-- The links icbridge hands out in place of Instant Connect's, with ICB_PUBLIC_URL set:
-- ICB_PUBLIC_URL/j/<code> redirects to `target` (the meeting's guest or host link) while its
-- meeting is live and its conversation open. `opened_at`: the first real opening.
CREATE TABLE links (
    code       TEXT PRIMARY KEY,
    meeting_id TEXT NOT NULL REFERENCES meetings (id),
    role       TEXT NOT NULL CHECK (role IN ('guest', 'host')),
    target     TEXT NOT NULL,
    opened_at  INTEGER
);
CREATE INDEX links_by_meeting ON links (meeting_id);
