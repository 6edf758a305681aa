//! Helpers shared by the storage integration tests, over the fixture of
//! `maveraa_storage::testing`.

// Each test binary uses some of these.
#![allow(dead_code)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use chrono::DateTime;
use chrono::Utc;
use maveraa_domain::PageStart;
use maveraa_domain::messaging::{
    CloudApiSettings, ConversationQuery, IdempotencyKey, InboundMessage, Message, MessageContent,
    MessageStatus, ProviderSettings, SecretString, Session, StatusUpdate,
};
use maveraa_domain::ports::{
    Claim, DispatchOutcome, EnqueueOutcome, SessionPace, TransportFactory, WebhookProtocol,
};
use maveraa_domain::transport::{OutboundMessage, TransportError, WhatsAppTransport};
use maveraa_storage::testing::{Fixture, now, wa};

pub fn cloud_settings() -> ProviderSettings {
    ProviderSettings::CloudApi(CloudApiSettings {
        phone_number_id: "1234567890".into(),
        access_token: SecretString::new("EAAtoken"),
        app_secret: SecretString::new("appsecret"),
        verify_token: SecretString::new("verify"),
    })
}

pub fn inbound(pid: &str, from: &str, text: &str, push_name: Option<&str>) -> InboundMessage {
    InboundMessage {
        provider_message_id: pid.into(),
        from: wa(from),
        push_name: push_name.map(str::to_owned),
        content: MessageContent::Text { body: text.into() },
        timestamp: now(),
    }
}

pub fn key(k: &str, fingerprint: &str) -> IdempotencyKey {
    IdempotencyKey {
        key: k.into(),
        fingerprint: fingerprint.into(),
    }
}

/// A pace that caps nothing a test queues: tests of claims and records
/// other than pacing take whole batches of one session at once.
pub const UNPACED: SessionPace = SessionPace {
    concurrency: 1_000_000,
    rate_per_sec: None,
};

pub fn status(pid: &str, status: MessageStatus) -> StatusUpdate {
    StatusUpdate {
        provider_message_id: pid.into(),
        status,
        timestamp: now(),
        error: None,
        echoed_message_id: None,
    }
}

/// A lease no test outlives.
pub const LEASE: Duration = Duration::from_secs(60);

pub async fn enqueue(f: &Fixture, m: &Message) {
    assert_eq!(
        f.messages().enqueue(m, None).await.expect("enqueue"),
        EnqueueOutcome::Created
    );
}

/// Enqueues `m`, claims it and records it sent as `pid`.
pub async fn send(f: &Fixture, m: &Message, pid: &str) {
    enqueue(f, m).await;
    let jobs = f
        .outbox()
        .claim("w", 100, LEASE, &UNPACED)
        .await
        .expect("claim");
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

pub async fn get(f: &Fixture, m: &Message) -> Message {
    f.messages()
        .get(m.workspace_id, m.id)
        .await
        .expect("get")
        .expect("message exists")
}

/// Records one outcome.
pub async fn record(f: &Fixture, claim: Claim, outcome: DispatchOutcome, at: DateTime<Utc>) {
    f.outbox()
        .record(&[(claim, outcome)], at)
        .await
        .expect("record");
}

/// The first claim of `m`'s outbox entry.
pub fn first(m: &Message) -> Claim {
    Claim {
        message: m.id,
        attempt: 1,
    }
}

pub fn statuses(m: &Message) -> Vec<MessageStatus> {
    m.history.iter().map(|h| h.status).collect()
}

/// Waits until the lease on `m`'s outbox entry has ended by the
/// database's clock, the one claims go by: a sleep on this process's clock
/// may end before it, and then a claim finds nothing (or a check that
/// nothing is claimed again proves nothing). Fails after 10 s.
pub async fn wait_for_lease_end(f: &Fixture, m: &Message) {
    let ended = format!(
        "SELECT count(*) AS n FROM outbox WHERE message_id = '{}' AND locked_until <= now()",
        m.id
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while f.count(&ended) == 0 {
        assert!(
            Instant::now() < deadline,
            "the lease on {} never ended",
            m.id
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

pub fn all_conversations() -> ConversationQuery {
    ConversationQuery {
        session: None,
        start: PageStart::Newest,
        limit: ConversationQuery::DEFAULT_LIMIT,
    }
}

/// A provider that accepts everything, with ids `wamid.<n>`.
#[derive(Debug, Default)]
pub struct AcceptAll {
    pub sent: AtomicU64,
}

#[async_trait]
impl WhatsAppTransport for AcceptAll {
    async fn send(&self, _message: &OutboundMessage) -> Result<String, TransportError> {
        let n = self.sent.fetch_add(1, Ordering::Relaxed);
        Ok(format!("wamid.{n}"))
    }

    async fn mark_read(
        &self,
        _provider_message_id: &str,
        _: &maveraa_domain::messaging::WaId,
    ) -> Result<(), TransportError> {
        Ok(())
    }
}

#[derive(Debug, Default)]
pub struct Transports(pub Arc<AcceptAll>);

impl TransportFactory for Transports {
    fn transport_for(
        &self,
        _session: &Session,
    ) -> Result<Arc<dyn WhatsAppTransport>, TransportError> {
        Ok(self.0.clone())
    }

    fn webhook_protocol(&self, _session: &Session) -> Option<Arc<dyn WebhookProtocol>> {
        None
    }
}
