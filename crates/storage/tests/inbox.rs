//! Inbound messages and provider statuses against a real PostgreSQL, one
//! database per test.

mod common;

use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use async_trait::async_trait;
use chrono::TimeDelta;
use maveraa_domain::PageStart;
use maveraa_domain::messaging::{
    DeliveryError, Direction, MessageStatus, ProviderEvent, Session, SessionName, SessionStatus,
    StatusUpdate,
};
use maveraa_domain::ports::{
    Claim, DispatchOutcome, MessageRepository, Outbox, ProviderEventSink, SessionRepository,
};
use maveraa_domain::usecases::InboxService;
use maveraa_domain::{InboxError, MessageId, RepositoryError, SessionId, SystemClock, WorkspaceId};
use maveraa_storage::PgStore;
use maveraa_storage::testing::{fixture, name, now, outbound, session, wa, workspace};

use common::{
    AcceptAll, LEASE, Transports, UNPACED, all_conversations, enqueue, first, get, inbound, record,
    send, status, statuses,
};

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
    async fn set_stopped(
        &self,
        workspace: WorkspaceId,
        name: &SessionName,
        stopped: bool,
    ) -> Result<bool, RepositoryError> {
        self.0.set_stopped(workspace, name, stopped).await
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
        .expect("list")
        .items[0];
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
        .expect("list")
        .items[0];
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
        .expect("list")
        .items[0];
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
        .expect("list")
        .items[0];
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
        .list_for_conversation(ws, s.id, &wa(from), PageStart::Newest, 10)
        .await
        .expect("list")
        .items;
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
        .expect("list")
        .items[0];
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
    let jobs = f
        .outbox()
        .claim("w", 10, LEASE, &UNPACED)
        .await
        .expect("claim");
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
        // One recipient each: messages to one recipient are claimed one
        // at a time, in order.
        let m = outbound(&s, &format!("628123456{i:04}"), &format!("m{i}"));
        enqueue(&f, &m).await;
        messages.push(m);
    }
    let jobs = f
        .outbox()
        .claim("w", 100, LEASE, &UNPACED)
        .await
        .expect("claim");
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

#[tokio::test]
async fn a_providers_session_status_reaches_the_session() {
    let f = fixture();
    let ws = workspace(&f, "Acme").await;
    let session = session(&f, ws, "linked").await;
    let inbox = InboxService::new(
        f.store.clone(),
        f.store.clone(),
        Arc::new(Transports(Arc::new(AcceptAll {
            sent: AtomicU64::new(0),
        }))),
        Arc::new(SystemClock),
    );
    let stored = || async {
        let s = f
            .sessions()
            .get(session.id)
            .await
            .expect("read")
            .expect("exists");
        (s.status, s.last_error)
    };

    inbox
        .deliver(
            &session,
            vec![ProviderEvent::SessionStatus {
                status: SessionStatus::Failed,
                reason: Some("logged out\0 from the phone".into()),
            }],
        )
        .await
        .expect("delivered");
    assert_eq!(
        stored().await,
        (
            SessionStatus::Failed,
            Some("logged out from the phone".to_owned())
        ),
        "the reason is stored, without the NUL PostgreSQL's text cannot hold"
    );

    inbox
        .deliver(
            &session,
            vec![ProviderEvent::SessionStatus {
                status: SessionStatus::Connected,
                reason: None,
            }],
        )
        .await
        .expect("delivered");
    assert_eq!(stored().await, (SessionStatus::Connected, None));
}
