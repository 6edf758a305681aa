DROP TRIGGER contacts_labels_update ON contacts;
DROP TRIGGER contacts_labels_delete ON contacts;
DROP TRIGGER contacts_labels_insert ON contacts;
DROP FUNCTION contact_labels_updated();
DROP FUNCTION contact_labels_deleted();
DROP FUNCTION contact_labels_inserted();
DROP FUNCTION contact_label_counts_add(UUID, TEXT, BIGINT);
DROP TABLE contact_label_counts;
