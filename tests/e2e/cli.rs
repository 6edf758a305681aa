//! The `maveraa` binary's admin commands and first start, as a user runs them.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use maveraa_storage::testing::TestDatabase;
use reqwest::Method;
use serde_json::Value;

use crate::helpers::{error_of, spawn_app};

fn maveraa(db_url: &str, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_maveraa"))
        .args(args)
        .env("MAVERAA__DATABASE__URL", db_url)
        .env("RUST_LOG", "warn")
        .output()
        .expect("run maveraa");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

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
fn migrate_applies_nothing_on_a_migrated_database() {
    let db = TestDatabase::create();
    let (ok, out, err) = maveraa(db.url(), &["migrate"]);
    assert!(ok, "{err}");
    assert_eq!(one_json_line(&out)["applied"], serde_json::json!([]));
}

#[test]
fn first_start_creates_a_default_workspace_and_prints_a_working_key() {
    let db = TestDatabase::create();
    let mut child = Command::new(env!("CARGO_BIN_EXE_maveraa"))
        .arg("serve")
        .env("MAVERAA__DATABASE__URL", db.url())
        .env("MAVERAA__SERVER__PORT", "0")
        .env("MAVERAA__SERVER__WORKERS", "1")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = BufReader::new(stdout).lines();
    let deadline = Instant::now() + Duration::from_secs(60);
    let (mut key, mut url) = (None, None);
    while key.is_none() || url.is_none() {
        assert!(Instant::now() < deadline, "no key printed in time");
        let Some(Ok(line)) = lines.next() else { break };
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
    let status = http_get::blocking_get(&url, &key);
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(status, 200, "the printed key and URL work");

    // A second start finds the workspace and prints no new key.
    let (ok, out, _) = maveraa(db.url(), &["workspace", "list"]);
    assert!(ok);
    assert_eq!(out.lines().count(), 1);
    assert!(out.contains("\"Default\""));
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
