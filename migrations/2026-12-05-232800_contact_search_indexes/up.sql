-- Indexes for the contact list's search and label filter, which otherwise
-- read every contact of the workspace.
--
-- pg_trgm ships with PostgreSQL (Debian: postgresql-contrib) and is a
-- trusted extension: a role with CREATE on the database may install it. A
-- role that may not makes this migration fail; storage's run_migrations
-- then says to run `CREATE EXTENSION pg_trgm;` as a superuser.
CREATE EXTENSION IF NOT EXISTS pg_trgm;

-- Name substring (`name ILIKE '%…%'`; trigrams are case-insensitive) and
-- phone part (`phone LIKE '%…%'`).
CREATE INDEX contacts_name_trgm_idx ON contacts USING gin (name gin_trgm_ops);
CREATE INDEX contacts_phone_trgm_idx ON contacts USING gin (phone gin_trgm_ops);

-- The label filter compares case-insensitively:
-- `contact_labels_lower(labels) @> ARRAY[lower($1)]` uses this index.
CREATE FUNCTION contact_labels_lower(labels text[]) RETURNS text[]
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
    AS $$ SELECT ARRAY(SELECT lower(l) FROM unnest(labels) AS l) $$;
CREATE INDEX contacts_labels_lower_idx ON contacts USING gin (contact_labels_lower(labels));
