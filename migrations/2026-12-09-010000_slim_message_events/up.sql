-- Message events keep the facts of their moment (the message, its status,
-- provider id, error and time) in columns; readers spell the JSON from them
-- and the message's fixed parts (session, number, direction, type, text,
-- media, times), as GET /api/public/messages/{id} shows it. Building the
-- JSON in the sends' transactions (a join, three to_char, two dozen keys)
-- and copying about 700 bytes per event, once written and again when the
-- sequencer placed it, was most of what the log cost a send (measured in
-- docs/benchmark-latest.md). Other events keep their JSON in `data`.
--
-- The foreign key to workspaces goes too: its check, a lookup and a
-- KEY SHARE lock of the workspace row per event, was 8 us of the 18 a
-- slim event costs. A workspace's events are deleted with it by a trigger
-- instead (after the cascades, which wait for the transactions still
-- writing its rows, so their events are committed and seen); an event a
-- late transaction leaves for a deleted workspace is read by no one and
-- goes with the retention.
ALTER TABLE events
    ALTER COLUMN data DROP NOT NULL,
    ADD COLUMN message_id UUID,
    ADD COLUMN status TEXT,
    ADD COLUMN provider_message_id TEXT,
    ADD COLUMN error_code TEXT,
    ADD COLUMN error_message TEXT,
    ADD COLUMN at TIMESTAMPTZ;
ALTER TABLE events ADD CONSTRAINT events_data_or_message
    CHECK (data IS NOT NULL OR message_id IS NOT NULL);

CREATE OR REPLACE FUNCTION message_events_inserted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO events (workspace_id, type, message_id, status, provider_message_id, error_code, error_message, at)
    SELECT m.workspace_id,
           CASE WHEN m.direction = 'inbound' THEN 'message.received'
                WHEN m.status = 'queued' THEN 'message.queued' ELSE 'message.sent' END,
           m.id, m.status, m.provider_message_id, m.error_code, m.error_message, m.updated_at
    FROM inserted_messages m
    ORDER BY m.created_at, m.id;
    RETURN NULL;
END;
$$;

CREATE OR REPLACE FUNCTION message_status_event() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO events (workspace_id, type, message_id, status, provider_message_id, error_code, error_message, at)
    VALUES (NEW.workspace_id, 'message.status', NEW.id, NEW.status, NEW.provider_message_id,
            NEW.error_code, NEW.error_message, NEW.updated_at);
    RETURN NULL;
END;
$$;

ALTER TABLE events DROP CONSTRAINT events_workspace_id_fkey;

CREATE FUNCTION workspace_events_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    -- Placed events by (workspace_id, pos); the rest lie above the floor.
    DELETE FROM events WHERE workspace_id = OLD.id AND pos IS NOT NULL;
    DELETE FROM events WHERE workspace_id = OLD.id AND pos IS NULL
        AND seq > (SELECT floor FROM event_log_head);
    RETURN NULL;
END;
$$;
CREATE TRIGGER workspaces_events_delete AFTER DELETE ON workspaces
    FOR EACH ROW EXECUTE FUNCTION workspace_events_deleted();
