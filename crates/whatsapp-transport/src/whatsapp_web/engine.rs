//! [`WhatsAppWebEngine`]: the real [`LinkEngine`], a `whatsapp-rust` bot per
//! session over its device state in our database.
//!
//! Inbound messages go through the engine's durability hook: they are
//! handed to the server as [`LinkEvent::Provider`] with an ack, and the
//! hook returns only once the server says they are stored, so WhatsApp is
//! acknowledged after the inbox has them (a failure means a redelivery).
//! Other events are mapped in [`super::mapping`] and queued in order.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock, PoisonError, Weak};
use std::time::Duration;

use async_trait::async_trait;
use chrono::Utc;
use maveraa_domain::messaging::{LinkAck, LinkEvent, LinkedAccount, ProviderEvent, Session};
use maveraa_domain::ports::{
    DeviceStateStore, Link, LinkConnection, LinkEngine, LinkEventStream, TransportError,
    WhatsAppTransport,
};
use maveraa_domain::transport::{OutboundContent, OutboundMessage};
use maveraa_domain::{MessageId, SessionId};
use tokio::sync::{mpsc, oneshot, watch};
use whatsapp_rust::bot::Bot;
use whatsapp_rust::client::ClientError;
use whatsapp_rust::pair_code::{PairCodeOptions, PairError};
use whatsapp_rust::types::events::{Event, EventHandler, InboundMessage as WaInbound};
use whatsapp_rust::waproto::whatsapp as wa;
use whatsapp_rust::{Client, InboundDurabilityHook, Jid, SendError, SendOptions};

use super::DeviceBackend;
use super::ids::{Recent, derive_message_id};
use super::mapping::{Skipped, lid_to_resolve, map_event, map_inbound};
use crate::media_fetch::MediaFetcher;

/// How many recent ids each connection remembers (sends, for status
/// reports to echo our ids; receipts' chats, for read receipts).
const REMEMBERED: usize = 10_000;
/// The longest `close` waits for the engine to flush and stop.
const CLOSE_WAIT: Duration = Duration::from_secs(30);

/// The WhatsApp Web engine: opens each session's linked device with
/// `whatsapp-rust`, its keys kept in `state`.
pub struct WhatsAppWebEngine {
    state: Arc<dyn DeviceStateStore>,
    media: Option<MediaFetcher>,
}

impl std::fmt::Debug for WhatsAppWebEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WhatsAppWebEngine").finish_non_exhaustive()
    }
}

impl WhatsAppWebEngine {
    /// An engine keeping its devices' state in `state`.
    pub fn new(state: Arc<dyn DeviceStateStore>) -> Self {
        Self { state, media: None }
    }

    /// Sends media by URL, fetched with `media` and uploaded to WhatsApp;
    /// without it, media sends are refused.
    pub fn with_media(mut self, media: MediaFetcher) -> Self {
        self.media = Some(media);
        self
    }
}

/// What the engine's callbacks and the connection share.
struct Shared {
    events: mpsc::UnboundedSender<LinkEvent>,
    /// Our message ids of the WhatsApp ids we derived, for status reports.
    sent: Recent<String, MessageId>,
    /// The chat of each inbound message id, for read receipts (the port's
    /// `mark_read` names the message only).
    chats: Recent<String, Jid>,
    /// Turned true when the connection closes: a hook waiting for the
    /// server's ack gives up (WhatsApp delivers again).
    closing: watch::Receiver<bool>,
    /// WhatsApp or the owner unlinked the device.
    logged_out: AtomicBool,
    /// The engine's client; weak, as the client holds these callbacks.
    client: OnceLock<Weak<Client>>,
}

fn linked_account(client: &Client) -> Option<LinkedAccount> {
    let pn = client.pn()?;
    Some(LinkedAccount {
        jid: format!("{}@s.whatsapp.net", pn.user_base()),
        push_name: Some(client.push_name()).filter(|n| !n.is_empty()),
    })
}

/// Maps the engine's events as they are dispatched, in order.
struct Events {
    shared: Arc<Shared>,
}

impl EventHandler for Events {
    fn handle_event(&self, event: Arc<Event>) {
        if matches!(&*event, Event::LoggedOut(_)) {
            self.shared.logged_out.store(true, Ordering::SeqCst);
        }
        let me = || {
            self.shared
                .client
                .get()
                .and_then(Weak::upgrade)
                .and_then(|c| linked_account(&c))
        };
        if let Some(e) = map_event(&event, Utc::now(), me, |id| self.shared.sent.get(id)) {
            // Fails only once the stream is gone: nobody left to tell.
            let _ = self.shared.events.send(e);
        }
    }
}

/// Hands inbound messages to the server and waits until they are stored.
struct Hook {
    shared: Arc<Shared>,
}

#[async_trait]
impl InboundDurabilityHook for Hook {
    async fn on_messages(
        &self,
        client: Arc<Client>,
        batch: &[WaInbound],
    ) -> whatsapp_rust::anyhow::Result<()> {
        let mut events = Vec::with_capacity(batch.len());
        for m in batch {
            let looked_up = match lid_to_resolve(m) {
                // A storage failure fails the batch: redelivered, not lost.
                Some(lid) => client
                    .get_lid_pn_entry(lid)
                    .await?
                    .map(|e| e.phone_number.to_string()),
                None => None,
            };
            match map_inbound(m, looked_up.as_deref()) {
                // Sent from the phone itself: outbound in its conversation.
                Ok(message) if m.info.source.is_from_me => {
                    events.push(ProviderEvent::Echo(message));
                }
                Ok(message) => {
                    self.shared.chats.insert(
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
        hand_over(&self.shared.events, self.shared.closing.clone(), events).await
    }
}

/// Hands `events` to the server with an ack, and waits for it: `Ok` only
/// once they are stored; an error (WhatsApp delivers again) when they were
/// not, or the connection closes meanwhile.
async fn hand_over(
    to: &mpsc::UnboundedSender<LinkEvent>,
    mut closing: watch::Receiver<bool>,
    events: Vec<ProviderEvent>,
) -> whatsapp_rust::anyhow::Result<()> {
    if *closing.borrow() {
        whatsapp_rust::anyhow::bail!("the connection is closing");
    }
    let (tx, rx) = oneshot::channel();
    let ack = LinkAck::new(move |stored| {
        let _ = tx.send(stored);
    });
    to.send(LinkEvent::Provider {
        events,
        ack: Some(ack),
    })
    .map_err(|_| whatsapp_rust::anyhow::anyhow!("the connection is closed"))?;
    tokio::select! {
        // An answer given before the close counts.
        biased;
        stored = rx => match stored {
            Ok(true) => Ok(()),
            Ok(false) => whatsapp_rust::anyhow::bail!("the server did not store the messages"),
            Err(_) => whatsapp_rust::anyhow::bail!("the server dropped the messages unanswered"),
        },
        _ = closing.wait_for(|c| *c) => whatsapp_rust::anyhow::bail!("the connection is closing"),
    }
}

#[async_trait]
impl LinkEngine for WhatsAppWebEngine {
    async fn open(&self, session: &Session) -> Result<Link, TransportError> {
        let (events, rx) = mpsc::unbounded_channel();
        let (closing_tx, closing) = watch::channel(false);
        let shared = Arc::new(Shared {
            events,
            sent: Recent::new(REMEMBERED),
            chats: Recent::new(REMEMBERED),
            closing,
            logged_out: AtomicBool::new(false),
            client: OnceLock::new(),
        });
        let bot = Bot::builder()
            .with_backend(DeviceBackend::new(self.state.clone(), session.id))
            .with_inbound_durability_hook(Hook {
                shared: shared.clone(),
            })
            .with_event_handler(Events {
                shared: shared.clone(),
            })
            // A CRM starts its conversations when linked: the phone's
            // history is not imported.
            .skip_history_sync()
            .build()
            .await
            .map_err(|e| TransportError::Unreachable {
                reason: format!("whatsapp-web: the device could not be loaded: {e}"),
            })?;
        let client = bot.client();
        let _ = shared.client.set(Arc::downgrade(&client));
        let handle = bot.spawn();
        // One task owns the engine: it stops it gracefully when asked (or
        // when the connection is dropped), and says when it has ended.
        let (stop_tx, stop_rx) = oneshot::channel::<()>();
        let (ended_tx, ended) = watch::channel(false);
        tokio::spawn(async move {
            let mut handle = handle;
            tokio::select! {
                () = &mut handle => {}
                _ = stop_rx => handle.shutdown().await,
            }
            let _ = ended_tx.send(true);
        });
        let connection = Arc::new(WebConnection {
            session: session.id,
            state: self.state.clone(),
            media: self.media.clone(),
            client,
            shared,
            closing: closing_tx,
            stop: std::sync::Mutex::new(Some(stop_tx)),
            ended: ended.clone(),
        });
        Ok(Link {
            connection,
            events: Box::new(WebEvents { rx, ended }),
        })
    }
}

/// The events of one connection; they end once its engine has stopped.
struct WebEvents {
    rx: mpsc::UnboundedReceiver<LinkEvent>,
    ended: watch::Receiver<bool>,
}

#[async_trait]
impl LinkEventStream for WebEvents {
    async fn next(&mut self) -> Option<LinkEvent> {
        tokio::select! {
            biased;
            event = self.rx.recv() => event,
            _ = self.ended.wait_for(|e| *e) => self.rx.try_recv().ok(),
        }
    }
}

/// One open WhatsApp Web connection.
pub struct WebConnection {
    session: SessionId,
    state: Arc<dyn DeviceStateStore>,
    media: Option<MediaFetcher>,
    client: Arc<Client>,
    shared: Arc<Shared>,
    closing: watch::Sender<bool>,
    stop: std::sync::Mutex<Option<oneshot::Sender<()>>>,
    ended: watch::Receiver<bool>,
}

impl std::fmt::Debug for WebConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebConnection")
            .field("session", &self.session)
            .finish_non_exhaustive()
    }
}

impl WebConnection {
    /// Fetches `media` from its URL, uploads it to WhatsApp's media servers
    /// (encrypted by the engine) and builds its message. Nothing is sent
    /// yet, so any failure here is safe to try again.
    async fn media_message(
        &self,
        media: &maveraa_domain::messaging::OutboundMedia,
    ) -> Result<wa::Message, TransportError> {
        use maveraa_domain::transport::MediaKind;
        use whatsapp_rust::media as m;
        use whatsapp_rust::wacore::download::MediaType;
        let Some(fetcher) = &self.media else {
            return Err(TransportError::Permanent {
                code: None,
                message: "media sends are not enabled for whatsapp-web on this server".to_owned(),
            });
        };
        let kind = media.kind();
        let fetched = fetcher.fetch(kind, media.url().as_str()).await?;
        let media_type = match kind {
            MediaKind::Image => MediaType::Image,
            MediaKind::Video => MediaType::Video,
            MediaKind::Audio => MediaType::Audio,
            MediaKind::Document => MediaType::Document,
        };
        let upload = self
            .client
            .upload(
                fetched.bytes,
                media_type,
                whatsapp_rust::UploadOptions::default(),
            )
            .await
            .map_err(|e| TransportError::Retryable {
                reason: format!("whatsapp-web: media upload: {e}"),
                retry_after: None,
            })?;
        let caption = media.caption().map(|c| c.as_str().to_owned());
        let mimetype = Some(fetched.mime_type);
        Ok(match kind {
            MediaKind::Image => m::image_message(
                upload,
                m::ImageOptions {
                    caption,
                    mimetype,
                    ..Default::default()
                },
            ),
            MediaKind::Video => m::video_message(
                upload,
                m::VideoOptions {
                    caption,
                    mimetype,
                    ..Default::default()
                },
            ),
            MediaKind::Audio => m::audio_message(
                upload,
                m::AudioOptions {
                    mimetype,
                    ..Default::default()
                },
            ),
            MediaKind::Document => m::document_message(
                upload,
                m::DocumentOptions {
                    mimetype,
                    file_name: media.file_name().map(|f| f.as_str().to_owned()),
                    caption,
                    ..Default::default()
                },
            ),
        })
    }

    /// Stops the engine gracefully (it flushes its state) and waits, a
    /// bounded time, until it has.
    async fn stop_engine(&self) {
        let _ = self.closing.send(true);
        let stop = self
            .stop
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(stop) = stop {
            let _ = stop.send(());
        }
        let mut ended = self.ended.clone();
        if tokio::time::timeout(CLOSE_WAIT, ended.wait_for(|e| *e))
            .await
            .is_err()
        {
            tracing::warn!(session = %self.session, "whatsapp-web: the engine is still stopping; left to finish");
        }
    }
}

/// The transport error a failed send means. The engine writes the stanza
/// and returns: a failure while writing may or may not have reached
/// WhatsApp; anything before the socket did not.
fn send_error(e: SendError) -> TransportError {
    use whatsapp_rust::socket::error::EncryptSendErrorKind as Kind;
    match e {
        SendError::NotLoggedIn
        | SendError::Client(ClientError::NotLoggedIn | ClientError::NotConnected) => {
            TransportError::Unreachable {
                reason: format!("whatsapp-web: {e}"),
            }
        }
        SendError::Client(ClientError::EncryptSend(ref s))
            if matches!(s.kind, Kind::Transport | Kind::Join | Kind::ChannelClosed) =>
        {
            TransportError::OutcomeUnknown {
                reason: format!("whatsapp-web: {e}"),
            }
        }
        SendError::Client(ClientError::Socket(ref s))
            if !matches!(s, whatsapp_rust::socket::error::SocketError::Marshal(_)) =>
        {
            TransportError::OutcomeUnknown {
                reason: format!("whatsapp-web: {e}"),
            }
        }
        SendError::InvalidRequest(_) => TransportError::Permanent {
            code: None,
            message: format!("whatsapp-web: {e}"),
        },
        // Before the wire (a query, encryption, encoding): trying again is
        // safe, and the same id keeps it one message.
        _ => TransportError::Retryable {
            reason: format!("whatsapp-web: {e}"),
            retry_after: None,
        },
    }
}

#[async_trait]
impl WhatsAppTransport for WebConnection {
    async fn send(&self, message: &OutboundMessage) -> Result<String, TransportError> {
        let to = Jid::pn(message.to.as_str());
        let wa_message = match &message.content {
            OutboundContent::Text { body } => wa::Message {
                conversation: Some(body.as_str().to_owned()),
                ..Default::default()
            },
            // Not fetched, nor uploaded, for a connection that is down.
            OutboundContent::Media(_) if !self.client.is_connected() => {
                return Err(TransportError::Unreachable {
                    reason: "whatsapp-web: not connected".to_owned(),
                });
            }
            OutboundContent::Media(media) => self.media_message(media).await?,
        };
        let mut options = SendOptions::default();
        if let Some(ours) = message.message_id {
            let id = derive_message_id(ours);
            self.shared.sent.insert(id.clone(), ours);
            options = options.with_message_id(id);
        }
        self.client
            .send_message_with_options(to, wa_message, options)
            .await
            .map(|sent| sent.message_id)
            .map_err(send_error)
    }

    async fn mark_read(&self, provider_message_id: &str) -> Result<(), TransportError> {
        let Some(chat) = self.shared.chats.get(provider_message_id) else {
            return Err(TransportError::Permanent {
                code: None,
                message: "whatsapp-web: the message was not received on this connection; its chat is unknown".to_owned(),
            });
        };
        self.client
            .mark_as_read(&chat, None, &[provider_message_id])
            .await
            .map_err(|e| TransportError::Unreachable {
                reason: format!("whatsapp-web: {e}"),
            })
    }
}

#[async_trait]
impl LinkConnection for WebConnection {
    async fn pair_code(&self, phone: &str) -> Result<String, TransportError> {
        let options = PairCodeOptions {
            phone_number: phone.to_owned(),
            ..Default::default()
        };
        self.client
            .pair_with_code(options)
            .await
            .map_err(|e| match e {
                // WhatsApp answers a rate limit as a bad request too.
                PairError::RequestFailed(_) => TransportError::Retryable {
                    reason: format!("whatsapp-web: {e}"),
                    retry_after: None,
                },
                _ => TransportError::Permanent {
                    code: None,
                    message: format!("whatsapp-web: {e}"),
                },
            })
    }

    async fn logout(&self) -> Result<(), TransportError> {
        self.shared.logged_out.store(true, Ordering::SeqCst);
        // A hook waiting for the server (busy here) gives up at once.
        let _ = self.closing.send(true);
        // Best effort towards WhatsApp; it reports nothing back.
        self.client.logout().await;
        self.stop_engine().await;
        // The engine never deletes its keys: the device's state goes here,
        // after its last flush.
        self.state
            .clear(self.session)
            .await
            .map(|_| ())
            .map_err(|e| TransportError::Unreachable {
                reason: format!("whatsapp-web: device state not deleted: {e}"),
            })
    }

    async fn close(&self) {
        self.stop_engine().await;
        if self.shared.logged_out.load(Ordering::SeqCst) {
            // The stop flushed the device again after the logout deleted
            // it: delete what it wrote back.
            if let Err(e) = self.state.clear(self.session).await {
                tracing::warn!(session = %self.session, error = %e, "whatsapp-web: device state of a logged-out session not deleted");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use maveraa_domain::messaging::{InboundMessage, MessageContent, WaId};

    use super::*;

    fn batch() -> Vec<ProviderEvent> {
        vec![ProviderEvent::Message(InboundMessage {
            provider_message_id: "ABC".into(),
            from: WaId::from_trusted_str("628222"),
            push_name: None,
            content: MessageContent::Text { body: "hi".into() },
            timestamp: Utc::now(),
        })]
    }

    /// Runs `hand_over` while a fake server answers with `answer` (`None`:
    /// it closes the connection instead).
    async fn handed(answer: Option<bool>) -> whatsapp_rust::anyhow::Result<()> {
        let (tx, mut rx) = mpsc::unbounded_channel();
        let (closing_tx, closing) = watch::channel(false);
        let server = tokio::spawn(async move {
            let Some(LinkEvent::Provider {
                events,
                ack: Some(ack),
            }) = rx.recv().await
            else {
                panic!("no provider event with an ack");
            };
            assert_eq!(events.len(), 1);
            match answer {
                Some(stored) => ack.send(stored),
                None => {
                    let _ = closing_tx.send(true);
                    // The ack is never answered.
                    std::mem::forget(ack);
                }
            }
        });
        let result = hand_over(&tx, closing, batch()).await;
        server.await.expect("server");
        result
    }

    #[tokio::test]
    async fn the_hook_succeeds_only_once_the_server_stored_the_messages() {
        assert!(handed(Some(true)).await.is_ok());
        assert!(handed(Some(false)).await.is_err());
        assert!(
            tokio::time::timeout(Duration::from_secs(5), handed(None))
                .await
                .expect("a close ends the wait")
                .is_err()
        );
    }

    #[tokio::test]
    async fn the_hook_refuses_once_closing_or_closed() {
        let (tx, rx) = mpsc::unbounded_channel();
        let (_closing_tx, closing) = watch::channel(true);
        assert!(hand_over(&tx, closing, batch()).await.is_err());
        drop(rx);
        let (_closing_tx, closing) = watch::channel(false);
        assert!(hand_over(&tx, closing, batch()).await.is_err());
    }

    #[test]
    fn send_errors_before_the_wire_are_retryable_and_not_logged_in_unreachable() {
        assert!(matches!(
            send_error(SendError::NotLoggedIn),
            TransportError::Unreachable { .. }
        ));
        assert!(matches!(
            send_error(SendError::Client(ClientError::NotConnected)),
            TransportError::Unreachable { .. }
        ));
        assert!(matches!(
            send_error(SendError::InvalidRequest("newsletter".into())),
            TransportError::Permanent { .. }
        ));
        assert!(matches!(
            send_error(SendError::Client(ClientError::Socket(
                whatsapp_rust::socket::SocketError::SocketClosed
            ))),
            TransportError::OutcomeUnknown { .. }
        ));
        assert!(matches!(
            send_error(SendError::Internal(whatsapp_rust::anyhow::anyhow!(
                "encrypt"
            ))),
            TransportError::Retryable { .. }
        ));
    }
}
