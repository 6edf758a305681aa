DROP INDEX contacts_labels_lower_idx;
DROP FUNCTION contact_labels_lower(text[]);
DROP INDEX contacts_phone_trgm_idx;
DROP INDEX contacts_name_trgm_idx;
-- pg_trgm stays: it may have been installed (by a superuser) before this
-- migration, and other objects may use it.
