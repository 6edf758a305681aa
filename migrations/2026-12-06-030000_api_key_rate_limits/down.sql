ALTER TABLE api_keys DROP COLUMN sends_per_sec, DROP COLUMN requests_per_sec;
