CREATE INDEX contacts_phone_trgm_idx ON contacts USING gin (phone gin_trgm_ops);
DROP INDEX contacts_phone_grams_idx;
DROP FUNCTION contact_phone_grams(text);
