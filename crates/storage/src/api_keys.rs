use async_trait::async_trait;
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use maveraa_domain::ports::ApiKeyRepository;
use maveraa_domain::{ApiKey, ApiKeyHash, ApiKeyId, KeyRateLimits, RepositoryError, WorkspaceId};
use uuid::Uuid;

use crate::schema::api_keys;
use crate::store::PgStore;

#[derive(Debug, Queryable, Selectable)]
#[diesel(table_name = api_keys, check_for_backend(diesel::pg::Pg))]
struct ApiKeyRow {
    id: Uuid,
    workspace_id: Uuid,
    name: String,
    key_prefix: String,
    created_at: DateTime<Utc>,
    revoked_at: Option<DateTime<Utc>>,
    last_used_at: Option<DateTime<Utc>>,
    requests_per_sec: Option<i32>,
    sends_per_sec: Option<i32>,
}

impl From<ApiKeyRow> for ApiKey {
    fn from(r: ApiKeyRow) -> Self {
        Self {
            id: ApiKeyId::from_uuid(r.id),
            workspace_id: WorkspaceId::from_uuid(r.workspace_id),
            name: r.name,
            prefix: r.key_prefix,
            created_at: r.created_at,
            revoked_at: r.revoked_at,
            last_used_at: r.last_used_at,
            rate_limits: KeyRateLimits {
                requests_per_sec: r.requests_per_sec.and_then(|n| u32::try_from(n).ok()),
                sends_per_sec: r.sends_per_sec.and_then(|n| u32::try_from(n).ok()),
            },
        }
    }
}

/// Tells every server process, at commit, to forget what it remembers of
/// the key (see revocations.rs): a revocation, or new rates.
fn tell_servers_to_forget(conn: &mut PgConnection, id: ApiKeyId) -> QueryResult<usize> {
    diesel::sql_query("SELECT pg_notify($1, $2)")
        .bind::<diesel::sql_types::Text, _>(crate::revocations::CHANNEL)
        .bind::<diesel::sql_types::Text, _>(id.to_string())
        .execute(conn)
}

/// A rate as stored: the column is an `integer`.
fn stored_rate(rate: Option<u32>) -> Option<i32> {
    rate.map(|n| i32::try_from(n).unwrap_or(i32::MAX))
}

#[async_trait]
impl ApiKeyRepository for PgStore {
    async fn insert(&self, key: &ApiKey, hash: &ApiKeyHash) -> Result<(), RepositoryError> {
        let values = (
            api_keys::id.eq(key.id.as_uuid()),
            api_keys::workspace_id.eq(key.workspace_id.as_uuid()),
            api_keys::name.eq(key.name.clone()),
            api_keys::key_hash.eq(hash.as_bytes().to_vec()),
            api_keys::key_prefix.eq(key.prefix.clone()),
            api_keys::created_at.eq(key.created_at),
            api_keys::revoked_at.eq(key.revoked_at),
            api_keys::last_used_at.eq(key.last_used_at),
            api_keys::requests_per_sec.eq(stored_rate(key.rate_limits.requests_per_sec)),
            api_keys::sends_per_sec.eq(stored_rate(key.rate_limits.sends_per_sec)),
        );
        self.db
            .run(move |conn| {
                diesel::insert_into(api_keys::table)
                    .values(values)
                    .execute(conn)?;
                Ok(())
            })
            .await?;
        Ok(())
    }

    async fn find_by_hash(&self, hash: &ApiKeyHash) -> Result<Option<ApiKey>, RepositoryError> {
        let digest = hash.as_bytes().to_vec();
        let row = self
            .reads
            .run(move |conn| {
                Ok(api_keys::table
                    .filter(api_keys::key_hash.eq(digest))
                    .select(ApiKeyRow::as_select())
                    .first(conn)
                    .optional()?)
            })
            .await?;
        Ok(row.map(ApiKey::from))
    }

    async fn list(&self, workspace: WorkspaceId) -> Result<Vec<ApiKey>, RepositoryError> {
        let rows = self
            .db
            .run(move |conn| {
                Ok(api_keys::table
                    .filter(api_keys::workspace_id.eq(workspace.as_uuid()))
                    .order((api_keys::created_at.asc(), api_keys::id.asc()))
                    .select(ApiKeyRow::as_select())
                    .load(conn)?)
            })
            .await?;
        Ok(rows.into_iter().map(ApiKey::from).collect())
    }

    async fn get(&self, id: ApiKeyId) -> Result<Option<ApiKey>, RepositoryError> {
        let row = self
            .db
            .run(move |conn| {
                Ok(api_keys::table
                    .find(id.as_uuid())
                    .select(ApiKeyRow::as_select())
                    .first(conn)
                    .optional()?)
            })
            .await?;
        Ok(row.map(ApiKey::from))
    }

    async fn revoke(&self, id: ApiKeyId, at: DateTime<Utc>) -> Result<bool, RepositoryError> {
        let found = self
            .db
            .run(move |conn| {
                conn.transaction(|conn| {
                    diesel::update(
                        api_keys::table
                            .find(id.as_uuid())
                            .filter(api_keys::revoked_at.is_null()),
                    )
                    .set(api_keys::revoked_at.eq(at))
                    .execute(conn)?;
                    let exists: i64 = api_keys::table
                        .find(id.as_uuid())
                        .count()
                        .get_result(conn)?;
                    tell_servers_to_forget(conn, id)?;
                    Ok::<_, crate::StorageError>(exists == 1)
                })
            })
            .await?;
        Ok(found)
    }

    async fn set_rate_limits(
        &self,
        id: ApiKeyId,
        limits: KeyRateLimits,
    ) -> Result<bool, RepositoryError> {
        let found = self
            .db
            .run(move |conn| {
                conn.transaction(|conn| {
                    let updated = diesel::update(api_keys::table.find(id.as_uuid()))
                        .set((
                            api_keys::requests_per_sec.eq(stored_rate(limits.requests_per_sec)),
                            api_keys::sends_per_sec.eq(stored_rate(limits.sends_per_sec)),
                        ))
                        .execute(conn)?;
                    // Servers read the new rates at the key's next use.
                    tell_servers_to_forget(conn, id)?;
                    Ok::<_, crate::StorageError>(updated == 1)
                })
            })
            .await?;
        Ok(found)
    }

    async fn record_use(&self, ids: &[ApiKeyId], at: DateTime<Utc>) -> Result<(), RepositoryError> {
        let ids: Vec<Uuid> = ids.iter().map(|id| id.as_uuid()).collect();
        self.db
            .run(move |conn| {
                // Never back in time: another server may have recorded a
                // later use first.
                diesel::update(
                    api_keys::table.filter(api_keys::id.eq_any(ids)).filter(
                        api_keys::last_used_at
                            .is_null()
                            .or(api_keys::last_used_at.lt(at)),
                    ),
                )
                .set(api_keys::last_used_at.eq(at))
                .execute(conn)?;
                Ok(())
            })
            .await?;
        Ok(())
    }
}
