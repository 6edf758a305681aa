//! Dashboard sessions and the first-account setup link (migration
//! `web_sessions`).

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{Text, Timestamptz, Uuid as SqlUuid};
use maveraa_domain::ports::WebSessionRepository;
use maveraa_domain::{
    Membership, PasswordHash, RepositoryError, User, UserId, WebSession, WorkspaceId,
};
use uuid::Uuid;

use crate::error::StorageError;
use crate::store::PgStore;

#[derive(QueryableByName)]
struct Row {
    #[diesel(sql_type = Text)]
    token_hash: String,
    #[diesel(sql_type = SqlUuid)]
    user_id: Uuid,
    #[diesel(sql_type = SqlUuid)]
    workspace_id: Uuid,
    #[diesel(sql_type = Text)]
    csrf_token: String,
    #[diesel(sql_type = Timestamptz)]
    created_at: DateTime<Utc>,
    #[diesel(sql_type = Timestamptz)]
    last_seen_at: DateTime<Utc>,
    #[diesel(sql_type = Timestamptz)]
    expires_at: DateTime<Utc>,
}

#[derive(QueryableByName)]
struct Found {
    #[diesel(sql_type = diesel::sql_types::Bool)]
    ok: bool,
}

#[async_trait]
impl WebSessionRepository for PgStore {
    async fn insert(&self, s: &WebSession) -> Result<(), RepositoryError> {
        let s = s.clone();
        self.db
            .run(move |conn| {
                diesel::sql_query(
                    "INSERT INTO web_sessions (token_hash, user_id, workspace_id, csrf_token, \
                     created_at, last_seen_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
                )
                .bind::<Text, _>(&s.token_hash)
                .bind::<SqlUuid, _>(s.user_id.as_uuid())
                .bind::<SqlUuid, _>(s.workspace_id.as_uuid())
                .bind::<Text, _>(&s.csrf_token)
                .bind::<Timestamptz, _>(s.created_at)
                .bind::<Timestamptz, _>(s.last_seen_at)
                .bind::<Timestamptz, _>(s.expires_at)
                .execute(conn)?;
                // Ended sessions go as new ones come (a few at a time).
                diesel::sql_query(
                    "DELETE FROM web_sessions WHERE token_hash IN (SELECT token_hash FROM \
                     web_sessions WHERE expires_at < now() LIMIT 100)",
                )
                .execute(conn)?;
                Ok(())
            })
            .await?;
        Ok(())
    }

    async fn find(&self, token_hash: &str) -> Result<Option<WebSession>, RepositoryError> {
        let hash = token_hash.to_owned();
        let row: Option<Row> = self
            .db
            .run(move |conn| {
                Ok(diesel::sql_query(
                    "SELECT token_hash, user_id, workspace_id, csrf_token, created_at, \
                     last_seen_at, expires_at FROM web_sessions WHERE token_hash = $1",
                )
                .bind::<Text, _>(&hash)
                .get_result(conn)
                .optional()?)
            })
            .await?;
        Ok(row.map(|r| WebSession {
            token_hash: r.token_hash,
            user_id: UserId::from_uuid(r.user_id),
            workspace_id: WorkspaceId::from_uuid(r.workspace_id),
            csrf_token: r.csrf_token,
            created_at: r.created_at,
            last_seen_at: r.last_seen_at,
            expires_at: r.expires_at,
        }))
    }

    async fn touch(&self, token_hash: &str, at: DateTime<Utc>) -> Result<(), RepositoryError> {
        let hash = token_hash.to_owned();
        self.db
            .run(move |conn| {
                diesel::sql_query(
                    "UPDATE web_sessions SET last_seen_at = $2 WHERE token_hash = $1",
                )
                .bind::<Text, _>(&hash)
                .bind::<Timestamptz, _>(at)
                .execute(conn)?;
                Ok(())
            })
            .await?;
        Ok(())
    }

    async fn delete(&self, token_hash: &str) -> Result<(), RepositoryError> {
        let hash = token_hash.to_owned();
        self.db
            .run(move |conn| {
                diesel::sql_query("DELETE FROM web_sessions WHERE token_hash = $1")
                    .bind::<Text, _>(&hash)
                    .execute(conn)?;
                Ok(())
            })
            .await?;
        Ok(())
    }

    async fn switch_workspace(
        &self,
        token_hash: &str,
        workspace: WorkspaceId,
    ) -> Result<(), RepositoryError> {
        let hash = token_hash.to_owned();
        self.db
            .run(move |conn| {
                diesel::sql_query(
                    "UPDATE web_sessions SET workspace_id = $2 WHERE token_hash = $1",
                )
                .bind::<Text, _>(&hash)
                .bind::<SqlUuid, _>(workspace.as_uuid())
                .execute(conn)?;
                Ok(())
            })
            .await?;
        Ok(())
    }

    async fn delete_for_user(
        &self,
        user: UserId,
        except: Option<&str>,
    ) -> Result<usize, RepositoryError> {
        let except = except.unwrap_or_default().to_owned();
        Ok(self
            .db
            .run(move |conn| {
                Ok(diesel::sql_query(
                    "DELETE FROM web_sessions WHERE user_id = $1 AND token_hash <> $2",
                )
                .bind::<SqlUuid, _>(user.as_uuid())
                .bind::<Text, _>(&except)
                .execute(conn)?)
            })
            .await?)
    }

    async fn put_setup_token(
        &self,
        token_hash: &str,
        expires_at: DateTime<Utc>,
    ) -> Result<(), RepositoryError> {
        let hash = token_hash.to_owned();
        self.db
            .run(move |conn| {
                diesel::sql_query("DELETE FROM setup_tokens WHERE expires_at < now()")
                    .execute(conn)?;
                diesel::sql_query(
                    "INSERT INTO setup_tokens (token_hash, expires_at) VALUES ($1, $2) \
                     ON CONFLICT (token_hash) DO NOTHING",
                )
                .bind::<Text, _>(&hash)
                .bind::<Timestamptz, _>(expires_at)
                .execute(conn)?;
                Ok(())
            })
            .await?;
        Ok(())
    }

    async fn setup_token_valid(
        &self,
        token_hash: &str,
        now: DateTime<Utc>,
    ) -> Result<bool, RepositoryError> {
        let hash = token_hash.to_owned();
        Ok(self
            .db
            .run(move |conn| {
                Ok(diesel::sql_query(
                    "SELECT EXISTS (SELECT 1 FROM setup_tokens WHERE token_hash = $1 \
                     AND expires_at > $2) AS ok",
                )
                .bind::<Text, _>(&hash)
                .bind::<Timestamptz, _>(now)
                .get_result::<Found>(conn)?
                .ok)
            })
            .await?)
    }

    async fn setup_first_user(
        &self,
        token_hash: &str,
        now: DateTime<Utc>,
        user: &User,
        hash: &PasswordHash,
        membership: &Membership,
    ) -> Result<bool, RepositoryError> {
        let token = token_hash.to_owned();
        let (id, email, phc, at) = (
            user.id.as_uuid(),
            user.email.as_str().to_owned(),
            hash.as_str().to_owned(),
            user.created_at,
        );
        let (ws, role) = (membership.workspace_id.as_uuid(), membership.role.as_str());
        Ok(self
            .db
            .run(move |conn| {
                conn.transaction(|conn| {
                    // Consumed whatever follows: a link works once. The
                    // users table is locked so that two setups at once make
                    // one first user.
                    let taken = diesel::sql_query(
                        "DELETE FROM setup_tokens WHERE token_hash = $1 AND expires_at > $2",
                    )
                    .bind::<Text, _>(&token)
                    .bind::<Timestamptz, _>(now)
                    .execute(conn)?;
                    if taken == 0 {
                        return Ok::<_, StorageError>(false);
                    }
                    diesel::sql_query("LOCK TABLE users IN SHARE ROW EXCLUSIVE MODE")
                        .execute(conn)?;
                    let exists = diesel::sql_query("SELECT EXISTS (SELECT 1 FROM users) AS ok")
                        .get_result::<Found>(conn)?
                        .ok;
                    if exists {
                        return Ok(false);
                    }
                    diesel::sql_query(
                        "INSERT INTO users (id, email, password_hash, created_at) \
                         VALUES ($1, $2, $3, $4)",
                    )
                    .bind::<SqlUuid, _>(id)
                    .bind::<Text, _>(&email)
                    .bind::<Text, _>(&phc)
                    .bind::<Timestamptz, _>(at)
                    .execute(conn)?;
                    diesel::sql_query(
                        "INSERT INTO memberships (user_id, workspace_id, role) VALUES ($1, $2, $3)",
                    )
                    .bind::<SqlUuid, _>(id)
                    .bind::<SqlUuid, _>(ws)
                    .bind::<Text, _>(role)
                    .execute(conn)?;
                    // The other servers' links go with the first account.
                    diesel::sql_query("DELETE FROM setup_tokens").execute(conn)?;
                    Ok(true)
                })
            })
            .await?)
    }
}
