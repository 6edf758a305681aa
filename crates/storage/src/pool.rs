use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Semaphore;

use diesel::connection::SimpleConnection;
use diesel::pg::PgConnection;
use diesel::r2d2::{ConnectionManager, CustomizeConnection, Pool};

use crate::error::StorageError;

/// Settings of the connection pool.
#[derive(Debug, Clone)]
pub struct PoolSettings {
    /// Most connections open at once.
    pub max_size: u32,
    /// Connections kept open while idle.
    pub min_idle: u32,
    /// How long a caller waits for a free connection before giving up.
    pub acquire_timeout: Duration,
    /// Longest a single statement may run.
    pub statement_timeout: Duration,
}

impl Default for PoolSettings {
    fn default() -> Self {
        Self {
            max_size: 16,
            min_idle: 2,
            acquire_timeout: Duration::from_secs(5),
            statement_timeout: Duration::from_secs(15),
        }
    }
}

/// Sets per-session limits on every new connection.
#[derive(Debug)]
struct SessionSetup {
    statement_timeout_ms: u128,
}

impl CustomizeConnection<PgConnection, diesel::r2d2::Error> for SessionSetup {
    fn on_acquire(&self, conn: &mut PgConnection) -> Result<(), diesel::r2d2::Error> {
        conn.batch_execute(&format!(
            "SET statement_timeout = {}; SET idle_in_transaction_session_timeout = 60000; SET TIME ZONE 'UTC'",
            self.statement_timeout_ms
        ))
        .map_err(diesel::r2d2::Error::QueryError)
    }
}

/// A pool of PostgreSQL connections. Every query runs on a blocking thread
/// (see [`Database::run`]), never on the async executor.
#[derive(Clone)]
pub struct Database {
    pool: Pool<ConnectionManager<PgConnection>>,
    // One permit per connection: callers queue here, asynchronously, instead
    // of parking blocking threads on the pool's lock (which under load cost
    // more in thread switches than the queries themselves).
    permits: Arc<Semaphore>,
    acquire_timeout: Duration,
}

impl std::fmt::Debug for Database {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = self.pool.state();
        f.debug_struct("Database")
            .field("connections", &state.connections)
            .field("idle", &state.idle_connections)
            .finish()
    }
}

/// Appends libpq's `connect_timeout` to `url` unless it sets one.
fn with_connect_timeout(url: &str, timeout: Duration) -> String {
    if url.contains("connect_timeout=") {
        return url.to_owned();
    }
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}connect_timeout={}", timeout.as_secs().max(1))
}

impl Database {
    /// Opens a pool on `url`. Fails when the database cannot be reached
    /// within the acquire timeout.
    ///
    /// # Errors
    /// [`StorageError::Pool`] when no connection can be made.
    pub fn connect(url: &str, settings: &PoolSettings) -> Result<Self, StorageError> {
        if settings.max_size == 0 {
            return Err(StorageError::Config(
                "pool max_size must be at least 1".into(),
            ));
        }
        let manager = ConnectionManager::<PgConnection>::new(with_connect_timeout(
            url,
            settings.acquire_timeout,
        ));
        let pool = Pool::builder()
            .max_size(settings.max_size)
            .min_idle(Some(settings.min_idle.min(settings.max_size)))
            .connection_timeout(settings.acquire_timeout)
            .test_on_check_out(false)
            .connection_customizer(Box::new(SessionSetup {
                statement_timeout_ms: settings.statement_timeout.as_millis(),
            }))
            .build(manager)
            .map_err(StorageError::Pool)?;
        Ok(Self {
            pool,
            permits: Arc::new(Semaphore::new(settings.max_size as usize)),
            acquire_timeout: settings.acquire_timeout,
        })
    }

    /// Runs `f` with a pooled connection on a blocking thread.
    ///
    /// # Errors
    /// [`StorageError::Pool`] when no connection is free within the acquire
    /// timeout, [`StorageError::Task`] when `f` panics, or `f`'s own error.
    pub async fn run<T, F>(&self, f: F) -> Result<T, StorageError>
    where
        F: FnOnce(&mut PgConnection) -> Result<T, StorageError> + Send + 'static,
        T: Send + 'static,
    {
        let permit =
            tokio::time::timeout(self.acquire_timeout, self.permits.clone().acquire_owned())
                .await
                .map_err(|_| StorageError::Busy)?
                .map_err(|_| StorageError::Busy)?;
        let pool = self.pool.clone();
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            let mut conn = pool.get()?;
            f(&mut conn)
        })
        .await
        .map_err(|e| StorageError::Task(e.to_string()))?
    }

    /// Runs `f` with a pooled connection on the current thread. For
    /// start-up, admin commands and tests; never call it from async code.
    ///
    /// # Errors
    /// As [`Database::run`].
    pub fn run_blocking<T>(
        &self,
        f: impl FnOnce(&mut PgConnection) -> Result<T, StorageError>,
    ) -> Result<T, StorageError> {
        let mut conn = self.pool.get()?;
        f(&mut conn)
    }
}
