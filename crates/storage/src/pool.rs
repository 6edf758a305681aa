use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::oneshot;

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
    /// Plan prepared statements once per connection (`force_generic_plan`)
    /// instead of at every run. Only for connections that run reads: see
    /// the comment on `SessionSetup`.
    pub generic_plans: bool,
}

impl Default for PoolSettings {
    fn default() -> Self {
        Self {
            max_size: 16,
            min_idle: 2,
            acquire_timeout: Duration::from_secs(5),
            statement_timeout: Duration::from_secs(15),
            generic_plans: false,
        }
    }
}

/// Sets per-session limits on every new connection.
#[derive(Debug)]
struct SessionSetup {
    statement_timeout_ms: u128,
    generic_plans: bool,
}

// PostgreSQL settles on a generic plan for a prepared statement (ours, and
// the foreign-key checks behind every insert) after five runs and keeps it
// for the connection's life. A plan made while a table was nearly empty is
// a sequential scan, and it stayed one as the messages table grew: sends
// slowed down. Planning every run instead (`force_custom_plan`) cost a
// third of the send throughput. So write connections keep the plan cache
// and turn sequential scans off: every query of ours, and every
// foreign-key check, has an index to use, and a plan cached while a table
// was small now uses it too. Read connections (the hot list and lookup
// queries, no inserts) use `force_generic_plan`: planned once instead of at
// every request (+35% pages/s measured), with sequential scans off for the
// same reason.
impl CustomizeConnection<PgConnection, diesel::r2d2::Error> for SessionSetup {
    fn on_acquire(&self, conn: &mut PgConnection) -> Result<(), diesel::r2d2::Error> {
        conn.batch_execute(&format!(
            "SET statement_timeout = {}; SET idle_in_transaction_session_timeout = 60000; SET TIME ZONE 'UTC'; {}",
            self.statement_timeout_ms,
            if self.generic_plans {
                "SET plan_cache_mode = force_generic_plan; SET enable_seqscan = off"
            } else {
                "SET enable_seqscan = off"
            }
        ))
        .map_err(diesel::r2d2::Error::QueryError)
    }
}

type Job = Box<dyn FnOnce(&Pool<ConnectionManager<PgConnection>>) + Send>;

const QUEUED: u8 = 0;
const RUNNING: u8 = 1;
const ABANDONED: u8 = 2;

/// A pool of PostgreSQL connections with one dedicated thread per
/// connection. Every query runs on those threads (see [`Database::run`]),
/// never on the async executor.
///
/// Why not `spawn_blocking`: under load tokio's blocking pool grew to
/// hundreds of short-lived threads, each with its own allocator cache, and
/// the resident set with them; a fixed set of threads keeps both flat.
#[derive(Clone)]
pub struct Database {
    pool: Pool<ConnectionManager<PgConnection>>,
    jobs: Sender<Job>,
    acquire_timeout: Duration,
}

/// Takes jobs until every `Database` handle is gone.
fn worker(pool: Pool<ConnectionManager<PgConnection>>, jobs: Arc<Mutex<Receiver<Job>>>) {
    loop {
        let job = match jobs.lock() {
            Ok(rx) => rx.recv(),
            Err(_) => return,
        };
        match job {
            Ok(job) => job(&pool),
            Err(_) => return,
        }
    }
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
                generic_plans: settings.generic_plans,
            }))
            .build(manager)
            .map_err(StorageError::Pool)?;
        let (tx, rx) = channel::<Job>();
        let rx = Arc::new(Mutex::new(rx));
        for i in 0..settings.max_size {
            let (pool, rx) = (pool.clone(), rx.clone());
            std::thread::Builder::new()
                .name(format!("maveraa-db-{i}"))
                .spawn(move || worker(pool, rx))
                .map_err(|e| StorageError::Config(format!("cannot start database threads: {e}")))?;
        }
        Ok(Self {
            pool,
            jobs: tx,
            acquire_timeout: settings.acquire_timeout,
        })
    }

    /// Runs `f` with a pooled connection on one of the database threads.
    ///
    /// A call that waits longer than the acquire timeout for a thread gives
    /// up with [`StorageError::Busy`], and its work is then never started:
    /// a caller told "failed" can retry without the first attempt landing
    /// later. Work that has started is always awaited to its end (the
    /// statement timeout bounds it).
    ///
    /// # Errors
    /// [`StorageError::Busy`] when no thread was free within the acquire
    /// timeout, [`StorageError::Pool`] when no connection could be made,
    /// [`StorageError::Task`] when `f` panics, or `f`'s own error.
    pub async fn run<T, F>(&self, f: F) -> Result<T, StorageError>
    where
        F: FnOnce(&mut PgConnection) -> Result<T, StorageError> + Send + 'static,
        T: Send + 'static,
    {
        let state = Arc::new(AtomicU8::new(QUEUED));
        let (tx, mut rx) = oneshot::channel();
        let job_state = state.clone();
        let job: Job = Box::new(move |pool| {
            if job_state
                .compare_exchange(QUEUED, RUNNING, Ordering::AcqRel, Ordering::Acquire)
                .is_err()
            {
                return; // The caller gave up before we started.
            }
            let result = catch_unwind(AssertUnwindSafe(|| {
                let mut conn = pool.get()?;
                f(&mut conn)
            }))
            .unwrap_or_else(|_| Err(StorageError::Task("database work panicked".into())));
            let _ = tx.send(result);
        });
        self.jobs
            .send(job)
            .map_err(|_| StorageError::Task("database threads stopped".into()))?;
        match tokio::time::timeout(self.acquire_timeout, &mut rx).await {
            Ok(result) => {
                result.map_err(|_| StorageError::Task("database work was dropped".into()))?
            }
            Err(_) => {
                if state
                    .compare_exchange(QUEUED, ABANDONED, Ordering::AcqRel, Ordering::Acquire)
                    .is_ok()
                {
                    return Err(StorageError::Busy);
                }
                // Already running: wait for it, so the caller learns what happened.
                rx.await
                    .map_err(|_| StorageError::Task("database work was dropped".into()))?
            }
        }
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
