-- How far icbridge has read each Webex room it serves (experts' spaces, direct rooms with
-- the bot): Webex never retries a webhook delivery, so icbridge lists the messages it may
-- see since `seen_until` (the newest message's time it recorded, Unix ms) and handles
-- those it never received as events.
CREATE TABLE webex_catch_up (
    room_id    TEXT PRIMARY KEY,
    seen_until INTEGER NOT NULL,
    checked_at INTEGER NOT NULL
);
