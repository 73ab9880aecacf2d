-- The browser that started a console login: the SHA-256 of a random value that only that
-- browser holds (in a short-lived cookie). A callback from any other browser finds no login.
-- Logins started before this column existed cannot be finished (they last 10 minutes).
ALTER TABLE oauth_logins ADD COLUMN browser_hash TEXT;
