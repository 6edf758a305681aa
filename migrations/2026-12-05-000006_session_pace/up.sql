-- Sending at the provider's pace, and unknown outcomes awaiting the
-- provider's word. Backward compatible: every column is nullable and filled
-- by a trigger, so the inserts of servers that do not know them still give
-- the claims of servers that do what they need. Older servers ignore them
-- (and so neither cap their sends nor keep per-recipient order while they
-- run).

-- The entry's session, recipient and queue position (its message's), so a
-- claim can count and order a session's entries without reading messages.
ALTER TABLE outbox ADD COLUMN session_id uuid;
ALTER TABLE outbox ADD COLUMN remote text;
ALTER TABLE outbox ADD COLUMN queued_at timestamptz;
-- When an attempt's outcome became unknown (the request may have reached
-- the provider); NULL otherwise. The entry is not due before the grace
-- ends, and a status report naming the message settles it meanwhile.
ALTER TABLE outbox ADD COLUMN outcome_unknown_since timestamptz;

CREATE FUNCTION outbox_fill_from_message() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.session_id IS NULL OR NEW.remote IS NULL OR NEW.queued_at IS NULL THEN
        SELECT m.session_id, m.remote, m.created_at
        INTO NEW.session_id, NEW.remote, NEW.queued_at
        FROM messages m WHERE m.id = NEW.message_id;
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER outbox_fill_from_message BEFORE INSERT ON outbox
    FOR EACH ROW EXECUTE FUNCTION outbox_fill_from_message();

UPDATE outbox o SET session_id = m.session_id, remote = m.remote, queued_at = m.created_at
FROM messages m WHERE m.id = o.message_id;

-- Due entries of a session; entries held under a lease (in flight); the
-- queue of one recipient.
CREATE INDEX outbox_session_due_idx ON outbox (session_id, next_attempt_at);
CREATE INDEX outbox_session_leased_idx ON outbox (session_id, locked_until)
    WHERE locked_until IS NOT NULL;
CREATE INDEX outbox_recipient_idx ON outbox (session_id, remote, queued_at, message_id);

-- A session's rate: the time its next send is due, one 1/rate step per
-- claimed message. Written only when a rate is configured.
CREATE TABLE session_pace (
    session_id uuid PRIMARY KEY REFERENCES sessions (id) ON DELETE CASCADE,
    next_send_at timestamptz NOT NULL
);
