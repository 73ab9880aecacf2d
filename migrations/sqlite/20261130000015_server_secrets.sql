-- Secrets icbridge makes for itself, shared by every instance on the database: the key
-- that signs the links to experts' files (`/media/<token>/<name>`).
CREATE TABLE server_secrets (
    name  TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
