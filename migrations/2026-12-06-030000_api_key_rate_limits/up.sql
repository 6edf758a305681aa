-- A key's own request rates, overriding the server's defaults
-- (`rate_limits.*`): NULL takes the default, 0 is no limit.
ALTER TABLE api_keys
    ADD COLUMN requests_per_sec INTEGER CHECK (requests_per_sec >= 0),
    ADD COLUMN sends_per_sec INTEGER CHECK (sends_per_sec >= 0);
