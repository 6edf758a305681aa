use async_trait::async_trait;
use diesel::RunQueryDsl;
use maveraa_domain::RepositoryError;
use maveraa_domain::ports::HealthCheck;

use crate::pool::Database;

/// The PostgreSQL implementation of the domain's repository ports: one
/// value implements them all over a shared pool.
#[derive(Debug, Clone)]
pub struct PgStore {
    pub(crate) db: Database,
}

impl PgStore {
    /// A store over `db`.
    pub fn new(db: Database) -> Self {
        Self { db }
    }

    /// The pool under the store.
    pub fn database(&self) -> &Database {
        &self.db
    }
}

#[async_trait]
impl HealthCheck for PgStore {
    async fn ping(&self) -> Result<(), RepositoryError> {
        self.db
            .run(|conn| {
                diesel::sql_query("SELECT 1").execute(conn)?;
                Ok(())
            })
            .await
            .map_err(|e| RepositoryError::Unavailable(e.to_string()))
    }
}
