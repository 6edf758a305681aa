//! Recording messages `sent` with their provider ids, and applying the
//! statuses the provider reported for those ids before they were
//! recorded. Used by the outbox (a send's outcome) and by status reports
//! that name a message whose outcome was unknown.

use std::collections::BTreeMap;
use std::sync::LazyLock;

use chrono::{DateTime, Utc};
use diesel::pg::PgConnection;
use diesel::prelude::*;
use diesel::sql_types::{Array, Nullable, Text, Timestamptz, Uuid as SqlUuid};
use maveraa_domain::messaging::{DeliveryError, MessageStatus};
use uuid::Uuid;

use crate::error::StorageError;
use crate::messages::status::{parse_status, provider_id_lock_sql, rank_sql};
use crate::sql::Sql;

/// Takes the provider-id locks (see [`provider_id_lock_sql`]), removes the
/// entries and moves their messages to `sent` (`$3`: when) unless they are
/// further already; keeps the first provider id a message got. A provider
/// id another message of the session holds, or given twice in the batch,
/// is kept by one message only: the others are `sent` without it (`dropped`)
/// rather than the whole batch refused, which would leave every message in
/// it claimed, to be sent again once the lease ends. Returns the messages
/// it changed. Unlike other outcomes, a `sent` counts whichever
/// claim it comes from, even when its entry is gone: a message another
/// claim failed without reaching the provider (no provider id) is `sent`
/// after all, its error cleared (the history keeps both).
static SENT_SQL: LazyLock<Sql> = LazyLock::new(|| {
    let moves = format!(
        "({rank} < {sent} OR (m.status = 'failed' AND m.provider_message_id IS NULL))",
        rank = rank_sql("m.status"),
        sent = MessageStatus::Sent.rank(),
    );
    Sql::new(&format!(
        "\
WITH locked AS (
    SELECT i.id, i.pid, i.session_id, {lock} AS locked
    FROM (SELECT i.id, i.pid, m.session_id
          FROM unnest($1::uuid[], $2::text[]) AS i(id, pid) JOIN messages m ON m.id = i.id
          ORDER BY m.session_id, i.pid) AS i
), given AS (
    SELECT l.id, l.pid,
        row_number() OVER (PARTITION BY l.session_id, l.pid ORDER BY l.id) = 1
        AND NOT EXISTS (SELECT 1 FROM messages x WHERE x.session_id = l.session_id
                        AND x.provider_message_id = l.pid AND x.id <> l.id) AS usable
    FROM locked l
), dequeued AS (
    DELETE FROM outbox o USING locked l WHERE o.message_id = l.id
), sent AS (
    UPDATE messages m SET
        status = CASE WHEN {moves} THEN 'sent' ELSE m.status END,
        error_code = CASE WHEN {moves} THEN NULL ELSE m.error_code END,
        error_message = CASE WHEN {moves} THEN NULL ELSE m.error_message END,
        provider_message_id = COALESCE(m.provider_message_id, CASE WHEN g.usable THEN g.pid END),
        updated_at = CASE WHEN {moves} THEN GREATEST(m.updated_at, $3) ELSE m.updated_at END
    FROM given g
    WHERE m.id = g.id AND ({moves} OR m.provider_message_id IS NULL)
    RETURNING m.id, m.status, m.provider_message_id IS NULL AND NOT g.usable AS dropped
), history AS (
    INSERT INTO message_status_history (message_id, status, at)
    SELECT id, 'sent', $3 FROM sent WHERE status = 'sent'
)
SELECT id, dropped FROM sent",
        lock = provider_id_lock_sql("i.session_id", "i.pid"),
    ))
});

/// Takes the statuses that arrived for these messages' provider ids
/// before the ids were recorded. Runs after [`SENT_SQL`] in the same
/// transaction, so its snapshot is taken under the locks: a status stored
/// by `apply_status` before that is seen here, one stored after finds the
/// provider id committed.
static TAKE_PENDING_SQL: LazyLock<Sql> = LazyLock::new(|| {
    Sql::new(
        "\
DELETE FROM pending_statuses p USING messages m
WHERE m.id = ANY($1) AND p.session_id = m.session_id
    AND p.provider_message_id = m.provider_message_id
RETURNING p.id, m.id AS message_id, m.status AS message_status, p.status, p.at,
    p.error_code, p.error_message",
    )
});

/// Applies statuses taken from `pending_statuses`: the messages' final
/// status, and a history row for each status that moved them on.
static APPLY_PENDING_SQL: LazyLock<Sql> = LazyLock::new(|| {
    Sql::new(
        "\
WITH moved AS (
    UPDATE messages m SET status = i.status, updated_at = GREATEST(m.updated_at, i.at),
        error_code = i.code, error_message = i.message
    FROM unnest($1::uuid[], $2::text[], $3::timestamptz[], $4::text[], $5::text[])
        AS i(id, status, at, code, message)
    WHERE m.id = i.id
)
INSERT INTO message_status_history (message_id, status, at, error_code, error_message)
SELECT * FROM unnest($6::uuid[], $7::text[], $8::timestamptz[], $9::text[], $10::text[])",
    )
});

/// A message [`SENT_SQL`] changed, and whether the provider id it was
/// given had to be dropped.
#[derive(Debug, QueryableByName)]
struct SentRow {
    #[diesel(sql_type = SqlUuid)]
    id: Uuid,
    #[diesel(sql_type = diesel::sql_types::Bool)]
    dropped: bool,
}

/// One id column.
#[derive(Debug, QueryableByName)]
pub(crate) struct IdRow {
    #[diesel(sql_type = SqlUuid)]
    pub(crate) id: Uuid,
}

#[derive(Debug, QueryableByName)]
struct PendingRow {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    id: i64,
    #[diesel(sql_type = SqlUuid)]
    message_id: Uuid,
    #[diesel(sql_type = Text)]
    message_status: String,
    #[diesel(sql_type = Text)]
    status: String,
    #[diesel(sql_type = Timestamptz)]
    at: DateTime<Utc>,
    #[diesel(sql_type = Nullable<Text>)]
    error_code: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    error_message: Option<String>,
}

/// Columns of rows to write, one vector per column (bound as arrays).
#[derive(Debug, Default)]
struct StatusColumns {
    ids: Vec<Uuid>,
    statuses: Vec<String>,
    ats: Vec<DateTime<Utc>>,
    codes: Vec<Option<String>>,
    messages: Vec<Option<String>>,
}

impl StatusColumns {
    fn push(
        &mut self,
        id: Uuid,
        status: MessageStatus,
        at: DateTime<Utc>,
        error: Option<&DeliveryError>,
    ) {
        self.ids.push(id);
        self.statuses.push(status.as_str().to_owned());
        self.ats.push(at);
        self.codes.push(error.and_then(|e| e.code.clone()));
        self.messages.push(error.map(|e| e.message.clone()));
    }
}

/// Applies, in the order they happened, the pending statuses of messages
/// the caller holds row locks on.
fn apply_pending(conn: &mut PgConnection, ids: Vec<Uuid>) -> Result<(), StorageError> {
    let mut taken: Vec<PendingRow> = TAKE_PENDING_SQL
        .query()
        .bind::<Array<SqlUuid>, _>(ids)
        .load(conn)?;
    if taken.is_empty() {
        return Ok(());
    }
    taken.sort_by_key(|r| (r.message_id, r.at, r.id));
    let mut by_message: BTreeMap<Uuid, Vec<PendingRow>> = BTreeMap::new();
    for row in taken {
        by_message.entry(row.message_id).or_default().push(row);
    }
    let mut finals = StatusColumns::default();
    let mut history = StatusColumns::default();
    for (id, rows) in by_message {
        let Some(first) = rows.first() else { continue };
        let mut current = parse_status(&first.message_status)?;
        let mut last: Option<(DateTime<Utc>, Option<DeliveryError>)> = None;
        for row in rows {
            // A status this version does not know is dropped, as a webhook
            // carrying it would be.
            let Some(status) = MessageStatus::parse(&row.status) else {
                continue;
            };
            if !current.can_advance_to(status) {
                continue;
            }
            let error = (status == MessageStatus::Failed).then(|| DeliveryError {
                code: row.error_code,
                message: row.error_message.unwrap_or_default(),
            });
            history.push(id, status, row.at, error.as_ref());
            current = status;
            last = Some((row.at, error));
        }
        if let Some((at, error)) = last {
            finals.push(id, current, at, error.as_ref());
        }
    }
    if finals.ids.is_empty() {
        return Ok(());
    }
    APPLY_PENDING_SQL
        .query()
        .bind::<Array<SqlUuid>, _>(finals.ids)
        .bind::<Array<Text>, _>(finals.statuses)
        .bind::<Array<Timestamptz>, _>(finals.ats)
        .bind::<Array<Nullable<Text>>, _>(finals.codes)
        .bind::<Array<Nullable<Text>>, _>(finals.messages)
        .bind::<Array<SqlUuid>, _>(history.ids)
        .bind::<Array<Text>, _>(history.statuses)
        .bind::<Array<Timestamptz>, _>(history.ats)
        .bind::<Array<Nullable<Text>>, _>(history.codes)
        .bind::<Array<Nullable<Text>>, _>(history.messages)
        .execute(conn)?;
    Ok(())
}

/// Records messages `sent` with their provider ids (see [`SENT_SQL`]) and
/// applies the statuses that were waiting for those ids. The caller runs it
/// in a transaction.
pub(crate) fn record_sent(
    conn: &mut PgConnection,
    ids: Vec<Uuid>,
    provider_ids: Vec<String>,
    at: DateTime<Utc>,
) -> Result<(), StorageError> {
    let changed: Vec<SentRow> = SENT_SQL
        .query()
        .bind::<Array<SqlUuid>, _>(ids)
        .bind::<Array<Text>, _>(provider_ids)
        .bind::<Timestamptz, _>(at)
        .load(conn)?;
    for row in changed.iter().filter(|r| r.dropped) {
        tracing::warn!(
            message_id = %row.id,
            "the provider gave this message an id another message already has: recorded as sent without it (its receipts cannot be matched)"
        );
    }
    if !changed.is_empty() {
        apply_pending(conn, changed.into_iter().map(|r| r.id).collect())?;
    }
    Ok(())
}
