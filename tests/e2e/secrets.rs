//! The secrets key as an operator meets it through the binary: refused
//! without one on a database of their own, a key generated, credentials
//! rotated to a new key so the old one is no longer needed, and a start
//! with the wrong key refused with a clear reason.

use std::process::Command;

use maveraa_storage::SecretKey;
use maveraa_storage::testing::{TEST_SECRETS_KEY, TestDatabase};
use serde_json::Value;

/// Runs `maveraa` on `db_url` with exactly the secrets variables given.
fn maveraa(db_url: &str, secrets: &[(&str, &str)], args: &[&str]) -> (bool, String, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_maveraa"));
    cmd.args(args)
        .env("MAVERAA__DATABASE__URL", db_url)
        .env("MAVERAA__METRICS__ADDRESS", "")
        .env_remove("MAVERAA__SECRETS__KEY")
        .env_remove("MAVERAA__SECRETS__KEY_FILE")
        .env_remove("MAVERAA__SECRETS__PREVIOUS_KEYS")
        .env("RUST_LOG", "warn");
    for (name, value) in secrets {
        cmd.env(name, value);
    }
    let out = cmd.output().expect("run maveraa");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn json_line(stdout: &str) -> Value {
    serde_json::from_str(stdout.trim()).expect("one JSON line")
}

const OLD: (&str, &str) = ("MAVERAA__SECRETS__KEY", TEST_SECRETS_KEY);

#[test]
fn a_database_of_your_own_without_a_key_is_refused_with_what_to_do() {
    let db = TestDatabase::create();
    for args in [&["migrate"][..], &["workspace", "list"], &[]] {
        let (ok, _, err) = maveraa(db.url(), &[], args);
        assert!(
            !ok && err.contains("no secrets key") && err.contains("MAVERAA__SECRETS__KEY"),
            "{args:?}: {err}"
        );
    }
}

#[test]
fn generated_keys_are_new_32_byte_keys() {
    let (ok, out, err) = maveraa("", &[], &["secrets", "generate-key"]);
    assert!(ok, "{err}");
    let first = json_line(&out);
    let key = SecretKey::parse(first["key"].as_str().expect("key")).expect("a valid key");
    assert_eq!(first["keyId"], key.id());
    let (_, again, _) = maveraa("", &[], &["secrets", "generate-key"]);
    assert_ne!(json_line(&again)["key"], first["key"]);
}

#[test]
fn rotation_moves_credentials_to_the_new_key_and_the_old_one_is_no_longer_needed() {
    let db = TestDatabase::create();
    let url = db.url();
    let (ok, out, err) = maveraa(url, &[OLD], &["workspace", "create", "--name", "Shop"]);
    assert!(ok, "{err}");
    let ws = json_line(&out)["id"].as_str().expect("id").to_owned();
    let (ok, _, err) = maveraa(
        url,
        &[OLD],
        &[
            "session",
            "create",
            "--workspace",
            &ws,
            "--id",
            "sales",
            "--provider",
            "cloud-api",
            "--phone-number-id",
            "1234567890",
            "--access-token",
            "EAAsecret-token",
            "--app-secret",
            "app-secret-xyz",
            "--verify-token",
            "verify-xyz",
        ],
    );
    assert!(ok, "{err}");
    let hook = webhook_sealed_under_the_old_key(url, &ws);

    let (_, new_key, _) = maveraa("", &[], &["secrets", "generate-key"]);
    let new_key = json_line(&new_key)["key"].as_str().expect("key").to_owned();
    let new = ("MAVERAA__SECRETS__KEY", new_key.as_str());

    // The new key alone cannot open what the old one sealed: a server
    // refuses to start, naming why.
    let (ok, _, err) = maveraa(url, &[new], &["migrate"]);
    assert!(
        !ok && err.contains("cannot open") && err.contains("secrets.previous_keys"),
        "{err}"
    );

    let previous = ("MAVERAA__SECRETS__PREVIOUS_KEYS", TEST_SECRETS_KEY);
    let (ok, out, err) = maveraa(url, &[new, previous], &["secrets", "rotate"]);
    assert!(ok, "{err}");
    let report = json_line(&out);
    // The session's credentials and the webhook endpoint's secret.
    assert_eq!(report["resealed"], 2, "{report}");
    assert_eq!(report["unreadable"], 0, "{report}");
    assert_eq!(
        report["keyId"],
        SecretKey::parse(&new_key).expect("key").id()
    );

    // Now the new key alone opens everything.
    let (ok, out, err) = maveraa(url, &[new], &["migrate"]);
    assert!(ok, "{err}");
    assert_eq!(json_line(&out)["sealedSessions"], 0);
    let (ok, out, err) = maveraa(url, &[new], &["session", "list", "--workspace", &ws]);
    assert!(ok && out.contains("\"sales\""), "{out} {err}");
    // (`migrate` above opened every sealed value, the webhook's secret too.)
    let _ = hook;
    // And the old key alone no longer does.
    let (ok, _, err) = maveraa(url, &[OLD], &["migrate"]);
    assert!(!ok && err.contains("cannot open"), "{err}");
}

#[test]
fn the_local_default_keeps_its_key_and_password_in_private_files() {
    use std::os::unix::fs::PermissionsExt;
    let dir = std::env::temp_dir().join(format!("maveraa-local-default-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("folder");
    let port = crate::helpers::free_port().to_string();
    let pg = dir.join("pg");
    let run = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_maveraa"))
            .args(args)
            .current_dir(&dir)
            .env("MAVERAA__DATABASE__URL", "")
            .env("MAVERAA__METRICS__ADDRESS", "")
            .env("MAVERAA__DATABASE__LOCAL__DIR", &pg)
            .env("MAVERAA__DATABASE__LOCAL__PORT", &port)
            .env_remove("MAVERAA__SECRETS__KEY")
            .env_remove("MAVERAA__SECRETS__KEY_FILE")
            .env("RUST_LOG", "warn")
            .output()
            .expect("run maveraa");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let first = run(&["workspace", "list"]);
    let key = std::fs::read_to_string(pg.join("secrets.key"));
    let key_mode = std::fs::metadata(pg.join("secrets.key")).map(|m| m.permissions().mode());
    let password_mode = std::fs::metadata(pg.join("password")).map(|m| m.permissions().mode());
    let second = run(&["workspace", "list"]);
    let key_again = std::fs::read_to_string(pg.join("secrets.key"));
    let stopped = run(&["local-db", "stop"]);
    let _ = std::fs::remove_dir_all(&dir);

    assert!(first.0, "{}", first.1);
    assert!(
        first.1.contains("back it up") && !first.1.contains(key.as_deref().unwrap_or("-").trim()),
        "the first start says where the key is and to back it up, without showing it: {}",
        first.1
    );
    let key = key.expect("a key file in the data folder");
    SecretKey::parse(&key).expect("it holds a key");
    assert_eq!(key_mode.expect("key file") & 0o777, 0o600);
    assert_eq!(password_mode.expect("password file") & 0o777, 0o600);
    assert!(second.0, "{}", second.1);
    assert_eq!(
        key_again.expect("still there"),
        key,
        "the same key next time"
    );
    assert!(stopped.0, "{}", stopped.1);
}

/// A webhook endpoint of `ws` made through the store with the old key:
/// its id and secret.
fn webhook_sealed_under_the_old_key(url: &str, ws: &str) -> (String, String) {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let store = store(url, TEST_SECRETS_KEY);
    let ws: maveraa_domain::WorkspaceId = ws.parse().expect("workspace id");
    let service = maveraa_domain::usecases::WebhookService::new(
        std::sync::Arc::new(store),
        std::sync::Arc::new(maveraa_domain::SystemClock),
        false,
    );
    let (endpoint, secret) = rt
        .block_on(service.create(
            ws,
            maveraa_domain::NewWebhook {
                url: "https://example.com/hooks".into(),
                events: vec!["*".into()],
                description: None,
                enabled: None,
            },
        ))
        .expect("endpoint");
    (endpoint.id.to_string(), secret.expose().to_owned())
}

fn store(url: &str, key: &str) -> maveraa_storage::PgStore {
    let db = maveraa_storage::Database::connect(
        url,
        &maveraa_storage::PoolSettings {
            min_idle: 0,
            ..Default::default()
        },
    )
    .expect("pool");
    maveraa_storage::PgStore::new(db).with_secrets(maveraa_storage::SecretCipher::new(
        SecretKey::parse(key).expect("key"),
        [],
    ))
}
