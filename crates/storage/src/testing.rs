//! Test databases: each test gets its own database, copied from a template
//! migrated once, and dropped when the test ends. Compiled only with the
//! `test-support` feature.
//!
//! The server is `TEST_DATABASE_URL` when set (any database URL of it; the
//! role must be allowed to create databases), else a project-local
//! PostgreSQL in `.data/test-postgres` on a port from 56000 to 56999 chosen
//! from the checkout's path, started on demand.

use std::path::PathBuf;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};

use diesel::pg::PgConnection;
use diesel::sql_types::Text;
use diesel::{QueryableByName, RunQueryDsl};

use crate::error::StorageError;
use crate::local_pg::LocalPostgres;
use crate::migrate::run_migrations;

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
    // The canonical path's bytes: a `Path`'s own hash of `…/crates/storage/../..`
    // came out the same for every checkout.
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
