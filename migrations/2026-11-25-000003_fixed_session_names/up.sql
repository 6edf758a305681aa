-- A session's name never changes (delete it and create another instead).
-- The server caches names by session id for conversation lists; this keeps
-- that cache right whatever writes to the table.
CREATE FUNCTION sessions_name_is_fixed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'a session''s name cannot change (session %)', OLD.id
        USING ERRCODE = 'check_violation';
END
$$;

CREATE TRIGGER sessions_name_is_fixed
    BEFORE UPDATE OF name ON sessions
    FOR EACH ROW WHEN (OLD.name IS DISTINCT FROM NEW.name)
    EXECUTE FUNCTION sessions_name_is_fixed();
