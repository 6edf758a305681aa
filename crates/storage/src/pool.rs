use std::collections::VecDeque;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::{self, Thread};
use std::time::Duration;

use tokio::sync::oneshot;

use diesel::connection::SimpleConnection;
use diesel::pg::PgConnection;
use diesel::r2d2::{ConnectionManager, CustomizeConnection, ManageConnection, Pool};

use crate::error::StorageError;

/// Settings of the connection pool.
#[derive(Debug, Clone)]
pub struct PoolSettings {
    /// Most connections open at once.
    pub max_size: u32,
    /// Connections kept open while idle. r2d2 opens them in the background;
    /// a process that exits while one is being made can crash in libcrypto's
    /// exit handlers (SCRAM authentication runs OpenSSL's HMAC), so the
    /// default is none: short-lived pools (tests, commands) make only the
    /// connections they wait for. The server sets it from its config.
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
            min_idle: 0,
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
// for the connection's life. A plan made while a table is nearly empty is
// a sequential scan, and stays one as the table grows. Planning every run
// (`force_custom_plan`) costs too much of the send throughput, so write
// connections keep the plan cache and turn sequential scans off: every
// query of ours, and every foreign-key check, has an index to use, and a
// plan cached while a table is small uses it too. Read connections (the
// hot list and lookup queries, no inserts) use `force_generic_plan`:
// planned once instead of at every request, with sequential scans off for
// the same reason. JIT is off: `enable_seqscan = off` prices a sequential
// scan that has no alternative (the event log's one-row head tables) at
// 10^10, far above `jit_above_cost`, and PostgreSQL then compiled such a
// statement with LLVM at every run, 10-35 ms each: an idle server cost
// PostgreSQL a third of a core. The measurements: docs/storage-tuning.md.
impl CustomizeConnection<MarkableConnection, diesel::r2d2::Error> for SessionSetup {
    fn on_acquire(&self, conn: &mut MarkableConnection) -> Result<(), diesel::r2d2::Error> {
        conn.inner.batch_execute(&format!(
            "SET statement_timeout = {}; SET idle_in_transaction_session_timeout = 60000; SET TIME ZONE 'UTC'; SET jit = off; {}",
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

/// A pooled connection that a failure can mark dead (the server gone from
/// the other end), so the pool drops it instead of handing it out again.
pub(crate) struct MarkableConnection {
    inner: PgConnection,
    dead: bool,
    /// Held while the connection is open (see [`Manager::live`]).
    _live: Arc<()>,
}

/// diesel's connection manager, which also drops a connection a failure
/// showed dead: diesel's own check looks only at the transaction state, so
/// a connection the server dropped (a restart, a failover) would fail every
/// call ("no connection to the server") until r2d2 retires it at its
/// maximum lifetime, half an hour.
struct Manager {
    inner: ConnectionManager<PgConnection>,
    /// Held by the manager and every open connection: r2d2 makes and drops
    /// connections on threads of its own, which outlive the pool's handles
    /// while they work, so the pool is closed only once nothing holds it.
    live: Arc<()>,
}

impl Manager {
    fn new(url: String) -> Self {
        Self {
            inner: ConnectionManager::new(url),
            live: Arc::new(()),
        }
    }
}

impl ManageConnection for Manager {
    type Connection = MarkableConnection;
    type Error = diesel::r2d2::Error;

    fn connect(&self) -> Result<MarkableConnection, Self::Error> {
        crate::openssl_exit::keep_openssl_through_exit();
        self.inner.connect().map(|inner| MarkableConnection {
            inner,
            dead: false,
            _live: self.live.clone(),
        })
    }

    fn is_valid(&self, conn: &mut MarkableConnection) -> Result<(), Self::Error> {
        self.inner.is_valid(&mut conn.inner)
    }

    fn has_broken(&self, conn: &mut MarkableConnection) -> bool {
        conn.dead || self.inner.has_broken(&mut conn.inner)
    }
}

type DbPool = Pool<Manager>;

/// Runs `f` on a connection from `pool`, and marks the connection for
/// dropping when `f` failed because the server is gone.
fn with_connection<T>(
    pool: &DbPool,
    f: impl FnOnce(&mut PgConnection) -> Result<T, StorageError>,
) -> Result<T, StorageError> {
    let mut conn = pool.get()?;
    let result = f(&mut conn.inner);
    if result.as_ref().is_err_and(StorageError::connection_is_gone) {
        conn.dead = true;
    }
    result
}

type Job = Box<dyn FnOnce(&DbPool) + Send>;

const QUEUED: u8 = 0;
const RUNNING: u8 = 1;
const ABANDONED: u8 = 2;

/// A pool of PostgreSQL connections with one dedicated thread per
/// connection. Every query runs on those threads (see [`Database::run`]),
/// never on the async executor.
///
/// Why not `spawn_blocking`: under load tokio's blocking pool grows to
/// hundreds of short-lived threads, each with its own allocator cache, and
/// the resident set with them; a fixed set of threads keeps both flat.
#[derive(Clone)]
pub struct Database {
    pool: DbPool,
    jobs: Arc<JobSender>,
    acquire_timeout: Duration,
}

/// Jobs waiting for a database thread, and the threads waiting for jobs.
/// A thread that finds no job yields a few times before it parks, so under
/// load the next job is usually taken without any wake-up; otherwise a job
/// wakes one parked thread, the one idle for the shortest time (its caches
/// are warm). Not a channel's receiver shared behind a mutex: that wakes
/// two threads per job, the receiver and the next in line for the mutex,
/// only to wait again (see docs/storage-tuning.md).
#[derive(Default)]
struct JobQueue {
    state: Mutex<QueueState>,
    /// Jobs queued (read without the lock while spinning).
    pending: AtomicUsize,
}

/// Yields before parking (each gives the CPU to whatever else is ready:
/// PostgreSQL, the HTTP workers; with nothing else ready it returns at once).
const SPINS: u32 = 4;

#[derive(Default)]
struct QueueState {
    jobs: VecDeque<Job>,
    /// Threads parked waiting for a job, most recently idle last.
    idle: Vec<Thread>,
    /// No `Database` handle is left: threads end once the queue is empty.
    closed: bool,
}

impl JobQueue {
    fn lock(&self) -> std::sync::MutexGuard<'_, QueueState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn push(&self, job: Job) {
        let mut state = self.lock();
        state.jobs.push_back(job);
        self.pending.fetch_add(1, Ordering::Release);
        let idle = state.idle.pop();
        drop(state);
        if let Some(thread) = idle {
            thread.unpark();
        }
    }

    /// The next job, or `None` when the queue is closed and empty.
    fn pop(&self) -> Option<Job> {
        let me = thread::current();
        loop {
            let mut state = self.lock();
            // Woken (or spuriously awake): no longer idle, whoever woke us.
            state.idle.retain(|t| t.id() != me.id());
            if let Some(job) = state.jobs.pop_front() {
                self.pending.fetch_sub(1, Ordering::Release);
                return Some(job);
            }
            if state.closed {
                return None;
            }
            drop(state);
            // Yield a few times before parking: a job arriving meanwhile is
            // taken without a wake-up (the sender's syscall and ours).
            let mut spins = 0;
            while spins < SPINS && self.pending.load(Ordering::Acquire) == 0 {
                thread::yield_now();
                spins += 1;
            }
            if spins < SPINS {
                continue;
            }
            let mut state = self.lock();
            if !state.jobs.is_empty() || state.closed {
                continue;
            }
            state.idle.push(me.clone());
            drop(state);
            // An unpark that came before this park makes it return at once.
            thread::park();
        }
    }

    fn close(&self) {
        let idle = {
            let mut state = self.lock();
            state.closed = true;
            std::mem::take(&mut state.idle)
        };
        for thread in idle {
            thread.unpark();
        }
    }
}

/// The `Database` handles' side of the queue: when the last handle goes,
/// the threads are told to end, and awaited.
struct JobSender {
    queue: Arc<JobQueue>,
    threads: Mutex<Vec<thread::JoinHandle<()>>>,
    /// The pool's [`Manager::live`]: gone once r2d2 has dropped the pool.
    live: std::sync::Weak<()>,
    /// Longest r2d2 may still be making a connection (its connect timeout).
    connect_timeout: Duration,
}

impl Drop for JobSender {
    /// Waits for the threads to end and the pool's connections to be closed,
    /// including one r2d2 is still making on its own threads: a process
    /// that exits meanwhile crashes in libcrypto's exit handlers (seen:
    /// SIGSEGV in `HMAC_Init_ex` under `PQconnectdb` at the end of a test
    /// run), and a database dropped right after its pool would kill
    /// connections still open. The threads only drain jobs already queued,
    /// each bounded by the statement timeout; a connection is bounded by
    /// the connect timeout.
    fn drop(&mut self) {
        self.queue.close();
        let me = thread::current().id();
        let threads =
            std::mem::take(&mut *self.threads.lock().unwrap_or_else(PoisonError::into_inner));
        for handle in threads {
            // The last handle dropped by a job on a database thread: that
            // thread ends by itself once the job returns.
            if handle.thread().id() != me {
                let _ = handle.join();
            }
        }
        let deadline = std::time::Instant::now() + self.connect_timeout + Duration::from_secs(1);
        while self.live.strong_count() > 0 && std::time::Instant::now() < deadline {
            thread::sleep(Duration::from_millis(2));
        }
    }
}

/// Takes jobs until every `Database` handle is gone.
fn worker(pool: DbPool, jobs: Arc<JobQueue>) {
    while let Some(job) = jobs.pop() {
        job(&pool);
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

/// `url` with the connection parameters we rely on, where it does not set
/// them itself: a connect timeout, and no GSSAPI encryption. libpq would
/// otherwise start Kerberos for every connection, and a process that exits
/// while a connection is being made (a pool refilling itself) then aborts
/// in Kerberos' exit handlers (seen: "k5_mutex_lock ... Assertion"). Both
/// URLs (`postgres://...?k=v`) and keyword strings (`host=... k=v`) work.
pub(crate) fn connection_url(url: &str, connect_timeout: Duration) -> String {
    let uri = url.starts_with("postgres://") || url.starts_with("postgresql://");
    let mut out = url.to_owned();
    for (key, value) in [
        (
            "connect_timeout",
            connect_timeout.as_secs().max(1).to_string(),
        ),
        ("gssencmode", "disable".to_owned()),
    ] {
        if url.contains(&format!("{key}=")) {
            continue;
        }
        if uri {
            out.push(if out.contains('?') { '&' } else { '?' });
        } else {
            out.push(' ');
        }
        out.push_str(&format!("{key}={value}"));
    }
    out
}

/// One connection outside the pools (migrations, listeners, admin work),
/// with the same parameters as the pools' (see [`connection_url`]).
///
/// # Errors
/// When the server cannot be reached or refuses the connection.
pub(crate) fn establish(url: &str) -> diesel::ConnectionResult<PgConnection> {
    use diesel::Connection;
    crate::openssl_exit::keep_openssl_through_exit();
    PgConnection::establish(&connection_url(url, Duration::from_secs(10)))
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
        let manager = Manager::new(connection_url(url, settings.acquire_timeout));
        let live = Arc::downgrade(&manager.live);
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
        let queue = Arc::new(JobQueue::default());
        let jobs = Arc::new(JobSender {
            queue: queue.clone(),
            threads: Mutex::default(),
            live,
            connect_timeout: settings.acquire_timeout,
        });
        for i in 0..settings.max_size {
            let (pool, queue) = (pool.clone(), queue.clone());
            let handle = std::thread::Builder::new()
                .name(format!("maveraa-db-{i}"))
                .spawn(move || worker(pool, queue))
                .map_err(|e| StorageError::Config(format!("cannot start database threads: {e}")))?;
            jobs.threads
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(handle);
        }
        Ok(Self {
            // Dropped before `jobs`: once the threads are joined, the
            // pool's last handle is gone with them.
            pool,
            jobs,
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
            let result = catch_unwind(AssertUnwindSafe(|| with_connection(pool, f)))
                .unwrap_or_else(|_| Err(StorageError::Task("database work panicked".into())));
            let _ = tx.send(result);
        });
        self.jobs.queue.push(job);
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
        with_connection(&self.pool, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_urls_get_a_timeout_and_no_gssapi_unless_they_say_otherwise() {
        let t = Duration::from_secs(5);
        assert_eq!(
            connection_url("postgres://u@h:5432/db", t),
            "postgres://u@h:5432/db?connect_timeout=5&gssencmode=disable"
        );
        assert_eq!(
            connection_url("postgresql://h/db?sslmode=require&gssencmode=prefer", t),
            "postgresql://h/db?sslmode=require&gssencmode=prefer&connect_timeout=5"
        );
        assert_eq!(
            connection_url("host=h dbname=db connect_timeout=2", t),
            "host=h dbname=db connect_timeout=2 gssencmode=disable"
        );
    }

    /// Jobs pushed from several threads while workers park and wake all run
    /// exactly once, and the workers end, queue drained, when the last
    /// handle goes.
    #[test]
    fn every_job_runs_once_and_workers_end_with_the_last_handle() {
        // Never connected: the jobs here do not use it.
        let pool = Pool::builder()
            .min_idle(Some(0))
            .build_unchecked(Manager::new("postgres://unused".into()));
        let queue = Arc::new(JobQueue::default());
        let sender = JobSender {
            queue: queue.clone(),
            threads: Mutex::default(),
            live: std::sync::Weak::new(),
            connect_timeout: Duration::ZERO,
        };
        let workers: Vec<_> = (0..4)
            .map(|_| {
                let (pool, queue) = (pool.clone(), queue.clone());
                thread::spawn(move || worker(pool, queue))
            })
            .collect();
        let ran = Arc::new(AtomicUsize::new(0));
        let pushers: Vec<_> = (0..4)
            .map(|i| {
                let (queue, ran) = (queue.clone(), ran.clone());
                thread::spawn(move || {
                    for n in 0..5_000 {
                        let ran = ran.clone();
                        queue.push(Box::new(move |_| {
                            ran.fetch_add(1, Ordering::SeqCst);
                        }));
                        // Now and then let the workers go idle and park.
                        if (n + i) % 997 == 0 {
                            thread::sleep(Duration::from_millis(2));
                        }
                    }
                })
            })
            .collect();
        for pusher in pushers {
            pusher.join().expect("pusher");
        }
        drop(sender);
        for worker in workers {
            worker
                .join()
                .expect("a worker ends once the queue is closed");
        }
        assert_eq!(ran.load(Ordering::SeqCst), 20_000);
        assert_eq!(queue.pending.load(Ordering::SeqCst), 0);
    }
}
