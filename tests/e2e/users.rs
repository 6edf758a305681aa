//! Dashboard users (issue 15, the first part): `maveraa user create`, the
//! password read from standard input and stored as an argon2id hash that
//! the sign-in check accepts, and only it.

use std::io::Write;
use std::process::{Command, Stdio};

use maveraa_domain::{Email, Password, Role, UserError};
use serde_json::Value;

use maveraa_storage::testing::TEST_SECRETS_KEY;

use crate::helpers::spawn_app;

/// `maveraa user create ARGS` with `stdin` as its standard input.
fn create(db_url: &str, args: &[&str], stdin: &str) -> (bool, String, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_maveraa"))
        .arg("user")
        .arg("create")
        .args(args)
        .env("MAVERAA__DATABASE__URL", db_url)
        .env("MAVERAA__METRICS__ADDRESS", "")
        .env("MAVERAA__SECRETS__KEY", TEST_SECRETS_KEY)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(stdin.as_bytes())
        .expect("write the password");
    let out = child.wait_with_output().expect("run");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test]
async fn a_user_made_on_the_command_line_signs_in_with_that_password_only() {
    let app = spawn_app().await;
    let ws = app.workspace.to_string();
    let password = "  correct horse battery staple  ";
    let (ok, out, err) = create(
        &app.db_url,
        &["--email", " Jane.Doe@Example.com ", "--workspace", &ws],
        &format!("{password}\n"),
    );
    assert!(ok, "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 1, "one JSON line: {out}");
    let printed: Value = serde_json::from_str(lines[0]).expect("json");
    assert_eq!(printed["email"], "jane.doe@example.com");
    let mut keys: Vec<&String> = printed.as_object().expect("object").keys().collect();
    keys.sort();
    assert_eq!(keys, ["email", "id"]);

    // Stored as an argon2id hash with OWASP's parameters, never as typed.
    let stored = {
        let url = app.db_url.clone();
        tokio::task::spawn_blocking(move || {
            maveraa_storage::testing::count_at(
                &url,
                "SELECT count(*) AS n FROM users WHERE password_hash LIKE '$argon2id$v=19$m=19456,t=2,p=1$%' \
                 AND password_hash NOT LIKE '%horse%'",
            )
        })
        .await
        .expect("count")
    };
    assert_eq!(stored, 1);

    // The sign-in check: the password as typed (spaces kept), any case of
    // the email; nothing else.
    let users = &app.services.users;
    let email = Email::parse("email", "JANE.DOE@example.com").expect("email");
    let right = Password::parse("password", password).expect("password");
    let user = users.verify(&email, &right).await.expect("signs in");
    assert_eq!(
        user.id.to_string(),
        printed["id"].as_str().unwrap_or_default()
    );
    let memberships = users.memberships(user.id).await.expect("memberships");
    assert_eq!(memberships.len(), 1);
    assert_eq!(memberships[0].workspace_id, app.workspace);
    assert_eq!(memberships[0].role, Role::Owner);
    let trimmed = Password::parse("password", password.trim()).expect("password");
    assert_eq!(
        users.verify(&email, &trimmed).await,
        Err(UserError::InvalidCredentials)
    );
    let nobody = Email::parse("email", "nobody@example.com").expect("email");
    assert_eq!(
        users.verify(&nobody, &right).await,
        Err(UserError::InvalidCredentials),
        "an unknown email answers as a wrong password"
    );

    // Refused, with what is wrong, and nothing stored.
    for (args, stdin, says) in [
        (
            vec!["--email", "jane.doe@example.com", "--workspace", &ws],
            "another password 1\n",
            "exists already",
        ),
        (
            vec!["--email", "not-an-email", "--workspace", &ws],
            "long enough password\n",
            "--email",
        ),
        (
            vec!["--email", "ann@example.com", "--workspace", &ws],
            "short\n",
            "at least 10",
        ),
        (
            vec![
                "--email",
                "ann@example.com",
                "--workspace",
                &ws,
                "--role",
                "admin",
            ],
            "long enough password\n",
            "--role",
        ),
        (
            vec![
                "--email",
                "ann@example.com",
                "--workspace",
                "01a24900-0000-7000-8000-000000000000",
            ],
            "long enough password\n",
            "no workspace",
        ),
    ] {
        let (ok, out, err) = create(&app.db_url, &args, stdin);
        assert!(!ok, "{args:?} should fail: {out}");
        assert!(err.contains(says), "{args:?}: {err}");
        assert!(
            !err.contains(stdin.trim()),
            "the password is never printed: {err}"
        );
    }
    let users_stored = {
        let url = app.db_url.clone();
        tokio::task::spawn_blocking(move || {
            maveraa_storage::testing::count_at(&url, "SELECT count(*) AS n FROM users")
        })
        .await
        .expect("count")
    };
    assert_eq!(users_stored, 1);
}
