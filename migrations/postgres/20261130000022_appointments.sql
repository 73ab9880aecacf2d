-- Booked consultations. An appointment's meeting is made when it is booked, its links valid
-- from `not_before` (some minutes before the start) until `expires_at` (after the end).
ALTER TABLE meetings ADD COLUMN not_before BIGINT;

-- Every link of a meeting with its role: the first host and guest links (also in
-- `meetings`), the more the broker gave (ICB_MEETING_HOSTS, ICB_MEETING_GUESTS), and the
-- guests an expert added. `sent_to`: the masked number an added guest's link was sent to.
CREATE TABLE meeting_links (
    id         BIGSERIAL PRIMARY KEY,
    meeting_id TEXT NOT NULL REFERENCES meetings (id),
    role       TEXT NOT NULL CHECK (role IN ('guest', 'host')),
    url        TEXT NOT NULL,
    sent_to    TEXT,
    created_at BIGINT NOT NULL
);
CREATE INDEX meeting_links_by_meeting ON meeting_links (meeting_id, id);
INSERT INTO meeting_links (meeting_id, role, url, created_at)
    SELECT id, 'host', host_url, created_at FROM meetings;
INSERT INTO meeting_links (meeting_id, role, url, created_at)
    SELECT id, 'guest', guest_url, created_at FROM meetings;

-- An own link (ICB_PUBLIC_URL/j/<code>) of a link beyond the meeting's first host and guest
-- links: its opening is not the customer's.
ALTER TABLE links ADD COLUMN extra INTEGER NOT NULL DEFAULT 0;

-- A scheduled delivery (an appointment's reminder and card) is due at its time without
-- holding up the rows of its conversation queued meanwhile; one still pending after
-- `stale_after` (its slot is over) is cancelled, not sent.
ALTER TABLE outbox ADD COLUMN scheduled INTEGER NOT NULL DEFAULT 0;
ALTER TABLE outbox ADD COLUMN stale_after BIGINT;
CREATE INDEX outbox_stale ON outbox (stale_after)
    WHERE state = 'pending' AND stale_after IS NOT NULL;

CREATE TABLE appointments (
    id              TEXT PRIMARY KEY,
    conversation_id TEXT NOT NULL REFERENCES conversations (id),
    meeting_id      TEXT NOT NULL REFERENCES meetings (id),
    channel         TEXT NOT NULL,
    customer        TEXT NOT NULL,
    business        TEXT NOT NULL,
    desk            TEXT NOT NULL,
    starts_at       BIGINT NOT NULL,
    ends_at         BIGINT NOT NULL,
    note            TEXT,
    state           TEXT NOT NULL DEFAULT 'booked' CHECK (state IN ('booked', 'cancelled')),
    -- The caller's Idempotency-Key, and a digest of the request it came with.
    idempotency_key TEXT UNIQUE,
    request_digest  TEXT,
    created_at      BIGINT NOT NULL,
    cancelled_at    BIGINT
);
CREATE INDEX appointments_by_start ON appointments (starts_at);
CREATE INDEX appointments_by_customer ON appointments (channel, customer, business, ends_at);
