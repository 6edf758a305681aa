use async_trait::async_trait;
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use maveraa_domain::ports::UserRepository;
use maveraa_domain::{
    Email, Membership, PasswordHash, RepositoryError, Role, User, UserId, WorkspaceId,
};
use uuid::Uuid;

use crate::error::StorageError;
use crate::schema::{memberships, users};
use crate::store::PgStore;

#[derive(Debug, Queryable, Selectable)]
#[diesel(table_name = users, check_for_backend(diesel::pg::Pg))]
struct UserRow {
    id: Uuid,
    email: String,
    password_hash: String,
    created_at: DateTime<Utc>,
}

fn role_of(text: &str) -> Result<Role, StorageError> {
    Role::parse("role", text).map_err(|_| StorageError::Corrupt(format!("unknown role {text:?}")))
}

#[async_trait]
impl UserRepository for PgStore {
    async fn insert(
        &self,
        user: &User,
        hash: &PasswordHash,
        membership: &Membership,
    ) -> Result<(), RepositoryError> {
        let (id, email, hash, at) = (
            user.id.as_uuid(),
            user.email.as_str().to_owned(),
            hash.as_str().to_owned(),
            user.created_at,
        );
        let (ws, role) = (membership.workspace_id.as_uuid(), membership.role.as_str());
        let inserted = self
            .db
            .run(move |conn| {
                conn.transaction(|conn| {
                    // ON CONFLICT: two creates of one email at once make one user.
                    let n = diesel::insert_into(users::table)
                        .values((
                            users::id.eq(id),
                            users::email.eq(email),
                            users::password_hash.eq(hash),
                            users::created_at.eq(at),
                        ))
                        .on_conflict(users::email)
                        .do_nothing()
                        .execute(conn)?;
                    if n == 1 {
                        diesel::insert_into(memberships::table)
                            .values((
                                memberships::user_id.eq(id),
                                memberships::workspace_id.eq(ws),
                                memberships::role.eq(role),
                            ))
                            .execute(conn)?;
                    }
                    Ok::<_, StorageError>(n == 1)
                })
            })
            .await?;
        if inserted {
            Ok(())
        } else {
            Err(RepositoryError::Duplicate { existing: None })
        }
    }

    async fn find_by_email(
        &self,
        email: &Email,
    ) -> Result<Option<(User, PasswordHash)>, RepositoryError> {
        let email = email.as_str().to_owned();
        let row = self
            .db
            .run(move |conn| {
                Ok(users::table
                    .filter(users::email.eq(email))
                    .select(UserRow::as_select())
                    .first(conn)
                    .optional()?)
            })
            .await?;
        Ok(row.map(|r| {
            (
                User {
                    id: UserId::from_uuid(r.id),
                    email: Email::from_trusted(r.email),
                    created_at: r.created_at,
                },
                PasswordHash::new(r.password_hash),
            )
        }))
    }

    async fn memberships(&self, user: UserId) -> Result<Vec<Membership>, RepositoryError> {
        let rows: Vec<(Uuid, String)> = self
            .db
            .run(move |conn| {
                Ok(memberships::table
                    .filter(memberships::user_id.eq(user.as_uuid()))
                    .order((
                        memberships::created_at.asc(),
                        memberships::workspace_id.asc(),
                    ))
                    .select((memberships::workspace_id, memberships::role))
                    .load(conn)?)
            })
            .await?;
        rows.into_iter()
            .map(|(ws, role)| {
                Ok(Membership {
                    user_id: user,
                    workspace_id: WorkspaceId::from_uuid(ws),
                    role: role_of(&role)?,
                })
            })
            .collect::<Result<_, StorageError>>()
            .map_err(Into::into)
    }
}
