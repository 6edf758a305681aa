//! Sessions' credentials at rest, against a real PostgreSQL: sealed in the
//! table, opened only with the right key, sealed in place when an older
//! version stored them in clear, and re-sealed by rotation.

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE_NO_PAD};
use diesel::RunQueryDsl;
use diesel::sql_types::Text;
use maveraa_domain::RepositoryError;
use maveraa_domain::messaging::{CloudApiSettings, ProviderSettings, SecretString, Session};
use maveraa_domain::ports::SessionRepository;
use maveraa_storage::testing::{Fixture, fixture, new_session, test_cipher, workspace};
use maveraa_storage::{Database, PgStore, PoolSettings, SecretCipher, SecretKey, seal_sessions};

const TOKEN: &str = "EAAGm0PX4ZCpsBAKZCZAtokenOfTheBusiness";
const APP_SECRET: &str = "9f86d081884c7d659a2feaa0c55ad015";
const VERIFY: &str = "my-verify-token-2026";

fn credentials() -> ProviderSettings {
    ProviderSettings::CloudApi(CloudApiSettings {
        phone_number_id: "1234567890".into(),
        access_token: SecretString::new(TOKEN),
        app_secret: SecretString::new(APP_SECRET),
        verify_token: SecretString::new(VERIFY),
    })
}

#[derive(diesel::QueryableByName)]
struct Dump {
    #[diesel(sql_type = Text)]
    row: String,
}

/// Every row of `sessions`, whole, as text: what `pg_dump` or a backup
/// holds.
fn dump(f: &Fixture) -> String {
    let mut conn = connect(f.url());
    diesel::sql_query("SELECT s::text AS row FROM sessions s")
        .load::<Dump>(&mut conn)
        .expect("dump")
        .into_iter()
        .map(|d| d.row)
        .collect::<Vec<_>>()
        .join("\n")
}

fn connect(url: &str) -> diesel::PgConnection {
    diesel::Connection::establish(url).expect("connect")
}

fn execute(f: &Fixture, sql: &str) {
    let mut conn = connect(f.url());
    diesel::sql_query(sql).execute(&mut conn).expect(sql);
}

/// Fails when `dump` holds any of the secrets, in clear or encoded.
fn assert_no_secret(dump: &str) {
    for secret in [TOKEN, APP_SECRET, VERIFY] {
        let bytes = secret.as_bytes();
        for shown in [
            secret.to_owned(),
            STANDARD.encode(bytes),
            STANDARD_NO_PAD.encode(bytes),
            URL_SAFE_NO_PAD.encode(bytes),
            hex_of(bytes),
        ] {
            // A long part too: base64 of a secret inside a longer value
            // shares its middle.
            let middle = &shown[2..shown.len() - 4];
            assert!(
                !dump.contains(middle),
                "the table holds a secret ({shown}):\n{dump}"
            );
        }
    }
}

fn hex_of(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn store_with(f: &Fixture, cipher: SecretCipher) -> PgStore {
    PgStore::new(Database::connect(f.url(), &PoolSettings::default()).expect("pool"))
        .with_secrets(cipher)
}

fn key(text: &str) -> SecretKey {
    SecretKey::parse(&STANDARD.encode(format!("{text:-<32}"))).expect("key")
}

async fn cloud_session(f: &Fixture) -> Session {
    let ws = workspace(f, "Acme").await;
    let session = new_session(ws, "sales", credentials());
    f.sessions().insert(&session).await.expect("insert");
    session
}

#[tokio::test]
async fn a_dump_of_the_sessions_table_holds_no_secret() {
    let f = fixture();
    let session = cloud_session(&f).await;
    let dump = dump(&f);
    assert!(dump.contains("1234567890"), "the row is there: {dump}");
    assert!(
        dump.contains(&format!("mvs1:{}:", test_cipher().current_key_id())),
        "sealed under the configured key: {dump}"
    );
    assert_no_secret(&dump);
    // And the server reads them back as they were given.
    let read = f.sessions().get(session.id).await.expect("get");
    assert_eq!(read.map(|s| s.provider), Some(credentials()));
}

#[tokio::test]
async fn credentials_an_older_version_stored_in_clear_are_sealed_once() {
    let f = fixture();
    let session = cloud_session(&f).await;
    // What a version before encryption wrote.
    execute(
        &f,
        &format!(
            "UPDATE sessions SET settings = '{{\"phone_number_id\": \"1234567890\", \
             \"access_token\": \"{TOKEN}\", \"app_secret\": \"{APP_SECRET}\", \
             \"verify_token\": \"{VERIFY}\"}}' WHERE id = '{}'",
            session.id
        ),
    );
    assert!(dump(&f).contains(TOKEN), "the set-up stored it in clear");
    // Read meanwhile, as they were.
    let read = f.sessions().get(session.id).await.expect("get");
    assert_eq!(read.map(|s| s.provider), Some(credentials()));

    let report = seal_sessions(f.url(), &test_cipher(), false).expect("seal");
    assert_eq!(
        (report.sealed, report.resealed, report.unreadable.len()),
        (1, 0, 0)
    );
    assert_no_secret(&dump(&f));
    let read = f.sessions().get(session.id).await.expect("get");
    assert_eq!(read.map(|s| s.provider), Some(credentials()));
    // Idempotent: a second start has nothing to do.
    let again = seal_sessions(f.url(), &test_cipher(), false).expect("seal");
    assert_eq!((again.sealed, again.resealed), (0, 0));
}

#[tokio::test]
async fn a_wrong_key_says_the_credentials_are_unavailable_and_reads_no_garbage() {
    let f = fixture();
    let session = cloud_session(&f).await;
    let before = dump(&f);
    let wrong = store_with(&f, SecretCipher::new(key("another key"), []));

    let err = wrong
        .get(session.id)
        .await
        .expect_err("the wrong key opens nothing");
    let RepositoryError::Internal(why) = &err else {
        panic!("an internal error, logged and a 500 on the API: {err:?}");
    };
    assert!(
        why.contains(&format!(
            "credentials of session {} unavailable",
            session.id.as_uuid()
        )) && why.contains(test_cipher().current_key_id())
            && why.contains("not configured"),
        "{why}"
    );
    assert_no_secret(why);
    assert!(wrong.list(session.workspace_id).await.is_err());

    // The start-up step reports it and leaves the row alone.
    let report =
        seal_sessions(f.url(), &SecretCipher::new(key("another key"), []), true).expect("seal");
    assert_eq!(report.unreadable.len(), 1, "{:?}", report.unreadable);
    assert_eq!(report.unreadable[0].0, session.id.as_uuid());
    assert_eq!((report.sealed, report.resealed), (0, 0));
    assert_eq!(dump(&f), before, "nothing rewritten");

    // A key that claims the right id but is not the key (the value altered
    // instead, to the same effect): refused, not decrypted to garbage.
    execute(
        &f,
        "UPDATE sessions SET settings = jsonb_set(settings, '{access_token,sealed}', \
         to_jsonb(regexp_replace(settings->'access_token'->>'sealed', '.{4}$', 'AAAA')))",
    );
    let err = f
        .sessions()
        .get(session.id)
        .await
        .expect_err("an altered value opens nothing");
    assert!(err.to_string().contains("cannot be decrypted"), "{err}");
}

#[tokio::test]
async fn rotation_re_seals_so_the_old_key_is_no_longer_needed() {
    let f = fixture();
    let session = cloud_session(&f).await;
    let old_id = test_cipher().current_key_id().to_owned();
    let new = key("the new key");
    let new_id = new.id().to_owned();
    assert_ne!(old_id, new_id);
    let old_key = SecretKey::parse(maveraa_storage::testing::TEST_SECRETS_KEY).expect("key");

    // Without rotation, the new key alone cannot read them.
    let new_only = store_with(&f, SecretCipher::new(new.clone(), []));
    assert!(new_only.get(session.id).await.is_err());

    // A start with the new key current and the old one previous reads
    // them, and does not rewrite them...
    let both = SecretCipher::new(new.clone(), [old_key]);
    let start = seal_sessions(f.url(), &both, false).expect("start");
    assert_eq!((start.sealed, start.resealed), (0, 0));
    // ...`secrets rotate` does.
    let report = seal_sessions(f.url(), &both, true).expect("rotate");
    assert_eq!(
        (report.sealed, report.resealed, report.unreadable.len()),
        (0, 1, 0)
    );
    let dump = dump(&f);
    assert!(
        !dump.contains(&old_id),
        "no value names the old key: {dump}"
    );
    assert_eq!(
        dump.matches(&format!("mvs1:{new_id}:")).count(),
        3,
        "{dump}"
    );
    assert_no_secret(&dump);

    let read = new_only
        .get(session.id)
        .await
        .expect("the new key alone reads them");
    assert_eq!(read.map(|s| s.provider), Some(credentials()));
    // Rotating again has nothing left to do.
    let again = seal_sessions(f.url(), &SecretCipher::new(new, []), true).expect("rotate");
    assert_eq!(
        (again.sealed, again.resealed, again.unreadable.len()),
        (0, 0, 0)
    );
}
