DROP TRIGGER contacts_count ON contacts;
DROP FUNCTION contacts_count_trigger();
DROP TABLE contacts;
DROP TABLE api_keys;
DROP TABLE workspaces;
