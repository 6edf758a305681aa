//! The PostgreSQL adapters against a real PostgreSQL, one database per test.

use std::sync::Arc;

use maveraa_domain::ports::{
    ApiKeyCodec, ApiKeyRepository, ContactRepository, HealthCheck, WorkspaceRepository,
};
use maveraa_domain::usecases::{ApiKeyService, ContactService, WorkspaceService};
use maveraa_domain::{
    ApiKeyHash, ApiKeySecret, ContactError, ContactName, ContactPatch, ContactQuery, Labels,
    NewContact, PhoneNumber, RepositoryError, SystemClock, WorkspaceId,
};
use maveraa_storage::testing::{Fixture, TestDatabase, fixture, workspace};
use maveraa_storage::{Database, PgStore, PoolSettings, run_migrations};

fn contacts(f: &Fixture) -> ContactService {
    ContactService::new(f.store.clone(), Arc::new(SystemClock))
}

fn new_contact(name: &str, phone: &str, labels: &str) -> NewContact {
    NewContact {
        name: ContactName::parse("name", name).expect("name"),
        phone: PhoneNumber::parse("phone", phone).expect("phone"),
        labels: Labels::parse_csv("labels", labels).expect("labels"),
    }
}

#[tokio::test]
async fn contacts_round_trip_with_all_fields() {
    let f = fixture();
    let ws = workspace(&f, "Acme").await;
    let svc = contacts(&f);
    let created = svc
        .create(
            ws,
            new_contact("Jane Smith", "6289876543210", "Lead, Website"),
        )
        .await
        .expect("create");
    let read = svc.get(ws, created.id).await.expect("get");
    assert_eq!(read, created, "what is read back equals what was written");
    assert_eq!(read.labels.to_vec(), vec!["Lead", "Website"]);
}

#[tokio::test]
async fn duplicate_phone_names_the_existing_contact() {
    let f = fixture();
    let ws = workspace(&f, "Acme").await;
    let svc = contacts(&f);
    let first = svc
        .create(ws, new_contact("Jane", "6289876543210", ""))
        .await
        .expect("create");
    let err = svc
        .create(ws, new_contact("Other", "+62 898-7654-3210", ""))
        .await
        .expect_err("duplicate");
    assert_eq!(err, ContactError::Duplicate { existing: first.id });

    // Updating another contact onto the same phone is a duplicate too.
    let second = svc
        .create(ws, new_contact("John", "6281234567890", ""))
        .await
        .expect("create");
    let err = svc
        .update(
            ws,
            second.id,
            ContactPatch {
                phone: Some(PhoneNumber::parse("phone", "6289876543210").expect("phone")),
                ..ContactPatch::default()
            },
        )
        .await
        .expect_err("duplicate");
    assert_eq!(err, ContactError::Duplicate { existing: first.id });
}

#[tokio::test]
async fn twenty_concurrent_inserts_of_one_phone_store_one() {
    let f = fixture();
    let ws = workspace(&f, "Acme").await;
    let svc = contacts(&f);
    let mut tasks = Vec::new();
    for i in 0..20 {
        let svc = svc.clone();
        tasks.push(tokio::spawn(async move {
            svc.create(ws, new_contact(&format!("n{i}"), "6281234567890", ""))
                .await
        }));
    }
    let mut ok = 0;
    let mut dup = 0;
    for t in tasks {
        match t.await.expect("task") {
            Ok(_) => ok += 1,
            Err(ContactError::Duplicate { .. }) => dup += 1,
            Err(e) => panic!("unexpected {e:?}"),
        }
    }
    assert_eq!((ok, dup), (1, 19));
    let page = svc.list(ws, &ContactQuery::default()).await.expect("list");
    assert_eq!(page.total, 1);
}

#[tokio::test]
async fn listing_filters_pages_and_counts() {
    let f = fixture();
    let ws = workspace(&f, "Acme").await;
    let other = workspace(&f, "Other").await;
    let svc = contacts(&f);
    let phones = [
        "6281234567801",
        "6281234567802",
        "6281234567803",
        "6281234567804",
    ];
    let names = ["Alice 100%", "Bob", "alice_b", "Carol"];
    let labels = ["VIP", "vip, Lead", "", "Lead"];
    for i in 0..4 {
        svc.create(ws, new_contact(names[i], phones[i], labels[i]))
            .await
            .expect("create");
    }
    svc.create(other, new_contact("Alice", phones[0], "VIP"))
        .await
        .expect("create in other");

    let all = svc.list(ws, &ContactQuery::default()).await.expect("list");
    assert_eq!(all.total, 4);
    let order: Vec<&str> = all.contacts.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(
        order,
        vec!["Carol", "alice_b", "Bob", "Alice 100%"],
        "newest first"
    );

    let q = |search: Option<&str>, label: Option<&str>, limit, offset| ContactQuery {
        search: search.map(str::to_owned),
        label: label.map(str::to_owned),
        limit,
        offset,
        after: None,
    };
    let alice = svc
        .list(ws, &q(Some("ALICE"), None, None, 0))
        .await
        .expect("search");
    assert_eq!(alice.total, 2);
    // LIKE wildcards in the search are literal.
    assert_eq!(
        svc.list(ws, &q(Some("100%"), None, None, 0))
            .await
            .expect("s")
            .total,
        1
    );
    assert_eq!(
        svc.list(ws, &q(Some("e_b"), None, None, 0))
            .await
            .expect("s")
            .total,
        1
    );
    // Digits search the phone, whatever the notation.
    let by_phone = svc
        .list(ws, &q(Some("+62 812-3456-7803"), None, None, 0))
        .await
        .expect("s");
    assert_eq!(by_phone.total, 1);
    assert_eq!(by_phone.contacts[0].name.as_str(), "alice_b");
    // Digits in a search that is not written like a number are part of a
    // name: "Bob 1" matches no name, whatever the phones hold.
    assert_eq!(
        svc.list(ws, &q(Some("Bob 1"), None, None, 0))
            .await
            .expect("s")
            .total,
        0
    );
    // Labels compare case-insensitively.
    assert_eq!(
        svc.list(ws, &q(None, Some("VIP"), None, 0))
            .await
            .expect("l")
            .total,
        2
    );
    assert_eq!(
        svc.list(ws, &q(None, Some("lead"), None, 0))
            .await
            .expect("l")
            .total,
        2
    );
    // total counts the whole match, not the page.
    let page = svc
        .list(ws, &q(None, None, Some(2), 1))
        .await
        .expect("page");
    assert_eq!(page.total, 4);
    let names: Vec<&str> = page.contacts.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, vec!["alice_b", "Bob"]);
    let filtered_page = svc
        .list(ws, &q(None, Some("lead"), Some(1), 0))
        .await
        .expect("page");
    assert_eq!((filtered_page.total, filtered_page.contacts.len()), (2, 1));
    // Past the end: an empty page, same total.
    let past = svc
        .list(ws, &q(None, None, Some(10), 10))
        .await
        .expect("past");
    assert_eq!((past.total, past.contacts.len()), (4, 0));
}

#[tokio::test]
async fn the_workspace_count_follows_inserts_and_deletes() {
    let f = fixture();
    let ws = workspace(&f, "Acme").await;
    let svc = contacts(&f);
    let a = svc
        .create(ws, new_contact("A", "6281234567801", ""))
        .await
        .expect("a");
    svc.create(ws, new_contact("B", "6281234567802", ""))
        .await
        .expect("b");
    let dup = svc
        .create(ws, new_contact("dup", "6281234567802", ""))
        .await;
    assert!(
        matches!(dup, Err(ContactError::Duplicate { .. })),
        "a refused duplicate does not count: {dup:?}"
    );
    svc.delete(ws, a.id).await.expect("delete");
    let page = svc.list(ws, &ContactQuery::default()).await.expect("list");
    assert_eq!((page.total, page.contacts.len()), (1, 1));
}

#[tokio::test]
async fn another_workspace_sees_changes_and_deletes_nothing() {
    let f = fixture();
    let a = workspace(&f, "A").await;
    let b = workspace(&f, "B").await;
    let svc = contacts(&f);
    let c = svc
        .create(a, new_contact("Jane", "6289876543210", ""))
        .await
        .expect("c");
    assert_eq!(svc.get(b, c.id).await, Err(ContactError::NotFound));
    assert_eq!(svc.delete(b, c.id).await, Err(ContactError::NotFound));
    let patch = ContactPatch {
        name: Some(ContactName::parse("name", "Hacked").expect("n")),
        ..ContactPatch::default()
    };
    assert_eq!(
        svc.update(b, c.id, patch).await,
        Err(ContactError::NotFound)
    );
    assert_eq!(
        svc.get(a, c.id).await.expect("still there").name.as_str(),
        "Jane"
    );
}

#[derive(Debug)]
struct FixedCodec;
impl maveraa_domain::ports::ApiKeyCodec for FixedCodec {
    fn generate(&self) -> (ApiKeySecret, ApiKeyHash) {
        let n = uuid::Uuid::now_v7();
        let mut bytes = [0u8; 32];
        bytes[..16].copy_from_slice(n.as_bytes());
        (
            ApiKeySecret::new(format!("key-{n}")),
            ApiKeyHash::from_bytes(bytes),
        )
    }
    fn hash(&self, presented: &str) -> Option<ApiKeyHash> {
        let n = uuid::Uuid::parse_str(presented.strip_prefix("key-")?).ok()?;
        let mut bytes = [0u8; 32];
        bytes[..16].copy_from_slice(n.as_bytes());
        Some(ApiKeyHash::from_bytes(bytes))
    }
}

fn key_service(f: &Fixture) -> ApiKeyService {
    ApiKeyService::new(
        f.store.clone(),
        f.store.clone(),
        Arc::new(FixedCodec),
        Arc::new(SystemClock),
    )
}

#[tokio::test]
async fn key_uses_are_recorded_in_batches_and_never_go_back_in_time() {
    let f = fixture();
    let ws = workspace(&f, "Acme").await;
    let keys = key_service(&f);
    let (used, secret) = keys.create(ws, Some("used")).await.expect("key");
    let (idle, _) = keys.create(ws, Some("idle")).await.expect("key");
    assert_eq!(
        keys.record_uses().await.expect("record"),
        0,
        "nothing used yet"
    );

    // Twice through the lookup, then through the cache.
    keys.authenticate(secret.expose()).await.expect("auth");
    keys.authenticate(secret.expose()).await.expect("auth");
    keys.enable_cache();
    keys.authenticate(secret.expose()).await.expect("auth");
    keys.authenticate(secret.expose()).await.expect("cached");
    let before = chrono::Utc::now();
    assert_eq!(keys.record_uses().await.expect("record"), 1, "one key");
    let last_used = |list: &[maveraa_domain::ApiKey], id| {
        list.iter()
            .find(|k| k.id == id)
            .and_then(|k| k.last_used_at)
    };
    let list = keys.list(ws).await.expect("list");
    let first = last_used(&list, used.id).expect("recorded");
    assert!(first >= before - chrono::TimeDelta::seconds(1));
    assert_eq!(last_used(&list, idle.id), None, "an unused key has none");
    assert_eq!(
        keys.record_uses().await.expect("record"),
        0,
        "recorded once"
    );

    // A cache hit alone is a use too; and a server whose clock is behind
    // does not move the time back.
    keys.authenticate(secret.expose()).await.expect("cached");
    assert_eq!(keys.record_uses().await.expect("record"), 1);
    ApiKeyRepository::record_use(
        f.store.as_ref(),
        &[used.id],
        first - chrono::TimeDelta::hours(1),
    )
    .await
    .expect("late");
    let list = keys.list(ws).await.expect("list");
    assert!(last_used(&list, used.id).expect("kept") >= first);
}

#[tokio::test]
async fn api_keys_authenticate_until_revoked() {
    let f = fixture();
    let ws = workspace(&f, "Acme").await;
    let keys = key_service(&f);
    let (record, secret) = keys.create(ws, Some("ci")).await.expect("key");
    let ctx = keys.authenticate(secret.expose()).await.expect("auth");
    assert_eq!(ctx.workspace_id, ws);
    assert_eq!(keys.list(ws).await.expect("list").len(), 1);
    let revoked = keys.revoke(record.id).await.expect("revoke");
    assert!(revoked.revoked_at.is_some());
    assert!(keys.authenticate(secret.expose()).await.is_err());
    // Revoking twice is fine; an unknown key is not found.
    keys.revoke(record.id).await.expect("again");
    assert!(keys.revoke(maveraa_domain::ApiKeyId::new()).await.is_err());
    // A key for a missing workspace is refused.
    assert!(keys.create(WorkspaceId::new(), None).await.is_err());
    // The hash column is unique.
    let dup = ApiKeyRepository::insert(
        f.store.as_ref(),
        &record,
        &FixedCodec.hash(secret.expose()).expect("h"),
    )
    .await;
    assert!(matches!(dup, Err(RepositoryError::Duplicate { .. })));
}

#[tokio::test]
async fn ping_and_repeated_concurrent_migrations() {
    let f = fixture();
    f.store.ping().await.expect("ping");
    // Four starts at once on a database no migration has run on: the
    // advisory lock lets one apply them all, and the others none.
    let db = TestDatabase::create_unmigrated();
    let url = db.url().to_owned();
    let runs: Vec<_> = (0..4)
        .map(|_| {
            let url = url.clone();
            std::thread::spawn(move || run_migrations(&url))
        })
        .collect();
    let mut applied: Vec<usize> = runs
        .into_iter()
        .map(|r| r.join().expect("thread").expect("migrate").len())
        .collect();
    applied.sort_unstable();
    let all = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/../../migrations"))
        .expect("migrations folder")
        .filter(|e| e.as_ref().is_ok_and(|e| e.path().is_dir()))
        .count();
    assert!(all >= 5, "{all} migrations");
    assert_eq!(applied, vec![0, 0, 0, all], "applied once, by one of them");
    let again = TestDatabase::create();
    assert!(
        run_migrations(again.url()).expect("migrate").is_empty(),
        "a migrated database needs nothing"
    );
    let _ = WorkspaceRepository::list(f.store.as_ref())
        .await
        .expect("list");
    let unknown = ContactRepository::list(
        f.store.as_ref(),
        WorkspaceId::new(),
        &ContactQuery::default(),
    )
    .await
    .expect("list of an unknown workspace");
    assert_eq!((unknown.total, unknown.contacts.len()), (0, 0));
}

#[tokio::test]
async fn concurrent_first_starts_create_one_workspace() {
    let f = fixture();
    // Two pools stand for two processes starting at once.
    let other = Arc::new(PgStore::new(
        Database::connect(f.url(), &PoolSettings::default()).expect("pool"),
    ));
    let mut tasks = Vec::new();
    for i in 0..10 {
        let store = if i % 2 == 0 {
            f.store.clone()
        } else {
            other.clone()
        };
        tasks.push(tokio::spawn(async move {
            WorkspaceService::new(store, Arc::new(SystemClock))
                .create_first("Default")
                .await
                .expect("create_first")
        }));
    }
    let mut created = 0;
    for t in tasks {
        if t.await.expect("task").is_some() {
            created += 1;
        }
    }
    assert_eq!(created, 1);
    let all = WorkspaceRepository::list(f.store.as_ref())
        .await
        .expect("list");
    assert_eq!(all.len(), 1);
    assert_eq!(all[0].name.as_str(), "Default");
    // Once there is a workspace, a later first start creates nothing.
    assert!(
        WorkspaceService::new(f.store.clone(), Arc::new(SystemClock))
            .create_first("Default")
            .await
            .expect("create_first")
            .is_none()
    );
}

/// A list reads its rows with decoders of its own (text straight into the
/// domain types, labels from the binary array, `updated_at` only when it
/// differs from `created_at`): every way of listing must give back exactly
/// what `get` gives.
#[tokio::test]
async fn lists_read_back_exactly_what_get_reads() {
    let f = fixture();
    let ws = workspace(&f, "Acme").await;
    let svc = contacts(&f);
    let specs = [
        ("Ana", "6281234567801", ""),
        ("Budi Santoso", "6281234567802", "Lead"),
        (
            "A name longer than twenty-four bytes: Gülşen Yılmaz 王小明 🙂",
            "6281234567803",
            "VIP, Customer, \"Quoted\" \\ label, 日本語のラベル",
        ),
        (
            "O'Brien \"Bud\"",
            "6281234567804",
            "One, Two, Three, Four, Five",
        ),
    ];
    let mut created = Vec::new();
    for (name, phone, labels) in specs {
        created.push(
            svc.create(ws, new_contact(name, phone, labels))
                .await
                .expect("create"),
        );
    }
    // One contact changed later: its updated_at differs from created_at.
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    let changed = svc
        .update(
            ws,
            created[1].id,
            ContactPatch {
                labels: Some(Labels::parse_csv("labels", "Lead, Won").expect("labels")),
                ..ContactPatch::default()
            },
        )
        .await
        .expect("update");
    assert_ne!(changed.updated_at, changed.created_at);

    let mut expected = Vec::new();
    for c in created.iter().rev() {
        expected.push(svc.get(ws, c.id).await.expect("get"));
    }
    let queries = [
        ContactQuery::default(),
        ContactQuery {
            limit: Some(50),
            ..ContactQuery::default()
        },
        ContactQuery {
            search: Some("6281234567".into()),
            ..ContactQuery::default()
        },
    ];
    for query in queries {
        let page = svc.list(ws, &query).await.expect("list");
        assert_eq!(page.total, 4, "{query:?}");
        assert_eq!(page.contacts, expected, "{query:?}");
    }
    assert!(expected.iter().any(|c| c.updated_at != c.created_at));
    assert_eq!(
        expected[0].labels.to_vec(),
        vec!["One", "Two", "Three", "Four", "Five"]
    );
    assert_eq!(
        expected[1].labels.to_vec(),
        vec!["VIP", "Customer", "\"Quoted\" \\ label", "日本語のラベル"]
    );
    assert!(expected[3].labels.is_empty());
}

diesel::define_sql_function! {
    /// The server process serving this connection.
    fn pg_backend_pid() -> diesel::sql_types::Integer;
}

/// A TCP proxy to `upstream` that can cut every connection through it at
/// once, as a network drop or a failover does (no goodbye from the server).
struct Cutter {
    port: u16,
    cut: tokio::sync::watch::Sender<u64>,
    open: Arc<std::sync::atomic::AtomicUsize>,
}

impl Cutter {
    async fn start(upstream: String) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let (cut, cuts) = tokio::sync::watch::channel(0u64);
        let open = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counted = open.clone();
        tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                let upstream = upstream.clone();
                let mut cuts = cuts.clone();
                cuts.mark_unchanged();
                let open = counted.clone();
                open.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                tokio::spawn(async move {
                    if let Ok(mut server) = tokio::net::TcpStream::connect(upstream).await {
                        tokio::select! {
                            _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                            _ = cuts.changed() => {}
                        }
                    }
                    // Both sockets are closed when they drop, here.
                    drop(client);
                    open.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
                });
            }
        });
        Self { port, cut, open }
    }

    /// Cuts every connection, and returns once they are all closed.
    async fn cut_all(&self) {
        self.cut.send_modify(|n| *n += 1);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while self.open.load(std::sync::atomic::Ordering::SeqCst) > 0 {
            assert!(
                std::time::Instant::now() < deadline,
                "connections still open"
            );
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
    }
}

/// `url` with its `host:port` replaced by the proxy's.
fn through(url: &str, port: u16) -> (String, String) {
    let (scheme_user, rest) = url.split_once('@').expect("user@host");
    let end = rest.find(['/', '?']).unwrap_or(rest.len());
    (
        format!("{scheme_user}@127.0.0.1:{port}{}", &rest[end..]),
        rest[..end].to_owned(),
    )
}

// With sequential scans off, a statement that can only scan (the event
// log's one-row head, read by the sequencer ten times a second) is priced
// above `jit_above_cost`, and PostgreSQL compiled it with LLVM at every
// run: a third of a core for an idle server.
#[tokio::test]
async fn pooled_connections_never_compile_a_statement_just_in_time() {
    use diesel::RunQueryDsl;
    #[derive(diesel::QueryableByName)]
    struct Jitted {
        #[diesel(sql_type = diesel::sql_types::Bool)]
        jitted: bool,
    }
    let db = TestDatabase::create();
    for generic_plans in [false, true] {
        let settings = PoolSettings {
            generic_plans,
            ..PoolSettings::default()
        };
        let database = Database::connect(db.url(), &settings).expect("pool");
        let jitted = database
            .run(|conn| {
                diesel::sql_query(
                    "CREATE FUNCTION pg_temp.jitted() RETURNS boolean LANGUAGE plpgsql AS $$
                     DECLARE plan text;
                     BEGIN
                         EXECUTE 'EXPLAIN (ANALYZE, FORMAT JSON) SELECT * FROM event_log_head FOR UPDATE'
                             INTO plan;
                         RETURN (plan::jsonb -> 0) ? 'JIT';
                     END $$",
                )
                .execute(conn)?;
                Ok(diesel::sql_query("SELECT pg_temp.jitted() AS jitted").get_result::<Jitted>(conn)?)
            })
            .await
            .expect("explain");
        assert!(
            !jitted.jitted,
            "compiled just in time (generic plans: {generic_plans})"
        );
    }
}

// Several threads: the pool connects synchronously, through the proxy's
// tasks.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_the_server_closed_is_replaced_not_reused() {
    use diesel::{ExpressionMethods, RunQueryDsl};
    let db = TestDatabase::create();
    let (_, upstream) = through(db.url(), 0);
    let proxy = Cutter::start(upstream).await;
    let (url, _) = through(db.url(), proxy.port);
    let one = PoolSettings {
        max_size: 1,
        min_idle: 1,
        ..PoolSettings::default()
    };
    let database = Database::connect(&url, &one).expect("pool");
    let pid = || database.run(|conn| Ok(diesel::select(pg_backend_pid()).get_result::<i32>(conn)?));
    let first = pid().await.expect("a connection");
    proxy.cut_all().await;
    // A statement this connection has not prepared yet: its failure is
    // one diesel's own check does not see.
    let failed = database
        .run(|conn| Ok(diesel::select(pg_backend_pid().eq(0)).get_result::<bool>(conn)?))
        .await
        .expect_err("the dead connection fails once");
    assert!(failed.connection_is_gone(), "{failed}");
    assert!(
        matches!(
            RepositoryError::from(failed),
            RepositoryError::Unavailable(_)
        ),
        "a 503, worth retrying"
    );
    // Kept, it would fail every later call with "no connection to the
    // server" until r2d2 retired it at its maximum lifetime, half an hour.
    let second = pid().await.expect("a new connection serves the next call");
    assert_ne!(second, first);
}

// A send is stored by a group-commit job on a pooled connection: a job
// that found that connection dead must retire it too, or every later send
// fails on it ("no connection to the server") after a database restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_send_on_a_connection_the_server_ended_retires_it() {
    use diesel::RunQueryDsl;
    use maveraa_domain::messaging::ProviderSettings;
    use maveraa_domain::ports::{MessageRepository, SessionRepository};
    use maveraa_storage::testing::{new_session, outbound};
    let db = TestDatabase::create();
    let one = PoolSettings {
        max_size: 1,
        min_idle: 1,
        ..PoolSettings::default()
    };
    let store = Arc::new(PgStore::new(
        Database::connect(db.url(), &one).expect("pool"),
    ));
    let ws = WorkspaceService::new(store.clone(), Arc::new(SystemClock))
        .create("Acme")
        .await
        .expect("workspace")
        .id;
    let session = new_session(ws, "s1", ProviderSettings::Simulator);
    SessionRepository::insert(store.as_ref(), &session)
        .await
        .expect("session");
    let send = |text: &str| {
        let m = outbound(&session, "6281234567890", text);
        let store = store.clone();
        async move { store.enqueue(&m, None).await }
    };
    send("before").await.expect("stored");
    // What a fast shutdown does to every connection: the server ends it
    // (FATAL "terminating connection due to administrator command").
    let admin = Database::connect(db.url(), &one).expect("admin pool");
    let ended = admin
        .run(|conn| {
            Ok(diesel::sql_query(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
                 WHERE datname = current_database() AND pid <> pg_backend_pid()",
            )
            .execute(conn)?)
        })
        .await
        .expect("terminate");
    assert_eq!(ended, 1, "the store's one connection");
    let failed = send("during")
        .await
        .expect_err("the dead connection fails once");
    assert!(
        matches!(failed, RepositoryError::Unavailable(_)),
        "a 503, worth retrying: {failed}"
    );
    send("after")
        .await
        .expect("a new connection stores the next send");
}

#[tokio::test]
async fn a_revoked_keys_last_uses_still_count() {
    let f = fixture();
    let ws = workspace(&f, "Acme").await;
    let keys = key_service(&f);
    let (key, secret) = keys.create(ws, Some("leaked")).await.expect("key");
    keys.enable_cache();
    keys.authenticate(secret.expose()).await.expect("looked up");
    assert_eq!(keys.record_uses().await.expect("record"), 1);
    keys.authenticate(secret.expose()).await.expect("cached");
    // Revoked before the next recording: that use must not be lost (it
    // is what one looks at after a key leaked).
    keys.revoke(key.id).await.expect("revoke");
    keys.forget(key.id);
    assert_eq!(keys.record_uses().await.expect("record"), 1);
}

/// Keys as stored, except that the service turns its cache on while a
/// lookup is under way: the listener coming back during a slow query.
struct CacheTurnedOnMidLookup {
    store: Arc<PgStore>,
    service: std::sync::OnceLock<ApiKeyService>,
}

#[async_trait::async_trait]
impl ApiKeyRepository for CacheTurnedOnMidLookup {
    async fn insert(
        &self,
        key: &maveraa_domain::ApiKey,
        hash: &ApiKeyHash,
    ) -> Result<(), RepositoryError> {
        ApiKeyRepository::insert(self.store.as_ref(), key, hash).await
    }
    async fn find_by_hash(
        &self,
        hash: &ApiKeyHash,
    ) -> Result<Option<maveraa_domain::ApiKey>, RepositoryError> {
        let found = self.store.find_by_hash(hash).await;
        if let Some(service) = self.service.get() {
            service.enable_cache();
        }
        found
    }
    async fn list(&self, ws: WorkspaceId) -> Result<Vec<maveraa_domain::ApiKey>, RepositoryError> {
        ApiKeyRepository::list(self.store.as_ref(), ws).await
    }
    async fn get(
        &self,
        id: maveraa_domain::ApiKeyId,
    ) -> Result<Option<maveraa_domain::ApiKey>, RepositoryError> {
        ApiKeyRepository::get(self.store.as_ref(), id).await
    }
    async fn revoke(
        &self,
        id: maveraa_domain::ApiKeyId,
        at: chrono::DateTime<chrono::Utc>,
    ) -> Result<bool, RepositoryError> {
        ApiKeyRepository::revoke(self.store.as_ref(), id, at).await
    }
    async fn set_rate_limits(
        &self,
        id: maveraa_domain::ApiKeyId,
        limits: maveraa_domain::KeyRateLimits,
    ) -> Result<bool, RepositoryError> {
        ApiKeyRepository::set_rate_limits(self.store.as_ref(), id, limits).await
    }
    async fn record_use(
        &self,
        ids: &[maveraa_domain::ApiKeyId],
        at: chrono::DateTime<chrono::Utc>,
    ) -> Result<(), RepositoryError> {
        self.store.record_use(ids, at).await
    }
}

#[tokio::test]
async fn a_lookup_that_began_before_the_cache_was_on_is_not_remembered() {
    let f = fixture();
    let ws = workspace(&f, "Acme").await;
    let repo = Arc::new(CacheTurnedOnMidLookup {
        store: f.store.clone(),
        service: std::sync::OnceLock::new(),
    });
    let keys = ApiKeyService::new(
        repo.clone(),
        f.store.clone(),
        Arc::new(FixedCodec),
        Arc::new(SystemClock),
    );
    let _ = repo.service.set(keys.clone());
    let (key, secret) = keys.create(ws, None).await.expect("key");
    keys.authenticate(secret.expose()).await.expect("active");
    // Revoked by another process while revocations could not be heard:
    // nothing tells this one.
    ApiKeyRepository::revoke(f.store.as_ref(), key.id, chrono::Utc::now())
        .await
        .expect("revoke");
    assert!(
        keys.authenticate(secret.expose()).await.is_err(),
        "looked up again, not served from what the earlier lookup read"
    );
}

/// Contacts as stored, except that another request changes the contact's
/// name between this one's read and its write, once.
struct RenamedMeanwhile {
    store: Arc<PgStore>,
    done: std::sync::atomic::AtomicBool,
}

#[async_trait::async_trait]
impl ContactRepository for RenamedMeanwhile {
    async fn insert(&self, c: &maveraa_domain::Contact) -> Result<(), RepositoryError> {
        ContactRepository::insert(self.store.as_ref(), c).await
    }
    async fn get(
        &self,
        ws: WorkspaceId,
        id: maveraa_domain::ContactId,
    ) -> Result<Option<maveraa_domain::Contact>, RepositoryError> {
        ContactRepository::get(self.store.as_ref(), ws, id).await
    }
    async fn list(
        &self,
        ws: WorkspaceId,
        q: &ContactQuery,
    ) -> Result<maveraa_domain::ContactPage, RepositoryError> {
        ContactRepository::list(self.store.as_ref(), ws, q).await
    }
    async fn stream(
        &self,
        ws: WorkspaceId,
        q: &ContactQuery,
    ) -> Result<maveraa_domain::ContactStream, RepositoryError> {
        ContactRepository::stream(self.store.as_ref(), ws, q).await
    }
    async fn update(&self, c: &maveraa_domain::Contact) -> Result<bool, RepositoryError> {
        ContactRepository::update(self.store.as_ref(), c).await
    }
    async fn update_if_unchanged(
        &self,
        c: &maveraa_domain::Contact,
        read: chrono::DateTime<chrono::Utc>,
    ) -> Result<maveraa_domain::ports::ConditionalUpdate, RepositoryError> {
        if !self.done.swap(true, std::sync::atomic::Ordering::SeqCst) {
            let other = ContactService::new(self.store.clone(), Arc::new(SystemClock));
            let patch = ContactPatch {
                name: Some(ContactName::parse("name", "Renamed meanwhile").expect("name")),
                ..ContactPatch::default()
            };
            other
                .update(c.workspace_id, c.id, patch)
                .await
                .expect("the other request");
        }
        self.store.update_if_unchanged(c, read).await
    }
    async fn import(
        &self,
        ws: WorkspaceId,
        on_duplicate: maveraa_domain::OnDuplicate,
        rows: maveraa_domain::ImportedContacts,
    ) -> Result<Option<maveraa_domain::ImportTally>, RepositoryError> {
        ContactRepository::import(self.store.as_ref(), ws, on_duplicate, rows).await
    }
    async fn delete(
        &self,
        ws: WorkspaceId,
        id: maveraa_domain::ContactId,
    ) -> Result<bool, RepositoryError> {
        ContactRepository::delete(self.store.as_ref(), ws, id).await
    }
}

#[tokio::test]
async fn two_patches_of_one_contact_at_once_keep_both_changes() {
    let f = fixture();
    let ws = workspace(&f, "Acme").await;
    let created = contacts(&f)
        .create(
            ws,
            NewContact {
                name: ContactName::parse("name", "Jane").expect("name"),
                phone: PhoneNumber::parse("phone", "6281234567890").expect("phone"),
                labels: Labels::default(),
            },
        )
        .await
        .expect("create");
    let racing = ContactService::new(
        Arc::new(RenamedMeanwhile {
            store: f.store.clone(),
            done: std::sync::atomic::AtomicBool::new(false),
        }),
        Arc::new(SystemClock),
    );
    let labelled = racing
        .update(
            ws,
            created.id,
            ContactPatch {
                labels: Some(Labels::parse_csv("labels", "VIP").expect("labels")),
                ..ContactPatch::default()
            },
        )
        .await
        .expect("update");
    assert_eq!(
        (labelled.name.as_str(), labelled.labels.to_vec()),
        ("Renamed meanwhile", vec!["VIP".to_owned()]),
        "the labels' update did not put the old name back"
    );
    let stored = contacts(&f).get(ws, created.id).await.expect("get");
    assert_eq!(stored.name.as_str(), "Renamed meanwhile");
    assert_eq!(stored.labels.to_vec(), vec!["VIP".to_owned()]);
}

use diesel::Connection as _;

/// The stored count and `count(*)` of the workspace's contacts.
fn counts(f: &Fixture, ws: WorkspaceId) -> (i64, i64) {
    f.contact_counts(ws)
}

/// `n` contacts of `ws` with phones from `first`, in one INSERT.
fn insert_many(ws: WorkspaceId, first: i64, n: i64) -> String {
    format!(
        "INSERT INTO contacts (id, workspace_id, name, phone, labels, created_at, updated_at) \
         SELECT gen_random_uuid(), '{ws}', 'Bulk ' || i, (6281000000000 + i)::text, '{{}}', now(), now() \
         FROM generate_series({first}, {first} + {n} - 1) AS i"
    )
}

#[tokio::test]
async fn twenty_thousand_contacts_in_one_statement_are_counted_once_each() {
    let f = fixture();
    let ws = workspace(&f, "Acme").await;
    let other = workspace(&f, "Other").await;
    assert_eq!(f.sql(&insert_many(ws, 0, 20_000)), 20_000);
    assert_eq!(counts(&f, ws), (20_000, 20_000));
    // One transaction of several statements, over two workspaces, with a
    // delete and a refused duplicate in it.
    f.store
        .database()
        .run_blocking(move |conn| {
            conn.transaction(|conn| {
                use diesel::RunQueryDsl;
                diesel::sql_query(insert_many(ws, 20_000, 5_000)).execute(conn)?;
                diesel::sql_query(insert_many(other, 0, 300)).execute(conn)?;
                diesel::sql_query(format!(
                    "DELETE FROM contacts WHERE workspace_id IN ('{ws}', '{other}') \
                     AND phone LIKE '%7'"
                ))
                .execute(conn)?;
                diesel::sql_query(format!(
                    "{} ON CONFLICT DO NOTHING",
                    insert_many(ws, 24_990, 20)
                ))
                .execute(conn)?;
                Ok::<_, diesel::result::Error>(())
            })?;
            Ok(())
        })
        .expect("transaction");
    // 25,000 minus the 2,500 ending in 7, plus 11 of the last 20
    // (25,000..25,009, and 24,997, deleted before).
    assert_eq!(counts(&f, ws), (22_511, 22_511));
    assert_eq!(counts(&f, other), (270, 270));
    // A transaction rolled back counts nothing.
    let rolled_back = f.store.database().run_blocking(move |conn| {
        conn.transaction(|conn| {
            use diesel::RunQueryDsl;
            diesel::sql_query(insert_many(ws, 100_000, 1_000)).execute(conn)?;
            Err::<(), _>(diesel::result::Error::RollbackTransaction)
        })?;
        Ok(())
    });
    assert!(rolled_back.is_err());
    assert_eq!(counts(&f, ws), (22_511, 22_511));
    let page = contacts(&f)
        .list(ws, &ContactQuery::default())
        .await
        .expect("list");
    assert_eq!(page.total, 22_511, "the list reads the stored count");
    // Deleting the workspace removes its contacts in one cascaded
    // statement; the other workspace's count is untouched.
    f.sql(&format!("DELETE FROM workspaces WHERE id = '{ws}'"));
    assert_eq!(counts(&f, other), (270, 270));
}

#[tokio::test]
async fn concurrent_creates_and_deletes_in_one_workspace_keep_the_count_exact() {
    let f = Fixture::with_pool(&PoolSettings {
        max_size: 8,
        ..PoolSettings::default()
    });
    let ws = workspace(&f, "Acme").await;
    let svc = Arc::new(contacts(&f));
    let writers: Vec<_> = (0..8u64)
        .map(|w| {
            let svc = Arc::clone(&svc);
            tokio::spawn(async move {
                let mut kept = 0u64;
                for i in 0..30u64 {
                    let phone = format!("62812{:08}", w * 1_000 + i);
                    let c = svc
                        .create(ws, new_contact("Racer", &phone, ""))
                        .await
                        .expect("create");
                    // Every third is deleted again while others insert.
                    if i % 3 == 0 {
                        svc.delete(ws, c.id).await.expect("delete");
                    } else {
                        kept += 1;
                    }
                }
                kept
            })
        })
        .collect();
    // A bulk insert of the same workspace runs meanwhile.
    let bulk = {
        let db = f.store.database().clone();
        tokio::task::spawn_blocking(move || {
            db.run_blocking(move |conn| {
                use diesel::RunQueryDsl;
                Ok(diesel::sql_query(insert_many(ws, 0, 2_000)).execute(conn)?)
            })
        })
    };
    let mut kept = 0;
    for w in writers {
        kept += w.await.expect("writer");
    }
    assert_eq!(bulk.await.expect("bulk").expect("bulk insert"), 2_000);
    let expected = i64::try_from(kept).expect("small") + 2_000;
    assert_eq!(kept, 8 * 20);
    assert_eq!(counts(&f, ws), (expected, expected));
}

#[test]
fn migrating_where_pg_trgm_cannot_be_created_says_what_to_run() {
    use diesel::{Connection, PgConnection, RunQueryDsl};
    // A role that may create tables but not extensions, as a hosted
    // database's application role often is.
    let db = TestDatabase::create_unmigrated();
    let role = format!("maveraa_noext_{}", uuid::Uuid::new_v4().simple());
    let mut admin = PgConnection::establish(db.url()).expect("admin connection");
    for statement in [
        format!("CREATE ROLE {role} LOGIN PASSWORD 'noext'"),
        format!("GRANT CREATE ON SCHEMA public TO {role}"),
    ] {
        diesel::sql_query(statement)
            .execute(&mut admin)
            .expect("set up the role");
    }
    let (scheme, rest) = db.url().split_once("://").expect("a URL");
    let host = rest.split_once('@').map_or(rest, |(_, host)| host);
    let url = format!("{scheme}://{role}:noext@{host}");
    let result = run_migrations(&url);
    drop(db);
    diesel::sql_query(format!("DROP ROLE {role}"))
        .execute(&mut PgConnection::establish(fixture().url()).expect("admin"))
        .expect("drop the role");
    let message = match result {
        Err(maveraa_storage::StorageError::Migration(m)) => m,
        other => panic!("expected a migration failure, got {other:?}"),
    };
    assert!(
        message.contains("CREATE EXTENSION pg_trgm;")
            && message.contains("superuser")
            && message.contains("permission denied"),
        "{message}"
    );
}

#[tokio::test]
async fn server_errors_are_classified_by_their_sqlstate() {
    let f = Fixture::with_pool(&PoolSettings {
        statement_timeout: std::time::Duration::from_millis(100),
        ..PoolSettings::default()
    });
    let run = |sql: &'static str| {
        let db = f.store.database().clone();
        async move {
            let result = db
                .run(move |conn| {
                    use diesel::RunQueryDsl;
                    Ok(diesel::sql_query(sql).execute(conn)?)
                })
                .await;
            maveraa_domain::RepositoryError::from(result.expect_err(sql))
        }
    };
    // 57014: worth trying again, whatever language the server speaks.
    assert!(
        matches!(
            run("SELECT pg_sleep(2)").await,
            RepositoryError::Unavailable(_)
        ),
        "a statement timeout"
    );
    // 40P01 raised as the server would: the code decides, not the words.
    assert!(matches!(
        run("DO $$ BEGIN RAISE EXCEPTION 'Verklemmung' USING ERRCODE = '40P01'; END $$").await,
        RepositoryError::Unavailable(_)
    ));
    // 42601: a wrong query stays an internal error.
    assert!(matches!(run("SELEC 1").await, RepositoryError::Internal(_)));
}

#[test]
fn a_dropped_revocation_listener_stops_and_its_thread_is_gone() {
    use maveraa_storage::{RevocationEvent, spawn_revocation_listener};
    use std::sync::mpsc;
    let f = fixture();
    let (events, heard) = mpsc::channel();
    let listener = spawn_revocation_listener(f.url().to_owned(), move |event| {
        let _ = events.send(event);
    })
    .expect("spawn");
    assert_eq!(
        heard.recv_timeout(std::time::Duration::from_secs(10)),
        Ok(RevocationEvent::Listening)
    );
    drop(listener);
    // Joined: the thread, and with it the callback, is gone.
    assert_eq!(heard.try_recv(), Err(mpsc::TryRecvError::Disconnected));
}

/// Dropping a pool's last handle returns once every connection is closed,
/// those r2d2 was still making on its own threads included: a process
/// that exits while one is being made crashes in libcrypto's exit
/// handlers, and a database dropped after its pool kills what is open.
/// Closed is seen from this side: the server notices a client gone only
/// later, so its backends may still be listed, but this process's socket
/// to each of them is no longer established.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_pool_has_closed_every_connection_it_made() {
    #[derive(diesel::QueryableByName)]
    struct Backend {
        #[diesel(sql_type = diesel::sql_types::Integer)]
        client_port: i32,
        #[diesel(sql_type = diesel::sql_types::Integer)]
        server_port: i32,
    }
    let db = TestDatabase::create();
    let observer = Database::connect(db.url(), &PoolSettings::default()).expect("observer");
    let name = db.name().to_owned();
    let backends = || {
        let name = name.clone();
        observer
            .run_blocking(move |conn| {
                Ok(diesel::RunQueryDsl::load::<Backend>(
                    diesel::sql_query(
                        "SELECT client_port, inet_server_port() AS server_port \
                         FROM pg_stat_activity \
                         WHERE datname = $1 AND pid <> pg_backend_pid() AND client_port > 0",
                    )
                    .bind::<diesel::sql_types::Text, _>(name),
                    conn,
                )?)
            })
            .expect("backends")
    };
    // Our established sockets (state 01) from `port` to `server_port`.
    let established = |port: i32, server_port: i32| {
        std::fs::read_to_string("/proc/net/tcp")
            .expect("/proc/net/tcp")
            .lines()
            .skip(1)
            .filter(|line| {
                let cols: Vec<&str> = line.split_whitespace().collect();
                let port_of = |addr: &str| {
                    addr.rsplit(':')
                        .next()
                        .and_then(|p| i32::from_str_radix(p, 16).ok())
                };
                cols.len() > 3
                    && port_of(cols[1]) == Some(port)
                    && port_of(cols[2]) == Some(server_port)
                    && cols[3] == "01"
            })
            .count()
    };
    let settings = PoolSettings {
        max_size: 16,
        ..PoolSettings::default()
    };
    for round in 0..5 {
        let pool = Database::connect(db.url(), &settings).expect("pool");
        // Many callers at once: r2d2 starts a connection for each, and
        // hands out whichever is free first, leaving some still being made.
        let calls: Vec<_> = (0..16)
            .map(|_| {
                let pool = pool.clone();
                tokio::spawn(async move {
                    pool.run(|conn| {
                        diesel::RunQueryDsl::execute(diesel::sql_query("SELECT 1"), conn)?;
                        Ok(())
                    })
                    .await
                })
            })
            .collect();
        for call in calls {
            call.await.expect("task").expect("query");
        }
        let made = backends();
        assert!(!made.is_empty(), "round {round}: the pool made connections");
        drop(pool);
        let open: usize = backends()
            .iter()
            .map(|b| established(b.client_port, b.server_port))
            .sum();
        assert_eq!(
            open, 0,
            "round {round}: connections still open after the drop"
        );
    }
}

/// Phone parts of every length find what a plain substring match finds:
/// 4 digits or more through the digit-group index, fewer by reading.
#[tokio::test]
async fn phone_parts_of_any_length_find_every_matching_phone() {
    let f = fixture();
    let ws = workspace(&f, "Acme").await;
    f.sql(&format!(
        "INSERT INTO contacts (id, workspace_id, name, phone, labels, created_at, updated_at) \
         SELECT gen_random_uuid(), '{ws}', 'Person ' || i, \
                (6281200000000 + i * 7919 % 1000003)::text, '{{}}', now(), now() \
         FROM generate_series(1, 3000) AS i"
    ));
    let svc = contacts(&f);
    for part in [
        "1",
        "79",
        "812",
        "0791",
        "12000",
        "2000079",
        "6281200007919",
        "99999999",
    ] {
        let expected = f.count(&format!(
            "SELECT count(*) AS n FROM contacts WHERE workspace_id = '{ws}' \
             AND (phone LIKE '%{part}%' OR name ILIKE '%{part}%')"
        ));
        for (limit, what) in [(Some(1000), "page"), (None, "whole list")] {
            let page = svc
                .list(
                    ws,
                    &ContactQuery {
                        search: Some(part.to_owned()),
                        limit,
                        ..ContactQuery::default()
                    },
                )
                .await
                .expect("list");
            assert_eq!(
                page.total,
                u64::try_from(expected).expect("n"),
                "{part} {what}"
            );
            if expected <= 1000 {
                assert_eq!(page.contacts.len() as i64, expected, "{part} {what}");
                assert!(
                    page.contacts
                        .iter()
                        .all(|c| c.phone.as_str().contains(part) || c.name.as_str().contains(part)),
                    "{part}"
                );
            }
        }
    }
}
