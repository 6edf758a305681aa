//! Messages, their status history and conversations.
//!
//! The multi-table writes are single statements with data-modifying CTEs:
//! one round trip, atomic without an explicit transaction, and kept
//! prepared (see [`crate::sql`]). Status compare-and-set runs in SQL with
//! ranks generated from the domain's [`MessageStatus::rank`], so the order
//! is written down in one place.

use std::sync::LazyLock;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use diesel::pg::{Pg, PgConnection};
use diesel::prelude::*;
use diesel::sql_types::{
    BigInt, Bool, Integer, Jsonb, Nullable, Text, Timestamptz, Uuid as SqlUuid,
};
use maveraa_domain::messaging::{
    Conversation, ConversationQuery, DeliveryError, Direction, IdempotencyKey, InboundMessage,
    MediaInfo, Message, MessageContent, MessageStatus, Session, SessionName, StatusChange,
    StatusUpdate, WaId,
};
use maveraa_domain::ports::{EnqueueOutcome, MessageRepository};
use maveraa_domain::transport::MediaKind;
use maveraa_domain::{MessageId, RepositoryError, SessionId, WorkspaceId};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::columns::WaIdColumn;
use crate::error::StorageError;
use crate::schema::{conversations, message_status_history};
use crate::sql::Sql;
use crate::store::PgStore;

// ---------------------------------------------------------------------------
// Statuses in SQL

/// Every status. The match below stops compiling when the domain adds one,
/// so this list cannot silently fall behind.
const ALL_STATUSES: [MessageStatus; 6] = [
    MessageStatus::Queued,
    MessageStatus::Sent,
    MessageStatus::Delivered,
    MessageStatus::Read,
    MessageStatus::Failed,
    MessageStatus::Received,
];

// Exhaustive on purpose: see ALL_STATUSES.
const _: fn(MessageStatus) = |s| match s {
    MessageStatus::Queued
    | MessageStatus::Sent
    | MessageStatus::Delivered
    | MessageStatus::Read
    | MessageStatus::Failed
    | MessageStatus::Received => {}
};

/// The rank of the status stored in `column`, as an SQL expression built
/// from [`MessageStatus::rank`]. A status this version does not know ranks
/// highest, so it is never overwritten.
pub(crate) fn rank_sql(column: &str) -> String {
    let mut sql = format!("(CASE {column}");
    for status in ALL_STATUSES {
        sql.push_str(&format!(
            " WHEN '{}' THEN {}",
            status.as_str(),
            status.rank()
        ));
    }
    sql.push_str(" ELSE 32767 END)");
    sql
}

/// Reads a stored status name.
pub(crate) fn parse_status(s: &str) -> Result<MessageStatus, StorageError> {
    MessageStatus::parse(s)
        .ok_or_else(|| StorageError::Corrupt(format!("unknown message status {s:?}")))
}

// ---------------------------------------------------------------------------
// Provider-id locks

/// First key of the transaction-level advisory locks taken on
/// (session, provider message id) ("mvps"). The two-key form keeps them
/// apart from the single-key locks of migrations and test templates.
const PROVIDER_ID_LOCK_SPACE: i32 = 0x6d76_7073;

/// `pg_advisory_xact_lock` on (session, provider id): serialises recording
/// a provider id with a status that arrives for it before it is recorded,
/// so that one of the two always sees the other (see
/// [`MessageRepository::apply_status`] and `Outbox::record`). The key is
/// hashed by the server, so every instance computes the same one.
pub(crate) fn provider_id_lock_sql(session_expr: &str, provider_id_expr: &str) -> String {
    format!(
        "pg_advisory_xact_lock({PROVIDER_ID_LOCK_SPACE}, hashtext({session_expr}::text || ':' || {provider_id_expr}))"
    )
}

// ---------------------------------------------------------------------------
// Rows

/// The columns [`MessageRow`] reads, from `messages m`. The session's name
/// comes by its key: a join with `sessions` planned (once, as a generic
/// plan) while that table was tiny scans all of it.
pub(crate) const MESSAGE_COLUMNS: &str = "m.id, m.workspace_id, m.session_id, \
     (SELECT sn.name FROM sessions sn WHERE sn.id = m.session_id) AS session_name, \
     m.remote, m.direction, m.type AS kind, m.body, m.media, m.status, m.provider_message_id, \
     m.error_code, m.error_message, m.provider_timestamp, m.created_at, m.updated_at";

/// A message read by raw SQL (see [`MESSAGE_COLUMNS`]).
#[derive(Debug, QueryableByName)]
pub(crate) struct MessageRow {
    #[diesel(sql_type = SqlUuid)]
    pub(crate) id: Uuid,
    #[diesel(sql_type = SqlUuid)]
    pub(crate) workspace_id: Uuid,
    #[diesel(sql_type = SqlUuid)]
    pub(crate) session_id: Uuid,
    #[diesel(sql_type = Text)]
    pub(crate) session_name: String,
    #[diesel(sql_type = Text)]
    pub(crate) remote: String,
    #[diesel(sql_type = Text)]
    pub(crate) direction: String,
    #[diesel(sql_type = Text)]
    pub(crate) kind: String,
    #[diesel(sql_type = Nullable<Text>)]
    pub(crate) body: Option<String>,
    #[diesel(sql_type = Nullable<Jsonb>)]
    pub(crate) media: Option<serde_json::Value>,
    #[diesel(sql_type = Text)]
    pub(crate) status: String,
    #[diesel(sql_type = Nullable<Text>)]
    pub(crate) provider_message_id: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    pub(crate) error_code: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    pub(crate) error_message: Option<String>,
    #[diesel(sql_type = Nullable<Timestamptz>)]
    pub(crate) provider_timestamp: Option<DateTime<Utc>>,
    #[diesel(sql_type = Timestamptz)]
    pub(crate) created_at: DateTime<Utc>,
    #[diesel(sql_type = Timestamptz)]
    pub(crate) updated_at: DateTime<Utc>,
}

impl TryFrom<MessageRow> for Message {
    type Error = StorageError;

    fn try_from(r: MessageRow) -> Result<Self, Self::Error> {
        Ok(Self {
            id: MessageId::from_uuid(r.id),
            workspace_id: WorkspaceId::from_uuid(r.workspace_id),
            session_id: SessionId::from_uuid(r.session_id),
            session_name: SessionName::from_trusted(r.session_name),
            remote: WaId::from_trusted(r.remote),
            direction: Direction::parse(&r.direction).ok_or_else(|| {
                StorageError::Corrupt(format!("unknown direction {:?}", r.direction))
            })?,
            content: decode_content(r.kind, r.body, r.media)?,
            status: parse_status(&r.status)?,
            provider_message_id: r.provider_message_id,
            error: message_error(r.error_code, r.error_message),
            provider_timestamp: r.provider_timestamp,
            created_at: r.created_at,
            updated_at: r.updated_at,
            history: Vec::new(),
        })
    }
}

/// The error stored as `error_code` and `error_message`, if any.
fn message_error(code: Option<String>, message: Option<String>) -> Option<DeliveryError> {
    match (code, message) {
        (None, None) => None,
        (code, message) => Some(DeliveryError {
            code,
            message: message.unwrap_or_default(),
        }),
    }
}

/// The `media` column: what a media message carries besides its kind
/// (the `type` column) and caption (the `body` column).
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct MediaJson {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    provider_media_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    mime_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    file_name: Option<String>,
}

/// The `type`, `body` and `media` columns of a message's content.
pub(crate) struct ContentColumns {
    pub(crate) kind: String,
    pub(crate) body: Option<String>,
    pub(crate) media: Option<serde_json::Value>,
}

pub(crate) fn encode_content(content: &MessageContent) -> Result<ContentColumns, StorageError> {
    Ok(match content {
        MessageContent::Text { body } => ContentColumns {
            kind: "text".to_owned(),
            body: Some(body.clone()),
            media: None,
        },
        MessageContent::Media(m) => {
            let json = MediaJson {
                url: m.url.clone(),
                provider_media_id: m.provider_media_id.clone(),
                mime_type: m.mime_type.clone(),
                file_name: m.file_name.clone(),
            };
            ContentColumns {
                kind: m.kind.as_str().to_owned(),
                body: m.caption.clone(),
                media: Some(
                    serde_json::to_value(json)
                        .map_err(|e| StorageError::Corrupt(format!("media: {e}")))?,
                ),
            }
        }
        MessageContent::Other { kind, body } => ContentColumns {
            kind: kind.clone(),
            body: body.clone(),
            media: None,
        },
    })
}

/// A message's content from its columns: media when `media` is set, text
/// for `text`, anything else kept as the provider named it.
fn decode_content(
    kind: String,
    body: Option<String>,
    media: Option<serde_json::Value>,
) -> Result<MessageContent, StorageError> {
    match (media, MediaKind::parse(&kind)) {
        (Some(json), Some(media_kind)) => {
            let m: MediaJson = serde_json::from_value(json)
                .map_err(|e| StorageError::Corrupt(format!("media: {e}")))?;
            Ok(MessageContent::Media(MediaInfo {
                kind: media_kind,
                url: m.url,
                provider_media_id: m.provider_media_id,
                mime_type: m.mime_type,
                caption: body,
                file_name: m.file_name,
            }))
        }
        _ if kind == "text" => Ok(MessageContent::Text {
            body: body.unwrap_or_default(),
        }),
        _ => Ok(MessageContent::Other { kind, body }),
    }
}

#[derive(Debug, Queryable, Selectable)]
#[diesel(table_name = message_status_history, check_for_backend(Pg))]
struct HistoryRow {
    status: String,
    at: DateTime<Utc>,
    error_code: Option<String>,
    error_message: Option<String>,
}

/// Fills in the status history of `message`: its first status at its
/// creation (`queued` or `received`), which is not stored as a row of its
/// own because the message's row already says it, then every stored change
/// in the order it was reached.
pub(crate) fn fill_history(
    conn: &mut PgConnection,
    message: &mut Message,
) -> Result<(), StorageError> {
    // Insertion order, not `at`: provider timestamps have whole seconds and
    // could put a `delivered` before the `sent` it followed.
    let rows: Vec<HistoryRow> = message_status_history::table
        .filter(message_status_history::message_id.eq(message.id.as_uuid()))
        .order(message_status_history::id.asc())
        .select(HistoryRow::as_select())
        .load(conn)?;
    let first = message.direction.first_status();
    let mut history = Vec::with_capacity(rows.len() + 1);
    history.push(StatusChange {
        status: first,
        at: message.created_at,
        error: None,
    });
    for r in rows {
        let status = parse_status(&r.status)?;
        // A row for the first status itself was written by versions before
        // migration 000004 (still possible mid rolling deploy): said once.
        if status == first {
            continue;
        }
        history.push(StatusChange {
            status,
            at: r.at,
            error: message_error(r.error_code, r.error_message),
        });
    }
    message.history = history;
    Ok(())
}

#[derive(Debug, QueryableByName)]
struct Count {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

#[derive(Debug, QueryableByName)]
struct KeyHolder {
    #[diesel(embed)]
    message: MessageRow,
    #[diesel(sql_type = Nullable<Text>)]
    fingerprint: Option<String>,
}

#[derive(Debug, QueryableByName)]
struct StatusResult {
    #[diesel(sql_type = BigInt)]
    changed: i64,
    #[diesel(sql_type = Bool)]
    known: bool,
}

#[derive(Debug, Queryable, Selectable)]
#[diesel(table_name = conversations, check_for_backend(Pg))]
struct ConversationRow {
    session_id: Uuid,
    #[diesel(deserialize_as = WaIdColumn)]
    remote: WaId,
    push_name: Option<String>,
    last_message: String,
    last_message_at: DateTime<Utc>,
    unread_count: i32,
}

/// The conversations of `workspace` (and `session`) last active exactly at
/// `at` that come after (`session_id`, `remote`) in the list's order: the
/// rest of a group of equal timestamps a page would otherwise end inside
/// (see [`complete_tie`]). Rare, so a boxed query.
fn tied_conversations(
    conn: &mut PgConnection,
    workspace: Uuid,
    session: Option<Uuid>,
    at: DateTime<Utc>,
    session_id: Uuid,
    remote: &str,
) -> QueryResult<Vec<ConversationRow>> {
    let mut q = conversations::table
        .filter(conversations::workspace_id.eq(workspace))
        .filter(conversations::last_message_at.eq(at))
        .filter(
            conversations::session_id
                .gt(session_id)
                .or(conversations::session_id
                    .eq(session_id)
                    .and(conversations::remote.gt(remote))),
        )
        .into_boxed();
    if let Some(session) = session {
        q = q.filter(conversations::session_id.eq(session));
    }
    q.order((conversations::session_id.asc(), conversations::remote.asc()))
        .select(ConversationRow::as_select())
        .load(conn)
}

// ---------------------------------------------------------------------------
// SQL

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
SELECT count(*) AS n FROM ins",
    )
});

/// The compare-and-set of a status update: `$1` session, `$2` provider id,
/// `$3` status, `$4` at, `$5`/`$6` error code/message, `$7` the status's
/// rank. The row lock UPDATE takes makes it atomic: a concurrent update
/// is waited for and the rank compared again on the row it left.
fn status_cas_ctes() -> String {
    format!(
        "\
WITH changed AS (
    UPDATE messages m SET status = $3, updated_at = GREATEST(m.updated_at, $4),
        error_code = $5, error_message = $6
    WHERE m.session_id = $1 AND m.provider_message_id = $2 AND m.direction = 'outbound'
        AND {rank} < $7
    RETURNING m.id
), history AS (
    INSERT INTO message_status_history (message_id, status, at, error_code, error_message)
    SELECT id, $3, $4, $5, $6 FROM changed
)",
        rank = rank_sql("m.status")
    )
}

/// A status update for a message whose provider id is recorded already.
static APPLY_STATUS_SQL: LazyLock<Sql> = LazyLock::new(|| {
    Sql::new(&format!(
        "{ctes}
SELECT (SELECT count(*) FROM changed) AS changed,
    EXISTS (SELECT 1 FROM messages WHERE session_id = $1 AND provider_message_id = $2) AS known",
        ctes = status_cas_ctes()
    ))
});

/// A status update under the provider-id lock: applied when the message is
/// known by now, else kept in `pending_statuses`. Also purges a few
/// pending statuses no message claimed within a week (statuses of messages
/// sent outside Maveraa, or of a send that was never recorded).
static APPLY_STATUS_LOCKED_SQL: LazyLock<Sql> = LazyLock::new(|| {
    Sql::new(&format!(
        "{ctes}, pending AS (
    INSERT INTO pending_statuses (session_id, provider_message_id, status, at, error_code, error_message)
    SELECT $1, $2, $3, $4, $5, $6
    WHERE NOT EXISTS (SELECT 1 FROM messages WHERE session_id = $1 AND provider_message_id = $2)
), purged AS (
    DELETE FROM pending_statuses WHERE id IN (
        SELECT id FROM pending_statuses WHERE created_at < now() - interval '7 days'
        ORDER BY created_at LIMIT 100 FOR UPDATE SKIP LOCKED)
)
SELECT (SELECT count(*) FROM changed) AS changed,
    EXISTS (SELECT 1 FROM messages WHERE session_id = $1 AND provider_message_id = $2) AS known",
        ctes = status_cas_ctes()
    ))
});

static LOCK_PROVIDER_ID_SQL: LazyLock<Sql> =
    LazyLock::new(|| Sql::new(&format!("SELECT {}", provider_id_lock_sql("$1", "$2"))));

static KEY_HOLDER_SQL: LazyLock<Sql> = LazyLock::new(|| {
    Sql::new(&format!(
        "SELECT {MESSAGE_COLUMNS}, m.idempotency_fingerprint AS fingerprint
         FROM messages m
         WHERE m.workspace_id = $1 AND m.idempotency_key = $2"
    ))
});

static GET_SQL: LazyLock<Sql> = LazyLock::new(|| {
    Sql::new(&format!(
        "SELECT {MESSAGE_COLUMNS} FROM messages m
         WHERE m.workspace_id = $1 AND m.id = $2"
    ))
});

/// The messages of one conversation (`$1` workspace, `$2` session, `$3`
/// remote), then `rest`: a statement's own filter and order.
fn in_conversation(rest: &str) -> Sql {
    Sql::new(&format!(
        "SELECT {MESSAGE_COLUMNS} FROM messages m
         WHERE m.workspace_id = $1 AND m.session_id = $2 AND m.remote = $3 {rest}"
    ))
}

/// A conversation's messages, newest first; `$4` page size.
static CONVERSATION_MESSAGES_SQL: LazyLock<Sql> =
    LazyLock::new(|| in_conversation("ORDER BY m.created_at DESC, m.id DESC LIMIT $4"));

/// As [`CONVERSATION_MESSAGES_SQL`], only messages older than `$5`.
static BEFORE_IN_CONVERSATION_SQL: LazyLock<Sql> = LazyLock::new(|| {
    in_conversation("AND m.created_at < $5 ORDER BY m.created_at DESC, m.id DESC LIMIT $4")
});

/// The rest of a group of messages stored at the same instant (`$4`) after
/// message `$5` in the history's order: see [`complete_tie`].
static TIED_IN_CONVERSATION_SQL: LazyLock<Sql> =
    LazyLock::new(|| in_conversation("AND m.created_at = $4 AND m.id < $5 ORDER BY m.id DESC"));

/// Whether a page read with one row more than `limit` ends inside a group
/// of rows with the same time (`at`): then the rows after the page's last
/// one in that group must be added, or a next page asked for with
/// `before` = that time would skip them. Otherwise the extra row is
/// dropped. Returns the time of the group to complete, if any.
fn complete_tie<R>(
    rows: &mut Vec<R>,
    limit: usize,
    at: impl Fn(&R) -> DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    if rows.len() <= limit {
        return None;
    }
    let next = at(&rows[limit]);
    let tied = limit
        .checked_sub(1)
        .map(|last| at(&rows[last]))
        .filter(|boundary| *boundary == next);
    rows.truncate(limit);
    tied
}

/// The message of `workspace` holding idempotency key `key`, with the
/// fingerprint stored with it.
fn key_holder(
    conn: &mut PgConnection,
    workspace: Uuid,
    key: &str,
) -> Result<Option<KeyHolder>, StorageError> {
    Ok(KEY_HOLDER_SQL
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

/// Stores one outbound message (see [`MessageRepository::enqueue`]).
pub(crate) fn enqueue(
    conn: &mut PgConnection,
    message: &Message,
    key: Option<&IdempotencyKey>,
) -> Result<EnqueueOutcome, StorageError> {
    let cutoff = message.created_at - IDEMPOTENCY_WINDOW;
    for _ in 0..IDEMPOTENCY_ROUNDS {
        // Insert first: a new key (the usual case) costs one round trip.
        // A concurrent request with the same key makes this wait for it and
        // then store nothing (ON CONFLICT DO NOTHING).
        match crate::send_batch::insert_outbound(conn, &[(message, key)]) {
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
        match key_holder(conn, message.workspace_id.as_uuid(), &key.key)? {
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

fn record_inbound(
    conn: &mut PgConnection,
    session: &SessionColumns,
    id: Uuid,
    m: &InboundMessage,
    content: &ContentColumns,
    received_at: DateTime<Utc>,
) -> Result<bool, StorageError> {
    let count: Count = INBOUND_SQL
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
    Ok(count.n == 1)
}

struct SessionColumns {
    id: Uuid,
    workspace_id: Uuid,
}

fn run_status_sql(
    conn: &mut PgConnection,
    sql: &Sql,
    session: Uuid,
    u: &StatusUpdate,
) -> Result<StatusResult, StorageError> {
    // The error belongs to `failed` only: moving on (a phone that got the
    // message) clears it.
    let error = u
        .error
        .as_ref()
        .filter(|_| u.status == MessageStatus::Failed);
    Ok(sql
        .query()
        .bind::<SqlUuid, _>(session)
        .bind::<Text, _>(&u.provider_message_id)
        .bind::<Text, _>(u.status.as_str())
        .bind::<Timestamptz, _>(u.timestamp)
        .bind::<Nullable<Text>, _>(error.and_then(|e| e.code.as_deref()))
        .bind::<Nullable<Text>, _>(error.map(|e| e.message.as_str()))
        .bind::<Integer, _>(i32::from(u.status.rank()))
        .get_result(conn)?)
}

fn apply_status(
    conn: &mut PgConnection,
    session: Uuid,
    update: &StatusUpdate,
) -> Result<bool, StorageError> {
    // Usually the send is recorded long before its statuses come: one
    // statement, no lock.
    let result = run_status_sql(conn, &APPLY_STATUS_SQL, session, update)?;
    if result.known {
        return Ok(result.changed > 0);
    }
    // Unknown provider id: the webhook may have beaten the recording of the
    // send. Under the lock `Outbox::record` also takes, either the send is
    // committed (and seen now), or it will find the pending row.
    conn.transaction::<_, StorageError, _>(|conn| {
        LOCK_PROVIDER_ID_SQL
            .query()
            .bind::<SqlUuid, _>(session)
            .bind::<Text, _>(&update.provider_message_id)
            .execute(conn)?;
        let result = run_status_sql(conn, &APPLY_STATUS_LOCKED_SQL, session, update)?;
        Ok(result.changed > 0)
    })
}

// ---------------------------------------------------------------------------
// The port

#[async_trait]
impl MessageRepository for PgStore {
    async fn enqueue(
        &self,
        message: &Message,
        idempotency: Option<&IdempotencyKey>,
    ) -> Result<EnqueueOutcome, RepositoryError> {
        Ok(self
            .sends
            .enqueue(&self.db, message.clone(), idempotency.cloned())
            .await?)
    }

    async fn get(
        &self,
        workspace: WorkspaceId,
        id: MessageId,
    ) -> Result<Option<Message>, RepositoryError> {
        Ok(self
            .db
            .run(move |conn| {
                let row: Option<MessageRow> = GET_SQL
                    .query()
                    .bind::<SqlUuid, _>(workspace.as_uuid())
                    .bind::<SqlUuid, _>(id.as_uuid())
                    .get_result(conn)
                    .optional()?;
                let Some(row) = row else { return Ok(None) };
                let mut message = Message::try_from(row)?;
                fill_history(conn, &mut message)?;
                Ok(Some(message))
            })
            .await?)
    }

    async fn list_for_conversation(
        &self,
        workspace: WorkspaceId,
        session: SessionId,
        remote: &WaId,
        before: Option<DateTime<Utc>>,
        limit: u32,
    ) -> Result<Vec<Message>, RepositoryError> {
        let remote = remote.as_str().to_owned();
        let rows: Vec<MessageRow> = self
            .db
            .run(move |conn| {
                // Two statements rather than `($4 IS NULL OR ...)`: each
                // keeps a plan that bounds the index scan.
                let sql = if before.is_some() {
                    &BEFORE_IN_CONVERSATION_SQL
                } else {
                    &CONVERSATION_MESSAGES_SQL
                };
                let query = sql
                    .query()
                    .bind::<SqlUuid, _>(workspace.as_uuid())
                    .bind::<SqlUuid, _>(session.as_uuid())
                    .bind::<Text, _>(&remote)
                    .bind::<BigInt, _>(i64::from(limit) + 1);
                let query = match before {
                    Some(before) => query.bind::<Timestamptz, _>(before),
                    None => query,
                };
                let mut rows: Vec<MessageRow> = query.load(conn)?;
                let limit = usize::try_from(limit).unwrap_or(usize::MAX);
                if let Some(at) = complete_tie(&mut rows, limit, |r| r.created_at)
                    && let Some(last) = rows.last().map(|r| r.id)
                {
                    let tied: Vec<MessageRow> = TIED_IN_CONVERSATION_SQL
                        .query()
                        .bind::<SqlUuid, _>(workspace.as_uuid())
                        .bind::<SqlUuid, _>(session.as_uuid())
                        .bind::<Text, _>(&remote)
                        .bind::<Timestamptz, _>(at)
                        .bind::<SqlUuid, _>(last)
                        .load(conn)?;
                    rows.extend(tied);
                }
                Ok(rows)
            })
            .await?;
        Ok(rows
            .into_iter()
            .map(Message::try_from)
            .collect::<Result<_, _>>()?)
    }

    async fn record_inbound(
        &self,
        session: &Session,
        id: MessageId,
        message: &InboundMessage,
        received_at: DateTime<Utc>,
    ) -> Result<bool, RepositoryError> {
        let columns = SessionColumns {
            id: session.id.as_uuid(),
            workspace_id: session.workspace_id.as_uuid(),
        };
        let content = encode_content(&message.content)?;
        let message = message.clone();
        Ok(self
            .db
            .run(move |conn| {
                record_inbound(
                    conn,
                    &columns,
                    id.as_uuid(),
                    &message,
                    &content,
                    received_at,
                )
            })
            .await?)
    }

    async fn apply_status(
        &self,
        session: SessionId,
        update: &StatusUpdate,
    ) -> Result<bool, RepositoryError> {
        let update = update.clone();
        Ok(self
            .db
            .run(move |conn| apply_status(conn, session.as_uuid(), &update))
            .await?)
    }

    async fn list_conversations(
        &self,
        workspace: WorkspaceId,
        query: &ConversationQuery,
    ) -> Result<Vec<Conversation>, RepositoryError> {
        let query = query.clone();
        let names = self.session_names.clone();
        Ok(self
            .reads
            .run(move |conn| {
                // No join with `sessions`: names come from `SessionNames`.
                let all = conversations::table
                    .filter(conversations::workspace_id.eq(workspace.as_uuid()));
                // One fixed statement per combination of filters, not one
                // boxed query: diesel finds a fixed statement in its cache
                // by type, a boxed one by its SQL, rebuilt at every run.
                // Rows go straight into a vector of the page's size: one
                // allocation, not a chain of reallocations (each large one
                // made glibc's malloc sweep its free lists).
                // One row more than the page: it tells whether the page
                // ends inside a group of conversations with one timestamp.
                let limit = usize::try_from(query.limit).unwrap_or(0);
                let capacity = limit + 1;
                macro_rules! page {
                    ($q:expr) => {{
                        let mut rows = Vec::with_capacity(capacity);
                        for row in $q
                            .order((
                                conversations::last_message_at.desc(),
                                conversations::session_id.asc(),
                                conversations::remote.asc(),
                            ))
                            .limit(i64::from(query.limit) + 1)
                            .select(ConversationRow::as_select())
                            .load_iter::<ConversationRow, diesel::connection::DefaultLoadingMode>(
                                conn,
                            )?
                        {
                            rows.push(row?);
                        }
                        rows
                    }};
                }
                let mut rows = match (query.session, query.before) {
                    (None, None) => page!(all),
                    (Some(session), None) => {
                        page!(all.filter(conversations::session_id.eq(session.as_uuid())))
                    }
                    (None, Some(before)) => {
                        page!(all.filter(conversations::last_message_at.lt(before)))
                    }
                    (Some(session), Some(before)) => page!(
                        all.filter(conversations::session_id.eq(session.as_uuid()))
                            .filter(conversations::last_message_at.lt(before))
                    ),
                };
                if let Some(at) = complete_tie(&mut rows, limit, |r| r.last_message_at)
                    && let Some(last) = rows.last()
                {
                    let tied = tied_conversations(
                        conn,
                        workspace.as_uuid(),
                        query.session.map(|s| s.as_uuid()),
                        at,
                        last.session_id,
                        last.remote.as_str(),
                    )?;
                    rows.extend(tied);
                }
                let ids: Vec<Uuid> = rows.iter().map(|r| r.session_id).collect();
                let session_names = names.resolve(conn, &ids)?;
                // A session deleted since the page was read has no name:
                // its conversations are gone too, so they are left out.
                let mut page = Vec::with_capacity(rows.len());
                for (r, session_name) in rows.into_iter().zip(session_names) {
                    let Some(session_name) = session_name else {
                        continue;
                    };
                    page.push(Conversation {
                        session_id: SessionId::from_uuid(r.session_id),
                        session_name,
                        remote: r.remote,
                        push_name: r.push_name,
                        last_message: r.last_message,
                        last_message_at: r.last_message_at,
                        unread_count: u32::try_from(r.unread_count).unwrap_or(0),
                    });
                }
                Ok(page)
            })
            .await?)
    }

    async fn mark_conversation_read(
        &self,
        workspace: WorkspaceId,
        session: SessionId,
        remote: &WaId,
    ) -> Result<Option<Option<String>>, RepositoryError> {
        let remote = remote.as_str().to_owned();
        Ok(self
            .db
            .run(move |conn| {
                Ok(diesel::update(
                    conversations::table
                        .filter(conversations::workspace_id.eq(workspace.as_uuid()))
                        .filter(conversations::session_id.eq(session.as_uuid()))
                        .filter(conversations::remote.eq(remote)),
                )
                .set(conversations::unread_count.eq(0))
                .returning(conversations::last_inbound_provider_id)
                .get_result::<Option<String>>(conn)
                .optional()?)
            })
            .await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_round_trips_through_columns() {
        let contents = [
            MessageContent::Text { body: "hi".into() },
            MessageContent::Text {
                body: String::new(),
            },
            MessageContent::Media(MediaInfo {
                kind: MediaKind::Document,
                url: Some("https://example.com/a.pdf".into()),
                provider_media_id: None,
                mime_type: Some("application/pdf".into()),
                caption: Some("invoice".into()),
                file_name: Some("a.pdf".into()),
            }),
            MessageContent::Media(MediaInfo {
                kind: MediaKind::Image,
                url: None,
                provider_media_id: Some("m1".into()),
                mime_type: None,
                caption: None,
                file_name: None,
            }),
            MessageContent::Other {
                kind: "location".into(),
                body: None,
            },
            MessageContent::Other {
                kind: "reaction".into(),
                body: Some("👍".into()),
            },
        ];
        for content in contents {
            let c = encode_content(&content).expect("encode");
            assert_eq!(
                decode_content(c.kind, c.body, c.media).expect("decode"),
                content
            );
        }
        let c = encode_content(&MessageContent::Media(MediaInfo {
            kind: MediaKind::Image,
            url: None,
            provider_media_id: Some("m1".into()),
            mime_type: Some("image/png".into()),
            caption: None,
            file_name: None,
        }))
        .expect("encode");
        assert_eq!(
            c.media,
            Some(serde_json::json!({"providerMediaId": "m1", "mimeType": "image/png"}))
        );
    }

    #[test]
    fn ranks_in_sql_follow_the_domain() {
        let sql = rank_sql("status");
        assert!(sql.contains("WHEN 'read' THEN 4"), "{sql}");
        assert!(sql.contains("WHEN 'failed' THEN 2"), "{sql}");
        assert!(sql.ends_with("ELSE 32767 END)"));
    }
}
