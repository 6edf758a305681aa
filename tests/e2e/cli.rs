//! The `maveraa` binary's admin commands and first start, as a user runs them.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use maveraa_storage::testing::{TEST_SECRETS_KEY, TestDatabase};
use reqwest::Method;
use serde_json::Value;

use crate::helpers::{
    Spawned, error_of, free_port, maveraa, server_command, spawn_app, wait_ready,
};

fn one_json_line(stdout: &str) -> Value {
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 1, "one line: {stdout}");
    serde_json::from_str(lines[0]).expect("JSON")
}

#[tokio::test]
async fn workspace_and_key_commands_manage_access() {
    let app = spawn_app().await;
    let url = app.db_url.clone();

    let (ok, out, err) = maveraa(&url, &["workspace", "create", "--name", "Shop"]);
    assert!(ok, "{err}");
    let ws = one_json_line(&out);
    assert_eq!(ws["name"], "Shop");
    let ws_id = ws["id"].as_str().expect("id").to_owned();

    let (ok, out, err) = maveraa(
        &url,
        &[
            "api-key",
            "create",
            "--workspace",
            &ws_id,
            "--name",
            "zapier",
        ],
    );
    assert!(ok, "{err}");
    let created = one_json_line(&out);
    let key = created["key"].as_str().expect("key").to_owned();
    let key_id = created["id"].as_str().expect("id").to_owned();
    assert!(key.starts_with("mvr_live_") && key.len() >= 9 + 32, "{key}");

    // The key works against the running server, in its own workspace.
    let res = app
        .request_as(&key, Method::GET, "/api/public/contacts")
        .send()
        .await
        .expect("r");
    assert_eq!(res.status(), 200);

    // Listing shows the record, never the key.
    let (ok, out, _) = maveraa(&url, &["api-key", "list", "--workspace", &ws_id]);
    assert!(ok);
    let listed = one_json_line(&out);
    assert_eq!(listed["id"], key_id.as_str());
    assert_eq!(listed["name"], "zapier");
    assert!(listed["revokedAt"].is_null());
    // Used once above: recorded by the server now and then (here, at once).
    assert!(
        app.services.api_keys.record_uses().await.expect("record") >= 1,
        "the key's use was seen"
    );
    let (_, out, _) = maveraa(&url, &["api-key", "list", "--workspace", &ws_id]);
    let listed = one_json_line(&out);
    let last_used = listed["lastUsedAt"].as_str().expect("lastUsedAt");
    assert!(
        chrono::DateTime::parse_from_rfc3339(last_used).is_ok(),
        "{last_used}"
    );
    // Timestamps as the API writes them: RFC 3339 in UTC with a `Z`.
    let created_at = listed["createdAt"].as_str().expect("createdAt");
    assert!(
        created_at.ends_with('Z') && chrono::DateTime::parse_from_rfc3339(created_at).is_ok(),
        "{created_at}"
    );
    assert!(!out.contains(&key[9..]), "the key must not be listed");

    let (ok, out, err) = maveraa(&url, &["api-key", "revoke", &key_id]);
    assert!(ok, "{err}");
    let revoked_at = one_json_line(&out)["revokedAt"].as_str().map(str::to_owned);
    assert!(
        revoked_at.is_some_and(|t| t.ends_with('Z')),
        "revokedAt in UTC with Z"
    );
    let res = app
        .request_as(&key, Method::GET, "/api/public/contacts")
        .send()
        .await
        .expect("r");
    error_of(res, 401).await;

    // Mistakes fail with a message and a non-zero exit.
    let (ok, _, err) = maveraa(
        &url,
        &[
            "api-key",
            "create",
            "--workspace",
            "01a2136a-879a-7673-9ca2-fdf8c8293b20",
        ],
    );
    assert!(!ok && err.contains("no workspace"), "{err}");
    let (ok, _, err) = maveraa(&url, &["api-key", "create", "--workspace", "nope"]);
    assert!(!ok && err.contains("not a workspace id"), "{err}");
    let (ok, _, err) = maveraa(
        &url,
        &["api-key", "revoke", "01a2136a-879a-7673-9ca2-fdf8c8293b20"],
    );
    assert!(!ok && err.contains("no API key"), "{err}");
    let (ok, _, _) = maveraa(&url, &["workspace", "create", "--name", "  "]);
    assert!(!ok);
}

#[test]
fn session_commands_create_list_and_delete_without_showing_secrets() {
    let db = TestDatabase::create();
    let url = db.url();
    let (ok, out, err) = maveraa(url, &["workspace", "create", "--name", "Acme"]);
    assert!(ok, "{err}");
    let ws = one_json_line(&out)["id"].as_str().expect("id").to_owned();

    let (ok, out, err) = maveraa(
        url,
        &[
            "session",
            "create",
            "--workspace",
            &ws,
            "--id",
            "session-123",
            "--provider",
            "simulator",
        ],
    );
    assert!(ok, "{err}");
    let sim = one_json_line(&out);
    assert_eq!(sim["sessionId"], "session-123");
    assert_eq!(sim["provider"], "simulator");
    assert_eq!(sim["status"], "connected");
    assert_eq!(sim["workspaceId"], ws.as_str());
    assert!(
        sim["webhookUrl"].is_null(),
        "the simulator takes no webhooks"
    );

    let cloud_args = |id: &'static str, with_secret: bool| {
        let mut args = vec![
            "session",
            "create",
            "--workspace",
            &ws,
            "--id",
            id,
            "--provider",
            "cloud-api",
            "--phone-number-id",
            "1234567890",
            "--access-token",
            "EAAsecret-token",
            "--verify-token",
            "verify-xyz",
        ];
        if with_secret {
            args.extend(["--app-secret", "app-secret-xyz"]);
        }
        args
    };
    let (ok, _, err) = maveraa(url, &cloud_args("sales", false));
    assert!(!ok && err.contains("--app-secret"), "{err}");
    let (ok, out, err) = maveraa(url, &cloud_args("sales", true));
    assert!(ok, "{err}");
    let cloud = one_json_line(&out);
    assert_eq!(cloud["provider"], "cloud-api");
    assert_eq!(
        cloud["webhookUrl"],
        format!("/webhooks/whatsapp/{}", cloud["id"].as_str().expect("id"))
    );
    let (ok, _, err) = maveraa(url, &cloud_args("sales", true));
    assert!(
        !ok && err.contains("sales"),
        "an id is unique in its workspace: {err}"
    );

    let (ok, listed, err) = maveraa(url, &["session", "list", "--workspace", &ws]);
    assert!(ok, "{err}");
    assert_eq!(listed.lines().count(), 2);
    for text in [&out, &listed] {
        for secret in ["EAAsecret-token", "app-secret-xyz", "verify-xyz"] {
            assert!(!text.contains(secret), "{secret} printed: {text}");
        }
    }

    for (command, status) in [("stop", "stopped"), ("start", "connected")] {
        let (ok, out, err) = maveraa(
            url,
            &["session", command, "--workspace", &ws, "--id", "sales"],
        );
        assert!(ok, "{err}");
        assert_eq!(one_json_line(&out)["status"], status, "{command}");
    }
    let (ok, _, err) = maveraa(
        url,
        &["session", "stop", "--workspace", &ws, "--id", "nope"],
    );
    assert!(!ok && err.contains("no session"), "{err}");

    let (ok, out, err) = maveraa(
        url,
        &["session", "delete", "--workspace", &ws, "--id", "sales"],
    );
    assert!(ok, "{err}");
    assert_eq!(one_json_line(&out), serde_json::json!({"deleted": "sales"}));
    let (_, listed, _) = maveraa(url, &["session", "list", "--workspace", &ws]);
    assert_eq!(listed.lines().count(), 1);
    let (ok, _, _) = maveraa(
        url,
        &["session", "delete", "--workspace", &ws, "--id", "sales"],
    );
    assert!(!ok, "deleting it again fails");

    let unknown = uuid::Uuid::now_v7().to_string();
    let (ok, out, err) = maveraa(url, &["session", "list", "--workspace", &unknown]);
    assert!(
        !ok && out.is_empty() && err.contains("no workspace with id"),
        "an unknown workspace is a mistake, not one without sessions: {err}"
    );
}

#[test]
fn migrate_applies_nothing_on_a_migrated_database() {
    let db = TestDatabase::create();
    let (ok, out, err) = maveraa(db.url(), &["migrate"]);
    assert!(ok, "{err}");
    assert_eq!(one_json_line(&out)["applied"], serde_json::json!([]));
}

/// Starts `maveraa` with no subcommand, as `cargo run` in the README does
/// (`serve` is the default), with the first-start bootstrap on, its log at
/// `level` going to `log`.
fn start_logging(db_url: &str, port: u16, level: &str, log: Stdio) -> Spawned {
    Spawned(
        server_command(db_url, port)
            .env("RUST_LOG", level)
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .expect("spawn"),
    )
}

/// What the server prints from its start until it says it serves (after
/// the first-start bootstrap; then it is stopped).
fn printed_by_a_start(db_url: &str) -> String {
    printed_and_logged_by_a_start(db_url).0
}

/// What the server prints (stdout, a pipe) and logs (stderr, at `info`)
/// from its start until it says it serves; then it is stopped.
fn printed_and_logged_by_a_start(db_url: &str) -> (String, String) {
    let mut child = start_logging(db_url, free_port(), "info", Stdio::piped());
    // The port takes connections before the bootstrap is done: wait for
    // the log line that comes after it.
    let log = BufReader::new(child.stderr.take().expect("stderr"));
    let mut logged = String::new();
    let mut serving = false;
    for line in log.lines().map_while(Result::ok) {
        logged.push_str(&line);
        logged.push('\n');
        if line.contains("maveraa is serving") {
            serving = true;
            break;
        }
    }
    assert!(serving, "the server never said it serves: {logged}");
    let _ = child.kill();
    let _ = child.wait();
    let mut printed = String::new();
    std::io::Read::read_to_string(&mut child.stdout.take().expect("stdout"), &mut printed)
        .expect("read");
    (printed, logged)
}

/// Starts `maveraa` as [`start_logging`] does, with its stdout a terminal (a
/// pseudo-terminal made by util-linux `script`), as when a user runs it.
/// Killing `script` hangs the terminal up, which ends the server.
fn start_on_terminal(db_url: &str, port: u16) -> Spawned {
    Spawned(
        Command::new("script")
            .args(["-qefc", env!("CARGO_BIN_EXE_maveraa"), "/dev/null"])
            .env("MAVERAA__DATABASE__URL", db_url)
            .env("MAVERAA__SECRETS__KEY", TEST_SECRETS_KEY)
            .env("MAVERAA__SERVER__PORT", port.to_string())
            .env("MAVERAA__METRICS__ADDRESS", "")
            .env("MAVERAA__SERVER__WORKERS", "1")
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn script (util-linux) for a terminal"),
    )
}

/// Starts the server on a terminal, reads the key and URL a first start
/// prints, checks that they work, and stops it.
fn first_start_key(db_url: &str) -> String {
    let mut child = start_on_terminal(db_url, free_port());
    let stdout = child.stdout.take().expect("stdout");
    // Read on a thread: a server that prints no key keeps running, and a
    // blocking read would wait for it forever instead of failing.
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    let (mut key, mut url) = (None, None);
    while key.is_none() || url.is_none() {
        let left = deadline.saturating_duration_since(Instant::now());
        let Ok(line) = rx.recv_timeout(left) else {
            panic!("no key and URL printed within a minute")
        };
        let line = line.trim();
        if line.starts_with("mvr_live_") {
            key = Some(line.to_owned());
        }
        if let Some(pos) = line.find("http://") {
            url = Some(line[pos..].to_owned());
        }
    }
    let (key, url) = (
        key.expect("a key was printed"),
        url.expect("a URL was printed"),
    );
    assert_eq!(
        http_get::blocking_get(&url, &key),
        200,
        "the printed key and URL work"
    );
    key
}

#[test]
fn first_start_creates_a_default_workspace_and_prints_a_working_key() {
    let db = TestDatabase::create();
    first_start_key(db.url());
    let (ok, out, _) = maveraa(db.url(), &["workspace", "list"]);
    assert!(ok);
    assert_eq!(out.lines().count(), 1);
    assert!(out.contains("\"Default\""));

    // A second start finds the workspace and its key: it prints no key.
    let printed = printed_by_a_start(db.url());
    assert!(!printed.contains("mvr_live_"), "{printed}");
}

#[test]
fn a_first_start_without_a_terminal_prints_no_key_but_how_to_make_one() {
    let db = TestDatabase::create();
    // Output to a pipe, as in a container whose logs Docker keeps.
    let (printed, log) = printed_and_logged_by_a_start(db.url());
    for text in [&printed, &log] {
        assert!(!text.contains("mvr_live_"), "a key in the output: {text}");
    }
    let (ok, out, _) = maveraa(db.url(), &["workspace", "list"]);
    assert!(ok);
    let workspace = one_json_line(&out)["id"].as_str().expect("id").to_owned();
    let command = format!("maveraa api-key create --workspace {workspace}");
    assert!(printed.contains(&command), "no way to a key: {printed}");
    let (_, keys, _) = maveraa(db.url(), &["api-key", "list", "--workspace", &workspace]);
    assert!(keys.is_empty(), "a key nobody saw: {keys}");

    // The printed command gives a working key; the next start prints nothing.
    let (ok, out, err) = maveraa(db.url(), &["api-key", "create", "--workspace", &workspace]);
    assert!(ok, "{err}");
    assert!(
        one_json_line(&out)["key"]
            .as_str()
            .is_some_and(|k| k.starts_with("mvr_live_"))
    );
    let (printed, _) = printed_and_logged_by_a_start(db.url());
    assert!(!printed.contains("api-key create"), "{printed}");
}

#[test]
fn request_logs_name_the_route_and_never_a_number_or_message_text() {
    let db = TestDatabase::create();
    let (ok, out, err) = maveraa(db.url(), &["workspace", "create", "--name", "Acme"]);
    assert!(ok, "{err}");
    let workspace = one_json_line(&out)["id"].as_str().expect("id").to_owned();
    let (ok, out, err) = maveraa(db.url(), &["api-key", "create", "--workspace", &workspace]);
    assert!(ok, "{err}");
    let key = one_json_line(&out)["key"].as_str().expect("key").to_owned();
    let (ok, _, err) = maveraa(
        db.url(),
        &[
            "session",
            "create",
            "--workspace",
            &workspace,
            "--id",
            "sim",
            "--provider",
            "simulator",
        ],
    );
    assert!(ok, "{err}");

    let port = free_port();
    let mut child = start_logging(db.url(), port, "info", Stdio::piped());
    let stderr = child.stderr.take().expect("stderr");
    // Read on a thread, so the server never blocks on a full pipe.
    let reader = std::thread::spawn(move || {
        let mut log = String::new();
        std::io::Read::read_to_string(&mut BufReader::new(stderr), &mut log).map(|_| log)
    });
    wait_ready(port);
    const NUMBER: &str = "6281298765432";
    const TEXT: &str = "my-private-otp-4567";
    let base = format!("http://127.0.0.1:{port}");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("rt");
    rt.block_on(async {
        let client = reqwest::Client::new();
        let send = client
            .post(format!("{base}/api/public/inbox/send"))
            .header("X-API-Key", &key)
            .json(&serde_json::json!({"sessionId": "sim", "targetNumber": NUMBER, "message": TEXT}))
            .send()
            .await
            .expect("send");
        assert_eq!(send.status(), 202, "the send is accepted");
        let contact = client
            .post(format!("{base}/api/public/contacts"))
            .header("X-API-Key", &key)
            .json(&serde_json::json!({"name": "Jane", "phone": NUMBER}))
            .send()
            .await
            .expect("contact");
        assert_eq!(contact.status(), 201);
        // A query that carries the number.
        let search = client
            .get(format!("{base}/api/public/contacts?search={NUMBER}"))
            .header("X-API-Key", &key)
            .send()
            .await
            .expect("search");
        assert_eq!(search.status(), 200);
        let jid = format!("{NUMBER}@s.whatsapp.net");
        let messages = client
            .get(format!(
                "{base}/api/public/inbox/conversations/{jid}/messages?sessionId=sim"
            ))
            .header("X-API-Key", &key)
            .send()
            .await
            .expect("messages");
        assert_eq!(messages.status(), 200);
        // Failures too: an unknown path, a refused key, a bad body.
        for (path, key) in [
            (format!("/api/public/nothing/{NUMBER}"), key.as_str()),
            (
                format!("/api/public/inbox/conversations/{jid}/messages?number={NUMBER}"),
                key.as_str(),
            ),
            (
                format!("/api/public/inbox/conversations/{jid}/messages"),
                "mvr_live_wrong",
            ),
        ] {
            let res = client
                .get(format!("{base}{path}"))
                .header("X-API-Key", key)
                .send()
                .await
                .expect("request");
            assert!(res.status().is_client_error(), "{path}");
        }
        let bad = client
            .post(format!("{base}/api/public/inbox/send"))
            .header("X-API-Key", &key)
            .json(
                &serde_json::json!({"sessionId": "nope", "targetNumber": NUMBER, "message": TEXT}),
            )
            .send()
            .await
            .expect("bad send");
        assert!(bad.status().is_client_error());
    });
    child.stop_gracefully();
    let log = reader.join().expect("reader").expect("log read");
    assert!(
        log.contains("/api/public/inbox/conversations/{remoteJid}/messages"),
        "the route template is logged: {log}"
    );
    assert!(log.contains("/api/public/inbox/send"), "{log}");
    for secret in [NUMBER, TEXT, key.as_str()] {
        assert!(!log.contains(secret), "{secret} in the info log: {log}");
    }
}

#[test]
fn a_first_start_stopped_before_its_key_is_finished_by_the_next_start() {
    let db = TestDatabase::create();
    // What a first start leaves when it stops between the workspace and its
    // key: the workspace alone.
    let (ok, out, err) = maveraa(db.url(), &["workspace", "create", "--name", "Default"]);
    assert!(ok, "{err}");
    let workspace = one_json_line(&out)["id"].as_str().expect("id").to_owned();
    let key = first_start_key(db.url());
    let (ok, out, _) = maveraa(db.url(), &["api-key", "list", "--workspace", &workspace]);
    assert!(ok);
    assert_eq!(out.lines().count(), 1, "one key, for that workspace");
    assert!(key.starts_with(one_json_line(&out)["prefix"].as_str().expect("prefix")));

    // A workspace an operator made under another name is left alone: only
    // an interrupted first start is finished.
    let other = TestDatabase::create();
    let (ok, _, _) = maveraa(other.url(), &["workspace", "create", "--name", "Acme"]);
    assert!(ok);
    let printed = printed_by_a_start(other.url());
    assert!(!printed.contains("mvr_live_"), "{printed}");
}

mod http_get {
    /// A tiny blocking GET, so this test needs no async runtime.
    pub fn blocking_get(url: &str, key: &str) -> u16 {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("rt");
        rt.block_on(async {
            ::reqwest::Client::new()
                .get(url)
                .header("X-API-Key", key)
                .send()
                .await
                .expect("request")
                .status()
                .as_u16()
        })
    }
}

#[tokio::test]
async fn dev_provider_takes_sends_with_or_without_a_version_and_counts_them() {
    let port = free_port();
    let _provider = Spawned(
        Command::new(env!("CARGO_BIN_EXE_maveraa"))
            .args(["dev-provider", "--port", &port.to_string()])
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn dev-provider"),
    );
    wait_ready(port);
    let client = reqwest::Client::new();
    for base in [
        format!("http://127.0.0.1:{port}"),
        format!("http://127.0.0.1:{port}/v21.0"),
    ] {
        let res = client
            .post(format!("{base}/1234567890/messages"))
            .json(
                &serde_json::json!({"messaging_product": "whatsapp", "to": "6281234567890",
                                      "type": "text", "text": {"body": "hi"}}),
            )
            .send()
            .await
            .expect("send");
        assert_eq!(res.status(), 200, "{base}");
        let body: Value = res.json().await.expect("json");
        assert!(
            body["messages"][0]["id"]
                .as_str()
                .is_some_and(|id| id.starts_with("wamid.")),
            "{body}"
        );
    }
    let count: Value = client
        .get(format!("http://127.0.0.1:{port}/count"))
        .send()
        .await
        .expect("count")
        .json()
        .await
        .expect("json");
    assert_eq!(count["accepted"], 2);
}
