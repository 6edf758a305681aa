//! A project-local PostgreSQL for development and tests: initialised in a
//! folder of the project on first use, started on its own port, reused
//! afterwards. PostgreSQL refuses to run as root, so when this process is
//! root the server runs as the `postgres` system user.
//!
//! It listens on 127.0.0.1 only, and every connection needs the password
//! generated at set-up (scram-sha-256), kept in `password` beside the
//! cluster with mode 0600: another user of the machine cannot connect.
//! A cluster an older version set up letting every local connection in
//! (`trust`) is given a password and switched over at its next start.

use std::fs::{self, File};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use diesel::sql_types::{Bool, Text};
use diesel::{QueryableByName, RunQueryDsl};

use crate::error::StorageError;
use crate::private_file::create_private;

/// Where and how to run the local server.
#[derive(Debug, Clone)]
pub struct LocalPostgres {
    /// Folder that holds the cluster (`data/`) and its log.
    pub dir: PathBuf,
    /// TCP port on 127.0.0.1.
    pub port: u16,
    /// Database to create and return the URL of.
    pub database: String,
    /// Trade durability for speed (fsync off): for throwaway test clusters.
    pub ephemeral: bool,
}

#[derive(QueryableByName)]
struct Exists {
    #[diesel(sql_type = Bool)]
    exists: bool,
}

fn err(msg: impl Into<String>) -> StorageError {
    StorageError::LocalPostgres(msg.into())
}

fn is_root() -> bool {
    fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

/// The folder with `initdb` and `pg_ctl`: `MAVERAA_PG_BIN_DIR`, else the
/// newest `/usr/lib/postgresql/*/bin`, else `pg_config --bindir`.
fn bin_dir() -> Result<PathBuf, StorageError> {
    if let Some(dir) = std::env::var_os("MAVERAA_PG_BIN_DIR") {
        return Ok(PathBuf::from(dir));
    }
    let mut versions: Vec<(u32, PathBuf)> = fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let version = e.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").exists().then_some((version, bin))
        })
        .collect();
    versions.sort();
    if let Some((_, bin)) = versions.pop() {
        return Ok(bin);
    }
    let out = Command::new("pg_config").arg("--bindir").output();
    match out {
        Ok(o) if o.status.success() => Ok(PathBuf::from(String::from_utf8_lossy(&o.stdout).trim())),
        _ => Err(err(
            "PostgreSQL server binaries (initdb, pg_ctl) not found: install PostgreSQL \
             (Debian: apt-get install postgresql), set MAVERAA_PG_BIN_DIR, or point \
             MAVERAA__DATABASE__URL / TEST_DATABASE_URL at a running server",
        )),
    }
}

/// Runs a PostgreSQL tool, as the `postgres` user when we are root.
fn pg_command(bin: &Path, tool: &str, args: &[&str]) -> Result<Output, StorageError> {
    let program = bin.join(tool);
    let mut cmd = if is_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(&program);
        c
    } else {
        Command::new(&program)
    };
    cmd.args(args)
        .output()
        .map_err(|e| err(format!("cannot run {}: {e}", program.display())))
}

fn ids_of_postgres_user() -> Result<(u32, u32), StorageError> {
    let id = |flag: &str| -> Result<u32, StorageError> {
        let out = Command::new("id")
            .args([flag, "postgres"])
            .output()
            .map_err(|e| err(format!("cannot run id: {e}")))?;
        String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .map_err(|_| err("running as root needs a `postgres` system user to run PostgreSQL"))
    };
    Ok((id("-u")?, id("-g")?))
}

/// Whether the `postgres` user can write in `dir` (every parent must be
/// traversable by it too).
fn postgres_can_use(dir: &Path) -> bool {
    Command::new("runuser")
        .args(["-u", "postgres", "--", "test", "-w"])
        .arg(dir)
        .status()
        .is_ok_and(|s| s.success())
}

impl LocalPostgres {
    /// Makes sure the server runs and the database exists, and returns the
    /// database's URL. Safe to call from several processes at once (a file
    /// lock serialises them).
    ///
    /// # Errors
    /// [`StorageError::LocalPostgres`] with the reason (binaries missing,
    /// port taken, permissions) and the server log's tail when start fails.
    pub fn ensure_running(&self) -> Result<String, StorageError> {
        let bin = bin_dir()?;
        let dir = self.usable_dir()?;
        fs::create_dir_all(&dir)
            .map_err(|e| err(format!("cannot create {}: {e}", dir.display())))?;
        let lock_path = dir.join("bootstrap.lock");
        let lock = File::create(&lock_path)
            .map_err(|e| err(format!("cannot create {}: {e}", lock_path.display())))?;
        lock.lock()
            .map_err(|e| err(format!("cannot lock {}: {e}", lock_path.display())))?;

        let data = dir.join("data");
        let data_str = data.to_string_lossy().into_owned();
        let password_file = dir.join(PASSWORD_FILE);
        let exists = data.join("PG_VERSION").exists();
        let trusting = exists && trusts_connections(&data)?;
        if exists && !trusting && !password_file.exists() {
            return Err(err(format!(
                "the local PostgreSQL in {} needs the password that was in {}, which is \
                 missing: restore it from your backup (or, to start afresh, stop the server \
                 and remove the folder, losing its data)",
                dir.display(),
                password_file.display()
            )));
        }
        let password = load_or_create_password(&password_file)?;
        if !exists {
            // Made and set up beside, then renamed into place: a process
            // killed half way leaves no cluster without our settings (the
            // next start would have used it as it was).
            let fresh = dir.join("data.initdb");
            if fresh.exists() {
                fs::remove_dir_all(&fresh).map_err(|e| {
                    err(format!(
                        "cannot remove the unfinished {}: {e}",
                        fresh.display()
                    ))
                })?;
            }
            let out = pg_command(
                &bin,
                "initdb",
                &[
                    "-D",
                    &fresh.to_string_lossy(),
                    "-U",
                    "postgres",
                    "--auth-local=scram-sha-256",
                    "--auth-host=scram-sha-256",
                    &format!("--pwfile={}", password_file.display()),
                    "-E",
                    "UTF8",
                    // Not the environment's (often plain C in containers
                    // and services), where lower() and ILIKE fold ASCII
                    // only: searches and label filters are case-insensitive
                    // for every script.
                    "--locale=C.UTF-8",
                    "--no-sync",
                ],
            )?;
            if !out.status.success() {
                return Err(err(format!(
                    "initdb failed: {}",
                    String::from_utf8_lossy(&out.stderr).trim()
                )));
            }
            self.write_settings(&fresh)?;
            fs::rename(&fresh, &data).map_err(|e| {
                err(format!(
                    "cannot move {} to {}: {e}",
                    fresh.display(),
                    data.display()
                ))
            })?;
        }

        let mut running = pg_command(&bin, "pg_ctl", &["status", "-D", &data_str])?
            .status
            .success();
        if let Some(other) = running_port(&data).filter(|p| running && *p != self.port) {
            if !self.ephemeral {
                // Someone's server may be using it there (a command run
                // without the server's settings would otherwise pull its
                // database from under it).
                return Err(err(format!(
                    "the local PostgreSQL in {} runs on port {other}, not on \
                     database.local.port {}: use that port, or stop it first \
                     (maveraa local-db stop with its port)",
                    dir.display(),
                    self.port
                )));
            }
            // A throwaway test cluster whose port changed (its port comes
            // from the checkout's path): restart it where callers connect.
            self.stop()?;
            running = false;
        }
        if !running {
            let log = dir.join("postgres.log").to_string_lossy().into_owned();
            let port = format!("-p {}", self.port);
            let out = pg_command(
                &bin,
                "pg_ctl",
                &[
                    "start", "-D", &data_str, "-l", &log, "-w", "-t", "60", "-o", &port,
                ],
            )?;
            if !out.status.success() {
                // The log's last lines, in their order.
                let tail = fs::read_to_string(&log)
                    .map(|l| {
                        let lines: Vec<&str> = l.lines().collect();
                        lines[lines.len().saturating_sub(8)..].join("\n")
                    })
                    .unwrap_or_default();
                return Err(err(format!(
                    "pg_ctl start failed on port {}: {}\n{tail}",
                    self.port,
                    String::from_utf8_lossy(&out.stderr).trim()
                )));
            }
        }

        if trusting {
            self.require_password(&data, &password)?;
        }
        let admin_url = self.url(&password, "postgres");
        let mut conn = crate::pool::establish(&admin_url)?;
        let exists = diesel::sql_query(
            "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1) AS exists",
        )
        .bind::<Text, _>(&self.database)
        .get_result::<Exists>(&mut conn)?
        .exists;
        if !exists {
            diesel::sql_query(format!(
                "CREATE DATABASE \"{}\"",
                self.database.replace('"', "")
            ))
            .execute(&mut conn)?;
        }
        drop(lock);
        Ok(self.url(&password, &self.database))
    }

    /// The URL of `database` on this server, with its password.
    fn url(&self, password: &str, database: &str) -> String {
        // The password is hex: nothing in it needs escaping in a URL. The
        // cluster is on loopback without TLS: asking for it (libpq's
        // default `prefer`) only brings OpenSSL into every connection, and
        // a process that exits while a connection is being made can crash
        // in OpenSSL's exit handlers, as it did in Kerberos' (see
        // `pool::connection_url`).
        format!(
            "postgres://postgres:{password}@127.0.0.1:{}/{database}?sslmode=disable",
            self.port
        )
    }

    /// Gives the running cluster on `data`, set up by an older version to
    /// let every local connection in, the password and switches every
    /// `trust` rule to scram-sha-256. Each step can run again, so a start
    /// stopped half way finishes it at the next.
    fn require_password(&self, data: &Path, password: &str) -> Result<(), StorageError> {
        tracing::warn!(
            dir = %self.dir.display(),
            "the local PostgreSQL let every local user in without a password (an older \
             version's set-up): giving it the password kept beside it and requiring it"
        );
        // Still trusted now: any password (or none) gets in.
        let mut conn = crate::pool::establish(&self.url(password, "postgres"))?;
        diesel::sql_query("SET password_encryption = 'scram-sha-256'").execute(&mut conn)?;
        diesel::sql_query(format!("ALTER ROLE postgres PASSWORD '{password}'"))
            .execute(&mut conn)?;
        let hba = data.join("pg_hba.conf");
        let text = fs::read_to_string(&hba)
            .map_err(|e| err(format!("cannot read {}: {e}", hba.display())))?;
        let rewritten: String = text
            .lines()
            .map(|line| {
                if is_rule(line) {
                    line.split_whitespace()
                        .map(|t| if t == "trust" { "scram-sha-256" } else { t })
                        .collect::<Vec<_>>()
                        .join(" ")
                } else {
                    line.to_owned()
                }
            })
            .map(|line| line + "\n")
            .collect();
        // Beside it, then renamed over it: a stop half way leaves the old
        // file or the new one, never half of one.
        let tmp = data.join("pg_hba.conf.maveraa");
        fs::write(&tmp, rewritten)
            .map_err(|e| err(format!("cannot write {}: {e}", tmp.display())))?;
        if is_root() {
            let (uid, gid) = ids_of_postgres_user()?;
            std::os::unix::fs::chown(&tmp, Some(uid), Some(gid))
                .map_err(|e| err(format!("cannot chown {}: {e}", tmp.display())))?;
        }
        fs::rename(&tmp, &hba)
            .map_err(|e| err(format!("cannot replace {}: {e}", hba.display())))?;
        diesel::sql_query("SELECT pg_reload_conf()").execute(&mut conn)?;
        Ok(())
    }

    /// Stops the server if it runs (a `postmaster.pid` left by a server
    /// that was killed is not one).
    ///
    /// # Errors
    /// [`StorageError::LocalPostgres`] when `pg_ctl stop` fails.
    pub fn stop(&self) -> Result<(), StorageError> {
        let bin = bin_dir()?;
        let data = self.usable_dir()?.join("data");
        if !data.join("postmaster.pid").exists() {
            return Ok(());
        }
        let data_str = data.to_string_lossy().into_owned();
        // Exit code 3: no server running.
        if pg_command(&bin, "pg_ctl", &["status", "-D", &data_str])?
            .status
            .code()
            == Some(3)
        {
            return Ok(());
        }
        let out = pg_command(
            &bin,
            "pg_ctl",
            &["stop", "-D", &data_str, "-m", "fast", "-w"],
        )?;
        if out.status.success() {
            Ok(())
        } else {
            Err(err(format!(
                "pg_ctl stop failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            )))
        }
    }

    /// The folder to use: `self.dir`, or when we are root and the
    /// `postgres` user cannot reach it (a checkout under /root, say), a
    /// folder under the system's temporary directory named after it.
    fn usable_dir(&self) -> Result<PathBuf, StorageError> {
        let abs = std::path::absolute(&self.dir)
            .map_err(|e| err(format!("bad path {}: {e}", self.dir.display())))?;
        if !is_root() {
            return Ok(abs);
        }
        let (uid, gid) = ids_of_postgres_user()?;
        let prepare = |dir: &Path| -> Result<bool, StorageError> {
            fs::create_dir_all(dir)
                .map_err(|e| err(format!("cannot create {}: {e}", dir.display())))?;
            std::os::unix::fs::chown(dir, Some(uid), Some(gid))
                .map_err(|e| err(format!("cannot chown {}: {e}", dir.display())))?;
            Ok(postgres_can_use(dir))
        };
        if prepare(&abs)? {
            return Ok(abs);
        }
        let mut name = String::from("maveraa-pg-");
        name.extend(
            abs.to_string_lossy()
                .chars()
                .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' }),
        );
        let fallback = std::env::temp_dir().join(name);
        if prepare(&fallback)? {
            Ok(fallback)
        } else {
            Err(err(format!(
                "the postgres user can write neither {} nor {}",
                abs.display(),
                fallback.display()
            )))
        }
    }

    fn write_settings(&self, data: &Path) -> Result<(), StorageError> {
        let mut settings = String::from(
            "\n# maveraa local server\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = ''\nmax_connections = 300\nshared_buffers = 128MB\n",
        );
        if self.ephemeral {
            settings.push_str("fsync = off\nsynchronous_commit = off\nfull_page_writes = off\n");
        }
        let conf = data.join("postgresql.conf");
        let mut text = fs::read_to_string(&conf)
            .map_err(|e| err(format!("cannot read {}: {e}", conf.display())))?;
        text.push_str(&settings);
        // The file belongs to postgres; rewriting it keeps its owner.
        fs::write(&conf, text).map_err(|e| err(format!("cannot write {}: {e}", conf.display())))
    }
}

/// The file beside the cluster holding its password.
const PASSWORD_FILE: &str = "password";

/// Whether `line` of `pg_hba.conf` is a rule (not blank, not a comment).
fn is_rule(line: &str) -> bool {
    let line = line.trim_start();
    !line.is_empty() && !line.starts_with('#')
}

/// Whether the cluster on `data` lets some connection in without a
/// password.
fn trusts_connections(data: &Path) -> Result<bool, StorageError> {
    let hba = data.join("pg_hba.conf");
    let text =
        fs::read_to_string(&hba).map_err(|e| err(format!("cannot read {}: {e}", hba.display())))?;
    Ok(text
        .lines()
        .filter(|l| is_rule(l))
        .any(|l| l.split_whitespace().any(|t| t == "trust")))
}

/// The password in `path`, or a new one (24 random bytes in hex) written
/// there with mode 0600. When root, the file belongs to the `postgres`
/// user, who runs `initdb --pwfile` (root reads it anyway). Written beside
/// it and hard-linked into place, so it appears whole and only once.
fn load_or_create_password(path: &Path) -> Result<String, StorageError> {
    let read = |path: &Path| -> Result<String, StorageError> {
        let text = fs::read_to_string(path)
            .map_err(|e| err(format!("cannot read {}: {e}", path.display())))?;
        let password = text.trim().to_owned();
        if password.is_empty() {
            return Err(err(format!("{} is empty", path.display())));
        }
        Ok(password)
    };
    if path.exists() {
        return read(path);
    }
    let mut bytes = [0u8; 24];
    getrandom::fill(&mut bytes).map_err(|e| err(format!("no randomness available: {e}")))?;
    let password = hex::encode(bytes);
    let owner = if is_root() {
        Some(ids_of_postgres_user()?)
    } else {
        None
    };
    match create_private(path, &password, owner) {
        Ok(true) => Ok(password),
        // Another process created it first: use theirs.
        Ok(false) => read(path),
        Err(e) => Err(err(format!("cannot create {}: {e}", path.display()))),
    }
}

/// The port of the server running on `data`, from its `postmaster.pid`
/// (the fourth line).
fn running_port(data: &Path) -> Option<u16> {
    fs::read_to_string(data.join("postmaster.pid"))
        .ok()?
        .lines()
        .nth(3)?
        .trim()
        .parse()
        .ok()
}
