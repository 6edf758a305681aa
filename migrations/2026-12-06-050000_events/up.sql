-- The event log: what changed in a workspace, written by triggers in the
-- same transaction as the change (a change rolled back leaves no event, a
-- committed one always has its event). `seq` orders the writes; `pos`,
-- the public order, is given by the sequencer (`sequence_events`, one
-- process at a time) only to events already committed, so a reader that
-- pages by `pos` never misses an event that commits late with a smaller
-- `seq`: it gets a larger `pos` when it becomes visible.
--
-- Few index entries per event (with an event per send, each one counts):
-- seq, the events not yet placed, and workspace and pos. The last
-- position given is kept in a one-row table rather than read from an
-- index on pos, and old events are deleted by seq, which follows time.
CREATE TABLE events (
    seq BIGSERIAL PRIMARY KEY,
    pos BIGINT,
    workspace_id UUID NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    type TEXT NOT NULL,
    data JSONB NOT NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX events_unsequenced_idx ON events (seq) WHERE pos IS NULL;
CREATE INDEX events_workspace_pos_idx ON events (workspace_id, pos) WHERE pos IS NOT NULL;

CREATE TABLE event_log_head (
    one BOOLEAN PRIMARY KEY DEFAULT true CHECK (one),
    pos BIGINT NOT NULL
);
INSERT INTO event_log_head (pos) VALUES (0);

-- Gives the committed events without a position theirs, in write order,
-- after the last given. Under a transaction-scoped advisory lock (space
-- 0x6d766576, "mvev"): one sequencer at a time, the next starting only once
-- the last committed.
CREATE FUNCTION sequence_events(batch INTEGER) RETURNS INTEGER LANGUAGE plpgsql AS $$
DECLARE
    base BIGINT;
    done INTEGER;
BEGIN
    IF NOT pg_try_advisory_xact_lock(1836475766, 1) THEN
        RETURN 0;
    END IF;
    SELECT pos INTO base FROM event_log_head FOR UPDATE;
    WITH pending AS (
        SELECT seq FROM events WHERE pos IS NULL ORDER BY seq LIMIT batch
    ), numbered AS (
        SELECT seq, row_number() OVER (ORDER BY seq) AS n FROM pending
    )
    UPDATE events e SET pos = base + numbered.n
    FROM numbered
    WHERE e.seq = numbered.seq;
    GET DIAGNOSTICS done = ROW_COUNT;
    IF done > 0 THEN
        UPDATE event_log_head SET pos = base + done;
    END IF;
    RETURN done;
END;
$$;

-- A contact as the API shows it.
CREATE FUNCTION contact_event_data(id UUID, name TEXT, phone TEXT, labels TEXT[], created_at TIMESTAMPTZ)
    RETURNS JSONB LANGUAGE sql STABLE AS $$
    SELECT jsonb_build_object(
        '_id', id, 'name', name, 'phone', phone, 'labels', to_jsonb(labels),
        'createdAt', to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"'))
$$;

-- An import says what it did in one event of its own instead of one per
-- row (a million rows would write a million events): it sets
-- maveraa.bulk_import for its transaction.
CREATE FUNCTION contact_events_inserted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF current_setting('maveraa.bulk_import', true) = 'on' THEN
        RETURN NULL;
    END IF;
    INSERT INTO events (workspace_id, type, data)
    SELECT c.workspace_id, 'contact.created', contact_event_data(c.id, c.name, c.phone, c.labels, c.created_at)
    FROM inserted_contacts c ORDER BY c.created_at, c.id;
    RETURN NULL;
END;
$$;

CREATE FUNCTION contact_events_updated() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF current_setting('maveraa.bulk_import', true) = 'on' THEN
        RETURN NULL;
    END IF;
    INSERT INTO events (workspace_id, type, data)
    SELECT nw.workspace_id, 'contact.updated', contact_event_data(nw.id, nw.name, nw.phone, nw.labels, nw.created_at)
    FROM old_contacts o JOIN new_contacts nw USING (id)
    WHERE (o.name, o.phone, o.labels) IS DISTINCT FROM (nw.name, nw.phone, nw.labels)
    ORDER BY nw.id;
    RETURN NULL;
END;
$$;

CREATE FUNCTION contact_events_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    -- Not for a workspace this transaction deleted (its events go with it).
    INSERT INTO events (workspace_id, type, data)
    SELECT c.workspace_id, 'contact.deleted', contact_event_data(c.id, c.name, c.phone, c.labels, c.created_at)
    FROM deleted_contacts c
    WHERE EXISTS (SELECT 1 FROM workspaces w WHERE w.id = c.workspace_id)
    ORDER BY c.id;
    RETURN NULL;
END;
$$;

CREATE TRIGGER contacts_events_insert AFTER INSERT ON contacts
    REFERENCING NEW TABLE AS inserted_contacts
    FOR EACH STATEMENT EXECUTE FUNCTION contact_events_inserted();
CREATE TRIGGER contacts_events_update AFTER UPDATE ON contacts
    REFERENCING OLD TABLE AS old_contacts NEW TABLE AS new_contacts
    FOR EACH STATEMENT EXECUTE FUNCTION contact_events_updated();
CREATE TRIGGER contacts_events_delete AFTER DELETE ON contacts
    REFERENCING OLD TABLE AS deleted_contacts
    FOR EACH STATEMENT EXECUTE FUNCTION contact_events_deleted();

-- A session's status as the list shows it, when it changes. Row triggers
-- with a WHEN clause: the sends' and inbound messages' many updates of
-- these tables pay one comparison, not a transition table.
CREATE FUNCTION session_event() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO events (workspace_id, type, data)
    VALUES (NEW.workspace_id, 'session.status',
            jsonb_build_object('sessionId', NEW.name, 'status', NEW.status, 'lastError', NEW.last_error));
    RETURN NULL;
END;
$$;
CREATE TRIGGER sessions_events_update AFTER UPDATE OF status ON sessions
    FOR EACH ROW WHEN (OLD.status IS DISTINCT FROM NEW.status)
    EXECUTE FUNCTION session_event();

-- A conversation read: its unread count back to 0.
CREATE FUNCTION conversation_read_event() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO events (workspace_id, type, data)
    SELECT NEW.workspace_id, 'conversation.read',
           jsonb_build_object('remoteJid', NEW.remote || '@s.whatsapp.net', 'sessionId', s.name, 'unreadCount', 0)
    FROM sessions s WHERE s.id = NEW.session_id;
    RETURN NULL;
END;
$$;
CREATE TRIGGER conversations_events_read AFTER UPDATE OF unread_count ON conversations
    FOR EACH ROW WHEN (OLD.unread_count > 0 AND NEW.unread_count = 0)
    EXECUTE FUNCTION conversation_read_event();

-- Message events: message.queued (a send accepted), message.received (an
-- inbound message stored) and message.status (a message's status moved),
-- each with the message as GET /api/public/messages/{id} shows it, its
-- status history aside. The JSON is written out in each trigger: through a
-- SQL function taking a `messages` row it cost 31 to 124 µs a message
-- (PostgreSQL does not inline a function with a row argument), inline
-- about 4 µs. The two triggers spell the same object; keep them alike.
CREATE FUNCTION message_events_inserted() RETURNS trigger LANGUAGE plpgsql AS $$
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

CREATE TRIGGER messages_events_insert AFTER INSERT ON messages
    REFERENCING NEW TABLE AS inserted_messages
    FOR EACH STATEMENT EXECUTE FUNCTION message_events_inserted();

CREATE FUNCTION message_status_event() RETURNS trigger LANGUAGE plpgsql AS $$
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
CREATE TRIGGER messages_events_status AFTER UPDATE OF status ON messages
    FOR EACH ROW WHEN (OLD.status IS DISTINCT FROM NEW.status)
    EXECUTE FUNCTION message_status_event();
