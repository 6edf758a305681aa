use async_trait::async_trait;
use diesel::sql_types::Integer;
use diesel::{IntoSql, RunQueryDsl};
use maveraa_domain::RepositoryError;
use maveraa_domain::ports::HealthCheck;

use std::sync::Arc;

use crate::pool::Database;
use crate::secrets::SecretCipher;
use crate::send_batch::SendQueue;
use crate::session_names::SessionNames;

/// The PostgreSQL implementation of the domain's repository ports: one
/// value implements them all over a shared pool.
#[derive(Debug, Clone)]
pub struct PgStore {
    pub(crate) db: Database,
    /// Where hot read-only queries run (lists, lookups): `db` itself unless
    /// [`PgStore::with_reads`] gave a pool with generic plans.
    pub(crate) reads: Database,
    /// Sends waiting to be stored together (see `send_batch`).
    pub(crate) sends: Arc<SendQueue>,
    /// Session names for conversation lists (see `session_names`).
    pub(crate) session_names: Arc<SessionNames>,
    /// Seals and opens sessions' credentials. Without it (only
    /// [`PgStore::new`]), a session with credentials can be neither stored
    /// nor read back: nothing is ever stored in clear.
    pub(crate) secrets: Option<SecretCipher>,
    /// Turns for bulk imports (see `contact_import`): one at a time.
    pub(crate) imports: Arc<tokio::sync::Semaphore>,
}

impl PgStore {
    /// A store over `db`.
    pub fn new(db: Database) -> Self {
        Self {
            reads: db.clone(),
            db,
            sends: Arc::default(),
            session_names: Arc::default(),
            secrets: None,
            imports: Arc::new(tokio::sync::Semaphore::new(1)),
        }
    }

    /// Seals sessions' credentials with `cipher` (and opens them with it).
    pub fn with_secrets(mut self, cipher: SecretCipher) -> Self {
        self.secrets = Some(cipher);
        self
    }

    /// Runs the hot read-only queries (contact and conversation lists, key
    /// and session lookups) on `reads`, a pool opened with
    /// `PoolSettings::generic_plans`.
    pub fn with_reads(mut self, reads: Database) -> Self {
        self.reads = reads;
        self
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
                // `SELECT $1` with 1 bound: a statement diesel prepares once
                // per connection, so a check is one round trip with no
                // parsing or planning (a literal `SELECT 1` is parsed and
                // planned at every call).
                diesel::select(1.into_sql::<Integer>()).execute(conn)?;
                Ok(())
            })
            .await
            .map_err(|e| RepositoryError::Unavailable(e.to_string()))
    }
}
