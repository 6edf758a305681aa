//! The seam between the adapter and the engine's client: [`WaClient`] is
//! the narrow part of `whatsapp-rust`'s client the adapter uses, opened by
//! a [`WaClients`]; [`Callbacks`] is what the client calls back with the
//! engine's events and inbound batches. [`RealClients`] is the crate's
//! `Bot`; [`super::fake`] stands in for WhatsApp where none is reachable,
//! emitting the crate's own event and message types through the same
//! callbacks, so everything above the socket runs as in production.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock, PoisonError, Weak};

use async_trait::async_trait;
use chrono::Utc;
use maveraa_domain::MessageId;
use maveraa_domain::SessionId;
use maveraa_domain::messaging::{LinkAck, LinkEvent, LinkedAccount, ProviderEvent};
use maveraa_domain::ports::{DeviceStateStore, TransportError};
use tokio::sync::{mpsc, oneshot, watch};
use whatsapp_rust::anyhow;
use whatsapp_rust::bot::Bot;
use whatsapp_rust::pair_code::{PairCodeOptions, PairError};
use whatsapp_rust::types::events::{Event, EventHandler, InboundMessage as WaInbound};
use whatsapp_rust::wacore::download::MediaType;
use whatsapp_rust::waproto::whatsapp as wa;
use whatsapp_rust::{Client, InboundDurabilityHook, Jid, SendError, SendOptions};

use super::DeviceBackend;
use super::ids::Recent;
use super::mapping::{Skipped, lid_to_resolve, map_event, map_inbound};
use super::media::Uploaded;

/// How many recent ids each connection remembers (sends, for status
/// reports to echo our ids; receipts' chats, for read receipts).
const REMEMBERED: usize = 10_000;

/// What the adapter uses of an open engine client.
#[async_trait]
pub trait WaClient: Send + Sync {
    /// Whether the socket is up and logged in.
    fn is_connected(&self) -> bool;
    /// The linked account, once the device has a number.
    fn linked_account(&self) -> Option<LinkedAccount>;
    /// The phone number (digits) the engine knows for `lid`.
    async fn phone_of_lid(&self, lid: &Jid) -> anyhow::Result<Option<String>>;
    /// Sends `message` to `to`; answers WhatsApp's id of it.
    async fn send(
        &self,
        to: Jid,
        message: wa::Message,
        options: SendOptions,
    ) -> Result<String, SendError>;
    /// Encrypts and uploads media to WhatsApp's media servers.
    async fn upload(&self, data: Vec<u8>, media_type: MediaType) -> anyhow::Result<Uploaded>;
    /// Sends read receipts for `ids` of `chat`.
    async fn mark_read(&self, chat: &Jid, ids: &[&str]) -> anyhow::Result<()>;
    /// Asks WhatsApp for a code to link the device by phone number.
    async fn pair_code(&self, options: PairCodeOptions) -> Result<String, PairError>;
    /// Unlinks the device (best effort: WhatsApp answers nothing).
    async fn logout(&self);
    /// Asks the engine to stop; it flushes its state first.
    fn stop(&self);
    /// Turns true once the engine has stopped.
    fn ended(&self) -> watch::Receiver<bool>;
}

/// Opens engine clients.
#[async_trait]
pub trait WaClients: Send + Sync {
    /// Opens `session`'s device, reporting to `callbacks`. Implementations
    /// call [`Callbacks::attach`] before the engine can emit anything.
    async fn open(
        &self,
        session: SessionId,
        callbacks: Arc<Callbacks>,
    ) -> Result<Arc<dyn WaClient>, TransportError>;
}

/// What a client calls back: its events, mapped and queued in order, and
/// its inbound batches, handed to the server and acknowledged once stored.
pub struct Callbacks {
    events: mpsc::UnboundedSender<LinkEvent>,
    /// Our message ids of the WhatsApp ids we derived, for status reports.
    sent: Recent<String, MessageId>,
    /// The chat of each inbound message id, for read receipts (the port's
    /// `mark_read` names the message only).
    chats: Recent<String, Jid>,
    /// Turned true when the connection closes: a batch waiting for the
    /// server's ack gives up (WhatsApp delivers again).
    closing: watch::Receiver<bool>,
    /// WhatsApp or the owner unlinked the device.
    logged_out: AtomicBool,
    /// The client; weak, as the client holds these callbacks.
    client: OnceLock<Weak<dyn WaClient>>,
}

impl std::fmt::Debug for Callbacks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Callbacks").finish_non_exhaustive()
    }
}

impl Callbacks {
    pub(crate) fn new(
        events: mpsc::UnboundedSender<LinkEvent>,
        closing: watch::Receiver<bool>,
    ) -> Self {
        Self {
            events,
            sent: Recent::new(REMEMBERED),
            chats: Recent::new(REMEMBERED),
            closing,
            logged_out: AtomicBool::new(false),
            client: OnceLock::new(),
        }
    }

    /// Names the client these callbacks serve (its linked account, its LID
    /// lookups).
    pub fn attach(&self, client: &Arc<dyn WaClient>) {
        let _ = self.client.set(Arc::downgrade(client));
    }

    fn client(&self) -> Option<Arc<dyn WaClient>> {
        self.client.get().and_then(Weak::upgrade)
    }

    pub(crate) fn remember_sent(&self, whatsapp_id: String, ours: MessageId) {
        self.sent.insert(whatsapp_id, ours);
    }

    pub(crate) fn chat_of(&self, whatsapp_id: &str) -> Option<Jid> {
        self.chats.get(whatsapp_id)
    }

    pub(crate) fn set_logged_out(&self) {
        self.logged_out.store(true, Ordering::SeqCst);
    }

    pub(crate) fn is_logged_out(&self) -> bool {
        self.logged_out.load(Ordering::SeqCst)
    }

    /// One engine event, as it is dispatched.
    pub fn event(&self, event: &Event) {
        if matches!(event, Event::LoggedOut(_)) {
            self.set_logged_out();
        }
        let me = || self.client().and_then(|c| c.linked_account());
        if let Some(e) = map_event(event, Utc::now(), me, |id| self.sent.get(id)) {
            // Fails only once the stream is gone: nobody left to tell.
            let _ = self.events.send(e);
        }
    }

    /// One batch of inbound messages: `Ok` only once the server stored it;
    /// an error makes WhatsApp deliver it again.
    pub async fn messages(&self, batch: &[WaInbound]) -> anyhow::Result<()> {
        let mut events = Vec::with_capacity(batch.len());
        for m in batch {
            let looked_up = match (lid_to_resolve(m), self.client()) {
                // A storage failure fails the batch: redelivered, not lost.
                (Some(lid), Some(client)) => client.phone_of_lid(lid).await?,
                _ => None,
            };
            match map_inbound(m, looked_up.as_deref()) {
                // Sent from the phone itself: outbound in its conversation.
                Ok(message) if m.info.source.is_from_me => {
                    events.push(ProviderEvent::Echo(message));
                }
                Ok(message) => {
                    self.chats.insert(
                        message.provider_message_id.clone(),
                        m.info.source.chat.clone(),
                    );
                    events.push(ProviderEvent::Message(message));
                }
                Err(why @ (Skipped::NoNumber | Skipped::BadNumber)) => {
                    tracing::warn!(
                        reason = why.as_str(),
                        "whatsapp-web: inbound message skipped"
                    );
                }
                Err(why) => {
                    tracing::debug!(
                        reason = why.as_str(),
                        "whatsapp-web: inbound message skipped"
                    );
                }
            }
        }
        if events.is_empty() {
            return Ok(());
        }
        hand_over(&self.events, self.closing.clone(), events).await
    }
}

/// Hands `events` to the server with an ack, and waits for it: `Ok` only
/// once they are stored; an error (WhatsApp delivers again) when they were
/// not, or the connection closes meanwhile.
pub(crate) async fn hand_over(
    to: &mpsc::UnboundedSender<LinkEvent>,
    mut closing: watch::Receiver<bool>,
    events: Vec<ProviderEvent>,
) -> anyhow::Result<()> {
    if *closing.borrow() {
        anyhow::bail!("the connection is closing");
    }
    let (tx, rx) = oneshot::channel();
    let ack = LinkAck::new(move |stored| {
        let _ = tx.send(stored);
    });
    to.send(LinkEvent::Provider {
        events,
        ack: Some(ack),
    })
    .map_err(|_| anyhow::anyhow!("the connection is closed"))?;
    tokio::select! {
        // An answer given before the close counts.
        biased;
        stored = rx => match stored {
            Ok(true) => Ok(()),
            Ok(false) => anyhow::bail!("the server did not store the messages"),
            Err(_) => anyhow::bail!("the server dropped the messages unanswered"),
        },
        _ = closing.wait_for(|c| *c) => anyhow::bail!("the connection is closing"),
    }
}

/// The crate's `Bot`, each session's device over its state in `state`.
pub struct RealClients {
    state: Arc<dyn DeviceStateStore>,
}

impl std::fmt::Debug for RealClients {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RealClients").finish_non_exhaustive()
    }
}

impl RealClients {
    /// Clients keeping their devices' state in `state`.
    pub fn new(state: Arc<dyn DeviceStateStore>) -> Self {
        Self { state }
    }
}

/// Forwards the engine's events to the callbacks.
struct Events(Arc<Callbacks>);

impl EventHandler for Events {
    fn handle_event(&self, event: Arc<Event>) {
        self.0.event(&event);
    }
}

/// Forwards the engine's inbound batches to the callbacks.
struct Hook(Arc<Callbacks>);

#[async_trait]
impl InboundDurabilityHook for Hook {
    async fn on_messages(&self, _client: Arc<Client>, batch: &[WaInbound]) -> anyhow::Result<()> {
        self.0.messages(batch).await
    }
}

#[async_trait]
impl WaClients for RealClients {
    async fn open(
        &self,
        session: SessionId,
        callbacks: Arc<Callbacks>,
    ) -> Result<Arc<dyn WaClient>, TransportError> {
        let bot = Bot::builder()
            .with_backend(DeviceBackend::new(self.state.clone(), session))
            .with_inbound_durability_hook(Hook(callbacks.clone()))
            .with_event_handler(Events(callbacks.clone()))
            // A CRM starts its conversations when linked: the phone's
            // history is not imported.
            .skip_history_sync()
            .build()
            .await
            .map_err(|e| TransportError::Unreachable {
                reason: format!("whatsapp-web: the device could not be loaded: {e}"),
            })?;
        let (stop_tx, stop_rx) = oneshot::channel::<()>();
        let (ended_tx, ended) = watch::channel(false);
        let client: Arc<dyn WaClient> = Arc::new(RealClient {
            client: bot.client(),
            stop: std::sync::Mutex::new(Some(stop_tx)),
            ended,
        });
        callbacks.attach(&client);
        let handle = bot.spawn();
        // One task owns the engine: it stops it gracefully when asked (or
        // when the client is dropped), and says when it has ended.
        tokio::spawn(async move {
            let mut handle = handle;
            tokio::select! {
                () = &mut handle => {}
                _ = stop_rx => handle.shutdown().await,
            }
            let _ = ended_tx.send(true);
        });
        Ok(client)
    }
}

/// One session's running `Bot`.
struct RealClient {
    client: Arc<Client>,
    stop: std::sync::Mutex<Option<oneshot::Sender<()>>>,
    ended: watch::Receiver<bool>,
}

#[async_trait]
impl WaClient for RealClient {
    fn is_connected(&self) -> bool {
        self.client.is_connected()
    }

    fn linked_account(&self) -> Option<LinkedAccount> {
        let pn = self.client.pn()?;
        Some(LinkedAccount {
            jid: format!("{}@s.whatsapp.net", pn.user_base()),
            push_name: Some(self.client.push_name()).filter(|n| !n.is_empty()),
        })
    }

    async fn phone_of_lid(&self, lid: &Jid) -> anyhow::Result<Option<String>> {
        Ok(self
            .client
            .get_lid_pn_entry(lid)
            .await?
            .map(|e| e.phone_number.to_string()))
    }

    async fn send(
        &self,
        to: Jid,
        message: wa::Message,
        options: SendOptions,
    ) -> Result<String, SendError> {
        self.client
            .send_message_with_options(to, message, options)
            .await
            .map(|sent| sent.message_id)
    }

    async fn upload(&self, data: Vec<u8>, media_type: MediaType) -> anyhow::Result<Uploaded> {
        self.client
            .upload(data, media_type, whatsapp_rust::UploadOptions::default())
            .await
            .map(Uploaded::from)
    }

    async fn mark_read(&self, chat: &Jid, ids: &[&str]) -> anyhow::Result<()> {
        self.client.mark_as_read(chat, None, ids).await
    }

    async fn pair_code(&self, options: PairCodeOptions) -> Result<String, PairError> {
        self.client.pair_with_code(options).await
    }

    async fn logout(&self) {
        self.client.logout().await;
    }

    fn stop(&self) {
        let stop = self
            .stop
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(stop) = stop {
            let _ = stop.send(());
        }
    }

    fn ended(&self) -> watch::Receiver<bool> {
        self.ended.clone()
    }
}
