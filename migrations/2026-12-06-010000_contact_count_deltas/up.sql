-- The workspace's contact count without one row every writer queues on. A
-- statement that adds or removes contacts updates the workspace's row when
-- nobody holds it (the common case: one UPDATE, as before), and otherwise
-- records its change as a row of contact_count_deltas instead of waiting:
-- a bulk import holds the workspace's row for its whole transaction, and
-- creates and deletes in the same workspace must not queue behind it. The
-- holder of the row folds the deltas that are visible to it into the count.
-- A count is the row's value plus the deltas (usually none).
CREATE TABLE contact_count_deltas (
    workspace_id UUID NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    delta INTEGER NOT NULL
);
CREATE INDEX contact_count_deltas_workspace_idx ON contact_count_deltas (workspace_id);

CREATE FUNCTION contacts_count_add(ws UUID, n BIGINT) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    -- SKIP LOCKED: a row held by another transaction is skipped, not
    -- awaited; a row this transaction holds already is taken again.
    PERFORM 1 FROM workspaces WHERE id = ws FOR NO KEY UPDATE SKIP LOCKED;
    IF FOUND THEN
        WITH folded AS (
            DELETE FROM contact_count_deltas WHERE workspace_id = ws RETURNING delta
        )
        UPDATE workspaces
        SET contact_count = contact_count + n + coalesce((SELECT sum(delta) FROM folded), 0)
        WHERE id = ws;
    -- Not when this transaction deleted the workspace (its contacts go
    -- with it): nothing is left to count.
    ELSIF EXISTS (SELECT 1 FROM workspaces WHERE id = ws) THEN
        -- The key-share lock of this foreign key does not wait for the
        -- holder's NO KEY UPDATE.
        INSERT INTO contact_count_deltas (workspace_id, delta) VALUES (ws, n);
    END IF;
END;
$$;

CREATE OR REPLACE FUNCTION contacts_count_inserted() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    d RECORD;
BEGIN
    FOR d IN SELECT workspace_id, count(*) AS n FROM inserted_contacts GROUP BY workspace_id LOOP
        PERFORM contacts_count_add(d.workspace_id, d.n);
    END LOOP;
    RETURN NULL;
END;
$$;

CREATE OR REPLACE FUNCTION contacts_count_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    d RECORD;
BEGIN
    FOR d IN SELECT workspace_id, count(*) AS n FROM deleted_contacts GROUP BY workspace_id LOOP
        PERFORM contacts_count_add(d.workspace_id, -d.n);
    END LOOP;
    RETURN NULL;
END;
$$;
