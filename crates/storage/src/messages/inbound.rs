//! Recording an inbound message with its conversation.

use std::sync::LazyLock;

use chrono::{DateTime, Utc};
use diesel::pg::PgConnection;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Jsonb, Nullable, Text, Timestamptz, Uuid as SqlUuid};
use maveraa_domain::messaging::InboundMessage;
use uuid::Uuid;

use crate::error::StorageError;
use crate::messages::rows::ContentColumns;
use crate::sql::Sql;

/// Stores an inbound message unless the session has its provider id, and
/// then its conversation (push name, preview, unread + 1). Its history
/// starts with the message's own `received` (no row of its own).
/// `$11`: push name, `$12`: preview. The conversation is stamped with the
/// time we received the message (`$10`, microseconds, our clock, like
/// outbound messages), not the sender's whole-second timestamp: lists are
/// ordered and paged by it, and whole seconds would tie.
static INBOUND_SQL: LazyLock<Sql> = LazyLock::new(|| {
    Sql::new(
        "\
WITH ins AS (
    INSERT INTO messages (id, workspace_id, session_id, remote, direction, type, body, media,
        status, provider_message_id, provider_timestamp, created_at, updated_at)
    VALUES ($1, $2, $3, $4, 'inbound', $5, $6, $7, 'received', $8, $9, $10, $10)
    ON CONFLICT (session_id, provider_message_id) DO NOTHING
    RETURNING id
), conversation AS (
    INSERT INTO conversations AS c (session_id, remote, workspace_id, push_name, last_message,
        last_message_at, unread_count, last_inbound_provider_id)
    SELECT $3, $4, $2, NULLIF($11, ''), $12, $10, 1, $8 FROM ins
    ON CONFLICT (session_id, remote) DO UPDATE SET
        push_name = COALESCE(EXCLUDED.push_name, c.push_name),
        last_message = CASE WHEN EXCLUDED.last_message_at >= c.last_message_at
            THEN EXCLUDED.last_message ELSE c.last_message END,
        last_message_at = GREATEST(c.last_message_at, EXCLUDED.last_message_at),
        unread_count = c.unread_count + 1,
        last_inbound_provider_id = CASE
            WHEN EXCLUDED.last_message_at >= c.last_message_at OR c.last_inbound_provider_id IS NULL
            THEN EXCLUDED.last_inbound_provider_id ELSE c.last_inbound_provider_id END
)
SELECT count(*) AS inserted FROM ins",
    )
});

/// Stores a message the account sent from another of its devices unless
/// the session has its provider id: outbound and `sent` (its history starts
/// there), then its conversation (preview and time; not the unread count,
/// nor the push name, which is the account's own). Parameters as
/// [`INBOUND_SQL`]'s, but `$11` unused.
static ECHO_SQL: LazyLock<Sql> = LazyLock::new(|| {
    Sql::new(
        "\
WITH ins AS (
    INSERT INTO messages (id, workspace_id, session_id, remote, direction, type, body, media,
        status, provider_message_id, provider_timestamp, created_at, updated_at)
    VALUES ($1, $2, $3, $4, 'outbound', $5, $6, $7, 'sent', $8, $9, $10, $10)
    ON CONFLICT (session_id, provider_message_id) DO NOTHING
    RETURNING id
), conversation AS (
    INSERT INTO conversations AS c (session_id, remote, workspace_id, push_name, last_message,
        last_message_at, unread_count)
    SELECT $3, $4, $2, NULL, $12, $10, 0 FROM ins
    ON CONFLICT (session_id, remote) DO UPDATE SET
        last_message = CASE WHEN EXCLUDED.last_message_at >= c.last_message_at
            THEN EXCLUDED.last_message ELSE c.last_message END,
        last_message_at = GREATEST(c.last_message_at, EXCLUDED.last_message_at)
)
SELECT count(*) AS inserted FROM ins",
    )
});

/// How many messages [`INBOUND_SQL`] inserted: 1, or 0 for a redelivery.
#[derive(Debug, QueryableByName)]
struct InsertedMessages {
    #[diesel(sql_type = BigInt)]
    inserted: i64,
}

/// The session an inbound message came through.
pub(crate) struct SessionColumns {
    pub(crate) id: Uuid,
    pub(crate) workspace_id: Uuid,
}

/// Stores inbound message `m` as `id` (see [`INBOUND_SQL`]), or with
/// `echo` a message the account sent elsewhere ([`ECHO_SQL`]); whether it
/// is new, not a redelivery.
pub(crate) fn record_inbound(
    conn: &mut PgConnection,
    session: &SessionColumns,
    id: Uuid,
    m: &InboundMessage,
    content: &ContentColumns,
    received_at: DateTime<Utc>,
    echo: bool,
) -> Result<bool, StorageError> {
    let sql = if echo { &ECHO_SQL } else { &INBOUND_SQL };
    let stored: InsertedMessages = sql
        .query()
        .bind::<SqlUuid, _>(id)
        .bind::<SqlUuid, _>(session.workspace_id)
        .bind::<SqlUuid, _>(session.id)
        .bind::<Text, _>(m.from.as_str())
        .bind::<Text, _>(&content.kind)
        .bind::<Nullable<Text>, _>(content.body.as_deref())
        .bind::<Nullable<Jsonb>, _>(content.media.as_ref())
        .bind::<Text, _>(&m.provider_message_id)
        .bind::<Timestamptz, _>(m.timestamp)
        .bind::<Timestamptz, _>(received_at)
        .bind::<Nullable<Text>, _>(m.push_name.as_deref())
        .bind::<Text, _>(m.content.preview())
        .get_result(conn)?;
    Ok(stored.inserted == 1)
}
