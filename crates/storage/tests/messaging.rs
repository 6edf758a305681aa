//! Sessions, messages, conversations and the outbox against a real
//! PostgreSQL, one database per test.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use chrono::{DateTime, SubsecRound, TimeDelta, Utc};
use diesel::RunQueryDsl;
use diesel::sql_types::BigInt;
use maveraa_domain::messaging::{
    CloudApiSettings, Conversation, ConversationQuery, DeliveryError, Direction, IdempotencyKey,
    InboundMessage, MediaInfo, Message, MessageContent, MessageStatus, MessageText, ProviderEvent,
    ProviderSettings, SecretString, SendMessage, Session, SessionName, SessionStatus, StatusChange,
    StatusUpdate, WaId,
};
use maveraa_domain::ports::{
    Claim, DispatchOutcome, EnqueueOutcome, MessageRepository, Outbox, OutboxJob,
    SessionRepository, TransportFactory, WebhookDecoder,
};
use maveraa_domain::transport::{
    MediaKind, OutboundContent, OutboundMessage, TransportError, WhatsAppTransport,
};
use maveraa_domain::usecases::{
    Dispatcher, DispatcherSettings, InboxService, MessagingService, RetryPolicy, WorkspaceService,
};
use maveraa_domain::{
    InboxError, MessageId, MessagingError, PhoneNumber, RepositoryError, SessionId, SystemClock,
    WorkspaceId,
};
use maveraa_storage::testing::TestDatabase;
use maveraa_storage::{Database, PgStore, PoolSettings};

struct Fixture {
    store: Arc<PgStore>,
    _db: TestDatabase,
}

fn fixture() -> Fixture {
    let db = TestDatabase::create();
    let database = Database::connect(db.url(), &PoolSettings::default()).expect("pool");
    Fixture {
        store: Arc::new(PgStore::new(database)),
        _db: db,
    }
}

impl Fixture {
    fn sessions(&self) -> &dyn SessionRepository {
        self.store.as_ref()
    }

    fn messages(&self) -> &dyn MessageRepository {
        self.store.as_ref()
    }

    fn outbox(&self) -> &dyn Outbox {
        self.store.as_ref()
    }

    /// Runs `sql` (no parameters) and returns how many rows it touched.
    fn sql(&self, sql: &str) -> usize {
        let sql = sql.to_owned();
        self.store
            .database()
            .run_blocking(move |conn| Ok(diesel::sql_query(sql).execute(conn)?))
            .expect("sql")
    }

    /// A `count(*) AS n` query's answer.
    fn count(&self, sql: &str) -> i64 {
        #[derive(diesel::QueryableByName)]
        struct N {
            #[diesel(sql_type = BigInt)]
            n: i64,
        }
        let sql = sql.to_owned();
        self.store
            .database()
            .run_blocking(move |conn| Ok(diesel::sql_query(sql).get_result::<N>(conn)?.n))
            .expect("count")
    }
}

fn now() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(6)
}

async fn workspace(f: &Fixture, name: &str) -> WorkspaceId {
    WorkspaceService::new(f.store.clone(), Arc::new(SystemClock))
        .create(name)
        .await
        .expect("workspace")
        .id
}

fn name(s: &str) -> SessionName {
    SessionName::parse("sessionId", s).expect("session name")
}

fn wa(s: &str) -> WaId {
    WaId::parse("to", s).expect("wa id")
}

fn new_session(ws: WorkspaceId, session: &str, provider: ProviderSettings) -> Session {
    Session {
        id: SessionId::new(),
        workspace_id: ws,
        name: name(session),
        provider,
        status: SessionStatus::Connected,
        last_error: None,
        created_at: now(),
    }
}

fn cloud_settings() -> ProviderSettings {
    ProviderSettings::CloudApi(CloudApiSettings {
        phone_number_id: "1234567890".into(),
        access_token: SecretString::new("EAAtoken"),
        app_secret: SecretString::new("appsecret"),
        verify_token: SecretString::new("verify"),
    })
}

async fn session(f: &Fixture, ws: WorkspaceId, session: &str) -> Session {
    let s = new_session(ws, session, ProviderSettings::Simulator);
    f.sessions().insert(&s).await.expect("session");
    s
}

/// A queued outbound text, as `MessagingService::send` builds it.
fn outbound_at(session: &Session, to: &str, text: &str, at: DateTime<Utc>) -> Message {
    Message {
        id: MessageId::new(),
        workspace_id: session.workspace_id,
        session_id: session.id,
        session_name: session.name.clone(),
        remote: wa(to),
        direction: Direction::Outbound,
        content: MessageContent::Text { body: text.into() },
        status: MessageStatus::Queued,
        provider_message_id: None,
        error: None,
        provider_timestamp: None,
        created_at: at,
        updated_at: at,
        history: vec![StatusChange {
            status: MessageStatus::Queued,
            at,
            error: None,
        }],
    }
}

fn outbound(session: &Session, to: &str, text: &str) -> Message {
    outbound_at(session, to, text, now())
}

fn inbound(pid: &str, from: &str, text: &str, push_name: Option<&str>) -> InboundMessage {
    InboundMessage {
        provider_message_id: pid.into(),
        from: wa(from),
        push_name: push_name.map(str::to_owned),
        content: MessageContent::Text { body: text.into() },
        timestamp: now(),
    }
}

fn key(k: &str, fingerprint: &str) -> IdempotencyKey {
    IdempotencyKey {
        key: k.into(),
        fingerprint: fingerprint.into(),
    }
}

fn status(pid: &str, status: MessageStatus) -> StatusUpdate {
    StatusUpdate {
        provider_message_id: pid.into(),
        status,
        timestamp: now(),
        error: None,
    }
}

const LEASE: Duration = Duration::from_secs(60);

async fn enqueue(f: &Fixture, m: &Message) {
    assert_eq!(
        f.messages().enqueue(m, None).await.expect("enqueue"),
        EnqueueOutcome::Created
    );
}

/// Enqueues `m`, claims it and records it sent as `pid`.
async fn send(f: &Fixture, m: &Message, pid: &str) {
    enqueue(f, m).await;
    let jobs = f.outbox().claim("w", 100, LEASE).await.expect("claim");
    assert!(jobs.iter().any(|j| j.message.id == m.id), "claimed");
    record(
        f,
        first(m),
        DispatchOutcome::Sent {
            provider_message_id: pid.into(),
        },
        now(),
    )
    .await;
}

async fn get(f: &Fixture, m: &Message) -> Message {
    f.messages()
        .get(m.workspace_id, m.id)
        .await
        .expect("get")
        .expect("message exists")
}

/// Records one outcome.
async fn record(f: &Fixture, claim: Claim, outcome: DispatchOutcome, at: DateTime<Utc>) {
    f.outbox()
        .record(&[(claim, outcome)], at)
        .await
        .expect("record");
}

/// The first claim of `m`'s outbox entry.
fn first(m: &Message) -> Claim {
    Claim {
        message: m.id,
        attempt: 1,
    }
}

fn statuses(m: &Message) -> Vec<MessageStatus> {
    m.history.iter().map(|h| h.status).collect()
}

async fn conversations_page(
    f: &Fixture,
    ws: WorkspaceId,
    session: Option<SessionId>,
    before: Option<DateTime<Utc>>,
    limit: u32,
) -> Vec<Conversation> {
    f.messages()
        .list_conversations(
            ws,
            &ConversationQuery {
                session,
                before,
                limit,
            },
        )
        .await
        .expect("list")
}

fn all_conversations() -> ConversationQuery {
    ConversationQuery {
        session: None,
        before: None,
        limit: ConversationQuery::DEFAULT_LIMIT,
    }
}

// ---------------------------------------------------------------------------
// Sessions

#[tokio::test]
async fn sessions_round_trip_and_names_are_unique_per_workspace() {
    let f = fixture();
    let ws = workspace(&f, "Acme").await;
    let other = workspace(&f, "Other").await;
    let sim = new_session(ws, "session-1", ProviderSettings::Simulator);
    let cloud = new_session(ws, "session-2", cloud_settings());
    f.sessions().insert(&sim).await.expect("sim");
    f.sessions().insert(&cloud).await.expect("cloud");

    assert_eq!(
        f.sessions().get_by_name(ws, &sim.name).await.expect("get"),
        Some(sim.clone())
    );
    assert_eq!(
        f.sessions().get(cloud.id).await.expect("get"),
        Some(cloud.clone()),
        "secrets are read back as stored"
    );
    assert_eq!(
        f.sessions().list(ws).await.expect("list"),
        vec![sim.clone(), cloud.clone()],
        "oldest first"
    );

    let dup = new_session(ws, "session-1", ProviderSettings::Simulator);
    assert_eq!(
        f.sessions().insert(&dup).await,
        Err(RepositoryError::Duplicate {
            existing: Some(sim.id.as_uuid())
        })
    );
    // The same name in another workspace is another session.
    f.sessions()
        .insert(&new_session(
            other,
            "session-1",
            ProviderSettings::Simulator,
        ))
        .await
        .expect("other workspace");
    assert_eq!(
        f.sessions()
            .get_by_name(other, &sim.name)
            .await
            .expect("get")
            .map(|s| s.id),
        Some(f.sessions().list(other).await.expect("list")[0].id)
    );
    assert_eq!(
        f.sessions()
            .get_by_name(other, &cloud.name)
            .await
            .expect("get"),
        None,
        "another workspace's session is unknown"
    );

    f.sessions()
        .set_status(
            cloud.id,
            SessionStatus::Failed,
            Some("token expired".into()),
        )
        .await
        .expect("status");
    let failed = f
        .sessions()
        .get(cloud.id)
        .await
        .expect("get")
        .expect("some");
    assert_eq!(failed.status, SessionStatus::Failed);
    assert_eq!(failed.last_error.as_deref(), Some("token expired"));

    // A send that started before the credentials failed, and then timed
    // out, must not hide the credential error.
    f.sessions()
        .set_status(
            cloud.id,
            SessionStatus::Disconnected,
            Some("timed out".into()),
        )
        .await
        .expect("status");
    let still = f
        .sessions()
        .get(cloud.id)
        .await
        .expect("get")
        .expect("some");
    assert_eq!(
        (still.status, still.last_error.as_deref()),
        (SessionStatus::Failed, Some("token expired"))
    );
    // Disconnected follows connected only.
    for (status, error) in [
        (SessionStatus::Connected, None),
        (SessionStatus::Disconnected, Some("timed out")),
    ] {
        f.sessions()
            .set_status(cloud.id, status, error.map(str::to_owned))
            .await
            .expect("status");
    }
    let now_down = f
        .sessions()
        .get(cloud.id)
        .await
        .expect("get")
        .expect("some");
    assert_eq!(
        (now_down.status, now_down.last_error.as_deref()),
        (SessionStatus::Disconnected, Some("timed out"))
    );
}

#[tokio::test]
async fn deleting_a_session_deletes_its_messages_and_conversations() {
    let f = fixture();
    let ws = workspace(&f, "Acme").await;
    let s = session(&f, ws, "s1").await;
    let m = outbound(&s, "6281234567890", "hello");
    enqueue(&f, &m).await;
    f.messages()
        .record_inbound(
            &s,
            MessageId::new(),
            &inbound("in-1", "6281234567891", "hi", None),
            now(),
        )
        .await
        .expect("inbound");
    f.messages()
        .apply_status(s.id, &status("unknown", MessageStatus::Delivered))
        .await
        .expect("pending");

    let other = workspace(&f, "Other").await;
    assert!(!f.sessions().delete(other, &s.name).await.expect("delete"));
    assert!(f.sessions().delete(ws, &s.name).await.expect("delete"));
    assert!(!f.sessions().delete(ws, &s.name).await.expect("again"));

    assert_eq!(f.sessions().get(s.id).await.expect("get"), None);
    assert_eq!(f.messages().get(ws, m.id).await.expect("get"), None);
    for table in [
        "messages",
        "message_status_history",
        "outbox",
        "conversations",
        "pending_statuses",
    ] {
        assert_eq!(
            f.count(&format!("SELECT count(*) AS n FROM {table}")),
            0,
            "{table} is empty"
        );
    }
}

// ---------------------------------------------------------------------------
// Enqueue and idempotency

#[tokio::test]
async fn enqueue_stores_the_message_its_history_outbox_entry_and_conversation() {
    let f = fixture();
    let ws = workspace(&f, "Acme").await;
    let s = session(&f, ws, "s1").await;
    let m = Message {
        content: MessageContent::Media(MediaInfo {
            kind: MediaKind::Image,
            url: Some("https://example.com/cat.jpg".into()),
            provider_media_id: None,
            mime_type: None,
            caption: None,
            file_name: None,
        }),
        ..outbound(&s, "6281234567890", "")
    };
    enqueue(&f, &m).await;

    assert_eq!(
        get(&f, &m).await,
        m,
        "read back equals written, history included"
    );
    assert_eq!(f.count("SELECT count(*) AS n FROM outbox"), 1);

    let conversations = f
        .messages()
        .list_conversations(ws, &all_conversations())
        .await
        .expect("conversations");
    assert_eq!(conversations.len(), 1);
    let c = &conversations[0];
    assert_eq!(
        (c.session_id, &c.session_name, &c.remote),
        (s.id, &s.name, &m.remote)
    );
    assert_eq!(c.last_message, "[image]");
    assert_eq!(c.last_message_at, m.created_at);
    assert_eq!((c.unread_count, &c.push_name), (0, &None));

    let listed = f
        .messages()
        .list_for_conversation(ws, s.id, &m.remote, None, 10)
        .await
        .expect("list");
    assert_eq!(listed.len(), 1);
    assert_eq!(
        listed[0],
        Message {
            history: Vec::new(),
            ..m.clone()
        }
    );
}

#[tokio::test]
async fn a_first_status_stored_by_an_older_version_is_said_once() {
    let f = fixture();
    let ws = workspace(&f, "Acme").await;
    let s = session(&f, ws, "s1").await;
    let m = outbound(&s, "6281234567890", "hi");
    send(&f, &m, "wamid.1").await;
    // Versions before migration 000004 stored the first status as a row
    // (and may still, mid rolling deploy).
    f.sql(&format!(
        "INSERT INTO message_status_history (id, message_id, status, at) \
         VALUES (-1, '{}', 'queued', now())",
        m.id
    ));
    let read = get(&f, &m).await;
    assert_eq!(
        statuses(&read),
        vec![MessageStatus::Queued, MessageStatus::Sent]
    );
    assert_eq!(read.history[0].at, m.created_at);
}

#[tokio::test]
async fn a_key_used_within_a_day_answers_the_first_message() {
    let f = fixture();
    let ws = workspace(&f, "Acme").await;
    let s = session(&f, ws, "s1").await;
    let first = outbound(&s, "6281234567890", "hello");
    assert_eq!(
        f.messages()
            .enqueue(&first, Some(&key("k1", "fp-1")))
            .await
            .expect("first"),
        EnqueueOutcome::Created
    );
    let again = outbound(&s, "6281234567890", "hello");
    assert_eq!(
        f.messages()
            .enqueue(&again, Some(&key("k1", "fp-1")))
            .await
            .expect("again"),
        EnqueueOutcome::Existing {
            message: Box::new(first.clone()),
            fingerprint: "fp-1".into()
        }
    );
    // Another request under the same key gets the stored fingerprint, so
    // the use case can refuse it.
    let different = outbound(&s, "6281234567890", "other text");
    assert!(matches!(
        f.messages().enqueue(&different, Some(&key("k1", "fp-2"))).await,
        Ok(EnqueueOutcome::Existing { fingerprint, .. }) if fingerprint == "fp-1"
    ));
    assert_eq!(f.messages().get(ws, again.id).await.expect("get"), None);
    assert_eq!(f.count("SELECT count(*) AS n FROM messages"), 1);
    assert_eq!(f.count("SELECT count(*) AS n FROM outbox"), 1);

    // Keys belong to a workspace.
    let other = workspace(&f, "Other").await;
    let s2 = session(&f, other, "s1").await;
    assert_eq!(
        f.messages()
            .enqueue(
                &outbound(&s2, "6281234567890", "hello"),
                Some(&key("k1", "fp-1"))
            )
            .await
            .expect("other workspace"),
        EnqueueOutcome::Created
    );
}

#[tokio::test]
async fn a_key_older_than_a_day_can_be_used_again() {
    let f = fixture();
    let ws = workspace(&f, "Acme").await;
    let s = session(&f, ws, "s1").await;
    let first = outbound(&s, "6281234567890", "hello");
    f.messages()
        .enqueue(&first, Some(&key("k1", "fp-1")))
        .await
        .expect("first");
    f.sql("UPDATE messages SET created_at = created_at - interval '25 hours'");

    let second = outbound(&s, "6281234567890", "hello");
    assert_eq!(
        f.messages()
            .enqueue(&second, Some(&key("k1", "fp-2")))
            .await
            .expect("second"),
        EnqueueOutcome::Created
    );
    assert!(f.messages().get(ws, first.id).await.expect("get").is_some());
    assert_eq!(f.count("SELECT count(*) AS n FROM messages"), 2);
    // The key now answers the second message.
    let third = outbound(&s, "6281234567890", "hello");
    assert!(matches!(
        f.messages().enqueue(&third, Some(&key("k1", "fp-3"))).await,
        Ok(EnqueueOutcome::Existing { message, fingerprint })
            if message.id == second.id && fingerprint == "fp-2"
    ));
}

#[tokio::test]
async fn ten_concurrent_requests_with_one_key_store_one_message() {
    let f = fixture();
    let ws = workspace(&f, "Acme").await;
    let s = session(&f, ws, "s1").await;
    let mut tasks = Vec::new();
    for i in 0..10 {
        let store = f.store.clone();
        let m = outbound(&s, "6281234567890", &format!("attempt {i}"));
        tasks.push(tokio::spawn(async move {
            let outcome = store.enqueue(&m, Some(&key("same", "fp"))).await;
            (m.id, outcome)
        }));
    }
    let mut created = Vec::new();
    let mut existing = Vec::new();
    for t in tasks {
        match t.await.expect("task") {
            (id, Ok(EnqueueOutcome::Created)) => created.push(id),
            (_, Ok(EnqueueOutcome::Existing { message, .. })) => existing.push(message.id),
            (_, other) => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!((created.len(), existing.len()), (1, 9));
    assert!(
        existing.iter().all(|id| *id == created[0]),
        "all answer the winner"
    );
    assert_eq!(f.count("SELECT count(*) AS n FROM messages"), 1);
    assert_eq!(f.count("SELECT count(*) AS n FROM outbox"), 1);
    // The first status is the message's own row, not a history row.
    assert_eq!(
        f.count("SELECT count(*) AS n FROM message_status_history"),
        0
    );
}

#[tokio::test]
async fn concurrent_sends_are_each_stored_once_with_the_newest_as_last_message() {
    let f = fixture();
    let ws = workspace(&f, "Acme").await;
    let s = session(&f, ws, "s1").await;
    let start = now();
    let mut tasks = Vec::new();
    for i in 0..120 {
        let store = f.store.clone();
        // Ten recipients, twelve messages each, stamped 1 ms apart.
        let to = format!("62812345678{:02}", i % 10);
        let at = start + TimeDelta::milliseconds(i);
        let m = outbound_at(&s, &to, &format!("message {i}"), at);
        tasks.push(tokio::spawn(async move { store.enqueue(&m, None).await }));
    }
    for t in tasks {
        assert_eq!(
            t.await.expect("task").expect("enqueue"),
            EnqueueOutcome::Created
        );
    }
    assert_eq!(f.count("SELECT count(*) AS n FROM messages"), 120);
    assert_eq!(f.count("SELECT count(*) AS n FROM outbox"), 120);
    assert_eq!(
        f.count("SELECT count(*) AS n FROM message_status_history"),
        0
    );
    assert_eq!(f.count("SELECT count(*) AS n FROM conversations"), 10);
    // Each conversation shows its newest message: i = 110..119.
    assert_eq!(
        f.count(
            "SELECT count(*) AS n FROM conversations c
             WHERE c.last_message = 'message 11' || right(c.remote, 1)
               AND c.last_message_at = (SELECT max(created_at) FROM messages m
                                        WHERE m.remote = c.remote)"
        ),
        10
    );
}

/// Sends whose flush jobs cannot run in time (every database thread busy
/// past the acquire timeout) fail as unavailable and store nothing, none
/// waits forever, and sending works again once the threads are free.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sends_that_cannot_be_flushed_in_time_fail_and_sending_recovers() {
    let db = TestDatabase::create();
    let settings = PoolSettings {
        max_size: 1,
        min_idle: 1,
        acquire_timeout: Duration::from_millis(300),
        ..PoolSettings::default()
    };
    let database = Database::connect(db.url(), &settings).expect("pool");
    // Another connection, to see when the sleep has begun.
    let watcher = Database::connect(db.url(), &PoolSettings::default()).expect("pool");
    let f = Fixture {
        store: Arc::new(PgStore::new(database.clone())),
        _db: db,
    };
    let ws = workspace(&f, "Acme").await;
    let s = session(&f, ws, "s1").await;

    // The one database thread sleeps well past the acquire timeout.
    let sleeper = tokio::spawn({
        let database = database.clone();
        async move {
            database
                .run(|conn| Ok(diesel::sql_query("SELECT pg_sleep(1.5)").execute(conn)?))
                .await
        }
    });
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        #[derive(diesel::QueryableByName)]
        struct N {
            #[diesel(sql_type = BigInt)]
            n: i64,
        }
        let sleeping = watcher
            .run(|conn| {
                Ok(diesel::sql_query(
                    "SELECT count(*) AS n FROM pg_stat_activity \
                     WHERE state = 'active' AND query LIKE 'SELECT pg_sleep%'",
                )
                .get_result::<N>(conn)?
                .n)
            })
            .await
            .expect("watch");
        if sleeping > 0 {
            break;
        }
        assert!(Instant::now() < deadline, "the sleep never began");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let mut tasks = Vec::new();
    for i in 0..6 {
        let store = f.store.clone();
        let m = outbound(&s, "6281234567890", &format!("message {i}"));
        tasks.push(tokio::spawn(async move { store.enqueue(&m, None).await }));
    }
    for t in tasks {
        let outcome = tokio::time::timeout(Duration::from_secs(10), t)
            .await
            .expect("no send waits forever")
            .expect("task");
        assert!(
            matches!(outcome, Err(RepositoryError::Unavailable(_))),
            "{outcome:?}"
        );
    }
    sleeper.await.expect("task").expect("sleep");
    assert_eq!(f.count("SELECT count(*) AS n FROM messages"), 0);

    let m = outbound(&s, "6281234567890", "after");
    enqueue(&f, &m).await;
    assert_eq!(f.count("SELECT count(*) AS n FROM messages"), 1);
}

#[tokio::test]
async fn a_send_to_a_deleted_session_stores_nothing_and_says_so() {
    let f = fixture();
    let ws = workspace(&f, "Acme").await;
    let gone = session(&f, ws, "gone").await;
    let kept = session(&f, ws, "kept").await;
    assert!(f.sessions().delete(ws, &gone.name).await.expect("delete"));
    let mut tasks = Vec::new();
    for i in 0..40 {
        let store = f.store.clone();
        let s = if i % 2 == 0 { &gone } else { &kept };
        let m = outbound(s, "6281234567890", &format!("message {i}"));
        tasks.push(tokio::spawn(async move { store.enqueue(&m, None).await }));
    }
    for (i, t) in tasks.into_iter().enumerate() {
        let expected = if i % 2 == 0 {
            EnqueueOutcome::SessionGone
        } else {
            EnqueueOutcome::Created
        };
        assert_eq!(
            t.await.expect("task").expect("enqueue"),
            expected,
            "send {i}"
        );
    }
    assert_eq!(f.count("SELECT count(*) AS n FROM messages"), 20);
    assert_eq!(f.count("SELECT count(*) AS n FROM outbox"), 20);
}

#[tokio::test]
async fn sending_follows_a_session_deleted_and_created_again() {
    let f = fixture();
    let ws = workspace(&f, "Acme").await;
    let first = session(&f, ws, "main").await;
    let service = MessagingService::new(f.store.clone(), f.store.clone(), Arc::new(SystemClock));
    let send = |text: &str| SendMessage {
        session: name("main"),
        to: PhoneNumber::parse("targetNumber", "6281234567890").expect("phone"),
        content: OutboundContent::Text {
            body: MessageText::parse("message", text).expect("text"),
        },
    };
    let sent = service.send(ws, send("one"), None).await.expect("send");
    assert_eq!(sent.message.session_id, first.id);

    assert!(f.sessions().delete(ws, &first.name).await.expect("delete"));
    assert!(matches!(
        service.send(ws, send("two"), None).await,
        Err(MessagingError::SessionNotFound)
    ));

    let second = session(&f, ws, "main").await;
    let sent = service.send(ws, send("three"), None).await.expect("send");
    assert_eq!(sent.message.session_id, second.id);
    assert_eq!(
        f.count(&format!(
            "SELECT count(*) AS n FROM messages WHERE session_id = '{}'",
            second.id
        )),
        1
    );
}

// ---------------------------------------------------------------------------
// Inbound

/// Sessions as stored, except that a session found by name is deleted right
/// after it is read: the race of a delete between an inbound message's
/// session lookup and its insert, made certain.
struct DeletedAfterLookup(Arc<PgStore>);

#[async_trait]
impl SessionRepository for DeletedAfterLookup {
    async fn insert(&self, session: &Session) -> Result<(), RepositoryError> {
        self.0.insert(session).await
    }
    async fn get_by_name(
        &self,
        workspace: WorkspaceId,
        name: &SessionName,
    ) -> Result<Option<Session>, RepositoryError> {
        let found = SessionRepository::get_by_name(self.0.as_ref(), workspace, name).await?;
        SessionRepository::delete(self.0.as_ref(), workspace, name).await?;
        Ok(found)
    }
    async fn get(&self, id: SessionId) -> Result<Option<Session>, RepositoryError> {
        SessionRepository::get(self.0.as_ref(), id).await
    }
    async fn list(&self, workspace: WorkspaceId) -> Result<Vec<Session>, RepositoryError> {
        SessionRepository::list(self.0.as_ref(), workspace).await
    }
    async fn delete(
        &self,
        workspace: WorkspaceId,
        name: &SessionName,
    ) -> Result<bool, RepositoryError> {
        SessionRepository::delete(self.0.as_ref(), workspace, name).await
    }
    async fn set_status(
        &self,
        id: SessionId,
        status: SessionStatus,
        last_error: Option<String>,
    ) -> Result<(), RepositoryError> {
        self.0.set_status(id, status, last_error).await
    }
}

/// Webhook payloads play no part in a simulated inbound message.
struct NoWebhooks;

impl WebhookDecoder for NoWebhooks {
    fn verify_signature(&self, _: &str, _: &[u8], _: Option<&str>) -> bool {
        false
    }
    fn decode(&self, _: &[u8]) -> Result<Vec<ProviderEvent>, String> {
        Err("not used here".into())
    }
}

#[tokio::test]
async fn an_inbound_message_for_a_session_deleted_meanwhile_is_not_found() {
    let f = fixture();
    let ws = workspace(&f, "Acme").await;
    session(&f, ws, "sim").await;
    let inbox = InboxService::new(
        Arc::new(DeletedAfterLookup(f.store.clone())),
        f.store.clone(),
        Arc::new(Transports(Arc::new(AcceptAll {
            sent: AtomicU64::new(0),
        }))),
        Arc::new(NoWebhooks),
        Arc::new(SystemClock),
    );
    let outcome = inbox
        .simulate_inbound(ws, &name("sim"), wa("6281234567890"), None, "hello".into())
        .await;
    assert!(
        matches!(outcome, Err(InboxError::SessionNotFound)),
        "{outcome:?}"
    );
    assert_eq!(f.count("SELECT count(*) AS n FROM messages"), 0);
}

#[tokio::test]
async fn inbound_messages_are_stored_once_and_update_the_conversation() {
    let f = fixture();
    let ws = workspace(&f, "Acme").await;
    let s = session(&f, ws, "s1").await;
    let from = "6281234567890";
    let first = inbound("wamid.1", from, "hi", Some("Jane"));
    let id = MessageId::new();
    let first_received = now();
    assert!(
        f.messages()
            .record_inbound(&s, id, &first, first_received)
            .await
            .expect("new")
    );
    assert!(
        !f.messages()
            .record_inbound(&s, MessageId::new(), &first, now())
            .await
            .expect("redelivery"),
        "a redelivery is recognised"
    );
    let stored = f.messages().get(ws, id).await.expect("get").expect("some");
    assert_eq!(stored.direction, Direction::Inbound);
    assert_eq!(stored.status, MessageStatus::Received);
    assert_eq!(stored.provider_message_id.as_deref(), Some("wamid.1"));
    // Stored at our receive time; the sender's time is kept beside it.
    assert_eq!(stored.created_at, first_received);
    assert_eq!(stored.provider_timestamp, Some(first.timestamp));
    assert_eq!(statuses(&stored), vec![MessageStatus::Received]);

    let c = &f
        .messages()
        .list_conversations(ws, &all_conversations())
        .await
        .expect("list")[0];
    assert_eq!(
        (
            c.push_name.as_deref(),
            c.unread_count,
            c.last_message.as_str()
        ),
        (Some("Jane"), 1, "hi")
    );

    // Without a push name the known one stays; with one it is replaced.
    let second = inbound("wamid.2", from, "are you there?", None);
    f.messages()
        .record_inbound(&s, MessageId::new(), &second, now())
        .await
        .expect("second");
    let third = inbound("wamid.3", from, "hello?", Some("Jane D."));
    let third_received = now();
    f.messages()
        .record_inbound(&s, MessageId::new(), &third, third_received)
        .await
        .expect("third");
    let c = &f
        .messages()
        .list_conversations(ws, &all_conversations())
        .await
        .expect("list")[0];
    assert_eq!(
        (
            c.push_name.as_deref(),
            c.unread_count,
            c.last_message.as_str()
        ),
        (Some("Jane D."), 3, "hello?")
    );
    // Stamped with when we received it (microseconds), not the sender's
    // whole-second timestamp.
    assert_eq!(c.last_message_at, third_received);

    // An answer moves the preview but leaves the unread count.
    enqueue(&f, &outbound(&s, from, "yes!")).await;
    let c = &f
        .messages()
        .list_conversations(ws, &all_conversations())
        .await
        .expect("list")[0];
    assert_eq!((c.unread_count, c.last_message.as_str()), (3, "yes!"));

    assert_eq!(
        f.messages()
            .mark_conversation_read(ws, s.id, &wa(from))
            .await
            .expect("read"),
        Some(Some("wamid.3".to_owned())),
        "the latest inbound message is named"
    );
    let c = &f
        .messages()
        .list_conversations(ws, &all_conversations())
        .await
        .expect("list")[0];
    assert_eq!(c.unread_count, 0);
    assert_eq!(
        f.messages()
            .mark_conversation_read(ws, s.id, &wa("6289999999999"))
            .await
            .expect("read"),
        None,
        "no such conversation"
    );

    let listed = f
        .messages()
        .list_for_conversation(ws, s.id, &wa(from), None, 10)
        .await
        .expect("list");
    assert_eq!(listed.len(), 4);
}

#[tokio::test]
async fn mark_read_of_a_conversation_without_inbound_messages() {
    let f = fixture();
    let ws = workspace(&f, "Acme").await;
    let s = session(&f, ws, "s1").await;
    enqueue(&f, &outbound(&s, "6281234567890", "hello")).await;
    assert_eq!(
        f.messages()
            .mark_conversation_read(ws, s.id, &wa("6281234567890"))
            .await
            .expect("read"),
        Some(None)
    );
}

#[tokio::test]
async fn ten_concurrent_redeliveries_store_one_message() {
    let f = fixture();
    let ws = workspace(&f, "Acme").await;
    let s = session(&f, ws, "s1").await;
    let m = inbound("wamid.same", "6281234567890", "hi", Some("Jane"));
    let mut tasks = Vec::new();
    for _ in 0..10 {
        let store = f.store.clone();
        let (s, m) = (s.clone(), m.clone());
        tasks.push(tokio::spawn(async move {
            store.record_inbound(&s, MessageId::new(), &m, now()).await
        }));
    }
    let mut new = 0;
    for t in tasks {
        if t.await.expect("task").expect("record") {
            new += 1;
        }
    }
    assert_eq!(new, 1);
    assert_eq!(f.count("SELECT count(*) AS n FROM messages"), 1);
    let c = &f
        .messages()
        .list_conversations(ws, &all_conversations())
        .await
        .expect("list")[0];
    assert_eq!(c.unread_count, 1);
}

// ---------------------------------------------------------------------------
// Statuses

#[tokio::test]
async fn statuses_only_move_forward() {
    let f = fixture();
    let ws = workspace(&f, "Acme").await;
    let s = session(&f, ws, "s1").await;
    let m = outbound(&s, "6281234567890", "hello");
    send(&f, &m, "wamid.out").await;
    let sent = get(&f, &m).await;
    assert_eq!(sent.status, MessageStatus::Sent);
    assert_eq!(sent.provider_message_id.as_deref(), Some("wamid.out"));

    let apply = |st| {
        let f = &f;
        async move {
            f.messages()
                .apply_status(s.id, &status("wamid.out", st))
                .await
                .expect("apply")
        }
    };
    assert!(
        !apply(MessageStatus::Sent).await,
        "sent again changes nothing"
    );
    assert!(apply(MessageStatus::Delivered).await);
    assert!(apply(MessageStatus::Read).await);
    assert!(
        !apply(MessageStatus::Delivered).await,
        "a late delivered keeps read"
    );
    assert!(!apply(MessageStatus::Failed).await);
    let read = get(&f, &m).await;
    assert_eq!(read.status, MessageStatus::Read);
    assert_eq!(
        statuses(&read),
        vec![
            MessageStatus::Queued,
            MessageStatus::Sent,
            MessageStatus::Delivered,
            MessageStatus::Read
        ]
    );
    assert!(read.updated_at >= m.updated_at);

    // Another session's statuses do not touch it.
    let s2 = session(&f, ws, "s2").await;
    assert!(
        !f.messages()
            .apply_status(s2.id, &status("wamid.out", MessageStatus::Failed))
            .await
            .expect("apply")
    );
    assert_eq!(get(&f, &m).await.status, MessageStatus::Read);
}

#[tokio::test]
async fn a_failed_status_carries_its_error_and_a_delivery_clears_it() {
    let f = fixture();
    let ws = workspace(&f, "Acme").await;
    let s = session(&f, ws, "s1").await;
    let m = outbound(&s, "6281234567890", "hello");
    send(&f, &m, "wamid.f").await;
    let error = DeliveryError {
        code: Some("131026".into()),
        message: "Message undeliverable".into(),
    };
    let failed = StatusUpdate {
        error: Some(error.clone()),
        ..status("wamid.f", MessageStatus::Failed)
    };
    assert!(
        f.messages()
            .apply_status(s.id, &failed)
            .await
            .expect("failed")
    );
    let stored = get(&f, &m).await;
    assert_eq!(stored.status, MessageStatus::Failed);
    assert_eq!(stored.error, Some(error.clone()));
    assert_eq!(
        stored.history.last().and_then(|h| h.error.clone()),
        Some(error)
    );

    // A phone that got it proves it did not fail.
    assert!(
        f.messages()
            .apply_status(s.id, &status("wamid.f", MessageStatus::Delivered))
            .await
            .expect("delivered")
    );
    let stored = get(&f, &m).await;
    assert_eq!(
        (stored.status, stored.error),
        (MessageStatus::Delivered, None)
    );
}

#[tokio::test]
async fn statuses_before_the_provider_id_wait_and_are_applied_by_the_send() {
    let f = fixture();
    let ws = workspace(&f, "Acme").await;
    let s = session(&f, ws, "s1").await;
    let m = outbound(&s, "6281234567890", "hello");
    enqueue(&f, &m).await;
    let jobs = f.outbox().claim("w", 10, LEASE).await.expect("claim");
    assert_eq!(jobs.len(), 1);

    // The webhooks beat the provider's answer, and come out of order.
    let t0 = now();
    let read = StatusUpdate {
        timestamp: t0 + TimeDelta::seconds(2),
        ..status("wamid.early", MessageStatus::Read)
    };
    let delivered = StatusUpdate {
        timestamp: t0 + TimeDelta::seconds(1),
        ..status("wamid.early", MessageStatus::Delivered)
    };
    for u in [&read, &delivered] {
        assert!(!f.messages().apply_status(s.id, u).await.expect("pending"));
    }
    assert_eq!(f.count("SELECT count(*) AS n FROM pending_statuses"), 2);
    assert_eq!(get(&f, &m).await.status, MessageStatus::Queued);

    record(
        &f,
        first(&m),
        DispatchOutcome::Sent {
            provider_message_id: "wamid.early".into(),
        },
        t0,
    )
    .await;
    let stored = get(&f, &m).await;
    assert_eq!(stored.status, MessageStatus::Read);
    assert_eq!(
        statuses(&stored),
        vec![
            MessageStatus::Queued,
            MessageStatus::Sent,
            MessageStatus::Delivered,
            MessageStatus::Read
        ],
        "applied in the order they happened"
    );
    assert_eq!(stored.updated_at, read.timestamp);
    assert_eq!(f.count("SELECT count(*) AS n FROM pending_statuses"), 0);
    assert_eq!(f.count("SELECT count(*) AS n FROM outbox"), 0);
}

#[tokio::test]
async fn pending_statuses_nobody_claims_are_purged_after_a_week() {
    let f = fixture();
    let ws = workspace(&f, "Acme").await;
    let s = session(&f, ws, "s1").await;
    for pid in ["old-1", "old-2"] {
        f.messages()
            .apply_status(s.id, &status(pid, MessageStatus::Delivered))
            .await
            .expect("pending");
    }
    f.sql("UPDATE pending_statuses SET created_at = now() - interval '8 days'");
    f.messages()
        .apply_status(s.id, &status("new", MessageStatus::Delivered))
        .await
        .expect("pending");
    assert_eq!(
        f.count("SELECT count(*) AS n FROM pending_statuses WHERE provider_message_id = 'new'"),
        1
    );
    assert_eq!(f.count("SELECT count(*) AS n FROM pending_statuses"), 1);
}

#[tokio::test]
async fn racing_statuses_and_sends_lose_nothing() {
    // Each round: a delivered status and the record of the send, at once.
    let f = fixture();
    let ws = workspace(&f, "Acme").await;
    let s = session(&f, ws, "s1").await;
    let mut messages = Vec::new();
    for i in 0..40 {
        let m = outbound(&s, "6281234567890", &format!("m{i}"));
        enqueue(&f, &m).await;
        messages.push(m);
    }
    let jobs = f.outbox().claim("w", 100, LEASE).await.expect("claim");
    assert_eq!(jobs.len(), 40);
    let mut tasks = Vec::new();
    for (i, m) in messages.iter().enumerate() {
        let pid = format!("wamid.race.{i}");
        let (store, id, sid) = (f.store.clone(), m.id, s.id);
        let update = status(&pid, MessageStatus::Delivered);
        tasks.push(tokio::spawn(async move {
            store.apply_status(sid, &update).await.map(|_| ())
        }));
        let store = f.store.clone();
        tasks.push(tokio::spawn(async move {
            store
                .record(
                    &[(
                        Claim {
                            message: id,
                            attempt: 1,
                        },
                        DispatchOutcome::Sent {
                            provider_message_id: pid,
                        },
                    )],
                    now(),
                )
                .await
        }));
    }
    for t in tasks {
        t.await.expect("task").expect("ok");
    }
    for m in &messages {
        assert_eq!(
            get(&f, m).await.status,
            MessageStatus::Delivered,
            "{}",
            m.id
        );
    }
    assert_eq!(f.count("SELECT count(*) AS n FROM pending_statuses"), 0);
}

// ---------------------------------------------------------------------------
// Outbox

#[tokio::test]
async fn two_concurrent_claimers_share_the_due_entries_without_overlap() {
    let f = fixture();
    let ws = workspace(&f, "Acme").await;
    let s = session(&f, ws, "s1").await;
    let mut all = HashSet::new();
    for i in 0..200 {
        let m = outbound(&s, "6281234567890", &format!("m{i}"));
        enqueue(&f, &m).await;
        all.insert(m.id);
    }
    let claimer = |worker: &'static str| {
        let store = f.store.clone();
        tokio::spawn(async move {
            let mut mine = Vec::new();
            loop {
                let jobs = store.claim(worker, 7, LEASE).await.expect("claim");
                if jobs.is_empty() {
                    return mine;
                }
                for j in jobs {
                    assert_eq!(j.attempt, 1);
                    mine.push(j.message.id);
                }
            }
        })
    };
    let (a, b) = (claimer("a"), claimer("b"));
    let (a, b) = (a.await.expect("a"), b.await.expect("b"));
    let a_set: HashSet<_> = a.iter().copied().collect();
    let b_set: HashSet<_> = b.iter().copied().collect();
    assert_eq!(a_set.len(), a.len(), "no entry twice to one claimer");
    assert!(a_set.is_disjoint(&b_set), "no entry to both");
    assert_eq!(&a_set | &b_set, all, "every entry to one");
    assert_eq!(
        f.count("SELECT count(*) AS n FROM outbox WHERE locked_by = 'a'"),
        i64::try_from(a.len()).expect("len")
    );
}

#[tokio::test]
async fn a_claimed_entry_comes_back_only_when_its_lease_ends() {
    let f = fixture();
    let ws = workspace(&f, "Acme").await;
    let s = Session {
        provider: cloud_settings(),
        ..new_session(ws, "cloud", ProviderSettings::Simulator)
    };
    f.sessions().insert(&s).await.expect("session");
    let m = outbound(&s, "6281234567890", "hello");
    enqueue(&f, &m).await;

    let jobs = f
        .outbox()
        .claim("a", 10, Duration::from_secs(2))
        .await
        .expect("claim");
    assert_eq!(jobs.len(), 1);
    assert_eq!(
        jobs[0].message,
        Message {
            history: Vec::new(),
            ..m.clone()
        }
    );
    assert_eq!(jobs[0].session, s, "with its session and settings");
    assert_eq!(jobs[0].attempt, 1);
    assert!(
        f.outbox()
            .claim("b", 10, LEASE)
            .await
            .expect("claim")
            .is_empty(),
        "held by a's lease"
    );

    tokio::time::sleep(Duration::from_millis(2200)).await;
    let again = f.outbox().claim("b", 10, LEASE).await.expect("claim");
    assert_eq!(again.len(), 1, "a died: the entry is due again");
    assert_eq!((again[0].message.id, again[0].attempt), (m.id, 2));
}

/// A queued message claimed by dispatcher "a" with a short lease that runs
/// out, then claimed again by "b": the session, the message, a's claim and
/// b's.
async fn claimed_twice(f: &Fixture) -> (Session, Message, OutboxJob, OutboxJob) {
    let ws = workspace(f, "Acme").await;
    let s = session(f, ws, "s1").await;
    let m = outbound(&s, "6281234567890", "hello");
    enqueue(f, &m).await;
    let mut slow = f
        .outbox()
        .claim("a", 10, Duration::from_millis(200))
        .await
        .expect("claim");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut taken_over = f.outbox().claim("b", 10, LEASE).await.expect("claim");
    assert_eq!(taken_over.len(), 1, "a's lease ran out: b claims it");
    assert_eq!(taken_over[0].attempt, 2);
    let (a, b) = (slow.remove(0), taken_over.remove(0));
    (s, m, a, b)
}

#[tokio::test]
async fn a_late_outcome_of_an_expired_claim_leaves_the_new_claim_alone() {
    let f = fixture();
    let (_, m, slow, taken_over) = claimed_twice(&f).await;

    // a's send finally fails: neither its retry nor its failure may undo
    // b's claim (a retry would let a third dispatcher send it too).
    let late = slow.claim();
    record(
        &f,
        late,
        DispatchOutcome::Retry {
            at: now(),
            error: "timeout".into(),
        },
        now(),
    )
    .await;
    record(
        &f,
        late,
        DispatchOutcome::Failed(DeliveryError {
            code: None,
            message: "late".into(),
        }),
        now(),
    )
    .await;
    assert_eq!(
        f.count("SELECT count(*) AS n FROM outbox WHERE locked_by = 'b' AND locked_until > now()"),
        1,
        "still b's"
    );
    assert!(
        f.outbox()
            .claim("c", 10, LEASE)
            .await
            .expect("claim")
            .is_empty()
    );
    assert_eq!(get(&f, &m).await.status, MessageStatus::Queued);

    // b's outcome decides.
    record(
        &f,
        taken_over.claim(),
        DispatchOutcome::Sent {
            provider_message_id: "wamid.b".into(),
        },
        now(),
    )
    .await;
    let stored = get(&f, &m).await;
    assert_eq!(
        (stored.status, stored.provider_message_id.as_deref()),
        (MessageStatus::Sent, Some("wamid.b"))
    );
    assert_eq!(f.count("SELECT count(*) AS n FROM outbox"), 0);
}

#[tokio::test]
async fn a_late_sent_counts_after_a_newer_claim_failed_the_message() {
    let f = fixture();
    let (s, m, slow, taken_over) = claimed_twice(&f).await;
    // b's attempt is refused (say the provider took a's copy and refuses
    // the second) and fails the message.
    record(
        &f,
        taken_over.claim(),
        DispatchOutcome::Failed(DeliveryError {
            code: Some("131000".into()),
            message: "refused".into(),
        }),
        now(),
    )
    .await;
    assert_eq!(get(&f, &m).await.status, MessageStatus::Failed);

    // a's send went through after all: the provider has the message, and
    // its statuses can only be matched through the provider id.
    record(
        &f,
        slow.claim(),
        DispatchOutcome::Sent {
            provider_message_id: "wamid.a".into(),
        },
        now(),
    )
    .await;
    let stored = get(&f, &m).await;
    assert_eq!(
        (
            stored.status,
            stored.provider_message_id.as_deref(),
            stored.error.as_ref()
        ),
        (MessageStatus::Sent, Some("wamid.a"), None)
    );
    assert_eq!(
        statuses(&stored),
        vec![
            MessageStatus::Queued,
            MessageStatus::Failed,
            MessageStatus::Sent
        ]
    );
    assert!(
        f.messages()
            .apply_status(s.id, &status("wamid.a", MessageStatus::Delivered))
            .await
            .expect("apply")
    );
    assert_eq!(get(&f, &m).await.status, MessageStatus::Delivered);

    // Once sent, a later failure of a claim changes nothing.
    record(
        &f,
        taken_over.claim(),
        DispatchOutcome::Failed(DeliveryError {
            code: None,
            message: "late".into(),
        }),
        now(),
    )
    .await;
    assert_eq!(get(&f, &m).await.status, MessageStatus::Delivered);
}

#[tokio::test]
async fn a_retry_waits_by_the_database_clock_whatever_the_servers_clock_says() {
    let f = fixture();
    let ws = workspace(&f, "Acme").await;
    let s = session(&f, ws, "s1").await;
    let m = outbound(&s, "6281234567890", "hello");
    enqueue(&f, &m).await;
    assert_eq!(
        f.outbox().claim("a", 10, LEASE).await.expect("claim").len(),
        1
    );
    // This server's clock runs two days ahead of the database's, and its
    // backoff says 30 s.
    let server_now = now() + TimeDelta::days(2);
    record(
        &f,
        first(&m),
        DispatchOutcome::Retry {
            at: server_now + TimeDelta::seconds(30),
            error: "HTTP 503".into(),
        },
        server_now,
    )
    .await;
    assert_eq!(
        f.count(
            "SELECT count(*) AS n FROM outbox WHERE next_attempt_at \
             BETWEEN now() + interval '25 seconds' AND now() + interval '30 seconds'"
        ),
        1,
        "30 s from now by the database's clock"
    );
}

/// An outbox whose first `record` fails as if the database were busy,
/// then the real one.
struct BusyOnce {
    store: Arc<PgStore>,
    failed: std::sync::atomic::AtomicBool,
}

#[async_trait]
impl Outbox for BusyOnce {
    async fn claim(
        &self,
        worker: &str,
        limit: u32,
        lease: Duration,
    ) -> Result<Vec<maveraa_domain::ports::OutboxJob>, RepositoryError> {
        self.store.claim(worker, limit, lease).await
    }
    async fn record(
        &self,
        results: &[(Claim, DispatchOutcome)],
        at: DateTime<Utc>,
    ) -> Result<(), RepositoryError> {
        if !self.failed.swap(true, Ordering::SeqCst) {
            return Err(RepositoryError::Unavailable("pool busy".into()));
        }
        self.store.record(results, at).await
    }
}

#[tokio::test]
async fn a_sent_storage_could_not_take_is_recorded_before_the_next_claim() {
    let f = fixture();
    let ws = workspace(&f, "Acme").await;
    let s = session(&f, ws, "s1").await;
    let m = outbound(&s, "6281234567890", "hello");
    enqueue(&f, &m).await;
    let transport = Arc::new(AcceptAll::default());
    let lease = Duration::from_millis(300);
    let dispatcher = dispatcher_over(
        Arc::new(BusyOnce {
            store: f.store.clone(),
            failed: std::sync::atomic::AtomicBool::new(false),
        }),
        transport.clone(),
        "a",
        lease,
    );
    assert!(
        dispatcher.run_once().await.is_err(),
        "the outcome could not be recorded"
    );
    assert_eq!(transport.sent.load(Ordering::Relaxed), 1);
    assert_eq!(get(&f, &m).await.status, MessageStatus::Queued);

    // The lease runs out meanwhile: the entry is due again, but the kept
    // outcome is recorded before anything is claimed.
    tokio::time::sleep(lease + Duration::from_millis(100)).await;
    assert_eq!(dispatcher.run_once().await.expect("run"), 0, "nothing due");
    assert_eq!(transport.sent.load(Ordering::Relaxed), 1, "sent once");
    let stored = get(&f, &m).await;
    assert_eq!(
        (stored.status, stored.provider_message_id.as_deref()),
        (MessageStatus::Sent, Some("wamid.0"))
    );
    assert_eq!(f.count("SELECT count(*) AS n FROM outbox"), 0);
}

/// An outbox that refuses for good to record anything about one message
/// (as for a provider id another message has), and is the real one else.
struct RefusesOne {
    store: Arc<PgStore>,
    refused: MessageId,
}

#[async_trait]
impl Outbox for RefusesOne {
    async fn claim(
        &self,
        worker: &str,
        limit: u32,
        lease: Duration,
    ) -> Result<Vec<OutboxJob>, RepositoryError> {
        self.store.claim(worker, limit, lease).await
    }
    async fn record(
        &self,
        results: &[(Claim, DispatchOutcome)],
        at: DateTime<Utc>,
    ) -> Result<(), RepositoryError> {
        if results.iter().any(|(c, _)| c.message == self.refused) {
            return Err(RepositoryError::Duplicate { existing: None });
        }
        self.store.record(results, at).await
    }
}

#[tokio::test]
async fn an_outcome_storage_refuses_for_good_does_not_hold_up_the_others() {
    let f = fixture();
    let ws = workspace(&f, "Acme").await;
    let s = session(&f, ws, "s1").await;
    let refused = outbound(&s, "6281234567890", "refused");
    enqueue(&f, &refused).await;
    let transport = Arc::new(AcceptAll::default());
    let dispatcher = dispatcher_over(
        Arc::new(RefusesOne {
            store: f.store.clone(),
            refused: refused.id,
        }),
        transport.clone(),
        "a",
        LEASE,
    );
    assert!(dispatcher.run_once().await.is_err(), "refused");
    // A message queued later is still sent: the refused outcome is not
    // retried before every claim.
    let later = outbound(&s, "6281234567891", "later");
    enqueue(&f, &later).await;
    assert_eq!(dispatcher.run_once().await.expect("run"), 1);
    assert_eq!(get(&f, &later).await.status, MessageStatus::Sent);
}

#[tokio::test]
async fn an_entry_this_version_cannot_read_does_not_hold_up_the_others() {
    let f = fixture();
    let ws = workspace(&f, "Acme").await;
    let s = session(&f, ws, "s1").await;
    let good = outbound(&s, "6281234567890", "good");
    let odd = outbound(&s, "6281234567891", "odd");
    enqueue(&f, &good).await;
    enqueue(&f, &odd).await;
    // A status a newer version might write.
    f.sql(&format!(
        "UPDATE messages SET status = 'scheduled' WHERE id = '{}'",
        odd.id
    ));
    let jobs = f.outbox().claim("a", 10, LEASE).await.expect("claim");
    let ids: Vec<MessageId> = jobs.iter().map(|j| j.message.id).collect();
    assert_eq!(ids, vec![good.id], "the readable entry is handed out");
    assert_eq!(
        f.count(&format!(
            "SELECT count(*) AS n FROM outbox WHERE message_id = '{}' \
             AND locked_by = 'a' AND locked_until > now()",
            odd.id
        )),
        1,
        "the other stays claimed until its lease ends"
    );
}

#[tokio::test]
async fn a_retried_entry_waits_for_its_time() {
    let f = fixture();
    let ws = workspace(&f, "Acme").await;
    let s = session(&f, ws, "s1").await;
    let m = outbound(&s, "6281234567890", "hello");
    enqueue(&f, &m).await;
    assert_eq!(
        f.outbox().claim("a", 10, LEASE).await.expect("claim").len(),
        1
    );
    record(
        &f,
        first(&m),
        DispatchOutcome::Retry {
            at: now() + TimeDelta::hours(1),
            error: "HTTP 503".into(),
        },
        now(),
    )
    .await;
    assert!(
        f.outbox()
            .claim("a", 10, LEASE)
            .await
            .expect("claim")
            .is_empty()
    );
    assert_eq!(
        f.count(
            "SELECT count(*) AS n FROM outbox WHERE last_error = 'HTTP 503' \
             AND locked_by IS NULL AND locked_until IS NULL AND next_attempt_at > now()"
        ),
        1
    );
    assert_eq!(get(&f, &m).await.status, MessageStatus::Queued);

    f.sql("UPDATE outbox SET next_attempt_at = now() - interval '1 second'");
    let jobs = f.outbox().claim("a", 10, LEASE).await.expect("claim");
    assert_eq!((jobs.len(), jobs[0].attempt), (1, 2));
}

#[tokio::test]
async fn a_failed_outcome_fails_the_message_and_ends_the_entry() {
    let f = fixture();
    let ws = workspace(&f, "Acme").await;
    let s = session(&f, ws, "s1").await;
    let failing = outbound(&s, "6281234567890", "hello");
    let retried = outbound(&s, "6281234567890", "again");
    let sent = outbound(&s, "6281234567890", "ok");
    for m in [&failing, &retried, &sent] {
        enqueue(&f, m).await;
    }
    assert_eq!(
        f.outbox().claim("a", 10, LEASE).await.expect("claim").len(),
        3
    );
    let error = DeliveryError {
        code: Some("131030".into()),
        message: "Recipient not in allowed list".into(),
    };
    // Mixed outcomes in one call: one transaction.
    f.outbox()
        .record(
            &[
                (first(&failing), DispatchOutcome::Failed(error.clone())),
                (
                    first(&retried),
                    DispatchOutcome::Retry {
                        at: now() + TimeDelta::minutes(5),
                        error: "timeout".into(),
                    },
                ),
                (
                    first(&sent),
                    DispatchOutcome::Sent {
                        provider_message_id: "wamid.ok".into(),
                    },
                ),
            ],
            now(),
        )
        .await
        .expect("record");
    let stored = get(&f, &failing).await;
    assert_eq!(
        (stored.status, stored.error.clone()),
        (MessageStatus::Failed, Some(error.clone()))
    );
    assert_eq!(
        stored.history.last(),
        Some(&StatusChange {
            status: MessageStatus::Failed,
            at: stored.updated_at,
            error: Some(error)
        })
    );
    assert_eq!(get(&f, &sent).await.status, MessageStatus::Sent);
    assert_eq!(get(&f, &retried).await.status, MessageStatus::Queued);
    assert_eq!(
        f.count("SELECT count(*) AS n FROM outbox"),
        1,
        "only the retry is left"
    );

    // An outcome for an entry that is gone (another dispatcher recorded it
    // after this one's lease ran out) changes nothing.
    record(
        &f,
        first(&sent),
        DispatchOutcome::Failed(DeliveryError {
            code: None,
            message: "late".into(),
        }),
        now(),
    )
    .await;
    assert_eq!(get(&f, &sent).await.status, MessageStatus::Sent);
}

// ---------------------------------------------------------------------------
// Conversations and tenants

#[tokio::test]
async fn conversations_list_newest_first_by_page_and_session() {
    let f = fixture();
    let ws = workspace(&f, "Acme").await;
    let s1 = session(&f, ws, "s1").await;
    let s2 = session(&f, ws, "s2").await;
    let t0 = now() - TimeDelta::hours(1);
    let at = |minutes| t0 + TimeDelta::minutes(minutes);
    enqueue(&f, &outbound_at(&s1, "6281000000001", "one", at(1))).await;
    enqueue(&f, &outbound_at(&s2, "6281000000002", "two", at(2))).await;
    enqueue(&f, &outbound_at(&s1, "6281000000003", "three", at(3))).await;
    enqueue(&f, &outbound_at(&s1, "6281000000001", "four", at(4))).await;
    // An older message does not move its conversation back.
    enqueue(&f, &outbound_at(&s2, "6281000000002", "zero", at(0))).await;

    let list = |session: Option<SessionId>, before, limit| {
        let f = &f;
        async move {
            conversations_page(f, ws, session, before, limit)
                .await
                .into_iter()
                .map(|c| (c.remote.as_str().to_owned(), c.last_message, c.session_name))
                .collect::<Vec<_>>()
        }
    };
    let row = |remote: &str, last: &str, s: &Session| {
        (remote.to_owned(), last.to_owned(), s.name.clone())
    };
    assert_eq!(
        list(None, None, 50).await,
        vec![
            row("6281000000001", "four", &s1),
            row("6281000000003", "three", &s1),
            row("6281000000002", "two", &s2),
        ]
    );
    assert_eq!(
        list(None, Some(at(3)), 50).await,
        vec![row("6281000000002", "two", &s2)],
        "strictly older than before"
    );
    assert_eq!(
        list(None, None, 1).await,
        vec![row("6281000000001", "four", &s1)]
    );
    assert_eq!(
        list(Some(s2.id), None, 50).await,
        vec![row("6281000000002", "two", &s2)]
    );

    // Messages of a conversation: newest first, paged by `before`.
    let texts = |before, limit| {
        let f = &f;
        let s1 = s1.clone();
        async move {
            f.messages()
                .list_for_conversation(ws, s1.id, &wa("6281000000001"), before, limit)
                .await
                .expect("list")
                .into_iter()
                .filter_map(|m| m.content.text().map(str::to_owned))
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(texts(None, 10).await, vec!["four", "one"]);
    assert_eq!(texts(None, 1).await, vec!["four"]);
    assert_eq!(texts(Some(at(4)), 10).await, vec!["one"]);
}

/// Conversations and messages stamped with the same instant: paging with
/// `before` = the last item's time misses none and repeats none, because a
/// page never ends inside such a group.
#[tokio::test]
async fn pages_never_end_inside_a_group_of_equal_times() {
    let f = fixture();
    let ws = workspace(&f, "Acme").await;
    let s1 = session(&f, ws, "s1").await;
    let s2 = session(&f, ws, "s2").await;
    let t0 = now() - TimeDelta::hours(1);
    let tie = t0 + TimeDelta::minutes(5);
    // Newest first: 01 alone, then 02..=06 at one instant over two
    // sessions, then 07.
    enqueue(
        &f,
        &outbound_at(&s1, "6281000000001", "m1", t0 + TimeDelta::minutes(9)),
    )
    .await;
    for (i, s) in [(2, &s1), (3, &s2), (4, &s1), (5, &s2), (6, &s1)] {
        enqueue(
            &f,
            &outbound_at(s, &format!("628100000000{i}"), "tied", tie),
        )
        .await;
    }
    enqueue(&f, &outbound_at(&s2, "6281000000007", "m7", t0)).await;

    let page = |session, before, limit| conversations_page(&f, ws, session, before, limit);
    for (session, expected) in [(None, 7), (Some(s1.id), 4)] {
        for limit in [1, 2, 3] {
            let mut seen = Vec::new();
            let mut before = None;
            let mut pages = 0;
            loop {
                let list = page(session, before, limit).await;
                let Some(last) = list.last() else { break };
                before = Some(last.last_message_at);
                seen.extend(list.iter().map(|c| c.remote.as_str().to_owned()));
                pages += 1;
                assert!(pages <= 7, "paging makes progress");
            }
            let mut unique = seen.clone();
            unique.sort();
            unique.dedup();
            assert_eq!(unique.len(), seen.len(), "none twice: {seen:?}");
            assert_eq!(
                seen.len(),
                expected,
                "limit {limit}, session {session:?}: {seen:?}"
            );
        }
    }
    // The page that reaches the group holds all of it.
    let first_two = page(None, None, 2).await;
    assert_eq!(
        first_two.len(),
        6,
        "the 5 tied come together with the first"
    );
    assert_eq!(
        page(None, None, 1).await.len(),
        1,
        "a page before the group is not widened"
    );

    // Messages of one conversation at one instant.
    let c = "6281000000009";
    for text in ["a", "b", "c", "d"] {
        enqueue(&f, &outbound_at(&s1, c, text, tie)).await;
    }
    enqueue(&f, &outbound_at(&s1, c, "older", t0)).await;
    let mut seen = Vec::new();
    let mut before = None;
    loop {
        let list = f
            .messages()
            .list_for_conversation(ws, s1.id, &wa(c), before, 1)
            .await
            .expect("list");
        let Some(last) = list.last() else { break };
        before = Some(last.created_at);
        seen.extend(
            list.iter()
                .filter_map(|m| m.content.text().map(str::to_owned)),
        );
        assert!(seen.len() <= 5, "paging makes progress");
    }
    seen[..4].sort();
    assert_eq!(seen, vec!["a", "b", "c", "d", "older"]);
}

/// Conversation lists take session names from a cache by session id, which
/// is right only because a name never changes: check both.
#[tokio::test]
async fn conversation_lists_name_sessions_through_deletes_and_names_never_change() {
    let f = fixture();
    let ws = workspace(&f, "Acme").await;
    let alpha = session(&f, ws, "alpha").await;
    let beta = session(&f, ws, "beta").await;
    enqueue(&f, &outbound(&alpha, "6281000000001", "to alpha's contact")).await;
    enqueue(&f, &outbound(&beta, "6281000000002", "to beta's contact")).await;
    let names = || async {
        f.messages()
            .list_conversations(ws, &all_conversations())
            .await
            .expect("list")
            .into_iter()
            .map(|c| {
                (
                    c.session_id,
                    c.session_name.as_str().to_owned(),
                    c.last_message,
                )
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(
        names().await,
        vec![
            (beta.id, "beta".to_owned(), "to beta's contact".to_owned()),
            (
                alpha.id,
                "alpha".to_owned(),
                "to alpha's contact".to_owned()
            ),
        ]
    );

    let rename = format!(
        "UPDATE sessions SET name = 'renamed' WHERE id = '{}'",
        beta.id
    );
    let refused = f
        .store
        .database()
        .run_blocking(move |conn| Ok(diesel::sql_query(rename).execute(conn)?))
        .expect_err("a session's name cannot change");
    assert!(refused.to_string().contains("cannot change"), "{refused}");
    // Other columns still can.
    f.sql(&format!(
        "UPDATE sessions SET status = 'failed' WHERE id = '{}'",
        beta.id
    ));

    // "alpha" deleted and created again is another session, named right.
    assert!(f.sessions().delete(ws, &alpha.name).await.expect("delete"));
    let alpha_again = session(&f, ws, "alpha").await;
    enqueue(
        &f,
        &outbound(&alpha_again, "6281000000003", "to the new alpha"),
    )
    .await;
    assert_eq!(
        names().await,
        vec![
            (
                alpha_again.id,
                "alpha".to_owned(),
                "to the new alpha".to_owned()
            ),
            (beta.id, "beta".to_owned(), "to beta's contact".to_owned()),
        ]
    );
}

#[tokio::test]
async fn another_workspace_sees_no_messages_or_conversations() {
    let f = fixture();
    let ws = workspace(&f, "Acme").await;
    let other = workspace(&f, "Other").await;
    let s = session(&f, ws, "s1").await;
    let m = outbound(&s, "6281234567890", "secret plans");
    enqueue(&f, &m).await;
    f.messages()
        .record_inbound(
            &s,
            MessageId::new(),
            &inbound("in-1", "6281234567890", "hi", None),
            now(),
        )
        .await
        .expect("inbound");

    assert_eq!(f.messages().get(other, m.id).await.expect("get"), None);
    assert!(
        f.messages()
            .list_for_conversation(other, s.id, &m.remote, None, 10)
            .await
            .expect("list")
            .is_empty()
    );
    assert!(
        f.messages()
            .list_conversations(other, &all_conversations())
            .await
            .expect("list")
            .is_empty()
    );
    assert!(
        f.messages()
            .list_conversations(
                other,
                &ConversationQuery {
                    session: Some(s.id),
                    ..all_conversations()
                }
            )
            .await
            .expect("list")
            .is_empty()
    );
    assert_eq!(
        f.messages()
            .mark_conversation_read(other, s.id, &m.remote)
            .await
            .expect("read"),
        None
    );
    let c = &f
        .messages()
        .list_conversations(ws, &all_conversations())
        .await
        .expect("list")[0];
    assert_eq!(c.unread_count, 1, "untouched");
}

// ---------------------------------------------------------------------------
// The dispatcher over the store

/// A provider that accepts everything, with ids `wamid.<n>`.
#[derive(Debug, Default)]
struct AcceptAll {
    sent: AtomicU64,
}

#[async_trait]
impl WhatsAppTransport for AcceptAll {
    async fn send(&self, _message: &OutboundMessage) -> Result<String, TransportError> {
        let n = self.sent.fetch_add(1, Ordering::Relaxed);
        Ok(format!("wamid.{n}"))
    }

    async fn mark_read(&self, _provider_message_id: &str) -> Result<(), TransportError> {
        Ok(())
    }
}

#[derive(Debug, Default)]
struct Transports(Arc<AcceptAll>);

impl TransportFactory for Transports {
    fn transport_for(
        &self,
        _session: &Session,
    ) -> Result<Arc<dyn WhatsAppTransport>, TransportError> {
        Ok(self.0.clone())
    }
}

fn dispatcher(f: &Fixture, transport: Arc<AcceptAll>, worker: &str) -> Dispatcher {
    dispatcher_over(f.store.clone(), transport, worker, LEASE)
}

/// A dispatcher on `outbox` (the store, or a wrapper of it).
fn dispatcher_over(
    outbox: Arc<dyn Outbox>,
    transport: Arc<AcceptAll>,
    worker: &str,
    lease: Duration,
) -> Dispatcher {
    Dispatcher::new(
        outbox,
        Arc::new(Transports(transport)),
        Arc::new(SystemClock),
        DispatcherSettings {
            worker: worker.into(),
            batch_size: 100,
            lease,
            retry: RetryPolicy::default(),
        },
    )
}

/// Enqueues `n` messages with `writers` concurrent writers, then drains the
/// outbox with `dispatchers` concurrent dispatchers; returns how long each
/// phase took.
async fn enqueue_and_dispatch(
    f: &Fixture,
    n: usize,
    writers: usize,
    dispatchers: usize,
) -> (Duration, Duration) {
    let ws = workspace(f, "Acme").await;
    let s = session(f, ws, "s1").await;
    let started = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..writers {
        let (store, s) = (f.store.clone(), s.clone());
        tasks.push(tokio::spawn(async move {
            for i in (w..n).step_by(writers) {
                let m = outbound(&s, &format!("62810{i:08}"), "hello");
                store.enqueue(&m, None).await.expect("enqueue");
            }
        }));
    }
    for t in tasks {
        t.await.expect("writer");
    }
    let enqueued = started.elapsed();

    let transport = Arc::new(AcceptAll::default());
    let started = Instant::now();
    let mut tasks = Vec::new();
    for d in 0..dispatchers {
        let dispatcher = dispatcher(f, transport.clone(), &format!("d{d}"));
        tasks.push(tokio::spawn(async move {
            while dispatcher.run_once().await.expect("run") > 0 {}
        }));
    }
    for t in tasks {
        t.await.expect("dispatcher");
    }
    let dispatched = started.elapsed();
    assert_eq!(
        transport.sent.load(Ordering::Relaxed),
        n as u64,
        "each sent once"
    );
    assert_eq!(f.count("SELECT count(*) AS n FROM outbox"), 0);
    assert_eq!(
        f.count("SELECT count(*) AS n FROM messages WHERE status = 'sent' AND provider_message_id IS NOT NULL"),
        i64::try_from(n).expect("n")
    );
    (enqueued, dispatched)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn dispatchers_send_every_queued_message_once() {
    let f = fixture();
    enqueue_and_dispatch(&f, 300, 4, 2).await;
}

/// Throughput: `cargo test -p maveraa-storage --release --test messaging
/// -- --ignored --nocapture throughput`. First each phase alone, then
/// writers and dispatchers at once (the "overall" rate).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "a measurement, not a check"]
async fn throughput() {
    let n = 5000;
    let rate = |d: Duration| n as f64 / d.as_secs_f64();
    let f = fixture();
    let (enqueued, dispatched) = enqueue_and_dispatch(&f, n, 16, 2).await;
    println!(
        "apart: enqueue {n} in {enqueued:?} ({:.0}/s), dispatch {n} in {dispatched:?} ({:.0}/s)",
        rate(enqueued),
        rate(dispatched)
    );

    let f = fixture();
    let ws = workspace(&f, "Acme").await;
    let s = session(&f, ws, "s1").await;
    let transport = Arc::new(AcceptAll::default());
    let started = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..16 {
        let (store, s) = (f.store.clone(), s.clone());
        tasks.push(tokio::spawn(async move {
            for i in (w..n).step_by(16) {
                let m = outbound(&s, &format!("62810{i:08}"), "hello");
                store.enqueue(&m, None).await.expect("enqueue");
            }
        }));
    }
    for d in 0..2 {
        let dispatcher = dispatcher(&f, transport.clone(), &format!("d{d}"));
        let transport = transport.clone();
        tasks.push(tokio::spawn(async move {
            while transport.sent.load(Ordering::Relaxed) < n as u64 {
                if dispatcher.run_once().await.expect("run") == 0 {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            }
        }));
    }
    for t in tasks {
        t.await.expect("task");
    }
    let overall = started.elapsed();
    assert_eq!(f.count("SELECT count(*) AS n FROM outbox"), 0);
    println!(
        "together: {n} enqueued and sent in {overall:?} ({:.0}/s)",
        rate(overall)
    );
}
