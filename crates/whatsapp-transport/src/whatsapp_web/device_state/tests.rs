//! Codec helpers and the backend's own rules.

use super::*;

#[test]
fn last_per_key_keeps_the_last_value_of_each_key() {
    let entries = vec![
        (b"a".to_vec(), b"1".to_vec()),
        (b"b".to_vec(), b"2".to_vec()),
        (b"a".to_vec(), b"3".to_vec()),
    ];
    assert_eq!(
        last_per_key(entries),
        vec![
            (b"b".to_vec(), b"2".to_vec()),
            (b"a".to_vec(), b"3".to_vec())
        ]
    );
}

#[test]
fn timed_keys_sort_by_time_then_split_back() {
    let record = pair_key("chat@s.whatsapp.net", "ID1");
    let early = timed_key(-1, &record);
    let late = timed_key(1_700_000_000, &record);
    assert!(early < late);
    assert_eq!(
        split_timed_key(&late).expect("splits"),
        (1_700_000_000, record.as_slice())
    );
    assert!(split_timed_key(&[0; 7]).is_err());
}

#[test]
fn pn_keys_put_the_latest_update_last_under_the_phone() {
    let phone = "15550000001";
    let prefix = Key::new().part(phone.as_bytes()).into_bytes();
    let older = pn_key(phone, 10, "222");
    let newer = pn_key(phone, 20, "111");
    assert!(older.starts_with(&prefix) && newer.starts_with(&prefix));
    assert!(older < newer);
    assert_eq!(
        split_pn_key(&newer, prefix.len()).expect("splits"),
        (20, "111")
    );
    // Another phone that extends this one is not under its prefix.
    assert!(!pn_key("155500000012", 10, "222").starts_with(&prefix));
}

#[test]
fn repository_errors_map_to_connection_or_database() {
    assert!(matches!(
        store_error(RepositoryError::Unavailable("pool".into())),
        StoreError::Connection(_)
    ));
    assert!(matches!(
        store_error(RepositoryError::Internal("boom".into())),
        StoreError::Database(_)
    ));
    assert!(matches!(
        store_error(RepositoryError::Duplicate { existing: None }),
        StoreError::Database(_)
    ));
}
