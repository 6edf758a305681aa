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

impl UserRow {
    fn into_domain(self) -> (User, PasswordHash) {
        (
            User {
                id: UserId::from_uuid(self.id),
                email: Email::from_trusted(self.email),
                created_at: self.created_at,
            },
            PasswordHash::new(self.password_hash),
        )
    }
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
        Ok(row.map(UserRow::into_domain))
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

    async fn count(&self) -> Result<usize, RepositoryError> {
        let n: i64 = self
            .db
            .run(|conn| Ok(users::table.count().get_result(conn)?))
            .await?;
        Ok(usize::try_from(n).unwrap_or(usize::MAX))
    }

    async fn get(&self, id: UserId) -> Result<Option<(User, PasswordHash)>, RepositoryError> {
        let row = self
            .db
            .run(move |conn| {
                Ok(users::table
                    .find(id.as_uuid())
                    .select(UserRow::as_select())
                    .first(conn)
                    .optional()?)
            })
            .await?;
        Ok(row.map(UserRow::into_domain))
    }

    async fn set_password(&self, id: UserId, hash: &PasswordHash) -> Result<(), RepositoryError> {
        let hash = hash.as_str().to_owned();
        self.db
            .run(move |conn| {
                diesel::update(users::table.find(id.as_uuid()))
                    .set(users::password_hash.eq(hash))
                    .execute(conn)?;
                Ok(())
            })
            .await?;
        Ok(())
    }

    async fn members(&self, workspace: WorkspaceId) -> Result<Vec<(User, Role)>, RepositoryError> {
        let rows: Vec<(Uuid, String, DateTime<Utc>, String)> = self
            .db
            .run(move |conn| {
                Ok(memberships::table
                    .inner_join(users::table)
                    .filter(memberships::workspace_id.eq(workspace.as_uuid()))
                    .order((memberships::created_at.asc(), users::id.asc()))
                    .select((
                        users::id,
                        users::email,
                        users::created_at,
                        memberships::role,
                    ))
                    .load(conn)?)
            })
            .await?;
        rows.into_iter()
            .map(|(id, email, created_at, role)| {
                Ok((
                    User {
                        id: UserId::from_uuid(id),
                        email: Email::from_trusted(email),
                        created_at,
                    },
                    role_of(&role)?,
                ))
            })
            .collect::<Result<_, StorageError>>()
            .map_err(Into::into)
    }

    async fn add_membership(&self, membership: &Membership) -> Result<(), RepositoryError> {
        let (user, ws, role) = (
            membership.user_id.as_uuid(),
            membership.workspace_id.as_uuid(),
            membership.role.as_str(),
        );
        let n = self
            .db
            .run(move |conn| {
                Ok(diesel::insert_into(memberships::table)
                    .values((
                        memberships::user_id.eq(user),
                        memberships::workspace_id.eq(ws),
                        memberships::role.eq(role),
                    ))
                    .on_conflict_do_nothing()
                    .execute(conn)?)
            })
            .await?;
        if n == 1 {
            Ok(())
        } else {
            Err(RepositoryError::Duplicate { existing: None })
        }
    }

    async fn change_membership(
        &self,
        workspace: WorkspaceId,
        user: UserId,
        role: Option<Role>,
    ) -> Result<bool, RepositoryError> {
        let role = role.map(Role::as_str);
        Ok(self
            .db
            .run(move |conn| {
                conn.transaction(|conn| {
                    // The workspace's owners, locked: two demotions at once
                    // cannot both pass the check.
                    let owners: Vec<Uuid> = memberships::table
                        .filter(memberships::workspace_id.eq(workspace.as_uuid()))
                        .filter(memberships::role.eq("owner"))
                        .select(memberships::user_id)
                        .for_update()
                        .load(conn)?;
                    let is_owner = owners.contains(&user.as_uuid());
                    if is_owner && owners.len() == 1 && role != Some("owner") {
                        return Ok::<_, StorageError>(false);
                    }
                    let target = memberships::table
                        .filter(memberships::workspace_id.eq(workspace.as_uuid()))
                        .filter(memberships::user_id.eq(user.as_uuid()));
                    let n = match role {
                        Some(role) => diesel::update(target)
                            .set(memberships::role.eq(role))
                            .execute(conn)?,
                        None => diesel::delete(target).execute(conn)?,
                    };
                    Ok(n == 1)
                })
            })
            .await?)
    }
}
