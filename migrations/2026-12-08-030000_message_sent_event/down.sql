CREATE OR REPLACE FUNCTION message_events_inserted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO events (workspace_id, type, data)
    SELECT m.workspace_id,
           CASE m.direction WHEN 'inbound' THEN 'message.received' ELSE 'message.queued' END,
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
