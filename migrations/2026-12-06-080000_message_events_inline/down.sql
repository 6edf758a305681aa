CREATE FUNCTION message_event_time(t TIMESTAMPTZ) RETURNS TEXT
    LANGUAGE sql IMMUTABLE AS $$
    SELECT to_char(t AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')
$$;
CREATE FUNCTION message_event_data(m messages, session_name TEXT) RETURNS JSONB
    LANGUAGE sql IMMUTABLE AS $$
    SELECT jsonb_build_object(
        'messageId', m.id, 'sessionId', session_name, 'remoteJid', m.remote || '@s.whatsapp.net',
        'direction', m.direction, 'type', m.type,
        'text', CASE WHEN m.media IS NULL THEN m.body END,
        'media', CASE WHEN m.media IS NOT NULL THEN jsonb_build_object(
            'type', m.type, 'url', m.media->>'url', 'providerMediaId', m.media->>'providerMediaId',
            'mimeType', m.media->>'mimeType', 'caption', m.body, 'fileName', m.media->>'fileName') END,
        'status', m.status, 'providerMessageId', m.provider_message_id,
        'error', CASE WHEN m.error_message IS NOT NULL THEN
            jsonb_build_object('code', m.error_code, 'message', m.error_message) END,
        'providerTimestamp', message_event_time(m.provider_timestamp),
        'createdAt', message_event_time(m.created_at),
        'updatedAt', message_event_time(m.updated_at))
$$;
CREATE OR REPLACE FUNCTION message_events_inserted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO events (workspace_id, type, data)
    SELECT m.workspace_id,
           CASE m.direction WHEN 'inbound' THEN 'message.received' ELSE 'message.queued' END,
           message_event_data(m, s.name)
    FROM inserted_messages m JOIN sessions s ON s.id = m.session_id
    ORDER BY m.created_at, m.id;
    RETURN NULL;
END;
$$;
CREATE OR REPLACE FUNCTION message_status_event() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO events (workspace_id, type, data)
    SELECT NEW.workspace_id, 'message.status', message_event_data(NEW, s.name)
    FROM sessions s WHERE s.id = NEW.session_id;
    RETURN NULL;
END;
$$;
