DROP TRIGGER workspaces_events_delete ON workspaces;
DROP FUNCTION workspace_events_deleted();
DELETE FROM events e WHERE NOT EXISTS (SELECT 1 FROM workspaces w WHERE w.id = e.workspace_id);
ALTER TABLE events ADD CONSTRAINT events_workspace_id_fkey
    FOREIGN KEY (workspace_id) REFERENCES workspaces (id) ON DELETE CASCADE;

-- Back to the JSON written with each event: the slim events get theirs
-- (without the message, of a deleted session, only their facts).
UPDATE events e SET data = jsonb_build_object(
        'messageId', e.message_id,
        'sessionId', s.name,
        'remoteJid', m.remote || '@s.whatsapp.net',
        'direction', m.direction,
        'type', m.type,
        'text', CASE WHEN m.media IS NULL THEN m.body END,
        'media', CASE WHEN m.media IS NOT NULL THEN jsonb_build_object(
            'type', m.type,
            'url', m.media->>'url',
            'providerMediaId', m.media->>'providerMediaId',
            'mimeType', m.media->>'mimeType',
            'caption', m.body,
            'fileName', m.media->>'fileName') END,
        'status', e.status,
        'providerMessageId', e.provider_message_id,
        'error', CASE WHEN e.error_message IS NOT NULL THEN
            jsonb_build_object('code', e.error_code, 'message', e.error_message) END,
        'providerTimestamp', to_char(m.provider_timestamp AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
        'createdAt', to_char(m.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
        'updatedAt', to_char(e.at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'))
FROM events x
LEFT JOIN messages m ON m.id = x.message_id
LEFT JOIN sessions s ON s.id = m.session_id
WHERE x.seq = e.seq AND e.message_id IS NOT NULL;

CREATE OR REPLACE FUNCTION message_events_inserted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO events (workspace_id, type, data)
    SELECT m.workspace_id,
           CASE WHEN m.direction = 'inbound' THEN 'message.received'
                WHEN m.status = 'queued' THEN 'message.queued' ELSE 'message.sent' END,
           jsonb_build_object(
               'messageId', m.id,
               'sessionId', s.name,
               'remoteJid', m.remote || '@s.whatsapp.net',
               'direction', m.direction,
               'type', m.type,
               'text', CASE WHEN m.media IS NULL THEN m.body END,
               'media', CASE WHEN m.media IS NOT NULL THEN jsonb_build_object(
                   'type', m.type,
                   'url', m.media->>'url',
                   'providerMediaId', m.media->>'providerMediaId',
                   'mimeType', m.media->>'mimeType',
                   'caption', m.body,
                   'fileName', m.media->>'fileName') END,
               'status', m.status,
               'providerMessageId', m.provider_message_id,
               'error', CASE WHEN m.error_message IS NOT NULL THEN
                   jsonb_build_object('code', m.error_code, 'message', m.error_message) END,
               'providerTimestamp', to_char(m.provider_timestamp AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
               'createdAt', to_char(m.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
               'updatedAt', to_char(m.updated_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'))
    FROM inserted_messages m JOIN sessions s ON s.id = m.session_id
    ORDER BY m.created_at, m.id;
    RETURN NULL;
END;
$$;

CREATE OR REPLACE FUNCTION message_status_event() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO events (workspace_id, type, data)
    SELECT NEW.workspace_id, 'message.status',
           jsonb_build_object(
               'messageId', NEW.id,
               'sessionId', s.name,
               'remoteJid', NEW.remote || '@s.whatsapp.net',
               'direction', NEW.direction,
               'type', NEW.type,
               'text', CASE WHEN NEW.media IS NULL THEN NEW.body END,
               'media', CASE WHEN NEW.media IS NOT NULL THEN jsonb_build_object(
                   'type', NEW.type,
                   'url', NEW.media->>'url',
                   'providerMediaId', NEW.media->>'providerMediaId',
                   'mimeType', NEW.media->>'mimeType',
                   'caption', NEW.body,
                   'fileName', NEW.media->>'fileName') END,
               'status', NEW.status,
               'providerMessageId', NEW.provider_message_id,
               'error', CASE WHEN NEW.error_message IS NOT NULL THEN
                   jsonb_build_object('code', NEW.error_code, 'message', NEW.error_message) END,
               'providerTimestamp', to_char(NEW.provider_timestamp AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
               'createdAt', to_char(NEW.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
               'updatedAt', to_char(NEW.updated_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'))
    FROM sessions s WHERE s.id = NEW.session_id;
    RETURN NULL;
END;
$$;

ALTER TABLE events
    DROP CONSTRAINT events_data_or_message,
    DROP COLUMN message_id,
    DROP COLUMN status,
    DROP COLUMN provider_message_id,
    DROP COLUMN error_code,
    DROP COLUMN error_message,
    DROP COLUMN at,
    ALTER COLUMN data SET NOT NULL;
