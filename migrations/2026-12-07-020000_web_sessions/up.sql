-- Dashboard sessions: the SHA-256 of the cookie's random token is the key
-- (the table signs no one in), with the CSRF token forms send back, and
-- the idle and absolute expiry the server checks.
CREATE TABLE web_sessions (
    token_hash TEXT PRIMARY KEY,
    user_id UUID NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    workspace_id UUID NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    csrf_token TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    last_seen_at TIMESTAMPTZ NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX web_sessions_user_idx ON web_sessions (user_id);
CREATE INDEX web_sessions_expires_idx ON web_sessions (expires_at);

-- One-time links that create the first account, hashed: one per server
-- start while no account exists (each server prints its own; any works,
-- once), all gone with the first account.
CREATE TABLE setup_tokens (
    token_hash TEXT PRIMARY KEY,
    expires_at TIMESTAMPTZ NOT NULL
);
