DROP TABLE pending_statuses;
DROP TABLE conversations;
DROP TABLE outbox;
DROP TABLE message_status_history;
DROP TABLE messages;
DROP TABLE sessions;
