CREATE TABLE oauth_logins (
    state         TEXT PRIMARY KEY,
    code_verifier TEXT NOT NULL,
    created_at    BIGINT NOT NULL
);

CREATE TABLE console_sessions (
    id_hash            TEXT PRIMARY KEY,
    email              TEXT NOT NULL,
    display_name       TEXT NOT NULL,
    access_token       TEXT NOT NULL,
    access_expires_at  BIGINT NOT NULL,
    refresh_token      TEXT NOT NULL,
    refresh_expires_at BIGINT NOT NULL,
    token_generation   BIGINT NOT NULL DEFAULT 1,
    csrf_token         TEXT NOT NULL,
    created_at         BIGINT NOT NULL
);
