//! The event log's reads and upkeep; its writes are the triggers of
//! migration `events`, in the transactions of the changes themselves.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{Array, BigInt, Integer, Text, Timestamptz, Uuid as SqlUuid};
use maveraa_domain::ports::EventLog;
use maveraa_domain::{Event, EventQuery, RepositoryError, WorkspaceId};

use crate::error::StorageError;
use crate::store::PgStore;

/// Events deleted per statement when pruning.
const PRUNE_ROUND: i64 = 10_000;

/// An event's JSON, as text, for a query over `events e` joined by
/// [`EVENT_JOINS`]: a message event keeps only the facts of its moment
/// (migration `slim_message_events`) and takes the rest from its message,
/// as `GET /api/public/messages/{id}` shows it (`MessageBody` in the HTTP
/// crate: a field added there belongs here too; the received-media test
/// compares the two); the others keep theirs.
/// The event of a message since deleted (with its session) keeps its facts.
pub(crate) const EVENT_DATA: &str = "CASE WHEN e.message_id IS NULL THEN e.data::text ELSE \
    jsonb_build_object(\
        'messageId', e.message_id, \
        'sessionId', es.name, \
        'remoteJid', em.remote || '@s.whatsapp.net', \
        'direction', em.direction, \
        'type', em.type, \
        'text', CASE WHEN em.media IS NULL THEN em.body END, \
        'media', CASE WHEN em.media IS NOT NULL THEN jsonb_build_object(\
            'type', em.type, \
            'url', em.media->>'url', \
            'providerMediaId', em.media->>'providerMediaId', \
            'mimeType', em.media->>'mimeType', \
            'caption', em.body, \
            'fileName', em.media->>'fileName', \
            'size', em.media->'size', \
            'download', CASE WHEN em.direction = 'inbound' \
                AND (em.media ? 'providerMediaId' OR em.media ? 'locator') \
                THEN '/api/public/messages/' || em.id || '/media' END) END, \
        'status', e.status, \
        'providerMessageId', e.provider_message_id, \
        'error', CASE WHEN e.error_message IS NOT NULL THEN \
            jsonb_build_object('code', e.error_code, 'message', e.error_message) END, \
        'providerTimestamp', to_char(em.provider_timestamp AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'), \
        'createdAt', to_char(em.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'), \
        'updatedAt', to_char(e.at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'))::text END";

/// The joins [`EVENT_DATA`] reads a message event's message through.
pub(crate) const EVENT_JOINS: &str = "LEFT JOIN messages em ON em.id = e.message_id \
    LEFT JOIN sessions es ON es.id = em.session_id";

#[derive(QueryableByName)]
struct EventRow {
    #[diesel(sql_type = BigInt)]
    pos: i64,
    #[diesel(sql_type = Text)]
    kind: String,
    #[diesel(sql_type = Timestamptz)]
    created_at: DateTime<Utc>,
    #[diesel(sql_type = Text)]
    data: String,
}

#[derive(QueryableByName)]
struct Count {
    #[diesel(sql_type = Integer)]
    n: i32,
}

#[async_trait]
impl EventLog for PgStore {
    async fn list(
        &self,
        workspace: WorkspaceId,
        query: &EventQuery,
    ) -> Result<Vec<Event>, RepositoryError> {
        let after = i64::try_from(query.after).unwrap_or(i64::MAX);
        let limit = i64::from(query.limit);
        let types = query.types.clone();
        let rows: Vec<EventRow> = self
            .reads
            .run(move |conn| {
                Ok(diesel::sql_query(format!(
                    "SELECT e.pos, e.type AS kind, e.created_at, {EVENT_DATA} AS data \
                     FROM events e {EVENT_JOINS} \
                     WHERE e.workspace_id = $1 AND e.pos > $2 \
                     AND (cardinality($3::text[]) = 0 OR e.type = ANY($3)) \
                     ORDER BY e.pos LIMIT $4",
                ))
                .bind::<SqlUuid, _>(workspace.as_uuid())
                .bind::<BigInt, _>(after)
                .bind::<Array<Text>, _>(types)
                .bind::<BigInt, _>(limit)
                .load(conn)?)
            })
            .await?;
        Ok(rows
            .into_iter()
            .map(|r| Event {
                position: u64::try_from(r.pos).unwrap_or(0),
                kind: r.kind,
                workspace_id: workspace,
                created_at: r.created_at,
                data: r.data,
            })
            .collect())
    }

    async fn sequence(&self, batch: u32) -> Result<usize, RepositoryError> {
        let batch = i32::try_from(batch).unwrap_or(i32::MAX);
        let placed = self
            .db
            .run(move |conn| {
                Ok(diesel::sql_query("SELECT sequence_events($1) AS n")
                    .bind::<Integer, _>(batch)
                    .get_result::<Count>(conn)?
                    .n)
            })
            .await?;
        Ok(usize::try_from(placed).unwrap_or(0))
    }

    async fn prune(&self, before: DateTime<Utc>) -> Result<usize, RepositoryError> {
        let mut deleted = 0;
        loop {
            // Oldest first by seq (the primary key), which follows time,
            // in rounds that each hold their locks briefly; placed events
            // only (one not yet placed is recent anyway).
            let round = self
                .db
                .run(move |conn| {
                    Ok::<_, StorageError>(
                        diesel::sql_query(
                            "DELETE FROM events WHERE seq IN (\
                             SELECT seq FROM events WHERE pos IS NOT NULL ORDER BY seq LIMIT $2) \
                             AND created_at < $1",
                        )
                        .bind::<Timestamptz, _>(before)
                        .bind::<BigInt, _>(PRUNE_ROUND)
                        .execute(conn)?,
                    )
                })
                .await?;
            deleted += round;
            if (round as i64) < PRUNE_ROUND {
                return Ok(deleted);
            }
        }
    }
}
