//! Test databases: each test gets its own database, copied from a template
//! migrated once, and dropped when the test ends; and [`Fixture`], a store
//! over one, with the set-up the storage tests share (unit and integration
//! alike). Compiled only with the `test-support` feature.
//!
//! The server is `TEST_DATABASE_URL` when set (any database URL of it; the
//! role must be allowed to create databases), else a project-local
//! PostgreSQL in `.data/test-postgres` on a port from 56000 to 56999 chosen
//! from the checkout's path, started on demand.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, OnceLock};

use chrono::{DateTime, SubsecRound, Utc};
use diesel::pg::PgConnection;
use diesel::sql_types::{BigInt, Text};
use diesel::{QueryableByName, RunQueryDsl};
use maveraa_domain::messaging::{
    Direction, Message, MessageContent, MessageStatus, ProviderSettings, Session, SessionName,
    SessionStatus, StatusChange, WaId,
};
use maveraa_domain::ports::{MessageRepository, Outbox, SessionRepository};
use maveraa_domain::usecases::WorkspaceService;
use maveraa_domain::{MessageId, SessionId, SystemClock, WorkspaceId};

use crate::error::StorageError;
use crate::local_pg::LocalPostgres;
use crate::migrate::run_migrations;
use crate::pool::{Database, PoolSettings};
use crate::secrets::{SecretCipher, SecretKey};
use crate::store::PgStore;

const TEST_PREFIX: &str = "maveraa_test_";
const TEMPLATE_LOCK_KEY: i64 = 0x006d_7672_5f74_706c;

/// A database of its own for one test. Dropped (with its connections
/// closed) when this value is.
#[derive(Debug)]
pub struct TestDatabase {
    url: String,
    name: String,
    admin_url: String,
}

#[derive(QueryableByName)]
struct Name {
    #[diesel(sql_type = Text)]
    datname: String,
}

fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Replaces the database part of a `postgres://` URL.
fn with_database(url: &str, database: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let authority_end = base
        .find("://")
        .map(|i| i + 3)
        .and_then(|start| base[start..].find('/').map(|j| start + j))
        .unwrap_or(base.len());
    let mut out = format!("{}/{}", &base[..authority_end], database);
    if let Some(q) = query {
        out.push('?');
        out.push_str(q);
    }
    out
}

/// A hash of the migrations folder, so a changed migration gets a new
/// template.
fn migrations_fingerprint() -> u64 {
    use std::hash::{DefaultHasher, Hash, Hasher};
    let mut hasher = DefaultHasher::new();
    let mut entries: Vec<PathBuf> = walk(&workspace_root().join("migrations"));
    entries.sort();
    for path in entries {
        path.file_name().hash(&mut hasher);
        std::fs::read(&path).unwrap_or_default().hash(&mut hasher);
    }
    hasher.finish()
}

fn walk(dir: &std::path::Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
}

/// The local test cluster's port: 56000 to 56999, from the checkout's path,
/// so two checkouts on one machine do not fight over one port.
fn test_port() -> u16 {
    port_for(&workspace_root())
}

fn port_for(root: &std::path::Path) -> u16 {
    use std::hash::{DefaultHasher, Hash, Hasher};
    let mut hasher = DefaultHasher::new();
    // The canonical path's bytes: one checkout, however its path is spelt
    // (`…/crates/storage/../..`), gets one port, and two checkouts get two
    // (docs/storage-tuning.md says why not the `Path`'s own hash).
    std::fs::canonicalize(root)
        .unwrap_or_else(|_| root.to_owned())
        .as_os_str()
        .hash(&mut hasher);
    56000 + (hasher.finish() % 1000) as u16
}

fn pid_alive(pid: u32) -> bool {
    std::path::Path::new(&format!("/proc/{pid}")).exists()
}

/// The admin URL and template name, prepared once per process.
fn template() -> Result<&'static (String, String), String> {
    static TEMPLATE: OnceLock<Result<(String, String), String>> = OnceLock::new();
    TEMPLATE
        .get_or_init(|| prepare_template().map_err(|e| e.to_string()))
        .as_ref()
        .map_err(Clone::clone)
}

fn prepare_template() -> Result<(String, String), StorageError> {
    let server_url = match std::env::var("TEST_DATABASE_URL") {
        Ok(url) if !url.trim().is_empty() => url,
        _ => LocalPostgres {
            dir: workspace_root().join(".data/test-postgres"),
            port: test_port(),
            database: "postgres".into(),
            ephemeral: true,
        }
        .ensure_running()?,
    };
    let admin_url = with_database(&server_url, "postgres");
    let template = format!("maveraa_tpl_{:016x}", migrations_fingerprint());
    let mut conn = crate::pool::establish(&admin_url)?;
    diesel::sql_query(format!("SELECT pg_advisory_lock({TEMPLATE_LOCK_KEY})"))
        .execute(&mut conn)?;
    let result = (|| -> Result<(), StorageError> {
        sweep_leftovers(&mut conn)?;
        let names: Vec<Name> =
            diesel::sql_query("SELECT datname FROM pg_database WHERE datname = $1")
                .bind::<Text, _>(&template)
                .load(&mut conn)?;
        if names.is_empty() {
            let building = format!("{template}_building");
            diesel::sql_query(format!("DROP DATABASE IF EXISTS {building} WITH (FORCE)"))
                .execute(&mut conn)?;
            diesel::sql_query(format!("CREATE DATABASE {building}")).execute(&mut conn)?;
            run_migrations(&with_database(&server_url, &building))?;
            diesel::sql_query(format!("ALTER DATABASE {building} RENAME TO {template}"))
                .execute(&mut conn)?;
            drop_other_templates(&mut conn, &template)?;
        }
        Ok(())
    })();
    diesel::sql_query(format!("SELECT pg_advisory_unlock({TEMPLATE_LOCK_KEY})"))
        .execute(&mut conn)?;
    result?;
    Ok((admin_url, template))
}

/// Drops the templates of earlier migrations, so they do not pile up as
/// migrations change. One still in use (a run of another checkout sharing
/// `TEST_DATABASE_URL`) refuses to go and is left for later.
fn drop_other_templates(conn: &mut PgConnection, current: &str) -> Result<(), StorageError> {
    let names: Vec<Name> = diesel::sql_query(
        "SELECT datname FROM pg_database WHERE datname LIKE 'maveraa\\_tpl\\_%' AND datname <> $1",
    )
    .bind::<Text, _>(current)
    .load(conn)?;
    for Name { datname } in names {
        // Not FORCE: another run's template in use stays.
        let _ = diesel::sql_query(format!("DROP DATABASE IF EXISTS {datname}")).execute(conn);
    }
    Ok(())
}

/// Drops test databases whose process is gone (a crashed or killed run).
fn sweep_leftovers(conn: &mut PgConnection) -> Result<(), StorageError> {
    let names: Vec<Name> =
        diesel::sql_query("SELECT datname FROM pg_database WHERE datname LIKE $1")
            .bind::<Text, _>(format!("{TEST_PREFIX}%"))
            .load(conn)?;
    for Name { datname } in names {
        let pid = datname
            .strip_prefix(TEST_PREFIX)
            .and_then(|rest| rest.split('_').next())
            .and_then(|p| p.parse::<u32>().ok());
        if pid.is_some_and(|p| !pid_alive(p)) {
            diesel::sql_query(format!("DROP DATABASE IF EXISTS {datname} WITH (FORCE)"))
                .execute(conn)?;
        }
    }
    Ok(())
}

impl TestDatabase {
    /// A new, migrated, empty database.
    ///
    /// # Panics
    /// When no PostgreSQL can be reached or started: tests that need a
    /// database fail loudly instead of skipping.
    pub fn create() -> Self {
        Self::create_from(None)
    }

    /// A new database without any table: no migration has run on it.
    ///
    /// # Panics
    /// As [`TestDatabase::create`].
    pub fn create_unmigrated() -> Self {
        Self::create_from(Some("template0"))
    }

    fn create_from(template: Option<&str>) -> Self {
        match Self::try_create(template) {
            Ok(db) => db,
            Err(e) => panic!(
                "this test needs PostgreSQL and none could be used: {e}\n\
                 Set TEST_DATABASE_URL to a server where the role may create databases, \
                 or install PostgreSQL's server binaries so the tests can start one."
            ),
        }
    }

    fn try_create(from: Option<&str>) -> Result<Self, String> {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let (admin_url, migrated) = template()?;
        let template = from.unwrap_or(migrated);
        let name = format!(
            "{TEST_PREFIX}{}_{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        let mut conn = crate::pool::establish(admin_url).map_err(|e| e.to_string())?;
        diesel::sql_query(format!("CREATE DATABASE {name} TEMPLATE {template}"))
            .execute(&mut conn)
            .map_err(|e| format!("CREATE DATABASE {name}: {e}"))?;
        Ok(Self {
            url: with_database(admin_url, &name),
            name,
            admin_url: admin_url.clone(),
        })
    }

    /// The database's URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The database's name.
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        if let Ok(mut conn) = crate::pool::establish(&self.admin_url) {
            let _ = diesel::sql_query(format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            ))
            .execute(&mut conn);
        }
    }
}

// ---------------------------------------------------------------------------
// The fixture

/// A store over a database of its own: what a storage test starts from.
/// The database is dropped with this value.
#[derive(Debug)]
pub struct Fixture {
    /// The store under test.
    pub store: Arc<PgStore>,
    // Declared after `store`, so the pool is dropped before its database.
    test_db: TestDatabase,
}

/// The key tests seal sessions' credentials with (never a real one).
pub const TEST_SECRETS_KEY: &str = "bWF2ZXJhYSB0ZXN0IGtleSwgbmV2ZXIgcmVhbCEhISE=";

/// A cipher under [`TEST_SECRETS_KEY`].
///
/// # Panics
/// Never: the key is a valid constant.
pub fn test_cipher() -> SecretCipher {
    SecretCipher::new(
        SecretKey::parse(TEST_SECRETS_KEY).expect("the test key parses"),
        [],
    )
}

/// A fixture whose pool has the default settings.
///
/// # Panics
/// As [`TestDatabase::create`], or when no pool can be opened.
pub fn fixture() -> Fixture {
    Fixture::with_pool(&PoolSettings::default())
}

impl Fixture {
    /// A fixture whose pool has `settings`.
    ///
    /// # Panics
    /// As [`fixture`].
    pub fn with_pool(settings: &PoolSettings) -> Self {
        let test_db = TestDatabase::create();
        let database = Database::connect(test_db.url(), settings).expect("pool");
        Self {
            store: Arc::new(PgStore::new(database).with_secrets(test_cipher())),
            test_db,
        }
    }

    /// The database's URL, to open more pools on it.
    pub fn url(&self) -> &str {
        self.test_db.url()
    }

    /// The store as the sessions port.
    pub fn sessions(&self) -> &dyn SessionRepository {
        self.store.as_ref()
    }

    /// The store as the messages port.
    pub fn messages(&self) -> &dyn MessageRepository {
        self.store.as_ref()
    }

    /// The store as the outbox port.
    pub fn outbox(&self) -> &dyn Outbox {
        self.store.as_ref()
    }

    /// Runs `sql` (no parameters) and returns how many rows it touched.
    ///
    /// # Panics
    /// When the statement fails.
    pub fn sql(&self, sql: &str) -> usize {
        let sql = sql.to_owned();
        self.store
            .database()
            .run_blocking(move |conn| Ok(diesel::sql_query(sql).execute(conn)?))
            .expect("sql")
    }

    /// The workspace's stored contact count (its row and the changes
    /// kept beside it while another transaction held the row) and the
    /// `count(*)` of its contacts, which must agree.
    ///
    /// # Panics
    /// When a query fails.
    pub fn contact_counts(&self, ws: WorkspaceId) -> (i64, i64) {
        let stored = self.count(&format!(
            "SELECT (contact_count + coalesce((SELECT sum(delta) FROM contact_count_deltas \
             WHERE workspace_id = '{ws}'), 0))::bigint AS n FROM workspaces WHERE id = '{ws}'"
        ));
        let real = self.count(&format!(
            "SELECT count(*) AS n FROM contacts WHERE workspace_id = '{ws}'"
        ));
        (stored, real)
    }

    /// A `count(*) AS n` query's answer.
    ///
    /// # Panics
    /// When the query fails.
    pub fn count(&self, sql: &str) -> i64 {
        #[derive(QueryableByName)]
        struct RowCount {
            #[diesel(sql_type = BigInt)]
            n: i64,
        }
        let sql = sql.to_owned();
        self.store
            .database()
            .run_blocking(move |conn| Ok(diesel::sql_query(sql).get_result::<RowCount>(conn)?.n))
            .expect("count")
    }
}

/// A `count(*) AS n` query's answer on the database at `url`, over a
/// connection of its own: for tests that hold only a URL (end-to-end
/// tests). Blocking.
///
/// # Panics
/// When the connection or the query fails.
pub fn count_at(url: &str, sql: &str) -> i64 {
    use diesel::Connection;
    #[derive(QueryableByName)]
    struct RowCount {
        #[diesel(sql_type = BigInt)]
        n: i64,
    }
    crate::openssl_exit::keep_openssl_through_exit();
    let mut conn = diesel::PgConnection::establish(url).expect("connect");
    diesel::sql_query(sql)
        .get_result::<RowCount>(&mut conn)
        .expect("count")
        .n
}

/// The time now, to the microsecond, as PostgreSQL stores it: a value
/// read back equals the one written.
pub fn now() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(6)
}

/// Creates workspace `name`.
///
/// # Panics
/// When it cannot be stored.
pub async fn workspace(f: &Fixture, name: &str) -> WorkspaceId {
    WorkspaceService::new(f.store.clone(), Arc::new(SystemClock))
        .create(name)
        .await
        .expect("workspace")
        .id
}

/// A session name.
///
/// # Panics
/// When `s` is not a valid one.
pub fn name(s: &str) -> SessionName {
    SessionName::parse("sessionId", s).expect("session name")
}

/// A WhatsApp id.
///
/// # Panics
/// When `s` is not a valid one.
pub fn wa(s: &str) -> WaId {
    WaId::parse("to", s).expect("wa id")
}

/// A connected session `session` of `ws` over `provider`, not stored.
pub fn new_session(ws: WorkspaceId, session: &str, provider: ProviderSettings) -> Session {
    Session {
        id: SessionId::new(),
        workspace_id: ws,
        name: name(session),
        provider,
        status: SessionStatus::Connected,
        last_error: None,
        me: None,
        created_at: now(),
    }
}

/// Stores a connected simulator session `session` in `ws`.
///
/// # Panics
/// When it cannot be stored.
pub async fn session(f: &Fixture, ws: WorkspaceId, session: &str) -> Session {
    let s = new_session(ws, session, ProviderSettings::Simulator);
    f.sessions().insert(&s).await.expect("session");
    s
}

/// A queued outbound text stamped `at`, as `MessagingService::send` builds
/// it.
pub fn outbound_at(session: &Session, to: &str, text: &str, at: DateTime<Utc>) -> Message {
    Message {
        id: MessageId::new(),
        workspace_id: session.workspace_id,
        session_id: session.id,
        session_name: session.name.clone(),
        remote: wa(to),
        direction: Direction::Outbound,
        content: MessageContent::Text { body: text.into() },
        status: MessageStatus::Queued,
        provider_message_id: None,
        error: None,
        provider_timestamp: None,
        created_at: at,
        updated_at: at,
        history: vec![StatusChange {
            status: MessageStatus::Queued,
            at,
            error: None,
        }],
    }
}

/// A queued outbound text stamped now.
pub fn outbound(session: &Session, to: &str, text: &str) -> Message {
    outbound_at(session, to, text, now())
}

#[cfg(test)]
mod tests {
    use super::{port_for, with_database};

    #[test]
    fn two_checkouts_get_two_ports() {
        let base = std::env::temp_dir().join(format!("maveraa-ports-{}", std::process::id()));
        let a = base.join("work/main");
        let b = base.join("tmp/cleanclone");
        for dir in [&a, &b] {
            std::fs::create_dir_all(dir.join("crates/storage")).expect("dir");
        }
        let via = |root: &std::path::Path| port_for(&root.join("crates/storage/../.."));
        assert_eq!(
            via(&a),
            port_for(&a),
            "the same checkout, however it is reached"
        );
        assert_ne!(via(&a), via(&b), "these two checkouts collided before");
        assert!((56000..57000).contains(&via(&a)));
        std::fs::remove_dir_all(base).expect("clean up");
    }

    #[test]
    fn database_part_of_url_is_replaced() {
        assert_eq!(
            with_database("postgres://u:p@h:5432/app?sslmode=disable", "x"),
            "postgres://u:p@h:5432/x?sslmode=disable"
        );
        assert_eq!(with_database("postgres://h:1", "x"), "postgres://h:1/x");
    }
}
