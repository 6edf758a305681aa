//! Status reports from providers applied to outbound messages: the
//! compare-and-set that never moves a message backwards, statuses kept for
//! provider ids not recorded yet, and reports that name one of our messages
//! whose send's outcome was unknown.

use std::sync::LazyLock;

use diesel::pg::PgConnection;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Bool, Integer, Nullable, Text, Timestamptz, Uuid as SqlUuid};
use maveraa_domain::messaging::{MessageStatus, StatusUpdate};
use uuid::Uuid;

use crate::error::StorageError;
use crate::messages::sent::record_sent;
use crate::messages::status::{provider_id_lock_sql, rank_sql};
use crate::sql::Sql;

// ---------------------------------------------------------------------------
// Applying a status update

/// What a status update did: rows it changed, and whether the session
/// knows the provider id at all.
#[derive(Debug, QueryableByName)]
struct StatusResult {
    #[diesel(sql_type = BigInt)]
    changed: i64,
    #[diesel(sql_type = Bool)]
    known: bool,
}

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

/// Applies a provider's status update to the session's message with its
/// provider id, or keeps it for a send not recorded yet; whether a message
/// changed (see `MessageRepository::apply_status`).
pub(crate) fn apply_status(
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
        let settled = match update.echoed_message_id {
            Some(ours) => settle_by_our_id(conn, session, ours.as_uuid(), update)?,
            None => false,
        };
        let result = run_status_sql(conn, &APPLY_STATUS_LOCKED_SQL, session, update)?;
        Ok(settled || result.changed > 0)
    })
}

/// The session's outbound message `$2` while it has no provider id: a send
/// whose outcome was unknown (or never recorded). Locks it.
static UNSETTLED_SQL: LazyLock<Sql> = LazyLock::new(|| {
    Sql::new(
        "\
SELECT m.id FROM messages m
WHERE m.id = $2 AND m.session_id = $1 AND m.direction = 'outbound'
    AND m.provider_message_id IS NULL
FOR UPDATE",
    )
});

#[derive(Debug, QueryableByName)]
struct Unsettled {
    #[diesel(sql_type = SqlUuid)]
    #[allow(dead_code, reason = "read to tell a row from none")]
    id: Uuid,
}

/// A status report that names our message (the provider echoed the id the
/// send carried) for a provider id not recorded yet: the provider took the
/// message, so it is recorded `sent` with that id and its outbox entry
/// removed, whatever attempt holds it (a later outcome of that attempt
/// then changes nothing, see `Outbox::record`). The status itself is
/// applied after, as for any known message. A message that has a provider
/// id already (another attempt got through) is left alone: the report is
/// about a duplicate. Runs under the provider-id lock.
fn settle_by_our_id(
    conn: &mut PgConnection,
    session: Uuid,
    ours: Uuid,
    update: &StatusUpdate,
) -> Result<bool, StorageError> {
    let found: Vec<Unsettled> = UNSETTLED_SQL
        .query()
        .bind::<SqlUuid, _>(session)
        .bind::<SqlUuid, _>(ours)
        .load(conn)?;
    if found.is_empty() {
        return Ok(false);
    }
    record_sent(
        conn,
        vec![ours],
        vec![update.provider_message_id.clone()],
        update.timestamp,
    )?;
    Ok(true)
}
