//! Enqueueing outbound messages against a real PostgreSQL, one database
//! per test: what is stored, idempotency keys, and concurrent sends.

mod common;

use std::time::{Duration, Instant};

use chrono::TimeDelta;
use diesel::RunQueryDsl;
use diesel::sql_types::BigInt;
use maveraa_domain::messaging::{MediaInfo, Message, MessageContent, MessageStatus};
use maveraa_domain::ports::{EnqueueOutcome, MessageRepository};
use maveraa_domain::transport::MediaKind;
use maveraa_domain::{PageStart, RepositoryError};
use maveraa_storage::testing::{Fixture, fixture, now, outbound, outbound_at, session, workspace};
use maveraa_storage::{Database, PoolSettings};

use common::{all_conversations, enqueue, get, key, send, statuses};

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
            size: None,
            locator: None,
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
        .expect("conversations")
        .items;
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
        .list_for_conversation(ws, s.id, &m.remote, PageStart::Newest, 10)
        .await
        .expect("list")
        .items;
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
    let settings = PoolSettings {
        max_size: 1,
        min_idle: 1,
        acquire_timeout: Duration::from_millis(300),
        ..PoolSettings::default()
    };
    let f = Fixture::with_pool(&settings);
    let database = f.store.database().clone();
    // Another connection, to see when the sleep has begun.
    let watcher = Database::connect(f.url(), &PoolSettings::default()).expect("pool");
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
