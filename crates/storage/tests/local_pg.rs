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
    assert!(url.ends_with("/maveraa_local_test"), "{url}");
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
