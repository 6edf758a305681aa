//! A simulated WhatsApp Web, for development and tests (no phone and no
//! WhatsApp server are needed): a session shows QR codes that rotate until
//! it is linked; a pairing-code request links it at once as the phone of
//! the number asked for; it stays linked across restarts and servers (the
//! link is kept in the device state, as the real engine keeps its keys);
//! sends are taken and reported delivered; a logout unlinks it.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::Utc;
use maveraa_domain::SessionId;
use maveraa_domain::messaging::{
    LinkAck, LinkCode, LinkEvent, LinkedAccount, MessageStatus, ProviderEvent, Session,
    StatusUpdate,
};
use maveraa_domain::ports::{
    DeviceStateStore, Link, LinkConnection, LinkEngine, LinkEventStream, TransportError,
    WhatsAppTransport,
};
use maveraa_domain::transport::OutboundMessage;
use tokio::sync::{Notify, mpsc};

/// Where the simulated link is kept in the device state.
const SPACE: &str = "simulator";
const ACCOUNT_KEY: &[u8] = b"account";
/// How long a QR code stays valid after the next one is shown.
const QR_OVERLAP: Duration = Duration::from_secs(2);

/// The simulated engine.
pub struct LinkSimulator {
    state: Arc<dyn DeviceStateStore>,
    qr_every: Duration,
    open: std::sync::Mutex<std::collections::HashMap<SessionId, Arc<SimulatedConnection>>>,
}

impl std::fmt::Debug for LinkSimulator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LinkSimulator")
            .field("qr_every", &self.qr_every)
            .finish_non_exhaustive()
    }
}

impl LinkSimulator {
    /// A simulator keeping its links in `state`, with a new QR code every
    /// `qr_every` (WhatsApp's is about 20 s).
    pub fn new(state: Arc<dyn DeviceStateStore>, qr_every: Duration) -> Self {
        Self {
            state,
            qr_every: qr_every.max(Duration::from_millis(10)),
            open: std::sync::Mutex::default(),
        }
    }

    /// The last connection opened for `session` (tests deliver through it).
    pub fn connection(&self, session: SessionId) -> Option<Arc<SimulatedConnection>> {
        self.open
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(&session)
            .cloned()
    }
}

fn unreachable(e: impl std::fmt::Display) -> TransportError {
    TransportError::Unreachable {
        reason: e.to_string(),
    }
}

/// The account a simulated device (this simulator's, or the fake client's:
/// `space`) was linked as, kept in its device state.
pub(crate) async fn linked_account(
    state: &dyn DeviceStateStore,
    session: SessionId,
    space: &str,
) -> Result<Option<LinkedAccount>, TransportError> {
    let Some(bytes) = state
        .get(session, space, ACCOUNT_KEY)
        .await
        .map_err(unreachable)?
    else {
        return Ok(None);
    };
    let v: serde_json::Value = serde_json::from_slice(&bytes).map_err(unreachable)?;
    Ok(v["jid"].as_str().map(|jid| LinkedAccount {
        jid: jid.to_owned(),
        push_name: v["pushName"].as_str().map(str::to_owned),
    }))
}

/// Keeps `account` as the one a simulated device in `space` is linked as.
pub(crate) async fn keep_linked_account(
    state: &dyn DeviceStateStore,
    session: SessionId,
    space: &str,
    account: &LinkedAccount,
) -> Result<(), TransportError> {
    let value = serde_json::json!({"jid": account.jid, "pushName": account.push_name});
    state
        .put_many(
            session,
            space,
            &[(ACCOUNT_KEY.to_vec(), value.to_string().into_bytes())],
        )
        .await
        .map_err(unreachable)
}

#[async_trait]
impl LinkEngine for LinkSimulator {
    async fn open(&self, session: &Session) -> Result<Link, TransportError> {
        let (events, rx) = mpsc::channel(64);
        let closed = Arc::new(Notify::new());
        let linked = Arc::new(Notify::new());
        let connection = Arc::new(SimulatedConnection {
            session: session.id,
            state: self.state.clone(),
            events: events.clone(),
            closed: closed.clone(),
            linked: linked.clone(),
        });
        self.open
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(session.id, connection.clone());
        match linked_account(self.state.as_ref(), session.id, SPACE).await? {
            Some(me) => {
                let _ = events.send(LinkEvent::Connected(me)).await;
            }
            None => {
                let (qr_every, id) = (self.qr_every, session.id);
                tokio::spawn(async move {
                    for n in 1u64.. {
                        // Valid a little past its successor's arrival, so
                        // there is always one to show.
                        let expires = Utc::now()
                            + chrono::Duration::from_std(qr_every + QR_OVERLAP).unwrap_or_default();
                        let code = LinkCode {
                            code: format!("2@simulated,{id},{n}"),
                            expires_at: expires,
                        };
                        if events.send(LinkEvent::Qr(code)).await.is_err() {
                            return;
                        }
                        tokio::select! {
                            () = tokio::time::sleep(qr_every) => {}
                            () = linked.notified() => return,
                        }
                    }
                });
            }
        }
        Ok(Link {
            connection,
            events: Box::new(SimulatedEvents { rx, closed }),
        })
    }
}

struct SimulatedEvents {
    rx: mpsc::Receiver<LinkEvent>,
    closed: Arc<Notify>,
}

#[async_trait]
impl LinkEventStream for SimulatedEvents {
    async fn next(&mut self) -> Option<LinkEvent> {
        tokio::select! {
            event = self.rx.recv() => event,
            () = self.closed.notified() => None,
        }
    }
}

/// One simulated connection.
pub struct SimulatedConnection {
    session: SessionId,
    state: Arc<dyn DeviceStateStore>,
    events: mpsc::Sender<LinkEvent>,
    closed: Arc<Notify>,
    linked: Arc<Notify>,
}

impl std::fmt::Debug for SimulatedConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimulatedConnection")
            .field("session", &self.session)
            .finish_non_exhaustive()
    }
}

impl SimulatedConnection {
    /// Reports `events` as if WhatsApp delivered them, and waits until the
    /// server says whether it stored them (`true`) before "acknowledging".
    ///
    /// # Errors
    /// When the connection is closed.
    pub async fn deliver(&self, events: Vec<ProviderEvent>) -> Result<bool, TransportError> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let ack = LinkAck::new(move |stored| {
            let _ = tx.send(stored);
        });
        self.events
            .send(LinkEvent::Provider {
                events,
                ack: Some(ack),
            })
            .await
            .map_err(unreachable)?;
        rx.await.map_err(unreachable)
    }
}

#[async_trait]
impl WhatsAppTransport for SimulatedConnection {
    async fn send(&self, message: &OutboundMessage) -> Result<String, TransportError> {
        // WhatsApp Web takes the sender's id for a message: ours, so a
        // retry is the same message.
        let id = message.message_id.map_or_else(
            || format!("SIM{}", uuid::Uuid::new_v4().simple()),
            |m| m.to_string(),
        );
        let delivered = ProviderEvent::Status(StatusUpdate {
            provider_message_id: id.clone(),
            status: MessageStatus::Delivered,
            timestamp: Utc::now(),
            error: None,
            echoed_message_id: message.message_id,
        });
        let events = self.events.clone();
        tokio::spawn(async move {
            let _ = events
                .send(LinkEvent::Provider {
                    events: vec![delivered],
                    ack: None,
                })
                .await;
        });
        Ok(id)
    }

    async fn mark_read(
        &self,
        _provider_message_id: &str,
        _: &maveraa_domain::messaging::WaId,
    ) -> Result<(), TransportError> {
        Ok(())
    }
}

#[async_trait]
impl LinkConnection for SimulatedConnection {
    async fn pair_code(&self, phone: &str) -> Result<String, TransportError> {
        let me = LinkedAccount {
            jid: format!("{phone}@s.whatsapp.net"),
            push_name: Some("Simulated phone".into()),
        };
        keep_linked_account(self.state.as_ref(), self.session, SPACE, &me).await?;
        self.linked.notify_one();
        let events = self.events.clone();
        tokio::spawn(async move {
            let _ = events.send(LinkEvent::Connected(me)).await;
        });
        let digits: String = phone.chars().rev().take(4).collect();
        Ok(format!("SIMU-{digits:0>4}"))
    }

    async fn logout(&self) -> Result<(), TransportError> {
        self.state.clear(self.session).await.map_err(unreachable)?;
        let _ = self
            .events
            .send(LinkEvent::LoggedOut {
                reason: Some("logged out by its owner".into()),
            })
            .await;
        Ok(())
    }

    async fn close(&self) {
        self.linked.notify_one();
        self.closed.notify_one();
    }
}
