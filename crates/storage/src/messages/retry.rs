//! Failed messages queued again: the status back to `queued` (a history
//! step), the error cleared and a new outbox entry due at once, in one
//! statement, only for messages no provider took (`provider_message_id`
//! unset), as the domain's `Message::can_retry` says.

use chrono::{DateTime, Utc};
use diesel::pg::PgConnection;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Nullable, Text, Timestamptz, Uuid as SqlUuid};
use maveraa_domain::messaging::Message;
use maveraa_domain::{MessageId, SessionId, WorkspaceId};

use crate::error::StorageError;
use crate::messages::rows;

/// The messages to queue again are those `m` selects; the new entries are
/// due by the database's clock, which claims go by.
fn requeue_sql(selection: &str) -> String {
    format!(
        "WITH m AS (
            UPDATE messages
               SET status = 'queued', error_code = NULL, error_message = NULL, updated_at = $1
             WHERE direction = 'outbound' AND status = 'failed'
               AND provider_message_id IS NULL AND {selection}
            RETURNING id
        ), h AS (
            INSERT INTO message_status_history (message_id, status, at)
            SELECT id, 'queued', $1 FROM m
        ), o AS (
            INSERT INTO outbox (message_id, next_attempt_at)
            SELECT id, now() FROM m
            ON CONFLICT (message_id) DO NOTHING
        )
        SELECT count(*) AS requeued FROM m"
    )
}

#[derive(QueryableByName)]
struct Requeued {
    #[diesel(sql_type = BigInt)]
    requeued: i64,
}

/// Queues the message `id` again; the message as it is then, or `None`
/// when it is not a failed message no provider took.
pub(crate) fn requeue(
    conn: &mut PgConnection,
    workspace: WorkspaceId,
    id: MessageId,
    at: DateTime<Utc>,
) -> Result<Option<Message>, StorageError> {
    let done: Requeued = diesel::sql_query(requeue_sql("workspace_id = $2 AND id = $3"))
        .bind::<Timestamptz, _>(at)
        .bind::<SqlUuid, _>(workspace.as_uuid())
        .bind::<SqlUuid, _>(id.as_uuid())
        .get_result(conn)?;
    if done.requeued == 0 {
        return Ok(None);
    }
    rows::get(conn, workspace, id)
}

/// Queues again the failed messages of `session` no provider took, only
/// those with `error_code` when given; how many.
pub(crate) fn requeue_failed(
    conn: &mut PgConnection,
    workspace: WorkspaceId,
    session: SessionId,
    error_code: Option<&str>,
    at: DateTime<Utc>,
) -> Result<u64, StorageError> {
    let done: Requeued = diesel::sql_query(requeue_sql(
        "workspace_id = $2 AND session_id = $3 AND ($4::text IS NULL OR error_code = $4)",
    ))
    .bind::<Timestamptz, _>(at)
    .bind::<SqlUuid, _>(workspace.as_uuid())
    .bind::<SqlUuid, _>(session.as_uuid())
    .bind::<Nullable<Text>, _>(error_code)
    .get_result(conn)?;
    Ok(u64::try_from(done.requeued).unwrap_or(0))
}
