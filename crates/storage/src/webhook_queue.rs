//! The webhook delivery queue: events fanned out into deliveries, an
//! endpoint claimed by one worker at a time under a lease fenced by a
//! token, attempts recorded in batches (tables of migration `webhooks`).

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{
    Array, BigInt, Bool, Integer, Nullable, Text, Timestamptz, Uuid as SqlUuid,
};
use maveraa_domain::ports::WebhookQueue;
use maveraa_domain::webhook::{AttemptRecord, DueDelivery, WebhookClaim};
use maveraa_domain::{DeliveryId, DeliveryStatus, Event, RepositoryError, WebhookId, WorkspaceId};
use uuid::Uuid;

use crate::error::StorageError;
use crate::events::{EVENT_DATA, EVENT_JOINS};
use crate::store::PgStore;
use crate::webhooks::open;

#[derive(QueryableByName)]
struct ClaimRow {
    #[diesel(sql_type = SqlUuid)]
    id: Uuid,
    #[diesel(sql_type = SqlUuid)]
    workspace_id: Uuid,
    #[diesel(sql_type = Text)]
    url: String,
    #[diesel(sql_type = Text)]
    secret_sealed: String,
    #[diesel(sql_type = Nullable<Text>)]
    previous_secret_sealed: Option<String>,
}

#[derive(QueryableByName)]
struct DueRow {
    #[diesel(sql_type = SqlUuid)]
    id: Uuid,
    #[diesel(sql_type = Integer)]
    attempts: i32,
    #[diesel(sql_type = Timestamptz)]
    created_at: DateTime<Utc>,
    #[diesel(sql_type = BigInt)]
    event_pos: i64,
    #[diesel(sql_type = Nullable<Text>)]
    kind: Option<String>,
    #[diesel(sql_type = Nullable<Timestamptz>)]
    event_created_at: Option<DateTime<Utc>>,
    #[diesel(sql_type = Nullable<Text>)]
    data: Option<String>,
}

#[derive(QueryableByName)]
struct Since {
    #[diesel(sql_type = Nullable<Timestamptz>)]
    failing_since: Option<DateTime<Utc>>,
}

#[derive(QueryableByName)]
struct Moved {
    #[diesel(sql_type = Integer)]
    n: i32,
}

fn millis(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

#[async_trait]
impl WebhookQueue for PgStore {
    async fn fan_out(&self, batch: u32) -> Result<usize, RepositoryError> {
        let batch = i32::try_from(batch).unwrap_or(i32::MAX);
        let moved = self
            .db
            .run(move |conn| {
                Ok(diesel::sql_query("SELECT fan_out_webhooks($1) AS n")
                    .bind::<Integer, _>(batch)
                    .get_result::<Moved>(conn)?
                    .n)
            })
            .await?;
        Ok(usize::try_from(moved).unwrap_or(0))
    }

    async fn claim(
        &self,
        lease: Duration,
        round: u32,
    ) -> Result<Option<WebhookClaim>, RepositoryError> {
        let token = Uuid::new_v4();
        let round = i64::from(round);
        let claimed = self
            .db
            .run(move |conn| {
                let row: Option<ClaimRow> = diesel::sql_query(
                    "UPDATE webhook_endpoints w SET lease_token = $1, \
                     lease_until = now() + make_interval(secs => $2 / 1000.0) \
                     WHERE w.id = ( \
                       SELECT e.id FROM webhook_endpoints e \
                       WHERE e.enabled AND e.lease_until < now() AND e.retry_at <= now() \
                       AND EXISTS (SELECT 1 FROM webhook_deliveries d WHERE d.endpoint_id = e.id \
                                   AND d.status = 'pending' AND d.next_attempt_at <= now()) \
                       ORDER BY e.retry_at, e.id LIMIT 1 FOR UPDATE SKIP LOCKED) \
                     RETURNING w.id, w.workspace_id, w.url, w.secret_sealed, \
                     CASE WHEN w.previous_secret_expires_at > now() THEN w.previous_secret_sealed END \
                     AS previous_secret_sealed",
                )
                .bind::<SqlUuid, _>(token)
                .bind::<diesel::sql_types::Double, _>(millis(lease))
                .get_result(conn)
                .optional()?;
                let Some(row) = row else { return Ok(None) };
                let due: Vec<DueRow> = diesel::sql_query(format!(
                    "SELECT d.id, d.attempts, d.created_at, d.event_pos, e.type AS kind, \
                     e.created_at AS event_created_at, {EVENT_DATA} AS data \
                     FROM webhook_deliveries d \
                     LEFT JOIN events e ON e.workspace_id = d.workspace_id AND e.pos = d.event_pos \
                     {EVENT_JOINS} \
                     WHERE d.endpoint_id = $1 AND d.status = 'pending' AND d.next_attempt_at <= now() \
                     ORDER BY d.event_pos LIMIT $2",
                ))
                .bind::<SqlUuid, _>(row.id)
                .bind::<BigInt, _>(round)
                .load(conn)?;
                Ok(Some((row, due)))
            })
            .await?;
        let Some((row, due)) = claimed else {
            return Ok(None);
        };
        let cipher = self.secrets.as_ref();
        let mut secrets = vec![open(cipher, row.id, &row.secret_sealed)?];
        if let Some(previous) = &row.previous_secret_sealed {
            secrets.push(open(cipher, row.id, previous)?);
        }
        let workspace_id = WorkspaceId::from_uuid(row.workspace_id);
        Ok(Some(WebhookClaim {
            endpoint_id: WebhookId::from_uuid(row.id),
            workspace_id,
            url: row.url,
            token,
            secrets,
            due: due
                .into_iter()
                .map(|d| DueDelivery {
                    id: DeliveryId::from_uuid(d.id),
                    attempts: u32::try_from(d.attempts).unwrap_or(0),
                    created_at: d.created_at,
                    event: match (d.kind, d.event_created_at, d.data) {
                        (Some(kind), Some(created_at), Some(data)) => Some(Event {
                            position: u64::try_from(d.event_pos).unwrap_or(0),
                            kind,
                            workspace_id,
                            created_at,
                            data,
                        }),
                        _ => None,
                    },
                })
                .collect(),
        }))
    }

    async fn record(
        &self,
        endpoint: WebhookId,
        token: Uuid,
        lease: Duration,
        attempts: &[AttemptRecord],
    ) -> Result<Option<Option<DateTime<Utc>>>, RepositoryError> {
        // The endpoint's health after these attempts: the failures since
        // the last success, and whether a success reset the count.
        let last_success = attempts
            .iter()
            .rposition(|a| a.status == DeliveryStatus::Succeeded);
        let trailing = &attempts[last_success.map_or(0, |i| i + 1)..];
        let reset = last_success.is_some();
        let failures = i32::try_from(trailing.len()).unwrap_or(i32::MAX);
        let first_failure = trailing.first().map(|a| a.at);
        let ids: Vec<Uuid> = attempts.iter().map(|a| a.delivery.as_uuid()).collect();
        let statuses: Vec<&'static str> = attempts.iter().map(|a| a.status.as_str()).collect();
        let next: Vec<Option<DateTime<Utc>>> = attempts.iter().map(|a| a.next_attempt_at).collect();
        let at: Vec<DateTime<Utc>> = attempts.iter().map(|a| a.at).collect();
        let codes: Vec<Option<i32>> = attempts
            .iter()
            .map(|a| a.outcome.status.map(i32::from))
            .collect();
        let latencies: Vec<i32> = attempts
            .iter()
            .map(|a| i32::try_from(a.outcome.latency.as_millis()).unwrap_or(i32::MAX))
            .collect();
        let errors: Vec<Option<String>> =
            attempts.iter().map(|a| a.outcome.error.clone()).collect();
        let lease_ms = millis(lease);
        Ok(self
            .db
            .run(move |conn| {
                conn.transaction(|conn| {
                    // Fenced: only while this claim holds the endpoint.
                    let since: Option<Since> = diesel::sql_query(
                        "UPDATE webhook_endpoints SET \
                         consecutive_failures = CASE WHEN $3 THEN $4 ELSE consecutive_failures + $4 END, \
                         failing_since = CASE WHEN $3 THEN $5 ELSE COALESCE(failing_since, $5) END, \
                         lease_until = GREATEST(lease_until, now() + make_interval(secs => $6 / 1000.0)) \
                         WHERE id = $1 AND lease_token = $2 RETURNING failing_since",
                    )
                    .bind::<SqlUuid, _>(endpoint.as_uuid())
                    .bind::<SqlUuid, _>(token)
                    .bind::<Bool, _>(reset)
                    .bind::<Integer, _>(failures)
                    .bind::<Nullable<Timestamptz>, _>(first_failure)
                    .bind::<diesel::sql_types::Double, _>(lease_ms)
                    .get_result(conn)
                    .optional()?;
                    let Some(since) = since else { return Ok(None) };
                    if !ids.is_empty() {
                        diesel::sql_query(
                            "UPDATE webhook_deliveries d SET status = u.status, attempts = d.attempts + 1, \
                             next_attempt_at = COALESCE(u.next_at, d.next_attempt_at), last_attempt_at = u.at, \
                             response_status = u.code, latency_ms = u.latency, last_error = u.error, \
                             delivered_at = CASE WHEN u.status = 'succeeded' THEN u.at ELSE d.delivered_at END \
                             FROM unnest($1::uuid[], $2::text[], $3::timestamptz[], $4::timestamptz[], \
                                         $5::int[], $6::int[], $7::text[]) \
                                  AS u(id, status, next_at, at, code, latency, error) \
                             WHERE d.id = u.id",
                        )
                        .bind::<Array<SqlUuid>, _>(&ids)
                        .bind::<Array<Text>, _>(&statuses)
                        .bind::<Array<Nullable<Timestamptz>>, _>(&next)
                        .bind::<Array<Timestamptz>, _>(&at)
                        .bind::<Array<Nullable<Integer>>, _>(&codes)
                        .bind::<Array<Integer>, _>(&latencies)
                        .bind::<Array<Nullable<Text>>, _>(&errors)
                        .execute(conn)?;
                    }
                    Ok::<_, StorageError>(Some(since.failing_since))
                })
            })
            .await?)
    }

    async fn release(
        &self,
        endpoint: WebhookId,
        token: Uuid,
        rest_until: Option<DateTime<Utc>>,
    ) -> Result<(), RepositoryError> {
        self.db
            .run(move |conn| {
                diesel::sql_query(
                    "UPDATE webhook_endpoints SET lease_token = NULL, lease_until = '-infinity', \
                     retry_at = COALESCE($3, '-infinity') WHERE id = $1 AND lease_token = $2",
                )
                .bind::<SqlUuid, _>(endpoint.as_uuid())
                .bind::<SqlUuid, _>(token)
                .bind::<Nullable<Timestamptz>, _>(rest_until)
                .execute(conn)?;
                Ok(())
            })
            .await?;
        Ok(())
    }

    async fn disable(
        &self,
        endpoint: WebhookId,
        token: Uuid,
        reason: &str,
    ) -> Result<(), RepositoryError> {
        let reason = reason.to_owned();
        self.db
            .run(move |conn| {
                diesel::sql_query(
                    "UPDATE webhook_endpoints SET enabled = false, disabled_reason = $3, \
                     lease_token = NULL, lease_until = '-infinity', updated_at = now() \
                     WHERE id = $1 AND lease_token = $2",
                )
                .bind::<SqlUuid, _>(endpoint.as_uuid())
                .bind::<SqlUuid, _>(token)
                .bind::<Text, _>(&reason)
                .execute(conn)?;
                Ok(())
            })
            .await?;
        Ok(())
    }

    async fn prune(&self, before: DateTime<Utc>) -> Result<usize, RepositoryError> {
        Ok(self
            .db
            .run(move |conn| {
                Ok(diesel::sql_query(
                    "DELETE FROM webhook_deliveries WHERE created_at < $1 AND status <> 'pending'",
                )
                .bind::<Timestamptz, _>(before)
                .execute(conn)?)
            })
            .await?)
    }
}
