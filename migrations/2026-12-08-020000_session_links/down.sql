DROP TRIGGER sessions_qr_events ON sessions;
DROP FUNCTION session_qr_event();
CREATE OR REPLACE FUNCTION session_event() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO events (workspace_id, type, data)
    VALUES (NEW.workspace_id, 'session.status',
            jsonb_build_object('sessionId', NEW.name, 'status', NEW.status, 'lastError', NEW.last_error));
    RETURN NULL;
END;
$$;
DROP TABLE session_holders;
DELETE FROM sessions WHERE provider = 'whatsapp-web';
ALTER TABLE sessions DROP CONSTRAINT sessions_provider_known,
    ADD CONSTRAINT sessions_provider_known CHECK (provider IN ('simulator', 'cloud-api'));
ALTER TABLE sessions
    DROP COLUMN me_jid, DROP COLUMN me_push_name, DROP COLUMN link_qr,
    DROP COLUMN link_qr_expires_at, DROP COLUMN pair_phone, DROP COLUMN pair_requested,
    DROP COLUMN pair_code, DROP COLUMN pair_error, DROP COLUMN logout_requested;
