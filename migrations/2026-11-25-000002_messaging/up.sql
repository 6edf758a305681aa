-- WhatsApp sessions, messages in both directions, their status history,
-- the outbox that sends queued messages, conversations, and statuses that
-- arrived before the message they are about.

CREATE TABLE sessions (
    id uuid PRIMARY KEY,
    workspace_id uuid NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    name text NOT NULL,
    provider text NOT NULL,
    -- The provider's settings. For cloud-api: phone_number_id, access_token,
    -- app_secret, verify_token. The secrets are stored as given (the server
    -- needs them in clear to call Meta and check webhook signatures):
    -- protect the database and its backups accordingly.
    settings jsonb NOT NULL DEFAULT '{}',
    status text NOT NULL DEFAULT 'connected',
    last_error text,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT sessions_workspace_name_key UNIQUE (workspace_id, name),
    CONSTRAINT sessions_provider_known CHECK (provider IN ('simulator', 'cloud-api'))
);

CREATE TABLE messages (
    id uuid PRIMARY KEY,
    workspace_id uuid NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    session_id uuid NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    -- The other party's WhatsApp number: digits only.
    remote text NOT NULL,
    direction text NOT NULL,
    -- text, image, document, audio, video, or a provider's type name.
    type text NOT NULL,
    -- The text, or the media's caption.
    body text,
    -- Media only: {url, providerMediaId, mimeType, fileName}.
    media jsonb,
    status text NOT NULL,
    provider_message_id text,
    error_code text,
    error_message text,
    -- Outbound only: the caller's Idempotency-Key and the fingerprint of the
    -- request that carried it. Cleared when a key older than 24 hours is
    -- used again, so the key can be reused.
    idempotency_key text,
    idempotency_fingerprint text,
    -- Inbound: when the sender sent it, by the provider's clock (whole
    -- seconds). created_at is when we stored it, which orders and pages.
    provider_timestamp timestamptz,
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL,
    -- Dedupes inbound redeliveries and finds outbound messages for status
    -- webhooks. NULLs (outbound messages not sent yet) never collide.
    CONSTRAINT messages_session_provider_id_key UNIQUE (session_id, provider_message_id),
    CONSTRAINT messages_remote_digits CHECK (remote ~ '^[0-9]{5,20}$'),
    CONSTRAINT messages_direction_known CHECK (direction IN ('inbound', 'outbound'))
);
CREATE UNIQUE INDEX messages_workspace_idempotency_key
    ON messages (workspace_id, idempotency_key) WHERE idempotency_key IS NOT NULL;
-- A conversation's messages, newest first.
CREATE INDEX messages_conversation_idx ON messages (session_id, remote, created_at DESC, id DESC);

CREATE TABLE message_status_history (
    id bigserial PRIMARY KEY,
    message_id uuid NOT NULL REFERENCES messages (id) ON DELETE CASCADE,
    status text NOT NULL,
    at timestamptz NOT NULL,
    error_code text,
    error_message text
);
CREATE INDEX message_status_history_message_idx ON message_status_history (message_id);

-- Messages waiting to be sent. A claim moves next_attempt_at to the end of
-- its lease, so claimed entries leave the front of the due index and an
-- entry whose dispatcher died becomes due again by itself.
CREATE TABLE outbox (
    message_id uuid PRIMARY KEY REFERENCES messages (id) ON DELETE CASCADE,
    attempts integer NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL,
    locked_by text,
    locked_until timestamptz,
    last_error text
);
CREATE INDEX outbox_due_idx ON outbox (next_attempt_at);

-- One row per (session, remote): the conversation list without scanning
-- messages. Kept in the same transaction as each message it summarises.
CREATE TABLE conversations (
    session_id uuid NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    remote text NOT NULL,
    -- The session's workspace, copied for the per-workspace listing.
    workspace_id uuid NOT NULL,
    push_name text,
    last_message text NOT NULL,
    last_message_at timestamptz NOT NULL,
    unread_count integer NOT NULL DEFAULT 0,
    last_inbound_provider_id text,
    PRIMARY KEY (session_id, remote)
);
CREATE INDEX conversations_workspace_idx ON conversations (workspace_id, last_message_at DESC, session_id, remote);
CREATE INDEX conversations_session_idx ON conversations (session_id, last_message_at DESC, remote);

-- Statuses reported for a provider id no message has yet: a webhook can
-- beat the provider's answer to the send. Recording the send applies and
-- deletes them; rows no message ever claims are purged after a while.
CREATE TABLE pending_statuses (
    id bigserial PRIMARY KEY,
    session_id uuid NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    provider_message_id text NOT NULL,
    status text NOT NULL,
    at timestamptz NOT NULL,
    error_code text,
    error_message text,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX pending_statuses_message_idx ON pending_statuses (session_id, provider_message_id);
CREATE INDEX pending_statuses_created_idx ON pending_statuses (created_at);
