//! Storing outbound messages: the statement that stores a batch of them
//! with their outbox entries and conversations, and the one-by-one path
//! that answers a send whose idempotency key is held already.

use std::collections::HashSet;
use std::sync::LazyLock;

use diesel::pg::PgConnection;
use diesel::prelude::*;
use diesel::sql_types::{Array, Nullable, Text, Timestamptz, Uuid as SqlUuid};
use maveraa_domain::messaging::{IdempotencyKey, Message};
use maveraa_domain::ports::EnqueueOutcome;
use uuid::Uuid;

use crate::error::StorageError;
use crate::messages::rows::{MESSAGE_COLUMNS, MessageRow, encode_content, fill_history};
use crate::sql::Sql;

/// Stores outbound messages (from arrays, one element a message) with their
/// outbox entries, and brings their conversations up
/// to date; a message whose idempotency key the workspace holds already is
/// left out. A conversation with several of the messages is written once,
/// with the newest, and conversations are locked in key order so two
/// batches cannot deadlock on them.
static ENQUEUE_SQL: LazyLock<Sql> = LazyLock::new(|| {
    Sql::new(
        "\
WITH input AS (
    SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::uuid[], $4::text[], $5::text[], $6::text[],
        $7::text[], $8::text[], $9::text[], $10::text[], $11::text[], $12::text[], $13::text[],
        $14::text[], $15::timestamptz[], $16::timestamptz[], $17::text[])
    AS r(id, workspace_id, session_id, remote, direction, type, body, media, status,
        provider_message_id, error_code, error_message, idempotency_key, idempotency_fingerprint,
        created_at, updated_at, preview)
), ins AS (
    INSERT INTO messages (id, workspace_id, session_id, remote, direction, type, body, media,
        status, provider_message_id, error_code, error_message, idempotency_key,
        idempotency_fingerprint, created_at, updated_at)
    SELECT id, workspace_id, session_id, remote, direction, type, body, media::jsonb,
        status, provider_message_id, error_code, error_message, idempotency_key,
        idempotency_fingerprint, created_at, updated_at
    FROM input
    ON CONFLICT (workspace_id, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING
    RETURNING id, workspace_id, session_id, remote, created_at
), queued AS (
    INSERT INTO outbox (message_id, next_attempt_at)
    SELECT id, now() FROM ins
), conversation AS (
    INSERT INTO conversations AS c (session_id, remote, workspace_id, last_message, last_message_at)
    SELECT * FROM (
        SELECT DISTINCT ON (ins.session_id, ins.remote)
            ins.session_id, ins.remote, ins.workspace_id, input.preview, ins.created_at
        FROM ins JOIN input ON input.id = ins.id
        ORDER BY ins.session_id, ins.remote, ins.created_at DESC
    ) newest
    ORDER BY session_id, remote
    ON CONFLICT (session_id, remote) DO UPDATE SET
        last_message = CASE WHEN EXCLUDED.last_message_at >= c.last_message_at
            THEN EXCLUDED.last_message ELSE c.last_message END,
        last_message_at = GREATEST(c.last_message_at, EXCLUDED.last_message_at)
)
SELECT id FROM ins",
    )
});

#[derive(QueryableByName)]
struct Stored {
    #[diesel(sql_type = SqlUuid)]
    id: Uuid,
}

/// Stores outbound messages in one statement; the ids of those it stored
/// (a message whose idempotency key is held is not).
pub(crate) fn insert_outbound(
    conn: &mut PgConnection,
    batch: &[(&Message, Option<&IdempotencyKey>)],
) -> Result<HashSet<Uuid>, StorageError> {
    let n = batch.len();
    let mut ids = Vec::with_capacity(n);
    let mut workspaces = Vec::with_capacity(n);
    let mut sessions = Vec::with_capacity(n);
    let mut remotes = Vec::with_capacity(n);
    let mut directions = Vec::with_capacity(n);
    let mut kinds = Vec::with_capacity(n);
    let mut bodies = Vec::with_capacity(n);
    let mut media = Vec::with_capacity(n);
    let mut statuses = Vec::with_capacity(n);
    let mut provider_ids = Vec::with_capacity(n);
    let mut error_codes = Vec::with_capacity(n);
    let mut error_messages = Vec::with_capacity(n);
    let mut keys = Vec::with_capacity(n);
    let mut fingerprints = Vec::with_capacity(n);
    let mut created = Vec::with_capacity(n);
    let mut updated = Vec::with_capacity(n);
    let mut previews = Vec::with_capacity(n);
    for &(m, key) in batch {
        let content = encode_content(&m.content)?;
        ids.push(m.id.as_uuid());
        workspaces.push(m.workspace_id.as_uuid());
        sessions.push(m.session_id.as_uuid());
        remotes.push(m.remote.as_str().to_owned());
        directions.push(m.direction.as_str());
        kinds.push(content.kind);
        bodies.push(content.body);
        media.push(content.media.map(|v| v.to_string()));
        statuses.push(m.status.as_str());
        provider_ids.push(m.provider_message_id.clone());
        error_codes.push(m.error.as_ref().and_then(|e| e.code.clone()));
        error_messages.push(m.error.as_ref().map(|e| e.message.clone()));
        keys.push(key.map(|k| k.key.clone()));
        fingerprints.push(key.map(|k| k.fingerprint.clone()));
        created.push(m.created_at);
        updated.push(m.updated_at);
        previews.push(m.content.preview());
    }
    let stored: Vec<Stored> = ENQUEUE_SQL
        .query()
        .bind::<Array<SqlUuid>, _>(ids)
        .bind::<Array<SqlUuid>, _>(workspaces)
        .bind::<Array<SqlUuid>, _>(sessions)
        .bind::<Array<Text>, _>(remotes)
        .bind::<Array<Text>, _>(directions)
        .bind::<Array<Text>, _>(kinds)
        .bind::<Array<Nullable<Text>>, _>(bodies)
        .bind::<Array<Nullable<Text>>, _>(media)
        .bind::<Array<Text>, _>(statuses)
        .bind::<Array<Nullable<Text>>, _>(provider_ids)
        .bind::<Array<Nullable<Text>>, _>(error_codes)
        .bind::<Array<Nullable<Text>>, _>(error_messages)
        .bind::<Array<Nullable<Text>>, _>(keys)
        .bind::<Array<Nullable<Text>>, _>(fingerprints)
        .bind::<Array<Timestamptz>, _>(created)
        .bind::<Array<Timestamptz>, _>(updated)
        .bind::<Array<Text>, _>(previews)
        .load(conn)?;
    Ok(stored.into_iter().map(|s| s.id).collect())
}

/// The message holding an idempotency key, with the fingerprint of the
/// request that stored it.
#[derive(Debug, QueryableByName)]
struct KeyHoldingMessage {
    #[diesel(embed)]
    message: MessageRow,
    #[diesel(sql_type = Nullable<Text>)]
    fingerprint: Option<String>,
}

static MESSAGE_HOLDING_KEY_SQL: LazyLock<Sql> = LazyLock::new(|| {
    Sql::new(&format!(
        "SELECT {MESSAGE_COLUMNS}, m.idempotency_fingerprint AS fingerprint
         FROM messages m
         WHERE m.workspace_id = $1 AND m.idempotency_key = $2"
    ))
});

/// The message of `workspace` holding idempotency key `key`, with the
/// fingerprint stored with it.
fn message_holding_key(
    conn: &mut PgConnection,
    workspace: Uuid,
    key: &str,
) -> Result<Option<KeyHoldingMessage>, StorageError> {
    Ok(MESSAGE_HOLDING_KEY_SQL
        .query()
        .bind::<SqlUuid, _>(workspace)
        .bind::<Text, _>(key)
        .get_result(conn)
        .optional()?)
}

/// How long an idempotency key holds.
const IDEMPOTENCY_WINDOW: chrono::TimeDelta = chrono::TimeDelta::hours(24);

/// Rounds of insert-or-read before giving up: each round that stores
/// nothing finds the key's holder, which only another request clearing or
/// rolling back can take away again.
const IDEMPOTENCY_ROUNDS: usize = 5;

/// Stores one outbound message by itself (see
/// [`MessageRepository::enqueue`](maveraa_domain::ports::MessageRepository::enqueue)).
pub(crate) fn enqueue_one(
    conn: &mut PgConnection,
    message: &Message,
    key: Option<&IdempotencyKey>,
) -> Result<EnqueueOutcome, StorageError> {
    let cutoff = message.created_at - IDEMPOTENCY_WINDOW;
    for _ in 0..IDEMPOTENCY_ROUNDS {
        // Insert first: a new key (the usual case) costs one round trip.
        // A concurrent request with the same key makes this wait for it and
        // then store nothing (ON CONFLICT DO NOTHING).
        match insert_outbound(conn, &[(message, key)]) {
            Ok(stored) if stored.contains(&message.id.as_uuid()) => {
                return Ok(EnqueueOutcome::Created);
            }
            Ok(_) => {}
            // Its session (or workspace) was deleted since it was looked up.
            Err(err) if err.is_foreign_key_violation() => return Ok(EnqueueOutcome::SessionGone),
            Err(err) => return Err(err),
        }
        let Some(key) = key else {
            return Err(StorageError::Corrupt(
                "a message without idempotency key was not stored".into(),
            ));
        };
        match message_holding_key(conn, message.workspace_id.as_uuid(), &key.key)? {
            Some(holder) if holder.message.created_at > cutoff => {
                let mut first = Message::try_from(holder.message)?;
                fill_history(conn, &mut first)?;
                return Ok(EnqueueOutcome::Existing {
                    message: Box::new(first),
                    fingerprint: holder.fingerprint.unwrap_or_default(),
                });
            }
            Some(holder) => {
                // Older than the window: the key is free again.
                use crate::schema::messages::dsl;
                diesel::update(
                    dsl::messages
                        .filter(dsl::id.eq(holder.message.id))
                        .filter(dsl::idempotency_key.eq(&key.key)),
                )
                .set((
                    dsl::idempotency_key.eq(None::<String>),
                    dsl::idempotency_fingerprint.eq(None::<String>),
                ))
                .execute(conn)?;
            }
            // The holder rolled back or was cleared meanwhile: try again.
            None => {}
        }
    }
    Err(StorageError::Contended(format!(
        "idempotency key still changing hands after {IDEMPOTENCY_ROUNDS} rounds"
    )))
}
