-- A linked device's state (WhatsApp Web: identity, end-to-end sessions and
-- keys, app-state sync), opaque to the server: records by session, space
-- and key, each value sealed under the secrets key for its own row.
-- Deleting a session deletes its device's state.
CREATE TABLE device_state (
    session_id uuid NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    space text NOT NULL CHECK (length(space) BETWEEN 1 AND 64),
    key bytea NOT NULL,
    value_sealed text NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (session_id, space, key)
);
