//! Linked devices' state against a real PostgreSQL: records by session,
//! space and key, sealed at rest, in key order, gone with their session.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use maveraa_domain::ports::DeviceStateStore;
use maveraa_domain::{RepositoryError, SessionId};
use maveraa_storage::testing::{Fixture, fixture, session, test_cipher, workspace};
use maveraa_storage::{Database, PgStore, PoolSettings, SecretCipher, SecretKey, seal_sessions};

fn kv(k: &[u8], v: &[u8]) -> (Vec<u8>, Vec<u8>) {
    (k.to_vec(), v.to_vec())
}

async fn two_sessions(f: &Fixture) -> (SessionId, SessionId) {
    let ws = workspace(f, "Acme").await;
    (
        session(f, ws, "sales").await.id,
        session(f, ws, "support").await.id,
    )
}

#[tokio::test]
async fn records_round_trip_in_key_order_and_the_last_write_wins() {
    let f = fixture();
    let (s, _) = two_sessions(&f).await;
    let store = f.store.as_ref();
    assert_eq!(store.get(s, "prekey", b"\x00\x01").await, Ok(None));
    store
        .put_many(
            s,
            "prekey",
            &[
                kv(b"\x00\x02", b"two"),
                kv(b"\x00\x01", b"one"),
                kv(b"\x00\x02", b"TWO"),
            ],
        )
        .await
        .expect("put");
    assert_eq!(
        store.get(s, "prekey", b"\x00\x02").await,
        Ok(Some(b"TWO".to_vec()))
    );
    // Only those that exist, in key order.
    assert_eq!(
        store
            .get_many(
                s,
                "prekey",
                &[
                    b"\x00\x02".to_vec(),
                    b"\x00\x09".to_vec(),
                    b"\x00\x01".to_vec()
                ]
            )
            .await,
        Ok(vec![kv(b"\x00\x01", b"one"), kv(b"\x00\x02", b"TWO")])
    );
    // Another space is another set of records.
    assert_eq!(store.get(s, "session", b"\x00\x01").await, Ok(None));
    store
        .put_many(s, "prekey", &[kv(b"\x00\x01", b"uno")])
        .await
        .expect("replace");
    assert_eq!(
        store.get(s, "prekey", b"\x00\x01").await,
        Ok(Some(b"uno".to_vec()))
    );
    store
        .delete_many(s, "prekey", &[b"\x00\x01".to_vec(), b"\x00\x07".to_vec()])
        .await
        .expect("delete");
    assert_eq!(store.get(s, "prekey", b"\x00\x01").await, Ok(None));
    assert_eq!(f.count("SELECT count(*) AS n FROM device_state"), 1);
}

#[tokio::test]
async fn an_update_of_existing_records_creates_none() {
    let f = fixture();
    let (s, _) = two_sessions(&f).await;
    let store = f.store.as_ref();
    store
        .put_many(s, "prekey", &[kv(b"a", b"1"), kv(b"b", b"2")])
        .await
        .expect("put");
    store
        .delete_many(s, "prekey", &[b"b".to_vec()])
        .await
        .expect("delete");
    let n = store
        .update_existing(
            s,
            "prekey",
            &[kv(b"a", b"1 uploaded"), kv(b"b", b"2 uploaded")],
        )
        .await
        .expect("update");
    assert_eq!(n, 1);
    assert_eq!(
        store.get(s, "prekey", b"a").await,
        Ok(Some(b"1 uploaded".to_vec()))
    );
    assert_eq!(
        store.get(s, "prekey", b"b").await,
        Ok(None),
        "not resurrected"
    );
}

#[tokio::test]
async fn scans_by_prefix_in_either_order_with_a_limit() {
    let f = fixture();
    let (s, _) = two_sessions(&f).await;
    let store = f.store.as_ref();
    let entries = [
        kv(b"g1:alice", b"A"),
        kv(b"g1:bob", b"B"),
        kv(b"g2:alice", b"C"),
        kv(&[b'g', 0xff], b"D"),
        kv(&[b'g', 0xff, 0x01], b"E"),
        kv(b"h", b"F"),
    ];
    store.put_many(s, "sk", &entries).await.expect("put");
    let keys = |rows: Vec<(Vec<u8>, Vec<u8>)>| rows.into_iter().map(|(k, _)| k).collect::<Vec<_>>();
    assert_eq!(
        keys(
            store
                .scan(s, "sk", b"g1:", false, None)
                .await
                .expect("scan")
        ),
        vec![b"g1:alice".to_vec(), b"g1:bob".to_vec()]
    );
    assert_eq!(
        store
            .scan(s, "sk", b"g", true, Some(1))
            .await
            .expect("last"),
        vec![kv(&[b'g', 0xff, 0x01], b"E")]
    );
    assert_eq!(
        keys(
            store
                .scan(s, "sk", &[b'g', 0xff], false, None)
                .await
                .expect("0xff")
        ),
        vec![vec![b'g', 0xff], vec![b'g', 0xff, 0x01]]
    );
    assert_eq!(
        store
            .scan(s, "sk", b"", false, None)
            .await
            .expect("all")
            .len(),
        6
    );
    assert_eq!(store.scan(s, "sk", b"x", false, None).await, Ok(vec![]));
    assert_eq!(store.delete_prefix(s, "sk", b"g1:").await, Ok(2));
    assert_eq!(
        keys(store.scan(s, "sk", b"", false, None).await.expect("left")),
        vec![
            b"g2:alice".to_vec(),
            vec![b'g', 0xff],
            vec![b'g', 0xff, 0x01],
            b"h".to_vec()
        ]
    );
    assert_eq!(store.delete_prefix(s, "sk", b"").await, Ok(4));
}

#[tokio::test]
async fn sessions_are_apart_and_their_state_goes_with_them() {
    let f = fixture();
    let (sales, support) = two_sessions(&f).await;
    let store = f.store.as_ref();
    store
        .put_many(sales, "identity", &[kv(b"me", b"sales key")])
        .await
        .expect("put");
    store
        .put_many(support, "identity", &[kv(b"me", b"support key")])
        .await
        .expect("put");
    assert_eq!(
        store.get(sales, "identity", b"me").await,
        Ok(Some(b"sales key".to_vec()))
    );
    assert_eq!(store.clear(support).await, Ok(1));
    assert_eq!(store.get(support, "identity", b"me").await, Ok(None));
    assert_eq!(
        store.get(sales, "identity", b"me").await,
        Ok(Some(b"sales key".to_vec()))
    );
    f.sql(&format!("DELETE FROM sessions WHERE id = '{sales}'"));
    assert_eq!(f.count("SELECT count(*) AS n FROM device_state"), 0);
    // State for a session that does not exist is refused, not kept.
    assert!(matches!(
        store
            .put_many(sales, "identity", &[kv(b"me", b"orphan")])
            .await,
        Err(RepositoryError::Internal(_))
    ));
}

#[derive(diesel::QueryableByName)]
struct Dump {
    #[diesel(sql_type = diesel::sql_types::Text)]
    row: String,
}

fn dump(f: &Fixture) -> String {
    use diesel::{Connection, RunQueryDsl};
    let mut conn = diesel::PgConnection::establish(f.url()).expect("connect");
    diesel::sql_query("SELECT d::text AS row FROM device_state d")
        .load::<Dump>(&mut conn)
        .expect("dump")
        .into_iter()
        .map(|d| d.row)
        .collect::<Vec<_>>()
        .join("\n")
}

#[tokio::test]
async fn values_are_sealed_for_their_own_row_and_rotation_seals_them_again() {
    let f = fixture();
    let (s, _) = two_sessions(&f).await;
    let secret = b"identity private key 0123456789";
    f.store
        .put_many(s, "identity", &[kv(b"me", secret), kv(b"other", b"x")])
        .await
        .expect("put");
    let stored = dump(&f);
    for shown in [
        String::from_utf8_lossy(secret).into_owned(),
        hex::encode(secret),
        STANDARD.encode(secret),
    ] {
        assert!(!stored.contains(&shown), "a value in clear: {stored}");
    }
    // A value moved to another key does not open there.
    f.sql(&format!(
        "UPDATE device_state SET value_sealed = (SELECT value_sealed FROM device_state \
         WHERE session_id = '{s}' AND key = 'me'::bytea) WHERE key = 'other'::bytea"
    ));
    assert!(f.store.get(s, "identity", b"other").await.is_err());
    f.store
        .delete_many(s, "identity", &[b"other".to_vec()])
        .await
        .expect("delete");

    // Rotation: sealed again under the new key, which alone then reads it.
    let new = SecretKey::parse(&STANDARD.encode("the new device state key, 32 b!!")).expect("key");
    let old = SecretKey::parse(maveraa_storage::testing::TEST_SECRETS_KEY).expect("key");
    let new_only =
        PgStore::new(Database::connect(f.url(), &PoolSettings::default()).expect("pool"))
            .with_secrets(SecretCipher::new(new.clone(), []));
    assert!(new_only.get(s, "identity", b"me").await.is_err());
    let report =
        seal_sessions(f.url(), &SecretCipher::new(new.clone(), [old]), true).expect("rotate");
    assert_eq!((report.resealed, report.unreadable.len()), (1, 0));
    assert_eq!(
        new_only.get(s, "identity", b"me").await,
        Ok(Some(secret.to_vec()))
    );
    assert!(!dump(&f).contains(test_cipher().current_key_id()));
}
