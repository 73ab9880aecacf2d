-- Expert console logins in progress: the OAuth `state` and its PKCE verifier, used once.
CREATE TABLE oauth_logins (
    state         TEXT PRIMARY KEY,
    code_verifier TEXT NOT NULL,
    created_at    INTEGER NOT NULL
);

-- Signed-in experts. The cookie holds a random session id; only its SHA-256 is stored.
-- Webex tokens stay here, server-side.
CREATE TABLE console_sessions (
    id_hash            TEXT PRIMARY KEY,
    email              TEXT NOT NULL,
    display_name       TEXT NOT NULL,
    access_token       TEXT NOT NULL,
    access_expires_at  INTEGER NOT NULL,
    refresh_token      TEXT NOT NULL,
    refresh_expires_at INTEGER NOT NULL,
    -- Counts token refreshes, so the page knows to re-initialise the Space Widget.
    token_generation   INTEGER NOT NULL DEFAULT 1,
    csrf_token         TEXT NOT NULL,
    created_at         INTEGER NOT NULL
);
