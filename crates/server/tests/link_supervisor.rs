//! The supervisor of linked sessions with an engine that says nothing
//! (as the native engine does while it cannot reach WhatsApp), over a real
//! PostgreSQL: the session is shown `disconnected`, still trying, rather
//! than `starting` forever; stopping lets its hold go.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use maveraa_domain::messaging::{ProviderSettings, Session, SessionStatus};
use maveraa_domain::ports::{
    Link, LinkConnection, LinkEngine, LinkEventStream, SessionLinks, TransportError,
    WhatsAppTransport,
};
use maveraa_domain::transport::OutboundMessage;
use maveraa_server::app::links::LinkSupervisor;
use maveraa_storage::testing::{fixture, new_session, workspace};
use maveraa_whatsapp_transport::LiveLinks;

/// An engine whose connections never report anything.
struct Silent;

struct Nothing;

#[async_trait]
impl LinkEventStream for Nothing {
    async fn next(&mut self) -> Option<maveraa_domain::messaging::LinkEvent> {
        std::future::pending().await
    }
}

struct Mute;

#[async_trait]
impl WhatsAppTransport for Mute {
    async fn send(&self, _: &OutboundMessage) -> Result<String, TransportError> {
        Err(TransportError::Unreachable {
            reason: "silent".into(),
        })
    }
    async fn mark_read(
        &self,
        _: &str,
        _: &maveraa_domain::messaging::WaId,
    ) -> Result<(), TransportError> {
        Ok(())
    }
}

#[async_trait]
impl LinkConnection for Mute {
    async fn pair_code(&self, _: &str) -> Result<String, TransportError> {
        Err(TransportError::Unreachable {
            reason: "silent".into(),
        })
    }
    async fn logout(&self) -> Result<(), TransportError> {
        Ok(())
    }
    async fn close(&self) {}
}

#[async_trait]
impl LinkEngine for Silent {
    async fn open(&self, _: &Session) -> Result<Link, TransportError> {
        Ok(Link {
            connection: Arc::new(Mute),
            events: Box::new(Nothing),
        })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_connection_shows_its_session_disconnected_and_a_stop_lets_it_go() {
    let f = fixture();
    let ws = workspace(&f, "Acme").await;
    let mut s = new_session(ws, "phone", ProviderSettings::WhatsAppWeb);
    s.status = SessionStatus::Starting;
    f.sessions().insert(&s).await.expect("session");
    let supervisor = LinkSupervisor {
        holder: "test-server".into(),
        links: f.store.clone(),
        engine: Arc::new(Silent),
        sink: Arc::new(NoSink),
        live: Arc::new(LiveLinks::default()),
        outbox_bell: Arc::default(),
        hold: Duration::from_secs(3),
        poll: Duration::from_millis(50),
        queued_for: None,
        send_interval: Duration::ZERO,
        silent_after: Duration::from_millis(300),
    };
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let running = tokio::spawn(supervisor.run(stopped));
    let deadline = Instant::now() + Duration::from_secs(10);
    let session = loop {
        let got = f.sessions().get(s.id).await.expect("get").expect("session");
        if got.status == SessionStatus::Disconnected {
            break got;
        }
        assert!(Instant::now() < deadline, "still {:?}", got.status);
        tokio::time::sleep(Duration::from_millis(25)).await;
    };
    assert_eq!(
        session.last_error.as_deref(),
        Some("WhatsApp not reached yet; still trying")
    );
    let links: &dyn SessionLinks = f.store.as_ref();
    assert_eq!(links.is_held(s.id).await, Ok(true));
    let _ = stop.send(true);
    tokio::time::timeout(Duration::from_secs(10), running)
        .await
        .expect("stops in time")
        .expect("task");
    assert_eq!(links.is_held(s.id).await, Ok(false), "its hold let go");
}

/// Stores nothing: this engine reports nothing to store.
struct NoSink;

#[async_trait]
impl maveraa_domain::ports::ProviderEventSink for NoSink {
    async fn deliver(
        &self,
        _: &Session,
        _: Vec<maveraa_domain::messaging::ProviderEvent>,
    ) -> Result<(), maveraa_domain::RepositoryError> {
        Ok(())
    }
}
