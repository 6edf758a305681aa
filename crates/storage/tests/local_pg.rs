//! The project-local PostgreSQL: start-up after interrupted set-ups and
//! stops after crashes. These run PostgreSQL's own binaries (as the
//! suite's test server does), each on a cluster of its own.

use std::path::PathBuf;

use diesel::RunQueryDsl;
use maveraa_storage::{Database, LocalPostgres, PoolSettings};

#[derive(diesel::QueryableByName)]
struct Folded {
    #[diesel(sql_type = diesel::sql_types::Text)]
    folded: String,
}

/// A fresh folder for one test's cluster, removed when dropped.
struct Folder(PathBuf);

impl Folder {
    fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("maveraa-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create");
        Self(dir)
    }
}

impl Drop for Folder {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

#[test]
fn stopping_after_the_server_was_killed_is_not_an_error() {
    let folder = Folder::new("stale-pid");
    let data = folder.0.join("data");
    std::fs::create_dir_all(&data).expect("data");
    std::fs::write(data.join("PG_VERSION"), "15\n").expect("version");
    // What a killed server leaves: a pid file naming a process gone.
    std::fs::write(
        data.join("postmaster.pid"),
        format!("999999\n{}\n1700000000\n5432\n", data.display()),
    )
    .expect("pid file");
    let local = LocalPostgres {
        dir: folder.0.clone(),
        port: free_port(),
        database: "postgres".into(),
        ephemeral: true,
    };
    local.stop().expect("nothing runs: nothing to stop");
}

#[test]
fn a_set_up_killed_half_way_is_made_again_with_our_settings() {
    let folder = Folder::new("half-set-up");
    // What a start killed during initdb leaves beside the cluster.
    let unfinished = folder.0.join("data.initdb");
    std::fs::create_dir_all(&unfinished).expect("unfinished");
    std::fs::write(unfinished.join("PG_VERSION"), "15\n").expect("partial");
    let local = LocalPostgres {
        dir: folder.0.clone(),
        port: free_port(),
        database: "maveraa_local_test".into(),
        ephemeral: true,
    };
    let url = local.ensure_running().expect("starts");
    // Its own locale, not the environment's (plain C in many containers
    // and services, where lower() and ILIKE fold ASCII only). Here the
    // environment's is C.UTF-8 too: this guards other machines.
    let folded = Database::connect(&url, &PoolSettings::default()).and_then(|db| {
        db.run_blocking(|conn| {
            Ok(diesel::sql_query(
                "SELECT current_setting('lc_ctype') || ' ' || lower('ÉLODIE') AS folded",
            )
            .get_result::<Folded>(conn)?
            .folded)
        })
    });
    let stopped = local.stop();
    assert_eq!(
        folded.expect("query").as_str(),
        "C.UTF-8 élodie",
        "case folds beyond ASCII"
    );
    assert!(
        url.ends_with("/maveraa_local_test?sslmode=disable"),
        "{url}"
    );
    let conf = std::fs::read_to_string(folder.0.join("data/postgresql.conf")).expect("conf");
    assert!(
        conf.contains("# maveraa local server") && conf.contains("max_connections = 300"),
        "our settings are in the cluster's configuration"
    );
    assert!(!unfinished.exists(), "the unfinished set-up is gone");
    stopped.expect("stops");
}

#[test]
fn a_command_with_another_port_does_not_move_a_running_server() {
    let folder = Folder::new("other-port");
    let port = free_port();
    let serving = LocalPostgres {
        dir: folder.0.clone(),
        port,
        database: "postgres".into(),
        ephemeral: false,
    };
    let url = serving.ensure_running().expect("starts");
    // `maveraa workspace list`, say, run without the server's settings.
    let elsewhere = LocalPostgres {
        port: free_port(),
        ..serving.clone()
    };
    let refused = elsewhere.ensure_running();
    let still_up = Database::connect(&url, &PoolSettings::default())
        .and_then(|db| db.run_blocking(|_| Ok(())));
    let stopped = serving.stop();
    let why = refused
        .expect_err("refused, not restarted on its port")
        .to_string();
    assert!(why.contains(&format!("runs on port {port}")), "{why}");
    still_up.expect("the server's database is where it was");
    stopped.expect("stops");
}

/// `url` without its password.
fn without_password(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").expect("a URL");
    let (userinfo, host) = rest.split_once('@').expect("user info");
    let user = userinfo.split(':').next().expect("user");
    format!("{scheme}://{user}@{host}")
}

/// Waits (at most 10 s) until a connection to `url` is refused, and
/// returns why.
fn refused(url: &str) -> String {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        match diesel::Connection::establish(url) {
            Err::<diesel::PgConnection, _>(e) => return e.to_string(),
            Ok(_) if std::time::Instant::now() < deadline => {
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
            Ok(_) => panic!("{url} still lets a connection in"),
        }
    }
}

fn connects(url: &str) -> bool {
    diesel::Connection::establish(url)
        .map(|_: diesel::PgConnection| ())
        .is_ok()
}

#[test]
fn the_local_server_lets_in_only_who_has_its_password() {
    use std::os::unix::fs::PermissionsExt;
    let folder = Folder::new("password");
    let local = LocalPostgres {
        dir: folder.0.clone(),
        port: free_port(),
        database: "maveraa_local_test".into(),
        ephemeral: true,
    };
    let url = local.ensure_running().expect("starts");
    let password = std::fs::read_to_string(folder.0.join("password")).expect("password file");
    let mode = std::fs::metadata(folder.0.join("password"))
        .expect("password file")
        .permissions()
        .mode();
    let with_it = connects(&url);
    let without = refused(&without_password(&url));
    let wrong = refused(&url.replace(password.trim(), "not-the-password"));
    // Started again, it is the same password.
    let again = local.ensure_running();
    let stopped = local.stop();
    assert_eq!(mode & 0o777, 0o600, "only its owner reads the password");
    assert!(url.contains(password.trim()), "the URL carries it");
    assert!(with_it, "the password gets in");
    assert!(
        without.contains("password"),
        "refused without it: {without}"
    );
    assert!(wrong.contains("password"), "refused with another: {wrong}");
    assert_eq!(again.expect("starts again"), url);
    stopped.expect("stops");
}

#[test]
fn a_cluster_an_older_version_set_up_with_trust_gets_a_password() {
    let folder = Folder::new("trust");
    let local = LocalPostgres {
        dir: folder.0.clone(),
        port: free_port(),
        database: "maveraa_local_test".into(),
        ephemeral: true,
    };
    local.ensure_running().expect("starts");
    local.stop().expect("stops");
    // What an older version left: every rule `trust`, no password file.
    let hba = folder.0.join("data/pg_hba.conf");
    let text = std::fs::read_to_string(&hba).expect("pg_hba.conf");
    std::fs::write(&hba, text.replace("scram-sha-256", "trust")).expect("write");
    std::fs::remove_file(folder.0.join("password")).expect("remove the password");

    let url = local
        .ensure_running()
        .expect("starts and switches to a password");
    let with_it = connects(&url);
    let without = refused(&without_password(&url));
    let stopped = local.stop();
    assert!(with_it, "the new password gets in");
    assert!(
        without.contains("password"),
        "refused without it: {without}"
    );
    let text = std::fs::read_to_string(&hba).expect("pg_hba.conf");
    assert!(
        !text
            .lines()
            .filter(|l| !l.trim_start().starts_with('#'))
            .any(|l| l.contains("trust")),
        "no rule trusts any more:\n{text}"
    );
    stopped.expect("stops");
}
