DROP TRIGGER contacts_count_delete ON contacts;
DROP TRIGGER contacts_count_insert ON contacts;
DROP FUNCTION contacts_count_deleted();
DROP FUNCTION contacts_count_inserted();

CREATE FUNCTION contacts_count_trigger() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        UPDATE workspaces SET contact_count = contact_count + 1 WHERE id = NEW.workspace_id;
    ELSIF TG_OP = 'DELETE' THEN
        UPDATE workspaces SET contact_count = contact_count - 1 WHERE id = OLD.workspace_id;
    END IF;
    RETURN NULL;
END;
$$;

CREATE TRIGGER contacts_count
    AFTER INSERT OR DELETE ON contacts
    FOR EACH ROW EXECUTE FUNCTION contacts_count_trigger();
