UPDATE workspaces AS w SET contact_count = w.contact_count + d.n
FROM (SELECT workspace_id, sum(delta) AS n FROM contact_count_deltas GROUP BY workspace_id) AS d
WHERE w.id = d.workspace_id;

CREATE OR REPLACE FUNCTION contacts_count_inserted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE workspaces AS w SET contact_count = w.contact_count + d.n
    FROM (SELECT workspace_id, count(*) AS n FROM inserted_contacts GROUP BY workspace_id) AS d
    WHERE w.id = d.workspace_id;
    RETURN NULL;
END;
$$;

CREATE OR REPLACE FUNCTION contacts_count_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE workspaces AS w SET contact_count = w.contact_count - d.n
    FROM (SELECT workspace_id, count(*) AS n FROM deleted_contacts GROUP BY workspace_id) AS d
    WHERE w.id = d.workspace_id;
    RETURN NULL;
END;
$$;

DROP FUNCTION contacts_count_add(UUID, BIGINT);
DROP TABLE contact_count_deltas;
