//! Sessions against a real PostgreSQL, one database per test: stored,
//! looked up, deleted with what they hold, and sends to a deleted one.

mod common;

use std::sync::Arc;

use maveraa_domain::messaging::{
    MessageStatus, MessageText, ProviderSettings, SendMessage, SessionStatus,
};
use maveraa_domain::ports::{EnqueueOutcome, MessageRepository};
use maveraa_domain::transport::OutboundContent;
use maveraa_domain::usecases::MessagingService;
use maveraa_domain::{MessageId, MessagingError, PhoneNumber, RepositoryError, SystemClock};
use maveraa_storage::testing::{fixture, name, new_session, now, outbound, session, workspace};

use common::{cloud_settings, enqueue, inbound, status};

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
