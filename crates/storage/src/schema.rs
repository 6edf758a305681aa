//! The database schema, as diesel sees it. Written by hand to match
//! `migrations/`; the storage tests fail when the two drift apart.

diesel::table! {
    workspaces (id) {
        id -> Uuid,
        name -> Text,
        contact_count -> Int8,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    api_keys (id) {
        id -> Uuid,
        workspace_id -> Uuid,
        name -> Text,
        key_hash -> Bytea,
        key_prefix -> Text,
        created_at -> Timestamptz,
        revoked_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    contacts (id) {
        id -> Uuid,
        workspace_id -> Uuid,
        name -> Text,
        phone -> Text,
        labels -> Array<Text>,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::joinable!(api_keys -> workspaces (workspace_id));
diesel::joinable!(contacts -> workspaces (workspace_id));
diesel::allow_tables_to_appear_in_same_query!(workspaces, api_keys, contacts);
