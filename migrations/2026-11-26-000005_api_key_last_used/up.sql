-- When a key last authenticated a request. Servers record uses in batches
-- (auth.record_uses_secs), so requests never write.
ALTER TABLE api_keys ADD COLUMN last_used_at timestamptz;
