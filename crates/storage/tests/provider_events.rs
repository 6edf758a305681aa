//! What providers report, through the inbox's one sink, over a real
//! PostgreSQL.

use std::sync::Arc;

use maveraa_domain::messaging::{
    ProviderEvent, ProviderSettings, Session, SessionName, SessionStatus,
};
use maveraa_domain::ports::{
    ProviderEventSink, SessionRepository, TransportFactory, WebhookProtocol,
};
use maveraa_domain::transport::{TransportError, WhatsAppTransport};
use maveraa_domain::usecases::{InboxService, WorkspaceService};
use maveraa_domain::{SessionId, SystemClock};
use maveraa_storage::testing::TestDatabase;
use maveraa_storage::{Database, PgStore, PoolSettings};

/// No provider is reached: the events come straight into the sink.
struct NoProviders;

impl TransportFactory for NoProviders {
    fn transport_for(&self, _: &Session) -> Result<Arc<dyn WhatsAppTransport>, TransportError> {
        Err(TransportError::Permanent {
            code: None,
            message: "no provider in these tests".into(),
        })
    }

    fn webhook_protocol(&self, _: &Session) -> Option<Arc<dyn WebhookProtocol>> {
        None
    }
}

#[tokio::test]
async fn a_socket_providers_session_status_reaches_the_session() {
    let db = TestDatabase::create();
    let store = Arc::new(PgStore::new(
        Database::connect(db.url(), &PoolSettings::default()).expect("pool"),
    ));
    let clock = Arc::new(SystemClock);
    let ws = WorkspaceService::new(store.clone(), clock.clone())
        .create("Acme")
        .await
        .expect("workspace")
        .id;
    let session = Session {
        id: SessionId::new(),
        workspace_id: ws,
        name: SessionName::from_trusted_str("linked"),
        provider: ProviderSettings::Simulator,
        status: SessionStatus::Connected,
        last_error: None,
        created_at: chrono::Utc::now(),
    };
    store.insert(&session).await.expect("session");
    let sink: Arc<dyn ProviderEventSink> = Arc::new(InboxService::new(
        store.clone(),
        store.clone(),
        Arc::new(NoProviders),
        clock,
    ));
    let stored = || async {
        let s = store.get(session.id).await.expect("read").expect("exists");
        (s.status, s.last_error)
    };

    sink.deliver(
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

    sink.deliver(
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
