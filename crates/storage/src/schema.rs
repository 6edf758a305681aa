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
    /// Keyless: read and written only by SQL (the count triggers and
    /// `contacts::StoredCount`); declared so the drift check sees it.
    contact_count_deltas (workspace_id) {
        workspace_id -> Uuid,
        delta -> Int4,
    }
}

diesel::table! {
    /// Keyless: written by the label triggers, read by
    /// `contacts::count_matching`.
    contact_label_counts (workspace_id, label) {
        workspace_id -> Uuid,
        label -> Text,
        n -> Int8,
    }
}

diesel::table! {
    users (id) {
        id -> Uuid,
        email -> Text,
        password_hash -> Text,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    memberships (user_id, workspace_id) {
        user_id -> Uuid,
        workspace_id -> Uuid,
        role -> Text,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    /// Written by triggers, read by `events.rs` in SQL.
    events (seq) {
        seq -> Int8,
        pos -> Nullable<Int8>,
        workspace_id -> Uuid,
        #[sql_name = "type"]
        kind -> Text,
        data -> Nullable<Jsonb>,
        created_at -> Timestamptz,
        message_id -> Nullable<Uuid>,
        status -> Nullable<Text>,
        provider_message_id -> Nullable<Text>,
        error_code -> Nullable<Text>,
        error_message -> Nullable<Text>,
        at -> Nullable<Timestamptz>,
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
        last_used_at -> Nullable<Timestamptz>,
        requests_per_sec -> Nullable<Int4>,
        sends_per_sec -> Nullable<Int4>,
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

diesel::table! {
    sessions (id) {
        id -> Uuid,
        workspace_id -> Uuid,
        name -> Text,
        provider -> Text,
        settings -> Jsonb,
        status -> Text,
        last_error -> Nullable<Text>,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
        me_jid -> Nullable<Text>,
        me_push_name -> Nullable<Text>,
    }
}

// `messages` also has `provider_timestamp` (nullable timestamptz), left out
// here to stay within diesel's 16 columns: raw SQL (MESSAGE_COLUMNS) reads it.
diesel::table! {
    messages (id) {
        id -> Uuid,
        workspace_id -> Uuid,
        session_id -> Uuid,
        remote -> Text,
        direction -> Text,
        #[sql_name = "type"]
        kind -> Text,
        body -> Nullable<Text>,
        media -> Nullable<Jsonb>,
        status -> Text,
        provider_message_id -> Nullable<Text>,
        error_code -> Nullable<Text>,
        error_message -> Nullable<Text>,
        idempotency_key -> Nullable<Text>,
        idempotency_fingerprint -> Nullable<Text>,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    message_status_history (id) {
        id -> Int8,
        message_id -> Uuid,
        status -> Text,
        at -> Timestamptz,
        error_code -> Nullable<Text>,
        error_message -> Nullable<Text>,
    }
}

diesel::table! {
    outbox (message_id) {
        message_id -> Uuid,
        attempts -> Int4,
        next_attempt_at -> Timestamptz,
        locked_by -> Nullable<Text>,
        locked_until -> Nullable<Timestamptz>,
        last_error -> Nullable<Text>,
    }
}

diesel::table! {
    conversations (session_id, remote) {
        session_id -> Uuid,
        remote -> Text,
        workspace_id -> Uuid,
        push_name -> Nullable<Text>,
        last_message -> Text,
        last_message_at -> Timestamptz,
        unread_count -> Int4,
        last_inbound_provider_id -> Nullable<Text>,
    }
}

diesel::table! {
    pending_statuses (id) {
        id -> Int8,
        session_id -> Uuid,
        provider_message_id -> Text,
        status -> Text,
        at -> Timestamptz,
        error_code -> Nullable<Text>,
        error_message -> Nullable<Text>,
        created_at -> Timestamptz,
    }
}

diesel::joinable!(api_keys -> workspaces (workspace_id));
diesel::joinable!(contacts -> workspaces (workspace_id));
diesel::joinable!(sessions -> workspaces (workspace_id));
diesel::joinable!(messages -> sessions (session_id));
diesel::joinable!(message_status_history -> messages (message_id));
diesel::joinable!(outbox -> messages (message_id));
diesel::joinable!(memberships -> users (user_id));
diesel::joinable!(conversations -> sessions (session_id));
diesel::joinable!(pending_statuses -> sessions (session_id));
diesel::allow_tables_to_appear_in_same_query!(
    workspaces,
    contact_count_deltas,
    contact_label_counts,
    users,
    memberships,
    events,
    api_keys,
    contacts,
    sessions,
    messages,
    message_status_history,
    outbox,
    conversations,
    pending_statuses,
);

#[cfg(all(test, feature = "test-support"))]
mod tests {
    use diesel::prelude::*;

    use super::*;
    use crate::testing::TestDatabase;

    /// Every column declared here exists in the migrated database (types
    /// are checked by the repository tests, which read and write them all).
    #[test]
    fn every_declared_column_exists() {
        let db = TestDatabase::create();
        let mut conn = crate::pool::establish(db.url()).expect("connect");
        macro_rules! check {
            ($($table:ident),*) => {$(
                $table::table
                    .select($table::all_columns)
                    .limit(0)
                    .execute(&mut conn)
                    .unwrap_or_else(|e| panic!("{}: {e}", stringify!($table)));
            )*};
        }
        check!(
            workspaces,
            contact_count_deltas,
            contact_label_counts,
            users,
            memberships,
            events,
            api_keys,
            contacts,
            sessions,
            messages,
            message_status_history,
            outbox,
            conversations,
            pending_statuses
        );
    }
}
