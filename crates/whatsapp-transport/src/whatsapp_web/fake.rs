//! A fake of `whatsapp-rust`'s client, for tests and demonstrations where
//! no phone and no WhatsApp server are reachable
//! (`whatsapp_web.engine = "whatsapp-rust-fake"`). Everything above the
//! socket is the real adapter: the fake emits the crate's own event and
//! message types (QR codes, pair success, connected, receipts, server
//! acks, logouts, bans, inbound batches) through the same callbacks the
//! crate's `Bot` calls, and records what is sent, uploaded and marked read.
//!
//! A device is unlinked until a test "scans" its QR code or a pairing code
//! is asked for (the phone then confirms it at once); the link is kept in
//! the device state, so it survives restarts and moves between servers as
//! the real keys do, and goes with a logout.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use maveraa_domain::SessionId;
use maveraa_domain::messaging::LinkedAccount;
use maveraa_domain::ports::{DeviceStateStore, TransportError};
use tokio::sync::{Notify, watch};
use whatsapp_rust::anyhow;
use whatsapp_rust::client::ClientError;
use whatsapp_rust::pair_code::{PairCodeOptions, PairError};
use whatsapp_rust::types::events::{
    Connected, Event, InboundMessage as WaInbound, LoggedOut, PairSuccess, PairingQrCode, Receipt,
    ServerAck,
};
use whatsapp_rust::types::message::{MessageInfo, MessageSource};
use whatsapp_rust::types::presence::ReceiptType;
use whatsapp_rust::wacore::download::MediaType;
use whatsapp_rust::wacore::pair_code::PairCodeError;
use whatsapp_rust::waproto::whatsapp as wa;
use whatsapp_rust::{Jid, SendError, SendOptions};

use super::client::{Callbacks, WaClient, WaClients};
use super::media::Uploaded;
use crate::link_simulator::{keep_linked_account, linked_account};

/// Where the fake keeps its link in the device state.
const SPACE: &str = "whatsapp-rust-fake";

/// The fake engine: opens a [`FakeClient`] per session.
pub struct FakeWhatsApp {
    state: Arc<dyn DeviceStateStore>,
    qr_every: Duration,
    open: Mutex<HashMap<SessionId, Arc<FakeClient>>>,
}

impl std::fmt::Debug for FakeWhatsApp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeWhatsApp").finish_non_exhaustive()
    }
}

impl FakeWhatsApp {
    /// A fake keeping its links in `state`, with a new QR code every
    /// `qr_every`.
    pub fn new(state: Arc<dyn DeviceStateStore>, qr_every: Duration) -> Self {
        Self {
            state,
            qr_every: qr_every.max(Duration::from_millis(10)),
            open: Mutex::default(),
        }
    }

    /// Every session's last opened client.
    pub fn clients(&self) -> Vec<Arc<FakeClient>> {
        self.open
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .values()
            .cloned()
            .collect()
    }

    /// The client last opened for `session` (tests drive it).
    pub fn client(&self, session: SessionId) -> Option<Arc<FakeClient>> {
        self.open
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&session)
            .cloned()
    }
}

/// What the fake was asked to send.
#[derive(Debug, Clone)]
pub struct FakeSend {
    /// The recipient.
    pub to: Jid,
    /// The message, as the engine would encrypt it.
    pub message: wa::Message,
    /// The WhatsApp id it was sent under.
    pub id: String,
}

/// One fake device connection.
pub struct FakeClient {
    this: Weak<FakeClient>,
    session: SessionId,
    state: Arc<dyn DeviceStateStore>,
    callbacks: Arc<Callbacks>,
    account: Mutex<Option<LinkedAccount>>,
    connected: AtomicBool,
    /// Held while a QR code or the connection is emitted: no QR code
    /// follows the connection.
    emitting: Mutex<()>,
    linked: Notify,
    sent: Mutex<Vec<FakeSend>>,
    uploads: Mutex<Vec<(MediaType, Vec<u8>)>>,
    read: Mutex<Vec<(Jid, String)>>,
    logged_out: AtomicBool,
    next_id: AtomicU64,
    ended_tx: watch::Sender<bool>,
    ended: watch::Receiver<bool>,
}

impl std::fmt::Debug for FakeClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeClient")
            .field("session", &self.session)
            .finish_non_exhaustive()
    }
}

#[async_trait]
impl WaClients for FakeWhatsApp {
    async fn open(
        &self,
        session: SessionId,
        callbacks: Arc<Callbacks>,
    ) -> Result<Arc<dyn WaClient>, TransportError> {
        let account = linked_account(self.state.as_ref(), session, SPACE).await?;
        let (ended_tx, ended) = watch::channel(false);
        let fake = Arc::new_cyclic(|this| FakeClient {
            this: this.clone(),
            session,
            state: self.state.clone(),
            callbacks: callbacks.clone(),
            account: Mutex::new(account.clone()),
            connected: AtomicBool::new(false),
            emitting: Mutex::new(()),
            linked: Notify::new(),
            sent: Mutex::default(),
            uploads: Mutex::default(),
            read: Mutex::default(),
            logged_out: AtomicBool::new(false),
            next_id: AtomicU64::new(1),
            ended_tx,
            ended,
        });
        let client: Arc<dyn WaClient> = fake.clone();
        callbacks.attach(&client);
        self.open
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(session, fake.clone());
        if account.is_some() {
            fake.connect();
        } else {
            // QR codes until linked or stopped, as the engine shows them.
            let (qr_every, weak) = (self.qr_every, Arc::downgrade(&fake));
            tokio::spawn(async move {
                for n in 1u64.. {
                    let Some(fake) = weak.upgrade() else { return };
                    let emitting = fake.emitting.lock().unwrap_or_else(PoisonError::into_inner);
                    if *fake.ended.borrow() || fake.connected.load(Ordering::SeqCst) {
                        return;
                    }
                    fake.emit(&Event::PairingQrCode(
                        PairingQrCode::builder()
                            .code(format!("2@fake,{session},{n}"))
                            // Valid a little past its successor's
                            // arrival, so there is always one to show.
                            .timeout(qr_every + Duration::from_secs(2))
                            .build(),
                    ));
                    drop(emitting);
                    let mut ended = fake.ended.clone();
                    tokio::select! {
                        () = tokio::time::sleep(qr_every) => {}
                        () = fake.linked.notified() => return,
                        _ = ended.wait_for(|e| *e) => return,
                    }
                }
            });
        }
        Ok(client)
    }
}

impl FakeClient {
    /// Emits `event` as the engine dispatches it.
    pub fn emit(&self, event: &Event) {
        self.callbacks.event(event);
    }

    /// Delivers `batch` as the engine's durability hook does: `Ok` once the
    /// server stored it (WhatsApp would then get its ack).
    ///
    /// # Errors
    /// When the server did not store it (WhatsApp would deliver it again).
    pub async fn deliver(&self, batch: &[WaInbound]) -> anyhow::Result<()> {
        self.callbacks.messages(batch).await
    }

    /// The owner's phone scans the QR code (or confirms a pairing code):
    /// the device is linked to `phone` (digits) and connects.
    ///
    /// # Errors
    /// When the link could not be stored.
    pub async fn scan(&self, phone: &str, push_name: &str) -> Result<(), TransportError> {
        let account = LinkedAccount {
            jid: format!("{phone}@s.whatsapp.net"),
            push_name: Some(push_name.to_owned()).filter(|n| !n.is_empty()),
        };
        keep_linked_account(self.state.as_ref(), self.session, SPACE, &account).await?;
        *self.account.lock().unwrap_or_else(PoisonError::into_inner) = Some(account);
        self.linked.notify_waiters();
        self.emit(&Event::PairSuccess(
            PairSuccess::builder()
                .id(Jid::pn_device(phone, 7))
                .lid(Jid::lid(format!("9{phone}")))
                .business_name(push_name.to_owned())
                .platform("smba".to_owned())
                .build(),
        ));
        self.connect();
        Ok(())
    }

    fn connect(&self) {
        let _emitting = self.emitting.lock().unwrap_or_else(PoisonError::into_inner);
        self.connected.store(true, Ordering::SeqCst);
        self.emit(&Event::Connected(Connected::builder().build()));
    }

    /// What was sent through this client, in order.
    pub fn sent(&self) -> Vec<FakeSend> {
        self.sent
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The media uploaded, with its type.
    pub fn uploads(&self) -> Vec<(MediaType, Vec<u8>)> {
        self.uploads
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The read receipts sent: chat and message id.
    pub fn read_receipts(&self) -> Vec<(Jid, String)> {
        self.read
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Whether the client was asked to log out.
    pub fn was_logged_out(&self) -> bool {
        self.logged_out.load(Ordering::SeqCst)
    }
}

#[async_trait]
impl WaClient for FakeClient {
    fn is_connected(&self) -> bool {
        self.connected.load(Ordering::SeqCst) && !*self.ended.borrow()
    }

    fn linked_account(&self) -> Option<LinkedAccount> {
        self.account
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    async fn phone_of_lid(&self, lid: &Jid) -> anyhow::Result<Option<String>> {
        // The fake's LID store: a LID "9<number>" is that number's.
        Ok(lid.user.strip_prefix('9').map(str::to_owned))
    }

    async fn send(
        &self,
        to: Jid,
        message: wa::Message,
        options: SendOptions,
    ) -> Result<String, SendError> {
        if !self.is_connected() {
            return Err(SendError::Client(ClientError::NotConnected));
        }
        let id = options.message_id.unwrap_or_else(|| {
            format!(
                "3EB0FAKE{:012}",
                self.next_id.fetch_add(1, Ordering::SeqCst)
            )
        });
        self.sent
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(FakeSend {
                to,
                message,
                id: id.clone(),
            });
        // WhatsApp's server acknowledges the stanza after the write.
        let ack = Event::ServerAck(
            ServerAck::builder()
                .id(id.clone())
                .class("message".to_owned())
                .timestamp(Utc::now())
                .build(),
        );
        let callbacks = self.callbacks.clone();
        tokio::spawn(async move { callbacks.event(&ack) });
        Ok(id)
    }

    async fn upload(&self, data: Vec<u8>, media_type: MediaType) -> anyhow::Result<Uploaded> {
        let enc = whatsapp_rust::wacore::upload::encrypt_media(&data, media_type)?;
        let n = self.next_id.fetch_add(1, Ordering::SeqCst);
        self.uploads
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push((media_type, data.clone()));
        Ok(Uploaded {
            url: format!("https://mmg.whatsapp.net/fake/{n}"),
            direct_path: format!("/fake/{n}"),
            media_key: enc.media_key,
            file_enc_sha256: enc.file_enc_sha256,
            file_sha256: enc.file_sha256,
            file_length: data.len() as u64,
            media_key_timestamp: Utc::now().timestamp(),
            streaming_sidecar: enc.streaming_sidecar,
        })
    }

    async fn mark_read(&self, chat: &Jid, ids: &[&str]) -> anyhow::Result<()> {
        if !self.is_connected() {
            anyhow::bail!("not connected");
        }
        let mut read = self.read.lock().unwrap_or_else(PoisonError::into_inner);
        read.extend(ids.iter().map(|id| (chat.clone(), (*id).to_owned())));
        Ok(())
    }

    async fn pair_code(&self, options: PairCodeOptions) -> Result<String, PairError> {
        let phone = options.phone_number;
        if phone.len() < 7 || !phone.bytes().all(|b| b.is_ascii_digit()) {
            return Err(PairError::PairCode(PairCodeError::PhoneNumberTooShort));
        }
        // The owner types the code on the phone a moment later.
        let code = format!("FAKE-{}", &phone[phone.len() - 4..]);
        if let Some(me) = self.this.upgrade() {
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(50)).await;
                if let Err(e) = me.scan(&phone, "Fake phone").await {
                    tracing::warn!(error = %e, "whatsapp-rust-fake: the pairing was not stored");
                }
            });
        }
        Ok(code)
    }

    async fn logout(&self) {
        self.logged_out.store(true, Ordering::SeqCst);
        self.connected.store(false, Ordering::SeqCst);
        *self.account.lock().unwrap_or_else(PoisonError::into_inner) = None;
    }

    fn stop(&self) {
        self.connected.store(false, Ordering::SeqCst);
        let _ = self.ended_tx.send(true);
    }

    fn ended(&self) -> watch::Receiver<bool> {
        self.ended.clone()
    }
}

/// An inbound message `id` from `sender` (with its phone-number JID
/// `sender_alt` when it writes as a LID), as the engine decrypts it.
pub fn inbound(
    sender: Jid,
    sender_alt: Option<Jid>,
    id: &str,
    push_name: &str,
    message: wa::Message,
) -> WaInbound {
    WaInbound::builder()
        .message(Arc::new(message))
        .info(Arc::new(MessageInfo {
            source: MessageSource {
                chat: sender.to_non_ad(),
                sender,
                sender_alt,
                ..Default::default()
            },
            id: id.to_owned(),
            push_name: push_name.to_owned(),
            timestamp: Utc::now(),
            ..Default::default()
        }))
        .build()
}

/// A message typed on the linked phone itself, to `chat`.
pub fn from_the_phone(me: Jid, chat: Jid, id: &str, message: wa::Message) -> WaInbound {
    WaInbound::builder()
        .message(Arc::new(message))
        .info(Arc::new(MessageInfo {
            source: MessageSource {
                chat,
                sender: me,
                is_from_me: true,
                ..Default::default()
            },
            id: id.to_owned(),
            timestamp: Utc::now(),
            ..Default::default()
        }))
        .build()
}

/// A text message.
pub fn text(body: &str) -> wa::Message {
    wa::Message {
        conversation: Some(body.to_owned()),
        ..Default::default()
    }
}

/// A receipt of `kind` from `chat` for `ids`.
pub fn receipt(chat: Jid, ids: &[String], kind: ReceiptType, at: DateTime<Utc>) -> Event {
    Event::Receipt(
        Receipt::builder()
            .source(MessageSource {
                sender: chat.clone(),
                chat,
                ..Default::default()
            })
            .message_ids(ids.to_vec())
            .timestamp(at)
            .r#type(kind)
            .offline(false)
            .build(),
    )
}

/// WhatsApp unlinked the device (from the phone's linked devices list).
pub fn logged_out() -> Event {
    Event::LoggedOut(
        LoggedOut::builder()
            .on_connect(false)
            .reason(whatsapp_rust::types::events::ConnectFailureReason::LoggedOut)
            .build(),
    )
}
