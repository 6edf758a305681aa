DROP TRIGGER messages_events_status ON messages;
DROP TRIGGER messages_events_insert ON messages;
DROP FUNCTION message_status_event();
DROP FUNCTION message_events_inserted();
DROP FUNCTION message_event_data(messages, TEXT);
DROP FUNCTION message_event_time(TIMESTAMPTZ);
