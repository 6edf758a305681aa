//! A simulated WhatsApp provider, for development and integration tests.
//!
//! [`Simulator::transport_for`] gives a [`SimulatorTransport`] for one
//! session. Its [`send`](WhatsAppTransport::send) accepts every message at
//! once with a provider id `sim-<uuid>`, then a spawned tokio task reports,
//! through the [`ProviderEventSink`] given to [`Simulator::set_sink`]:
//!
//! 1. `delivered`, [`SimulatorConfig::delivered_after`] after the send;
//! 2. `read`, [`SimulatorConfig::read_after`] after the send (and never
//!    before `delivered`).
//!
//! Reports are always asynchronous, even with zero delays: `send` returns
//! before the sink sees anything. Without a sink, or outside a tokio
//! runtime, the reports are dropped with a warning.
//!
//! The sink is set after construction because the domain's inbox (the
//! sink) is built from the transports.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use async_trait::async_trait;
use maveraa_domain::clock::{Clock, SystemClock};
use maveraa_domain::messaging::{MessageStatus, ProviderEvent, Session, StatusUpdate};
use maveraa_domain::ports::ProviderEventSink;
use maveraa_domain::transport::{
    OutboundContent, OutboundMessage, TransportError, WhatsAppTransport,
};

/// Prefix of the provider ids the simulator gives outbound messages.
pub const SIMULATOR_ID_PREFIX: &str = "sim-";

/// How the simulator behaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SimulatorConfig {
    /// Time from a send to its `delivered` report (default 1 s).
    pub delivered_after: Duration,
    /// Time from a send to its `read` report (default 3 s). A value below
    /// `delivered_after` reports `read` right after `delivered`.
    pub read_after: Duration,
}

impl Default for SimulatorConfig {
    fn default() -> Self {
        Self {
            delivered_after: Duration::from_secs(1),
            read_after: Duration::from_secs(3),
        }
    }
}

struct Inner {
    config: SimulatorConfig,
    clock: Arc<dyn Clock>,
    sink: OnceLock<Sink>,
    sends: AtomicU64,
}

/// Where reports go: owned, or held by its owner (a sink that holds the
/// simulator itself, as the inbox does through the transports, would
/// otherwise keep both alive forever).
enum Sink {
    Owned(Arc<dyn ProviderEventSink>),
    Borrowed(std::sync::Weak<dyn ProviderEventSink>),
}

impl Sink {
    fn get(&self) -> Option<Arc<dyn ProviderEventSink>> {
        match self {
            Self::Owned(s) => Some(s.clone()),
            Self::Borrowed(s) => s.upgrade(),
        }
    }
}

/// The simulated provider, shared by all simulator sessions. Cloning is
/// cheap and clones share the sink and the send counter.
#[derive(Clone)]
pub struct Simulator {
    inner: Arc<Inner>,
}

impl fmt::Debug for Simulator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Simulator")
            .field("config", &self.inner.config)
            .field("sink_set", &self.inner.sink.get().is_some())
            .field("sends", &self.sent_count())
            .finish()
    }
}

impl Default for Simulator {
    fn default() -> Self {
        Self::new(SimulatorConfig::default())
    }
}

impl Simulator {
    /// A simulator that stamps its reports with the system clock.
    pub fn new(config: SimulatorConfig) -> Self {
        Self::with_clock(config, Arc::new(SystemClock))
    }

    /// A simulator that stamps its reports with `clock`.
    pub fn with_clock(config: SimulatorConfig, clock: Arc<dyn Clock>) -> Self {
        Self {
            inner: Arc::new(Inner {
                config,
                clock,
                sink: OnceLock::new(),
                sends: AtomicU64::new(0),
            }),
        }
    }

    /// Its settings.
    pub fn config(&self) -> SimulatorConfig {
        self.inner.config
    }

    /// Sets where status reports go. Reports of sends made before this
    /// call still reach the sink if they fall due after it. Only the first
    /// sink is kept: a later call is ignored with a warning.
    ///
    /// Returns whether this call set the sink.
    pub fn set_sink(&self, sink: Arc<dyn ProviderEventSink>) -> bool {
        self.put_sink(Sink::Owned(sink))
    }

    /// As [`Simulator::set_sink`], without keeping `sink` alive: for a
    /// sink that holds this simulator (reports after its owner dropped it
    /// are dropped).
    pub fn set_sink_held_elsewhere(&self, sink: &Arc<dyn ProviderEventSink>) -> bool {
        self.put_sink(Sink::Borrowed(Arc::downgrade(sink)))
    }

    fn put_sink(&self, sink: Sink) -> bool {
        let set = self.inner.sink.set(sink).is_ok();
        if !set {
            tracing::warn!("the simulator's event sink is already set: the new one is ignored");
        }
        set
    }

    /// Whether a sink is set.
    pub fn has_sink(&self) -> bool {
        self.inner.sink.get().is_some()
    }

    /// How many messages all sessions of this simulator have sent.
    pub fn sent_count(&self) -> u64 {
        self.inner.sends.load(Ordering::Relaxed)
    }

    /// The transport of `session`: its reports name that session.
    pub fn transport_for(&self, session: &Session) -> SimulatorTransport {
        SimulatorTransport {
            inner: Arc::clone(&self.inner),
            session: Arc::new(session.clone()),
        }
    }
}

/// The simulator's [`WhatsAppTransport`] for one session.
#[derive(Clone)]
pub struct SimulatorTransport {
    inner: Arc<Inner>,
    session: Arc<Session>,
}

impl fmt::Debug for SimulatorTransport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SimulatorTransport")
            .field("session_id", &self.session.id)
            .field("session_name", &self.session.name)
            .finish_non_exhaustive()
    }
}

impl SimulatorTransport {
    /// The session it sends through.
    pub fn session(&self) -> &Session {
        &self.session
    }
}

#[async_trait]
impl WhatsAppTransport for SimulatorTransport {
    async fn send(&self, message: &OutboundMessage) -> Result<String, TransportError> {
        let id = format!("{SIMULATOR_ID_PREFIX}{}", uuid::Uuid::new_v4().simple());
        self.inner.sends.fetch_add(1, Ordering::Relaxed);
        tracing::debug!(
            session_id = %self.session.id,
            kind = message_kind(message),
            provider_message_id = %id,
            "simulator accepted a message"
        );
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                runtime.spawn(report(
                    Arc::clone(&self.inner),
                    Arc::clone(&self.session),
                    id.clone(),
                ));
            }
            Err(_) => tracing::warn!(
                session_id = %self.session.id,
                provider_message_id = %id,
                "simulator sent outside a tokio runtime: its statuses are dropped"
            ),
        }
        Ok(id)
    }

    async fn mark_read(
        &self,
        provider_message_id: &str,
        _: &maveraa_domain::messaging::WaId,
    ) -> Result<(), TransportError> {
        tracing::debug!(
            session_id = %self.session.id,
            provider_message_id,
            "simulator marked a message read"
        );
        Ok(())
    }
}

fn message_kind(message: &OutboundMessage) -> &'static str {
    match &message.content {
        OutboundContent::Text { .. } => "text",
        OutboundContent::Media(media) => media.kind().as_str(),
    }
}

/// Reports `delivered` then `read` for `id`, on the configured schedule.
async fn report(inner: Arc<Inner>, session: Arc<Session>, id: String) {
    let SimulatorConfig {
        delivered_after,
        read_after,
    } = inner.config;
    tokio::time::sleep(delivered_after).await;
    emit(&inner, &session, &id, MessageStatus::Delivered).await;
    tokio::time::sleep(read_after.saturating_sub(delivered_after)).await;
    emit(&inner, &session, &id, MessageStatus::Read).await;
}

async fn emit(inner: &Inner, session: &Session, id: &str, status: MessageStatus) {
    let Some(sink) = inner.sink.get().and_then(Sink::get) else {
        tracing::warn!(
            session_id = %session.id,
            provider_message_id = id,
            status = status.as_str(),
            "simulator has no event sink: status dropped"
        );
        return;
    };
    let event = ProviderEvent::Status(StatusUpdate {
        provider_message_id: id.to_owned(),
        status,
        timestamp: inner.clock.now(),
        error: None,
        echoed_message_id: None,
    });
    if let Err(err) = sink.deliver(session, vec![event]).await {
        tracing::warn!(
            session_id = %session.id,
            provider_message_id = id,
            status = status.as_str(),
            error = %err,
            "simulator could not deliver a status"
        );
    }
}
