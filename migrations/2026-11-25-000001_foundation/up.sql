-- Workspaces, API keys and contacts.

CREATE TABLE workspaces (
    id uuid PRIMARY KEY,
    name text NOT NULL,
    -- Kept by a trigger on contacts, so an unfiltered list needs no count(*).
    contact_count bigint NOT NULL DEFAULT 0,
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE api_keys (
    id uuid PRIMARY KEY,
    workspace_id uuid NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    name text NOT NULL,
    -- SHA-256 or HMAC-SHA-256 of the key; the key itself is never stored.
    key_hash bytea NOT NULL,
    key_prefix text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    revoked_at timestamptz,
    CONSTRAINT api_keys_key_hash_key UNIQUE (key_hash),
    CONSTRAINT api_keys_key_hash_len CHECK (octet_length(key_hash) = 32)
);
CREATE INDEX api_keys_workspace_idx ON api_keys (workspace_id, created_at);

CREATE TABLE contacts (
    id uuid PRIMARY KEY,
    workspace_id uuid NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    name text NOT NULL,
    -- Digits with the country code, normalised by the domain.
    phone text NOT NULL,
    labels text[] NOT NULL DEFAULT '{}',
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL,
    CONSTRAINT contacts_workspace_phone_key UNIQUE (workspace_id, phone),
    CONSTRAINT contacts_phone_digits CHECK (phone ~ '^[1-9][0-9]{7,14}$')
);
-- Newest-first listing within a workspace.
CREATE INDEX contacts_workspace_created_idx ON contacts (workspace_id, created_at DESC, id DESC);

CREATE FUNCTION contacts_count_trigger() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        UPDATE workspaces SET contact_count = contact_count + 1 WHERE id = NEW.workspace_id;
    ELSIF TG_OP = 'DELETE' THEN
        UPDATE workspaces SET contact_count = contact_count - 1 WHERE id = OLD.workspace_id;
    END IF;
    RETURN NULL;
END;
$$;

CREATE TRIGGER contacts_count
    AFTER INSERT OR DELETE ON contacts
    FOR EACH ROW EXECUTE FUNCTION contacts_count_trigger();
