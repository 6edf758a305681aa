-- Linked devices (WhatsApp Web): the account a session is linked as, the
-- QR code it waits to have scanned, the API's requests to the server that
-- holds its connection (a pairing code, a logout) and that server's
-- answers, and the hold itself: one server at a time runs a session, and
-- another takes it over once the hold runs out.
ALTER TABLE sessions
    ADD COLUMN me_jid text,
    ADD COLUMN me_push_name text,
    ADD COLUMN link_qr text,
    ADD COLUMN link_qr_expires_at timestamptz,
    ADD COLUMN pair_phone text,
    ADD COLUMN pair_requested boolean NOT NULL DEFAULT false,
    ADD COLUMN pair_code text,
    ADD COLUMN pair_error text,
    ADD COLUMN logout_requested boolean NOT NULL DEFAULT false;

ALTER TABLE sessions DROP CONSTRAINT sessions_provider_known,
    ADD CONSTRAINT sessions_provider_known
        CHECK (provider IN ('simulator', 'cloud-api', 'whatsapp-web'));

CREATE TABLE session_holders (
    session_id uuid PRIMARY KEY REFERENCES sessions (id) ON DELETE CASCADE,
    -- The server's name, as its dispatcher claims: only the holder sends.
    holder text NOT NULL,
    expires_at timestamptz NOT NULL
);

-- A session's status event carries the linked account, once linked.
CREATE OR REPLACE FUNCTION session_event() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO events (workspace_id, type, data)
    VALUES (NEW.workspace_id, 'session.status',
            jsonb_build_object('sessionId', NEW.name, 'status', NEW.status, 'lastError', NEW.last_error)
            || CASE WHEN NEW.me_jid IS NULL THEN '{}'::jsonb
                    ELSE jsonb_build_object('me', jsonb_build_object('id', NEW.me_jid, 'pushName', NEW.me_push_name))
               END);
    RETURN NULL;
END;
$$;

-- Each new QR code, for apps that show it themselves (as WAHA's and
-- Evolution API's QR events).
CREATE FUNCTION session_qr_event() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO events (workspace_id, type, data)
    VALUES (NEW.workspace_id, 'session.qr',
            jsonb_build_object('sessionId', NEW.name, 'code', NEW.link_qr,
                               'expiresAt', to_char(NEW.link_qr_expires_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')));
    RETURN NULL;
END;
$$;
CREATE TRIGGER sessions_qr_events AFTER UPDATE OF link_qr ON sessions
    FOR EACH ROW WHEN (NEW.link_qr IS NOT NULL AND OLD.link_qr IS DISTINCT FROM NEW.link_qr)
    EXECUTE FUNCTION session_qr_event();
