use async_trait::async_trait;
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use maveraa_domain::ports::WorkspaceRepository;
use maveraa_domain::{RepositoryError, Workspace, WorkspaceId, WorkspaceName};
use uuid::Uuid;

use crate::schema::workspaces;
use crate::store::PgStore;

/// The advisory lock that makes "is there a workspace? create one" a single
/// step across processes (distinct from the migration lock).
const FIRST_START_LOCK_KEY: i64 = 7_142_003_917;

#[derive(Debug, Queryable, Selectable)]
#[diesel(table_name = workspaces, check_for_backend(diesel::pg::Pg))]
struct WorkspaceRow {
    id: Uuid,
    name: String,
    created_at: DateTime<Utc>,
}

impl From<WorkspaceRow> for Workspace {
    fn from(r: WorkspaceRow) -> Self {
        Self {
            id: WorkspaceId::from_uuid(r.id),
            name: WorkspaceName::from_trusted(r.name),
            created_at: r.created_at,
        }
    }
}

fn insert_row(
    conn: &mut PgConnection,
    id: Uuid,
    name: &str,
    created_at: DateTime<Utc>,
) -> Result<(), crate::StorageError> {
    diesel::insert_into(workspaces::table)
        .values((
            workspaces::id.eq(id),
            workspaces::name.eq(name),
            workspaces::created_at.eq(created_at),
        ))
        .execute(conn)?;
    Ok(())
}

#[async_trait]
impl WorkspaceRepository for PgStore {
    async fn insert(&self, workspace: &Workspace) -> Result<(), RepositoryError> {
        let (id, name, created_at) = (
            workspace.id.as_uuid(),
            workspace.name.as_str().to_owned(),
            workspace.created_at,
        );
        self.db
            .run(move |conn| insert_row(conn, id, &name, created_at))
            .await?;
        Ok(())
    }

    async fn insert_if_none(&self, workspace: &Workspace) -> Result<bool, RepositoryError> {
        let (id, name, created_at) = (
            workspace.id.as_uuid(),
            workspace.name.as_str().to_owned(),
            workspace.created_at,
        );
        Ok(self
            .db
            .run(move |conn| {
                conn.transaction::<_, crate::StorageError, _>(|conn| {
                    // Serialises first starts: the second waits here, then
                    // sees the first one's workspace.
                    diesel::sql_query(format!(
                        "SELECT pg_advisory_xact_lock({FIRST_START_LOCK_KEY})"
                    ))
                    .execute(conn)?;
                    let any: Option<Uuid> = workspaces::table
                        .select(workspaces::id)
                        .first(conn)
                        .optional()?;
                    if any.is_some() {
                        return Ok(false);
                    }
                    insert_row(conn, id, &name, created_at)?;
                    Ok(true)
                })
            })
            .await?)
    }

    async fn get(&self, id: WorkspaceId) -> Result<Option<Workspace>, RepositoryError> {
        let row = self
            .db
            .run(move |conn| {
                Ok(workspaces::table
                    .find(id.as_uuid())
                    .select(WorkspaceRow::as_select())
                    .first(conn)
                    .optional()?)
            })
            .await?;
        Ok(row.map(Workspace::from))
    }

    async fn list(&self) -> Result<Vec<Workspace>, RepositoryError> {
        let rows = self
            .db
            .run(move |conn| {
                Ok(workspaces::table
                    .order((workspaces::created_at.asc(), workspaces::id.asc()))
                    .select(WorkspaceRow::as_select())
                    .load(conn)?)
            })
            .await?;
        Ok(rows.into_iter().map(Workspace::from).collect())
    }
}
