//! The WhatsApp Web engine's storage over our PostgreSQL: "same calls, same
//! answers". Every test drives one sequence of `Backend` calls against the
//! engine's reference `InMemoryBackend` and against `DeviceBackend` over
//! `PgStore` (the device-state port), and asserts equal answers after
//! every call. Where the references disagree with each other (the SQLite
//! store and the in-memory one), `DeviceBackend` follows SQLite and the
//! test says so explicitly instead of comparing.

use std::collections::BTreeMap;
use std::sync::Arc;

use maveraa_domain::SessionId;
use maveraa_domain::ports::DeviceStateStore;
use maveraa_storage::testing::{Fixture, fixture, session, workspace};
use maveraa_whatsapp_transport::DeviceBackend;
use whatsapp_rust::bytes::Bytes;
use whatsapp_rust::wacore::appstate::hash::HashState;
use whatsapp_rust::wacore::appstate::processor::AppStateMutationMAC;
use whatsapp_rust::wacore::store::traits::{
    AppStateSyncKey, AppSyncStore, DeviceInfo, DeviceListRecord, DeviceStore, LidPnMappingEntry,
    MsgSecretEntry, MsgSecretStore, PendingInboundKey, PendingInboundRow, ProtocolStore,
    SignalStore, TcTokenEntry,
};
use whatsapp_rust::wacore::store::{Device, InMemoryBackend};

// ---------------------------------------------------------------------------
// Harness

/// An answer in a form two backends' answers can be compared by.
trait Canon {
    fn canon(&self) -> String;
}

macro_rules! canon_by_debug {
    ($($t:ty),*) => {$(
        impl Canon for $t {
            fn canon(&self) -> String {
                format!("{self:?}")
            }
        }
    )*};
}

canon_by_debug!(
    (),
    bool,
    u32,
    i32,
    i64,
    usize,
    String,
    Bytes,
    Vec<u8>,
    [u8; 32],
    AppStateSyncKey,
    LidPnMappingEntry,
    TcTokenEntry,
    DeviceListRecord
);

impl<T: Canon> Canon for Option<T> {
    fn canon(&self) -> String {
        match self {
            Some(v) => format!("Some({})", v.canon()),
            None => "None".to_owned(),
        }
    }
}

impl<A: Canon, B: Canon> Canon for (A, B) {
    fn canon(&self) -> String {
        format!("({}, {})", self.0.canon(), self.1.canon())
    }
}

impl<T: Canon> Canon for Vec<T> {
    fn canon(&self) -> String {
        let items: Vec<String> = self.iter().map(Canon::canon).collect();
        format!("[{}]", items.join(", "))
    }
}

impl Canon for HashState {
    fn canon(&self) -> String {
        let map: BTreeMap<_, _> = self.index_value_map.iter().collect();
        format!(
            "HashState {{ version: {}, hash: {:?}, map: {map:?}, fatal: {} }}",
            self.version,
            self.hash.as_slice(),
            self.mac_mismatch_fatal
        )
    }
}

impl Canon for std::collections::HashMap<[u8; 32], Vec<u8>> {
    fn canon(&self) -> String {
        format!("{:?}", self.iter().collect::<BTreeMap<_, _>>())
    }
}

impl Canon for Device {
    fn canon(&self) -> String {
        serde_json::to_string(self).expect("a device serialises")
    }
}

/// Sorted, for answers whose order the contract leaves open.
fn as_set<T: Canon>(items: &[T]) -> String {
    let mut items: Vec<String> = items.iter().map(Canon::canon).collect();
    items.sort();
    format!("{{{}}}", items.join(", "))
}

/// The reference and the backend under test, side by side.
struct Pair {
    mem: InMemoryBackend,
    pg: DeviceBackend,
}

impl Pair {
    fn new(store: Arc<dyn DeviceStateStore>, session: SessionId) -> Self {
        Self {
            mem: InMemoryBackend::new(),
            pg: DeviceBackend::new(store, session),
        }
    }
}

/// Calls `method(args)` on both backends; both must succeed with the same
/// answer. Evaluates to the answer.
macro_rules! same {
    ($p:expr, $method:ident ( $($arg:expr),* $(,)? )) => {{
        let call = stringify!($method($($arg),*));
        let mem = $p.mem.$method($($arg),*).await.unwrap_or_else(|e| panic!("in memory: {call}: {e}"));
        let pg = $p.pg.$method($($arg),*).await.unwrap_or_else(|e| panic!("postgres: {call}: {e}"));
        assert_eq!(mem.canon(), pg.canon(), "{call}");
        pg
    }};
}

/// As [`same`], for answers whose order is unspecified.
macro_rules! same_set {
    ($p:expr, $method:ident ( $($arg:expr),* $(,)? )) => {{
        let call = stringify!($method($($arg),*));
        let mem = $p.mem.$method($($arg),*).await.unwrap_or_else(|e| panic!("in memory: {call}: {e}"));
        let pg = $p.pg.$method($($arg),*).await.unwrap_or_else(|e| panic!("postgres: {call}: {e}"));
        assert_eq!(as_set(&mem), as_set(&pg), "{call}");
        pg
    }};
}

/// Calls `method(args)` on both, for its effect only (the answer is `()`).
macro_rules! both {
    ($p:expr, $method:ident ( $($arg:expr),* $(,)? )) => {{
        let _: () = same!($p, $method($($arg),*));
    }};
}

async fn setup() -> (Fixture, SessionId, SessionId) {
    let f = fixture();
    let ws = workspace(&f, "Acme").await;
    let a = session(&f, ws, "sales").await.id;
    let b = session(&f, ws, "support").await.id;
    (f, a, b)
}

fn pair(f: &Fixture, session: SessionId) -> Pair {
    Pair::new(f.store.clone(), session)
}

fn arc(s: &str) -> Arc<str> {
    Arc::from(s)
}

fn lid(lid: &str, phone: &str, created_at: i64, updated_at: i64) -> LidPnMappingEntry {
    LidPnMappingEntry {
        lid: lid.into(),
        phone_number: phone.into(),
        created_at,
        updated_at,
        learning_source: "usync".into(),
    }
}

fn secret(chat: &str, id: &str, byte: u8, expires_at: i64, message_ts: i64) -> MsgSecretEntry {
    MsgSecretEntry {
        chat: arc(chat),
        sender: arc(chat),
        msg_id: arc(id),
        secret: [byte; 32],
        expires_at,
        message_ts,
    }
}

fn now() -> i64 {
    whatsapp_rust::wacore::time::now_secs()
}

const ALICE: &str = "15550000001@s.whatsapp.net";
const ALICE_1: &str = "15550000001:1@s.whatsapp.net";
const ALICE_LID: &str = "100000012345678@lid";
const GROUP: &str = "120363021033254949@g.us";

// ---------------------------------------------------------------------------
// SignalStore

#[tokio::test]
async fn identities_and_sessions_answer_as_the_reference() {
    let (f, s, _) = setup().await;
    let p = pair(&f, s);

    same!(p, load_identity(ALICE));
    both!(p, put_identity(ALICE, [1; 32]));
    same!(p, load_identity(ALICE));
    both!(p, put_identity(ALICE, [2; 32]));
    assert_eq!(same!(p, load_identity(ALICE)), Some([2; 32]));
    both!(
        p,
        put_identities_batch(&[
            (arc(ALICE_1), [3; 32]),
            (arc(ALICE_LID), [4; 32]),
            (arc(ALICE_1), [5; 32]),
        ])
    );
    assert_eq!(same!(p, load_identity(ALICE_1)), Some([5; 32]));
    same!(p, load_identity(ALICE_LID));
    both!(p, delete_identity(ALICE));
    both!(p, delete_identity(ALICE)); // a missing key is no error
    assert_eq!(same!(p, load_identity(ALICE)), None);

    same!(p, get_session(ALICE));
    assert!(!same!(p, has_session(ALICE)));
    both!(p, put_session(ALICE, b"record-1"));
    assert!(same!(p, has_session(ALICE)));
    same!(p, get_session(ALICE));
    both!(
        p,
        put_sessions_batch(&[
            (arc(ALICE), Bytes::from_static(b"record-2")),
            (arc(ALICE_1), Bytes::from_static(b"record-3")),
        ])
    );
    assert_eq!(
        same!(p, get_session(ALICE)),
        Some(Bytes::from_static(b"record-2"))
    );
    same!(p, get_session(ALICE_1));
    both!(p, delete_session(ALICE));
    both!(p, delete_session(ALICE));
    assert!(!same!(p, has_session(ALICE)));
    same!(p, get_session(ALICE));
}

#[tokio::test]
async fn signal_state_for_a_user_is_its_devices_and_not_a_longer_user() {
    let (f, s, _) = setup().await;
    let p = pair(&f, s);
    for user in [
        "15550000001",
        "1555000000",
        "155500000011",
        "",
        "100000012345678",
    ] {
        assert!(!same!(p, has_signal_state_for_user(user)));
    }
    // A session of a companion device (user:dev@server) counts.
    both!(p, put_session(ALICE_1, b"s"));
    assert!(same!(p, has_signal_state_for_user("15550000001")));
    assert!(!same!(p, has_signal_state_for_user("1555000000")));
    assert!(!same!(p, has_signal_state_for_user("155500000011")));
    both!(p, delete_session(ALICE_1));
    assert!(!same!(p, has_signal_state_for_user("15550000001")));
    // So does an identity alone, of device 0 (user@server).
    both!(p, put_identity(ALICE_LID, [1; 32]));
    assert!(same!(p, has_signal_state_for_user("100000012345678")));
    assert!(!same!(p, has_signal_state_for_user("10000001234567")));
    assert!(!same!(p, has_signal_state_for_user("15550000001")));
}

#[tokio::test]
async fn prekeys_answer_as_the_reference() {
    let (f, s, _) = setup().await;
    let p = pair(&f, s);

    assert_eq!(same!(p, get_max_prekey_id()), 0);
    same!(p, load_prekey(1));
    same!(p, load_prekeys_batch(&[1, 2, 3]));
    both!(p, store_prekey(1, b"one", false));
    both!(p, store_prekey(300, b"three hundred", true));
    // Numeric, not bytewise-of-decimal, maximum: 300 > 1, 70000 > 300.
    assert_eq!(same!(p, get_max_prekey_id()), 300);
    both!(
        p,
        store_prekeys_batch(
            &[
                (70_000, Bytes::from_static(b"big")),
                (2, Bytes::from_static(b"two")),
                (2, Bytes::from_static(b"TWO")),
            ],
            false
        )
    );
    assert_eq!(same!(p, get_max_prekey_id()), 70_000);
    assert_eq!(same!(p, load_prekey(2)), Some(Bytes::from_static(b"TWO")));
    // Only those that exist, in the caller's order.
    let batch = same!(p, load_prekeys_batch(&[300, 5, 1, 70_000, 2]));
    assert_eq!(
        batch.iter().map(|(id, _)| *id).collect::<Vec<_>>(),
        [300, 1, 70_000, 2]
    );

    // Marking uploaded never resurrects a consumed key, and keeps records.
    both!(p, remove_prekey(70_000));
    both!(p, remove_prekey(70_000));
    both!(p, mark_prekeys_uploaded(&[1, 2, 70_000, 999]));
    assert_eq!(same!(p, load_prekey(70_000)), None);
    assert_eq!(same!(p, load_prekey(999)), None);
    assert_eq!(same!(p, load_prekey(1)), Some(Bytes::from_static(b"one")));
    assert_eq!(same!(p, get_max_prekey_id()), 300);
    both!(p, mark_prekeys_uploaded(&[]));
    for id in [1, 2, 300] {
        both!(p, remove_prekey(id));
    }
    assert_eq!(same!(p, get_max_prekey_id()), 0);
    same!(p, load_prekeys_batch(&[1, 2, 300]));
}

#[tokio::test]
async fn signed_prekeys_and_sender_keys_answer_as_the_reference() {
    let (f, s, _) = setup().await;
    let p = pair(&f, s);

    same_set!(p, load_all_signed_prekeys());
    same!(p, load_signed_prekey(1));
    both!(p, store_signed_prekey(1, b"one"));
    both!(p, store_signed_prekey(256, b"two-five-six"));
    both!(p, store_signed_prekey(1, b"ONE"));
    assert_eq!(same!(p, load_signed_prekey(1)), Some(b"ONE".to_vec()));
    assert_eq!(same_set!(p, load_all_signed_prekeys()).len(), 2);
    both!(p, remove_signed_prekey(1));
    both!(p, remove_signed_prekey(1));
    same!(p, load_signed_prekey(1));
    same_set!(p, load_all_signed_prekeys());

    let name = format!("{GROUP}:{ALICE_1}");
    same!(p, get_sender_key(&name));
    both!(p, put_sender_key(&name, b"sk-1"));
    same!(p, get_sender_key(&name));
    both!(
        p,
        put_sender_keys_batch(&[
            (arc(&name), Bytes::from_static(b"sk-2")),
            (arc("other:x@s.whatsapp.net"), Bytes::from_static(b"sk-3")),
        ])
    );
    assert_eq!(same!(p, get_sender_key(&name)), Some(b"sk-2".to_vec()));
    same!(p, get_sender_key("other:x@s.whatsapp.net"));
    both!(p, delete_sender_key(&name));
    both!(p, delete_sender_key(&name));
    same!(p, get_sender_key(&name));
}

// ---------------------------------------------------------------------------
// AppSyncStore

fn sync_key(byte: u8) -> AppStateSyncKey {
    AppStateSyncKey {
        key_data: vec![byte; 32],
        fingerprint: vec![byte, 1, 2],
        timestamp: 1_700_000_000 + i64::from(byte),
    }
}

#[tokio::test]
async fn app_state_answers_as_the_reference() {
    let (f, s, _) = setup().await;
    let p = pair(&f, s);

    same!(p, get_sync_key(b"\x00\x01"));
    assert_eq!(same!(p, get_latest_sync_key_id()), None);
    both!(p, set_sync_key(b"\x00\x01", sync_key(1)));
    same!(p, get_sync_key(b"\x00\x01"));
    both!(p, set_sync_key(b"\x00\x02", sync_key(2)));
    // Both references agree while keys arrive in ascending order.
    assert_eq!(
        same!(p, get_latest_sync_key_id()),
        Some(b"\x00\x02".to_vec())
    );
    both!(p, set_sync_key(b"\x00\x01", sync_key(9)));
    same!(p, get_sync_key(b"\x00\x01"));

    // Absent: the default state, not an error.
    let absent = same!(p, get_version("regular"));
    assert_eq!(absent.version, 0);
    let mut state = HashState {
        version: 7,
        hash: [3; 128],
        mac_mismatch_fatal: true,
        ..HashState::default()
    };
    for i in 0..50u8 {
        state
            .index_value_map
            .insert(format!("index-{i}"), vec![i; 32]);
    }
    both!(p, set_version("regular", state.clone()));
    assert_eq!(same!(p, get_version("regular")).version, 7);
    same!(p, get_version("regular_high"));
    state.version = 8;
    state.index_value_map.clear();
    both!(p, set_version("regular", state.clone()));
    assert!(same!(p, get_version("regular")).index_value_map.is_empty());

    let mac = |i: u8, v: u8| AppStateMutationMAC {
        index_mac: vec![i; 32],
        value_mac: vec![v; 32],
    };
    same!(p, get_mutation_mac("regular", &[1; 32]));
    both!(
        p,
        put_mutation_macs("regular", 1, &[mac(1, 10), mac(2, 20)])
    );
    both!(p, put_mutation_macs("regular_high", 1, &[mac(1, 99)]));
    both!(
        p,
        put_mutation_macs("regular", 2, &[mac(2, 21), mac(3, 30)])
    );
    assert_eq!(
        same!(p, get_mutation_mac("regular", &[2; 32])),
        Some(vec![21; 32])
    );
    same!(p, get_mutation_mac("regular_high", &[1; 32]));
    let got = same!(
        p,
        get_mutation_macs("regular", &[[1; 32], [4; 32], [3; 32]])
    );
    assert_eq!(got.len(), 2);
    both!(
        p,
        delete_mutation_macs("regular", &[vec![1; 32], vec![7; 32]])
    );
    same!(p, get_mutation_mac("regular", &[1; 32]));
    same!(
        p,
        get_mutation_macs("regular", &[[1; 32], [2; 32], [3; 32]])
    );
    // A snapshot re-sync clears one collection's MACs, and only its.
    both!(p, clear_mutation_macs("regular"));
    assert!(
        same!(
            p,
            get_mutation_macs("regular", &[[1; 32], [2; 32], [3; 32]])
        )
        .is_empty()
    );
    assert_eq!(
        same!(p, get_mutation_mac("regular_high", &[1; 32])),
        Some(vec![99; 32])
    );
    both!(p, clear_mutation_macs("regular"));
}

#[tokio::test]
async fn the_latest_sync_key_is_the_greatest_id_as_in_sqlite_not_the_last_set() {
    let (f, s, _) = setup().await;
    let p = pair(&f, s);
    for (id, byte) in [(&b"\x00\x05"[..], 5), (b"\x00\x09", 9), (b"\x00\x07", 7)] {
        both!(p, set_sync_key(id, sync_key(byte)));
    }
    // The references disagree here: in memory, the last key set; in SQLite
    // (and here), the greatest key id.
    assert_eq!(
        p.mem.get_latest_sync_key_id().await.expect("in memory"),
        Some(b"\x00\x07".to_vec())
    );
    assert_eq!(
        p.pg.get_latest_sync_key_id().await.expect("postgres"),
        Some(b"\x00\x09".to_vec())
    );

    // Like SQLite, a key that does not decode counts as absent (and is
    // skipped for the latest): the engine requests it again.
    f.store
        .put_many(
            s,
            "sync_key",
            &[(b"\x00\x0a".to_vec(), b"\xffjunk".to_vec())],
        )
        .await
        .expect("a raw write through the port");
    assert!(
        p.pg.get_sync_key(b"\x00\x0a")
            .await
            .expect("read")
            .is_none()
    );
    assert_eq!(
        p.pg.get_latest_sync_key_id().await.expect("postgres"),
        Some(b"\x00\x09".to_vec())
    );
}

// ---------------------------------------------------------------------------
// ProtocolStore

#[tokio::test]
async fn sender_key_devices_answer_as_the_reference() {
    let (f, s, _) = setup().await;
    let p = pair(&f, s);
    let g2 = "120363000000000002@g.us";
    let bob = "15550000002:3@s.whatsapp.net";

    same_set!(p, get_sender_key_devices(GROUP));
    both!(
        p,
        set_sender_key_status(GROUP, &[(ALICE_1, true), (bob, false)])
    );
    both!(
        p,
        set_sender_key_status(g2, &[(ALICE_1, false), (bob, true)])
    );
    both!(
        p,
        set_sender_key_status(GROUP, &[(bob, true), (bob, false)])
    );
    assert_eq!(same_set!(p, get_sender_key_devices(GROUP)).len(), 2);
    same_set!(p, get_sender_key_devices(g2));

    // One device's rows go from every group.
    both!(
        p,
        delete_sender_key_device_rows(&[ALICE_1, "nobody@s.whatsapp.net"])
    );
    assert_eq!(same_set!(p, get_sender_key_devices(GROUP)).len(), 1);
    assert_eq!(same_set!(p, get_sender_key_devices(g2)).len(), 1);
    both!(p, delete_sender_key_device_rows(&[]));

    both!(p, clear_sender_key_devices(GROUP));
    assert!(same_set!(p, get_sender_key_devices(GROUP)).is_empty());
    assert_eq!(same_set!(p, get_sender_key_devices(g2)).len(), 1);
    // A device cleared with its group and set again elsewhere is found
    // again by the device-wide delete.
    both!(p, set_sender_key_status(GROUP, &[(bob, true)]));
    both!(p, delete_sender_key_device_rows(&[bob]));
    same_set!(p, get_sender_key_devices(GROUP));
    same_set!(p, get_sender_key_devices(g2));

    both!(p, set_sender_key_status(GROUP, &[(ALICE_1, true)]));
    both!(p, set_sender_key_status(g2, &[(bob, true)]));
    both!(p, clear_all_sender_key_devices());
    same_set!(p, get_sender_key_devices(GROUP));
    same_set!(p, get_sender_key_devices(g2));
}

#[tokio::test]
async fn lid_mappings_answer_as_the_reference() {
    let (f, s, _) = setup().await;
    let p = pair(&f, s);

    same!(p, get_lid_mapping("111"));
    same!(p, get_pn_mapping("15550000001"));
    same_set!(p, get_all_lid_mappings());
    both!(p, put_lid_mapping(&lid("111", "15550000001", 100, 100)));
    same!(p, get_lid_mapping("111"));
    same!(p, get_pn_mapping("15550000001"));
    // A newer LID for the same phone is "the most recent".
    both!(p, put_lid_mapping(&lid("222", "15550000001", 200, 200)));
    assert_eq!(
        same!(p, get_pn_mapping("15550000001")).map(|e| e.lid),
        Some("222".to_owned())
    );
    same!(p, get_pn_mapping("1555000000")); // a shorter phone is another phone
    // A batch (with a LID twice: the last wins) in one go.
    both!(
        p,
        put_lid_mappings(&[
            lid("333", "15550000003", 300, 300),
            lid("444", "15550000004", 310, 310),
            lid("333", "15550000005", 300, 320),
        ])
    );
    same!(p, get_lid_mapping("333"));
    same!(p, get_pn_mapping("15550000003"));
    same!(p, get_pn_mapping("15550000005"));
    same!(p, get_pn_mapping("15550000004"));
    // A LID moving to another phone leaves its old phone.
    both!(p, put_lid_mapping(&lid("444", "15550000006", 310, 400)));
    same!(p, get_pn_mapping("15550000004"));
    same!(p, get_pn_mapping("15550000006"));
    // The same mapping seen again, later.
    both!(p, put_lid_mapping(&lid("444", "15550000006", 310, 500)));
    same!(p, get_pn_mapping("15550000006"));
    same!(p, get_lid_mapping("444"));
    both!(p, put_lid_mappings(&[]));
    assert_eq!(same_set!(p, get_all_lid_mappings()).len(), 4);
}

#[tokio::test]
async fn lid_mappings_follow_sqlite_where_the_references_differ() {
    let (f, s, _) = setup().await;
    let p = &pair(&f, s);
    let put = move |e: LidPnMappingEntry| async move {
        p.mem.put_lid_mapping(&e).await.expect("in memory");
        p.pg.put_lid_mapping(&e).await.expect("postgres");
    };
    put(lid("111", "15550000001", 100, 100)).await;
    put(lid("222", "15550000001", 200, 200)).await;
    // The newest LID of a phone moves away: in memory the phone then maps
    // to nothing; SQLite (and here) answers the phone's remaining LID.
    put(lid("222", "15550000002", 200, 300)).await;
    assert!(
        p.mem
            .get_pn_mapping("15550000001")
            .await
            .expect("mem")
            .is_none()
    );
    assert_eq!(
        p.pg.get_pn_mapping("15550000001")
            .await
            .expect("pg")
            .map(|e| e.lid),
        Some("111".to_owned())
    );
    // `created_at` is "when first learned": SQLite (and here) keeps it on
    // a re-put; in memory the whole entry is replaced.
    put(lid("111", "15550000001", 999, 400)).await;
    let mem = p
        .mem
        .get_lid_mapping("111")
        .await
        .expect("mem")
        .expect("some");
    let pg =
        p.pg.get_lid_mapping("111")
            .await
            .expect("pg")
            .expect("some");
    assert_eq!((mem.created_at, pg.created_at), (999, 100));
    assert_eq!((mem.updated_at, pg.updated_at), (400, 400));
}

#[tokio::test]
async fn a_leftover_phone_index_entry_is_ignored() {
    // As if a crash came between a re-mapping's index write and its record
    // write: the index names LID 111 for a phone its record does not have.
    let (f, s, _) = setup().await;
    let p = pair(&f, s);
    p.pg.put_lid_mapping(&lid("111", "15550000001", 1, 1))
        .await
        .expect("put");
    let mut stale = Vec::new();
    stale.extend_from_slice(&11u32.to_be_bytes());
    stale.extend_from_slice(b"15550000009");
    stale.extend_from_slice(&((50i64 as u64) ^ (1 << 63)).to_be_bytes());
    stale.extend_from_slice(b"111");
    f.store
        .put_many(s, "pn", &[(stale, Vec::new())])
        .await
        .expect("a raw index write");
    assert!(
        p.pg.get_pn_mapping("15550000009")
            .await
            .expect("pg")
            .is_none()
    );
    assert_eq!(
        p.pg.get_pn_mapping("15550000001")
            .await
            .expect("pg")
            .map(|e| e.lid),
        Some("111".to_owned())
    );
}

#[tokio::test]
async fn base_keys_device_lists_and_group_metadata_answer_as_the_reference() {
    let (f, s, _) = setup().await;
    let p = pair(&f, s);

    assert!(!same!(p, has_same_base_key(ALICE, "M1", b"k")));
    both!(p, save_base_key(ALICE, "M1", b"key-1"));
    assert!(same!(p, has_same_base_key(ALICE, "M1", b"key-1")));
    assert!(!same!(p, has_same_base_key(ALICE, "M1", b"key-2")));
    assert!(!same!(p, has_same_base_key(ALICE, "M2", b"key-1")));
    assert!(!same!(p, has_same_base_key(ALICE_1, "M1", b"key-1")));
    both!(p, delete_base_key(ALICE, "M1"));
    both!(p, delete_base_key(ALICE, "M1"));
    assert!(!same!(p, has_same_base_key(ALICE, "M1", b"key-1")));

    let record = |user: &str, n: u32, raw_id: Option<u32>| DeviceListRecord {
        user: user.into(),
        devices: (0..n)
            .map(|d| DeviceInfo::new(d, Some(d)).with_hosting(d == 2))
            .collect(),
        timestamp: 1_700_000_000,
        phash: (n > 1).then(|| format!("2:{n}")),
        raw_id,
    };
    same!(p, get_devices("15550000001"));
    both!(p, update_device_list(record("15550000001", 2, Some(7))));
    same!(p, get_devices("15550000001"));
    both!(
        p,
        update_device_lists(vec![
            record("15550000002", 3, None),
            record("15550000001", 1, None),
            record("15550000002", 4, Some(1)),
        ])
    );
    same!(p, get_devices("15550000001"));
    assert_eq!(
        same!(p, get_devices("15550000002")).map(|r| r.devices.len()),
        Some(4)
    );
    both!(p, delete_devices("15550000002"));
    both!(p, delete_devices("15550000002"));
    same!(p, get_devices("15550000002"));
    both!(p, update_device_lists(vec![]));

    same!(p, get_group_metadata(GROUP));
    both!(p, put_group_metadata(GROUP, b"blob-1"));
    both!(p, put_group_metadata(GROUP, b"blob-2"));
    assert_eq!(
        same!(p, get_group_metadata(GROUP)),
        Some(b"blob-2".to_vec())
    );
    both!(p, delete_group_metadata(GROUP));
    both!(p, delete_group_metadata(GROUP));
    same!(p, get_group_metadata(GROUP));
}

#[tokio::test]
async fn tc_tokens_answer_as_the_reference() {
    let (f, s, _) = setup().await;
    let p = pair(&f, s);
    let bob = "15550000002@lid";
    let carol = "15550000003@lid";

    same!(p, get_tc_token(ALICE_LID));
    same_set!(p, get_all_tc_token_jids());
    let entry = TcTokenEntry {
        token: vec![1, 2, 3],
        token_timestamp: 100,
        sender_timestamp: None,
    };
    both!(p, put_tc_token(ALICE_LID, &entry));
    same!(p, get_tc_token(ALICE_LID));
    // The sender bucket moves forward only and keeps the token.
    both!(p, touch_tc_token_sender_timestamp(ALICE_LID, 50));
    both!(p, touch_tc_token_sender_timestamp(ALICE_LID, 40));
    assert_eq!(
        same!(p, get_tc_token(ALICE_LID)).and_then(|e| e.sender_timestamp),
        Some(50)
    );
    // Absent: a byte-less placeholder.
    both!(p, touch_tc_token_sender_timestamp(bob, 60));
    same!(p, get_tc_token(bob));
    // A received token replaces a placeholder whatever its time, keeping
    // the sender bucket; an older one never replaces a real token.
    both!(p, store_received_tc_token(bob, b"bob-token", 10));
    same!(p, get_tc_token(bob));
    both!(p, store_received_tc_token(bob, b"older", 5));
    both!(p, store_received_tc_token(bob, b"same-time", 10));
    same!(p, get_tc_token(bob));
    both!(p, store_received_tc_token(carol, b"carol", 70));
    same!(p, get_tc_token(carol));
    assert_eq!(same_set!(p, get_all_tc_token_jids()).len(), 3);

    // Gone only when both the token and the sender bucket are stale:
    // alice (token 100, sender 50), bob (token 10, sender 60), carol
    // (token 70, no sender).
    assert_eq!(same!(p, delete_expired_tc_tokens(20, 55)), 0);
    assert_eq!(same!(p, delete_expired_tc_tokens(80, 55)), 1); // carol
    assert_eq!(same!(p, delete_expired_tc_tokens(200, 55)), 1); // alice
    same_set!(p, get_all_tc_token_jids());
    both!(p, delete_tc_token(bob));
    both!(p, delete_tc_token(bob));
    assert!(same_set!(p, get_all_tc_token_jids()).is_empty());
}

#[tokio::test]
async fn sent_messages_answer_as_the_reference() {
    let (f, s, _) = setup().await;
    let p = pair(&f, s);

    same!(p, take_sent_message(ALICE, "M1"));
    both!(p, store_sent_message(ALICE, "M1", b"payload-1"));
    both!(p, store_sent_message(ALICE, "M2", b"payload-2"));
    both!(p, store_sent_message(GROUP, "M1", b"payload-3"));
    both!(p, store_sent_message(ALICE, "M2", b"payload-2b"));
    // Taken once: a second retry finds nothing.
    assert_eq!(
        same!(p, take_sent_message(ALICE, "M2")),
        Some(b"payload-2b".to_vec())
    );
    same!(p, take_sent_message(ALICE, "M2"));
    // Nothing is older than a minute ago; everything is older than later.
    assert_eq!(same!(p, delete_expired_sent_messages(now() - 60)), 0);
    same!(p, take_sent_message(ALICE, "M1"));
    both!(p, store_sent_message(ALICE, "M1", b"again"));
    assert_eq!(same!(p, delete_expired_sent_messages(now() + 60)), 2);
    same!(p, take_sent_message(ALICE, "M1"));
    same!(p, take_sent_message(GROUP, "M1"));
    assert_eq!(same!(p, delete_expired_sent_messages(now() + 60)), 0);
    // The sweep left no index behind.
    assert_eq!(
        f.store
            .scan(s, "sent_msg_ix", &[], false, None)
            .await
            .expect("scan")
            .len(),
        0
    );
}

#[tokio::test]
async fn a_sent_message_taken_twice_at_once_is_taken_once() {
    let (f, s, _) = setup().await;
    let a = DeviceBackend::new(f.store.clone(), s);
    let b = DeviceBackend::new(f.store.clone(), s);
    for round in 0..10 {
        let id = format!("M{round}");
        a.store_sent_message(ALICE, &id, b"payload")
            .await
            .expect("store");
        let (x, y) = tokio::join!(
            a.take_sent_message(ALICE, &id),
            b.take_sent_message(ALICE, &id)
        );
        let taken = [x.expect("a"), y.expect("b")];
        assert_eq!(taken.iter().filter(|t| t.is_some()).count(), 1, "{round}");
    }
}

#[tokio::test]
async fn pending_inbound_answers_as_the_reference() {
    let (f, s, _) = setup().await;
    let p = pair(&f, s);

    same!(p, get_pending_inbound(ALICE, ALICE_1, "S1"));
    both!(p, store_pending_inbound(ALICE, ALICE_1, "S1", b"m1"));
    same!(p, get_pending_inbound(ALICE, ALICE_1, "S1"));
    // Scoped by (chat, sender, id).
    same!(p, get_pending_inbound(ALICE, ALICE, "S1"));
    same!(p, get_pending_inbound(GROUP, ALICE_1, "S1"));
    both!(p, store_pending_inbound(ALICE, ALICE_1, "S1", b"m1-again"));
    same!(p, get_pending_inbound(ALICE, ALICE_1, "S1"));
    both!(
        p,
        store_pending_inbound_batch(&[
            PendingInboundRow {
                chat: GROUP,
                sender: ALICE_1,
                id: "S2",
                message: b"m2",
            },
            PendingInboundRow {
                chat: GROUP,
                sender: ALICE,
                id: "S2",
                message: b"m3",
            },
            PendingInboundRow {
                chat: GROUP,
                sender: ALICE_1,
                id: "S2",
                message: b"m2-last",
            },
        ])
    );
    assert_eq!(
        same!(p, get_pending_inbound(GROUP, ALICE_1, "S2")),
        Some(b"m2-last".to_vec())
    );
    same!(p, get_pending_inbound(GROUP, ALICE, "S2"));
    both!(p, delete_pending_inbound(ALICE, ALICE_1, "S1"));
    both!(p, delete_pending_inbound(ALICE, ALICE_1, "S1"));
    same!(p, get_pending_inbound(ALICE, ALICE_1, "S1"));
    both!(
        p,
        delete_pending_inbound_batch(&[
            PendingInboundKey {
                chat: GROUP,
                sender: ALICE_1,
                id: "S2",
            },
            PendingInboundKey {
                chat: GROUP,
                sender: ALICE_1,
                id: "missing",
            },
        ])
    );
    same!(p, get_pending_inbound(GROUP, ALICE_1, "S2"));
    same!(p, get_pending_inbound(GROUP, ALICE, "S2"));
    both!(p, store_pending_inbound_batch(&[]));
    both!(p, delete_pending_inbound_batch(&[]));

    assert_eq!(same!(p, delete_expired_pending_inbound(now() - 60)), 0);
    same!(p, get_pending_inbound(GROUP, ALICE, "S2"));
    assert_eq!(same!(p, delete_expired_pending_inbound(now() + 60)), 1);
    same!(p, get_pending_inbound(GROUP, ALICE, "S2"));
    // Deletes took their index entries with them; the sweep the rest.
    assert_eq!(
        f.store
            .scan(s, "pending_in_ix", &[], false, None)
            .await
            .expect("scan")
            .len(),
        0
    );
}

#[tokio::test]
async fn the_engine_durability_probe_round_trips() {
    // What `ClientBuilder::build` does before it accepts a durability hook.
    let (f, s, _) = setup().await;
    let b = DeviceBackend::new(f.store.clone(), s);
    let (chat, id) = ("0@s.whatsapp.net", "__wa_durability_probe_1_0__");
    b.store_pending_inbound(chat, chat, id, b"probe")
        .await
        .expect("store");
    assert_eq!(
        b.get_pending_inbound(chat, chat, id).await.expect("get"),
        Some(b"probe".to_vec())
    );
    b.delete_pending_inbound(chat, chat, id)
        .await
        .expect("delete");
    assert_eq!(
        b.get_pending_inbound(chat, chat, id).await.expect("get"),
        None
    );
}

// ---------------------------------------------------------------------------
// MsgSecretStore

#[tokio::test]
async fn message_secrets_answer_as_the_reference() {
    let (f, s, _) = setup().await;
    let p = pair(&f, s);

    same!(p, get_msg_secret(ALICE, ALICE, "M1"));
    same!(p, get_msg_secret_with_ts(ALICE, ALICE, "M1"));
    both!(p, put_msg_secret(ALICE, ALICE, "M1", &[1; 32]));
    same!(p, get_msg_secret(ALICE, ALICE, "M1"));
    same!(p, get_msg_secret_with_ts(ALICE, ALICE, "M1"));
    assert_eq!(
        same!(
            p,
            put_msg_secrets(vec![
                secret(ALICE, "M2", 2, 1_000, 500),
                secret(ALICE, "M3", 3, 2_000, 0),
                // A later deadline and parent time win; the secret is replaced.
                secret(ALICE, "M2", 4, 1_500, 400),
            ])
        ),
        3
    );
    assert_eq!(
        same!(p, get_msg_secret_with_ts(ALICE, ALICE, "M2")),
        Some((vec![4; 32], 500))
    );
    // An earlier deadline never shortens a window; 0 (never) wins.
    same!(p, put_msg_secrets(vec![secret(ALICE, "M2", 4, 1_200, 0)]));
    same!(p, put_msg_secrets(vec![secret(ALICE, "M3", 3, 0, 600)]));
    same!(p, put_msg_secrets(vec![secret(ALICE, "M1", 1, 900, 0)]));
    same!(p, put_msg_secrets(vec![]));
    same!(p, get_msg_secret_with_ts(ALICE, ALICE, "M3"));
    // M2 expires at 1500; M1 and M3 never (0 won).
    assert_eq!(same!(p, delete_expired_msg_secrets(1_499)), 0);
    assert_eq!(same!(p, delete_expired_msg_secrets(1_500)), 1);
    same!(p, get_msg_secret(ALICE, ALICE, "M2"));
    same!(p, get_msg_secret(ALICE, ALICE, "M1"));
    same!(p, get_msg_secret(ALICE, ALICE, "M3"));
    assert_eq!(same!(p, delete_expired_msg_secrets(i64::MAX)), 0);
    // Scoped by sender too.
    same!(
        p,
        put_msg_secrets(vec![MsgSecretEntry {
            sender: arc(ALICE_LID),
            ..secret(GROUP, "G1", 7, 10, 1)
        }])
    );
    same!(p, get_msg_secret(GROUP, ALICE, "G1"));
    same!(p, get_msg_secret(GROUP, ALICE_LID, "G1"));
    assert_eq!(same!(p, delete_expired_msg_secrets(10)), 1);
    same!(p, get_msg_secret(GROUP, ALICE_LID, "G1"));
    // The superseded index entries went with the sweeps.
    assert_eq!(
        f.store
            .scan(s, "msg_secret_ix", &[], false, None)
            .await
            .expect("scan")
            .len(),
        0
    );
}

// ---------------------------------------------------------------------------
// DeviceStore

#[tokio::test]
async fn the_device_answers_as_the_reference() {
    let (f, s, _) = setup().await;
    let p = pair(&f, s);

    assert!(!same!(p, exists()));
    same!(p, load());
    // The first create materialises a fresh device (random keys: each
    // backend its own), numbered 1.
    assert_eq!(same!(p, create()), 1);
    assert!(same!(p, exists()));
    let created = p.pg.load().await.expect("load").expect("created");
    // A second create keeps the device.
    p.pg.create().await.expect("create again");
    assert_eq!(
        p.pg.load().await.expect("load").expect("kept").canon(),
        created.canon()
    );

    let mut device = Device::new();
    device.push_name = "Acme sales".into();
    device.next_pre_key_id = 812;
    device.login_counter = 3;
    device.lid_migrated = true;
    both!(p, save(&device));
    let loaded = same!(p, load()).expect("saved");
    assert_eq!(loaded.push_name, "Acme sales");
    assert_eq!(loaded.next_pre_key_id, 812);
    assert_eq!(
        loaded.identity_key.public_key,
        device.identity_key.public_key
    );
    assert!(same!(p, exists()));

    same!(p, snapshot_db("name", None));
    // Remote state: no process memory to report (in memory reports none).
    assert_eq!(p.pg.resource_report().await.memory_bytes, Some(0));
}

#[tokio::test]
async fn the_engine_starts_on_a_fresh_session_and_finds_its_device_again() {
    use whatsapp_rust::wacore::store::PersistenceManager;
    let (f, s, _) = setup().await;
    let backend = Arc::new(DeviceBackend::new(f.store.clone(), s));
    let first = PersistenceManager::new(backend.clone())
        .await
        .expect("a fresh session starts");
    let identity = first.get_device_snapshot().await.identity_key.public_key;
    drop(first);
    let again = PersistenceManager::new(Arc::new(DeviceBackend::new(f.store.clone(), s)))
        .await
        .expect("starts again");
    assert_eq!(
        again.get_device_snapshot().await.identity_key.public_key,
        identity
    );
}

// ---------------------------------------------------------------------------
// Sessions

async fn fill(b: &DeviceBackend) {
    b.put_identity(ALICE, [1; 32]).await.expect("identity");
    b.put_session(ALICE, b"session").await.expect("session");
    b.store_prekey(5, b"prekey", false).await.expect("prekey");
    b.store_signed_prekey(1, b"spk").await.expect("spk");
    b.set_sync_key(b"k", sync_key(1)).await.expect("sync key");
    b.put_lid_mapping(&lid("111", "15550000001", 1, 1))
        .await
        .expect("lid");
    b.set_sender_key_status(GROUP, &[(ALICE_1, true)])
        .await
        .expect("skd");
    b.store_sent_message(ALICE, "M1", b"sent")
        .await
        .expect("sent");
    b.put_msg_secrets(vec![secret(ALICE, "M1", 1, 10, 1)])
        .await
        .expect("secret");
    b.store_pending_inbound(ALICE, ALICE, "S1", b"pending")
        .await
        .expect("pending");
    b.save(&Device::new()).await.expect("device");
}

async fn is_empty(b: &DeviceBackend) -> bool {
    b.load_identity(ALICE).await.expect("identity").is_none()
        && !b.has_session(ALICE).await.expect("session")
        && b.get_max_prekey_id().await.expect("prekey") == 0
        && b.load_all_signed_prekeys().await.expect("spk").is_empty()
        && b.get_latest_sync_key_id().await.expect("sync").is_none()
        && b.get_all_lid_mappings().await.expect("lid").is_empty()
        && b.get_pn_mapping("15550000001").await.expect("pn").is_none()
        && b.get_sender_key_devices(GROUP)
            .await
            .expect("skd")
            .is_empty()
        && b.get_msg_secret(ALICE, ALICE, "M1")
            .await
            .expect("secret")
            .is_none()
        && b.get_pending_inbound(ALICE, ALICE, "S1")
            .await
            .expect("pending")
            .is_none()
        && !b.exists().await.expect("device")
}

#[tokio::test]
async fn two_sessions_do_not_see_each_other() {
    let (f, a, b) = setup().await;
    let sales = DeviceBackend::new(f.store.clone(), a);
    let support = DeviceBackend::new(f.store.clone(), b);
    fill(&sales).await;
    assert!(is_empty(&support).await);
    assert!(!is_empty(&sales).await);
    // Deleting in one leaves the other's alone.
    fill(&support).await;
    support
        .take_sent_message(ALICE, "M1")
        .await
        .expect("take")
        .expect("support's");
    support.clear_all_sender_key_devices().await.expect("clear");
    assert_eq!(
        support
            .delete_expired_msg_secrets(100)
            .await
            .expect("sweep"),
        1
    );
    assert_eq!(
        sales.take_sent_message(ALICE, "M1").await.expect("take"),
        Some(b"sent".to_vec())
    );
    assert_eq!(
        sales
            .get_sender_key_devices(GROUP)
            .await
            .expect("skd")
            .len(),
        1
    );
    assert!(
        sales
            .get_msg_secret(ALICE, ALICE, "M1")
            .await
            .expect("s")
            .is_some()
    );
}

#[tokio::test]
async fn a_deleted_session_takes_its_device_state_with_it() {
    let (f, a, b) = setup().await;
    let sales = DeviceBackend::new(f.store.clone(), a);
    let support = DeviceBackend::new(f.store.clone(), b);
    fill(&sales).await;
    fill(&support).await;
    let rows =
        |id: SessionId| format!("SELECT count(*) AS n FROM device_state WHERE session_id = '{id}'");
    assert!(f.count(&rows(a)) > 10);
    f.sql(&format!("DELETE FROM sessions WHERE id = '{a}'"));
    assert_eq!(f.count(&rows(a)), 0);
    assert!(is_empty(&sales).await);
    assert!(!is_empty(&support).await);
    // Writing for a session that is gone fails rather than leaving orphans.
    assert!(sales.put_session(ALICE, b"x").await.is_err());
}

/// The port over PostgreSQL, with a pre-key consumed (deleted) right after
/// each read of pre-keys: the race `mark_prekeys_uploaded` must survive.
struct ConsumedAfterRead(Arc<maveraa_storage::PgStore>);

#[whatsapp_rust::async_trait]
impl DeviceStateStore for ConsumedAfterRead {
    async fn get(
        &self,
        s: SessionId,
        space: &str,
        key: &[u8],
    ) -> Result<Option<Vec<u8>>, maveraa_domain::RepositoryError> {
        self.0.get(s, space, key).await
    }
    async fn get_many(
        &self,
        s: SessionId,
        space: &str,
        keys: &[Vec<u8>],
    ) -> Result<Vec<maveraa_domain::ports::DeviceStateEntry>, maveraa_domain::RepositoryError> {
        let found = self.0.get_many(s, space, keys).await?;
        if space == "prekey" {
            self.0.delete_many(s, space, keys).await?;
        }
        Ok(found)
    }
    async fn put_many(
        &self,
        s: SessionId,
        space: &str,
        entries: &[maveraa_domain::ports::DeviceStateEntry],
    ) -> Result<(), maveraa_domain::RepositoryError> {
        self.0.put_many(s, space, entries).await
    }
    async fn update_existing(
        &self,
        s: SessionId,
        space: &str,
        entries: &[maveraa_domain::ports::DeviceStateEntry],
    ) -> Result<u64, maveraa_domain::RepositoryError> {
        self.0.update_existing(s, space, entries).await
    }
    async fn delete_many(
        &self,
        s: SessionId,
        space: &str,
        keys: &[Vec<u8>],
    ) -> Result<(), maveraa_domain::RepositoryError> {
        self.0.delete_many(s, space, keys).await
    }
    async fn scan(
        &self,
        s: SessionId,
        space: &str,
        prefix: &[u8],
        descending: bool,
        limit: Option<u32>,
    ) -> Result<Vec<maveraa_domain::ports::DeviceStateEntry>, maveraa_domain::RepositoryError> {
        self.0.scan(s, space, prefix, descending, limit).await
    }
    async fn delete_prefix(
        &self,
        s: SessionId,
        space: &str,
        prefix: &[u8],
    ) -> Result<u64, maveraa_domain::RepositoryError> {
        self.0.delete_prefix(s, space, prefix).await
    }
    async fn clear(&self, s: SessionId) -> Result<u64, maveraa_domain::RepositoryError> {
        self.0.clear(s).await
    }
}

#[tokio::test]
async fn a_prekey_consumed_while_marked_uploaded_stays_consumed() {
    let (f, s, _) = setup().await;
    let plain = DeviceBackend::new(f.store.clone(), s);
    plain.store_prekey(1, b"one", false).await.expect("store");
    plain.store_prekey(2, b"two", false).await.expect("store");
    let racing = DeviceBackend::new(Arc::new(ConsumedAfterRead(f.store.clone())), s);
    racing.mark_prekeys_uploaded(&[1]).await.expect("mark");
    assert_eq!(plain.load_prekey(1).await.expect("load"), None);
    assert_eq!(
        plain.load_prekey(2).await.expect("load"),
        Some(Bytes::from_static(b"two"))
    );
    assert_eq!(plain.get_max_prekey_id().await.expect("max"), 2);
}

#[tokio::test]
async fn a_sweep_spares_a_record_its_leftover_index_entry_calls_old() {
    // As if a crash came after a re-store's index write: an index entry
    // says the message was stored long ago; the record says now.
    let (f, s, _) = setup().await;
    let b = DeviceBackend::new(f.store.clone(), s);
    b.store_sent_message(ALICE, "M1", b"fresh")
        .await
        .expect("store");
    let mut stale = ((1_000i64 as u64) ^ (1 << 63)).to_be_bytes().to_vec();
    for part in [ALICE.as_bytes(), b"M1"] {
        stale.extend_from_slice(&u32::try_from(part.len()).expect("short").to_be_bytes());
        stale.extend_from_slice(part);
    }
    f.store
        .put_many(s, "sent_msg_ix", &[(stale, Vec::new())])
        .await
        .expect("a raw index write");
    assert_eq!(
        b.delete_expired_sent_messages(now() - 60)
            .await
            .expect("sweep"),
        0
    );
    // The leftover went; the record and its own entry stay.
    let index = f
        .store
        .scan(s, "sent_msg_ix", &[], false, None)
        .await
        .expect("scan");
    assert_eq!(index.len(), 1);
    assert_eq!(
        b.take_sent_message(ALICE, "M1").await.expect("take"),
        Some(b"fresh".to_vec())
    );
}
