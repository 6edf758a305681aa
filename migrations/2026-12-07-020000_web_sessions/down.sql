DROP TABLE setup_tokens;
DROP TABLE web_sessions;
