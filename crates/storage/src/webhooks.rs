//! Webhook endpoints and their delivery logs (tables of migration
//! `webhooks`); the queue that delivers is `webhook_queue`. Signing
//! secrets are sealed like sessions' credentials, each for its own row and
//! field.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{
    Array, BigInt, Bool, Integer, Nullable, Text, Timestamptz, Uuid as SqlUuid,
};
use maveraa_domain::ports::WebhookRepository;
use maveraa_domain::webhook::{EventSelection, Redelivery, ValidWebhookPatch};
use maveraa_domain::{
    DeliveryId, DeliveryQuery, DeliveryStatus, RepositoryError, WebhookDelivery, WebhookEndpoint,
    WebhookId, WebhookSecret, WorkspaceId,
};
use uuid::Uuid;

use crate::error::StorageError;
use crate::secrets::{SecretCipher, SecretError};
use crate::store::PgStore;

/// Where an endpoint's secret is sealed for (`current` or `previous`): a
/// sealed value opens only in its own row and field.
pub(crate) fn secret_context(endpoint: Uuid, field: &str) -> String {
    format!("webhooks/{endpoint}/{field}")
}

fn seal(
    cipher: Option<&SecretCipher>,
    endpoint: Uuid,
    secret: &WebhookSecret,
) -> Result<String, StorageError> {
    let cipher = cipher.ok_or(StorageError::Secrets(SecretError::NoKey))?;
    Ok(cipher.seal(
        secret.expose().as_bytes(),
        &secret_context(endpoint, "secret"),
    )?)
}

pub(crate) fn open(
    cipher: Option<&SecretCipher>,
    endpoint: Uuid,
    sealed: &str,
) -> Result<WebhookSecret, StorageError> {
    let cipher = cipher.ok_or(StorageError::Secrets(SecretError::NoKey))?;
    let opened = cipher.open(sealed, &secret_context(endpoint, "secret"))?;
    let text = std::str::from_utf8(&opened.plaintext)
        .map_err(|_| StorageError::Secrets(SecretError::Malformed("not UTF-8 text")))?;
    Ok(WebhookSecret::from_stored(text.to_owned()))
}

const ENDPOINT_COLUMNS: &str = "id, workspace_id, url, events, description, enabled, \
     disabled_reason, failing_since, \
     CASE WHEN previous_secret_expires_at > now() THEN previous_secret_expires_at END \
     AS previous_secret_expires_at, created_at, updated_at";

#[derive(QueryableByName)]
struct EndpointRow {
    #[diesel(sql_type = SqlUuid)]
    id: Uuid,
    #[diesel(sql_type = SqlUuid)]
    workspace_id: Uuid,
    #[diesel(sql_type = Text)]
    url: String,
    #[diesel(sql_type = Array<Text>)]
    events: Vec<String>,
    #[diesel(sql_type = Nullable<Text>)]
    description: Option<String>,
    #[diesel(sql_type = Bool)]
    enabled: bool,
    #[diesel(sql_type = Nullable<Text>)]
    disabled_reason: Option<String>,
    #[diesel(sql_type = Nullable<Timestamptz>)]
    failing_since: Option<DateTime<Utc>>,
    #[diesel(sql_type = Nullable<Timestamptz>)]
    previous_secret_expires_at: Option<DateTime<Utc>>,
    #[diesel(sql_type = Timestamptz)]
    created_at: DateTime<Utc>,
    #[diesel(sql_type = Timestamptz)]
    updated_at: DateTime<Utc>,
}

impl EndpointRow {
    fn into_domain(self) -> Result<WebhookEndpoint, StorageError> {
        Ok(WebhookEndpoint {
            id: WebhookId::from_uuid(self.id),
            workspace_id: WorkspaceId::from_uuid(self.workspace_id),
            url: self.url,
            events: EventSelection::new(self.events)
                .map_err(|e| StorageError::Corrupt(format!("webhook events: {}", e.message)))?,
            description: self.description,
            enabled: self.enabled,
            disabled_reason: self.disabled_reason,
            failing_since: self.failing_since,
            previous_secret_expires_at: self.previous_secret_expires_at,
            created_at: self.created_at,
            updated_at: self.updated_at,
        })
    }
}

const DELIVERY_COLUMNS: &str = "id, endpoint_id, event_pos, event_type, status, attempts, \
     next_attempt_at, last_attempt_at, response_status, latency_ms, last_error, delivered_at, \
     created_at";

#[derive(QueryableByName)]
struct DeliveryRow {
    #[diesel(sql_type = SqlUuid)]
    id: Uuid,
    #[diesel(sql_type = SqlUuid)]
    endpoint_id: Uuid,
    #[diesel(sql_type = BigInt)]
    event_pos: i64,
    #[diesel(sql_type = Text)]
    event_type: String,
    #[diesel(sql_type = Text)]
    status: String,
    #[diesel(sql_type = Integer)]
    attempts: i32,
    #[diesel(sql_type = Timestamptz)]
    next_attempt_at: DateTime<Utc>,
    #[diesel(sql_type = Nullable<Timestamptz>)]
    last_attempt_at: Option<DateTime<Utc>>,
    #[diesel(sql_type = Nullable<Integer>)]
    response_status: Option<i32>,
    #[diesel(sql_type = Nullable<Integer>)]
    latency_ms: Option<i32>,
    #[diesel(sql_type = Nullable<Text>)]
    last_error: Option<String>,
    #[diesel(sql_type = Nullable<Timestamptz>)]
    delivered_at: Option<DateTime<Utc>>,
    #[diesel(sql_type = Timestamptz)]
    created_at: DateTime<Utc>,
}

impl DeliveryRow {
    fn into_domain(self) -> Result<WebhookDelivery, StorageError> {
        let status = DeliveryStatus::parse(&self.status)
            .ok_or_else(|| StorageError::Corrupt(format!("delivery status {:?}", self.status)))?;
        Ok(WebhookDelivery {
            id: DeliveryId::from_uuid(self.id),
            endpoint_id: WebhookId::from_uuid(self.endpoint_id),
            event_position: u64::try_from(self.event_pos).unwrap_or(0),
            event_type: self.event_type,
            next_attempt_at: (status == DeliveryStatus::Pending).then_some(self.next_attempt_at),
            status,
            attempts: u32::try_from(self.attempts).unwrap_or(0),
            last_attempt_at: self.last_attempt_at,
            response_status: self.response_status.and_then(|s| u16::try_from(s).ok()),
            latency_ms: self.latency_ms.and_then(|s| u32::try_from(s).ok()),
            last_error: self.last_error,
            delivered_at: self.delivered_at,
            created_at: self.created_at,
        })
    }
}

#[derive(QueryableByName)]
struct Count {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

fn get_endpoint(
    conn: &mut PgConnection,
    workspace: Uuid,
    id: Uuid,
) -> Result<Option<WebhookEndpoint>, StorageError> {
    diesel::sql_query(format!(
        "SELECT {ENDPOINT_COLUMNS} FROM webhook_endpoints WHERE workspace_id = $1 AND id = $2"
    ))
    .bind::<SqlUuid, _>(workspace)
    .bind::<SqlUuid, _>(id)
    .get_result::<EndpointRow>(conn)
    .optional()?
    .map(EndpointRow::into_domain)
    .transpose()
}

#[async_trait]
impl WebhookRepository for PgStore {
    async fn insert(
        &self,
        endpoint: &WebhookEndpoint,
        secret: &WebhookSecret,
    ) -> Result<(), RepositoryError> {
        let sealed = seal(self.secrets.as_ref(), endpoint.id.as_uuid(), secret)?;
        let e = endpoint.clone();
        self.db
            .run(move |conn| {
                diesel::sql_query(
                    "INSERT INTO webhook_endpoints (id, workspace_id, url, events, description, \
                     enabled, secret_sealed, created_at, updated_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8)",
                )
                .bind::<SqlUuid, _>(e.id.as_uuid())
                .bind::<SqlUuid, _>(e.workspace_id.as_uuid())
                .bind::<Text, _>(&e.url)
                .bind::<Array<Text>, _>(e.events.types())
                .bind::<Nullable<Text>, _>(e.description.as_deref())
                .bind::<Bool, _>(e.enabled)
                .bind::<Text, _>(&sealed)
                .bind::<Timestamptz, _>(e.created_at)
                .execute(conn)?;
                Ok(())
            })
            .await?;
        Ok(())
    }

    async fn count(&self, workspace: WorkspaceId) -> Result<usize, RepositoryError> {
        let n = self
            .reads
            .run(move |conn| {
                Ok(diesel::sql_query(
                    "SELECT count(*) AS n FROM webhook_endpoints WHERE workspace_id = $1",
                )
                .bind::<SqlUuid, _>(workspace.as_uuid())
                .get_result::<Count>(conn)?
                .n)
            })
            .await?;
        Ok(usize::try_from(n).unwrap_or(usize::MAX))
    }

    async fn get(
        &self,
        workspace: WorkspaceId,
        id: WebhookId,
    ) -> Result<Option<WebhookEndpoint>, RepositoryError> {
        Ok(self
            .reads
            .run(move |conn| get_endpoint(conn, workspace.as_uuid(), id.as_uuid()))
            .await?)
    }

    async fn list(&self, workspace: WorkspaceId) -> Result<Vec<WebhookEndpoint>, RepositoryError> {
        let rows: Vec<EndpointRow> = self
            .reads
            .run(move |conn| {
                Ok(diesel::sql_query(format!(
                    "SELECT {ENDPOINT_COLUMNS} FROM webhook_endpoints WHERE workspace_id = $1 \
                     ORDER BY created_at, id"
                ))
                .bind::<SqlUuid, _>(workspace.as_uuid())
                .load(conn)?)
            })
            .await?;
        Ok(rows
            .into_iter()
            .map(EndpointRow::into_domain)
            .collect::<Result<_, _>>()?)
    }

    async fn update(
        &self,
        workspace: WorkspaceId,
        id: WebhookId,
        patch: &ValidWebhookPatch,
    ) -> Result<Option<WebhookEndpoint>, RepositoryError> {
        let url = patch.url.as_ref().map(|u| u.to_string());
        let events = patch.events.as_ref().map(|e| e.types().to_vec());
        let set_description = patch.description.is_some();
        let description = patch.description.clone().flatten();
        let enabled = patch.enabled;
        Ok(self
            .db
            .run(move |conn| {
                // Enabling (again) starts afresh: no disable reason, no
                // failure record, no rest.
                let n = diesel::sql_query(
                    "UPDATE webhook_endpoints SET \
                     url = COALESCE($3, url), \
                     events = COALESCE($4, events), \
                     description = CASE WHEN $5 THEN $6 ELSE description END, \
                     enabled = COALESCE($7, enabled), \
                     disabled_reason = CASE WHEN $7 IS NULL THEN disabled_reason ELSE NULL END, \
                     consecutive_failures = CASE WHEN $7 THEN 0 ELSE consecutive_failures END, \
                     failing_since = CASE WHEN $7 THEN NULL ELSE failing_since END, \
                     retry_at = CASE WHEN $7 THEN '-infinity' ELSE retry_at END, \
                     updated_at = now() \
                     WHERE workspace_id = $1 AND id = $2",
                )
                .bind::<SqlUuid, _>(workspace.as_uuid())
                .bind::<SqlUuid, _>(id.as_uuid())
                .bind::<Nullable<Text>, _>(url)
                .bind::<Nullable<Array<Text>>, _>(events)
                .bind::<Bool, _>(set_description)
                .bind::<Nullable<Text>, _>(description)
                .bind::<Nullable<Bool>, _>(enabled)
                .execute(conn)?;
                if n == 0 {
                    return Ok(None);
                }
                get_endpoint(conn, workspace.as_uuid(), id.as_uuid())
            })
            .await?)
    }

    async fn delete(&self, workspace: WorkspaceId, id: WebhookId) -> Result<bool, RepositoryError> {
        let n = self
            .db
            .run(move |conn| {
                Ok(diesel::sql_query(
                    "DELETE FROM webhook_endpoints WHERE workspace_id = $1 AND id = $2",
                )
                .bind::<SqlUuid, _>(workspace.as_uuid())
                .bind::<SqlUuid, _>(id.as_uuid())
                .execute(conn)?)
            })
            .await?;
        Ok(n > 0)
    }

    async fn roll_secret(
        &self,
        workspace: WorkspaceId,
        id: WebhookId,
        secret: &WebhookSecret,
        previous_until: DateTime<Utc>,
    ) -> Result<Option<WebhookEndpoint>, RepositoryError> {
        let sealed = seal(self.secrets.as_ref(), id.as_uuid(), secret)?;
        Ok(self
            .db
            .run(move |conn| {
                let n = diesel::sql_query(
                    "UPDATE webhook_endpoints SET previous_secret_sealed = secret_sealed, \
                     secret_sealed = $3, previous_secret_expires_at = $4, updated_at = now() \
                     WHERE workspace_id = $1 AND id = $2",
                )
                .bind::<SqlUuid, _>(workspace.as_uuid())
                .bind::<SqlUuid, _>(id.as_uuid())
                .bind::<Text, _>(&sealed)
                .bind::<Timestamptz, _>(previous_until)
                .execute(conn)?;
                if n == 0 {
                    return Ok(None);
                }
                get_endpoint(conn, workspace.as_uuid(), id.as_uuid())
            })
            .await?)
    }

    async fn deliveries(
        &self,
        workspace: WorkspaceId,
        id: WebhookId,
        query: &DeliveryQuery,
    ) -> Result<Option<Vec<WebhookDelivery>>, RepositoryError> {
        let status = query.status.map(|s| s.as_str().to_owned());
        let before = query
            .before
            .map_or(i64::MAX, |b| i64::try_from(b).unwrap_or(i64::MAX));
        let limit = i64::from(query.limit);
        Ok(self
            .reads
            .run(move |conn| {
                if get_endpoint(conn, workspace.as_uuid(), id.as_uuid())?.is_none() {
                    return Ok(None);
                }
                let rows: Vec<DeliveryRow> = diesel::sql_query(format!(
                    "SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries \
                     WHERE endpoint_id = $1 AND event_pos < $2 \
                     AND ($3::text IS NULL OR status = $3) \
                     ORDER BY event_pos DESC LIMIT $4"
                ))
                .bind::<SqlUuid, _>(id.as_uuid())
                .bind::<BigInt, _>(before)
                .bind::<Nullable<Text>, _>(status)
                .bind::<BigInt, _>(limit)
                .load(conn)?;
                rows.into_iter()
                    .map(DeliveryRow::into_domain)
                    .collect::<Result<Vec<_>, _>>()
                    .map(Some)
            })
            .await?)
    }

    async fn redeliver(
        &self,
        workspace: WorkspaceId,
        id: WebhookId,
        delivery: DeliveryId,
    ) -> Result<Redelivery, RepositoryError> {
        Ok(self
            .db
            .run(move |conn| {
                let kept: Option<Count> = diesel::sql_query(
                    "SELECT count(e.seq) AS n FROM webhook_deliveries d \
                     LEFT JOIN events e ON e.workspace_id = d.workspace_id AND e.pos = d.event_pos \
                     WHERE d.id = $1 AND d.endpoint_id = $2 AND d.workspace_id = $3 \
                     GROUP BY d.id",
                )
                .bind::<SqlUuid, _>(delivery.as_uuid())
                .bind::<SqlUuid, _>(id.as_uuid())
                .bind::<SqlUuid, _>(workspace.as_uuid())
                .get_result(conn)
                .optional()?;
                match kept {
                    None => return Ok(Redelivery::NotFound),
                    Some(Count { n: 0 }) => return Ok(Redelivery::EventExpired),
                    Some(_) => {}
                }
                let row: DeliveryRow = diesel::sql_query(format!(
                    "UPDATE webhook_deliveries SET status = 'pending', next_attempt_at = now() \
                     WHERE id = $1 RETURNING {DELIVERY_COLUMNS}"
                ))
                .bind::<SqlUuid, _>(delivery.as_uuid())
                .get_result(conn)?;
                Ok(Redelivery::Scheduled(row.into_domain()?))
            })
            .await?)
    }
}
