-- A message's first status (`queued` for outbound, `received` for inbound,
-- at created_at) is no longer stored as a history row: the message's own
-- row says it, and the extra row with its two index entries was about a
-- tenth of PostgreSQL's work per send. Readers put it first themselves.
DELETE FROM message_status_history WHERE status IN ('queued', 'received');

COMMENT ON TABLE message_status_history IS
    'Status changes after a message was created, in insertion (id) order; the first status (queued or received, at messages.created_at) is implied.';
