-- Stores the implied first statuses as rows again. Readers of the older
-- schema order a message's history by id, so these take negative ids to
-- come before every stored change.
INSERT INTO message_status_history (id, message_id, status, at)
SELECT -row_number() OVER (), id,
    CASE direction WHEN 'outbound' THEN 'queued' ELSE 'received' END, created_at
FROM messages;

COMMENT ON TABLE message_status_history IS NULL;
