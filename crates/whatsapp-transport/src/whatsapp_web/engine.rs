//! [`WhatsAppWebEngine`]: the real [`LinkEngine`], a `whatsapp-rust`
//! client per session over its device state in our database.
//!
//! Inbound messages go through the engine's durability hook: they are
//! handed to the server as [`LinkEvent::Provider`] with an ack, and the
//! hook returns only once the server says they are stored, so WhatsApp is
//! acknowledged after the inbox has them (a failure means a redelivery).
//! Other events are mapped in [`super::mapping`] and queued in order. The
//! engine's client is reached through [`WaClient`], so a fake can stand in
//! for WhatsApp ([`super::fake`]).

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use maveraa_domain::SessionId;
use maveraa_domain::messaging::{LinkEvent, Session};
use maveraa_domain::ports::{
    DeviceStateStore, Link, LinkConnection, LinkEngine, LinkEventStream, TransportError,
    WhatsAppTransport,
};
use maveraa_domain::transport::{OutboundContent, OutboundMessage};
use tokio::sync::{mpsc, watch};
use whatsapp_rust::client::ClientError;
use whatsapp_rust::pair_code::{PairCodeOptions, PairError};
use whatsapp_rust::waproto::whatsapp as wa;
use whatsapp_rust::{Jid, SendError, SendOptions};

use super::client::{Callbacks, RealClients, WaClient, WaClients};
use super::ids::derive_message_id;
use super::media::{media_message, media_type};
use crate::media_fetch::MediaFetcher;

/// The longest `close` waits for the engine to flush and stop.
const CLOSE_WAIT: Duration = Duration::from_secs(30);

/// The WhatsApp Web engine: opens each session's linked device with
/// `whatsapp-rust`, its keys kept in `state`.
pub struct WhatsAppWebEngine {
    state: Arc<dyn DeviceStateStore>,
    clients: Arc<dyn WaClients>,
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
        let clients = Arc::new(RealClients::new(state.clone()));
        Self::over(state, clients)
    }

    /// An engine whose clients `clients` opens (a fake, in tests), its
    /// devices' state in `state`.
    pub fn over(state: Arc<dyn DeviceStateStore>, clients: Arc<dyn WaClients>) -> Self {
        Self {
            state,
            clients,
            media: None,
        }
    }

    /// Sends media by URL, fetched with `media` and uploaded to WhatsApp;
    /// without it, media sends are refused.
    pub fn with_media(mut self, media: MediaFetcher) -> Self {
        self.media = Some(media);
        self
    }
}

#[async_trait]
impl LinkEngine for WhatsAppWebEngine {
    async fn open(&self, session: &Session) -> Result<Link, TransportError> {
        let (events, rx) = mpsc::unbounded_channel();
        let (closing_tx, closing) = watch::channel(false);
        let callbacks = Arc::new(Callbacks::new(events, closing));
        let client = self.clients.open(session.id, callbacks.clone()).await?;
        let ended = client.ended();
        let connection = Arc::new(WebConnection {
            session: session.id,
            state: self.state.clone(),
            media: self.media.clone(),
            client,
            callbacks,
            closing: closing_tx,
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
    client: Arc<dyn WaClient>,
    callbacks: Arc<Callbacks>,
    closing: watch::Sender<bool>,
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
        let Some(fetcher) = &self.media else {
            return Err(TransportError::Permanent {
                code: None,
                message: "media sends are not enabled for whatsapp-web on this server".to_owned(),
            });
        };
        let kind = media.kind();
        let fetched = fetcher.fetch(kind, media.url().as_str()).await?;
        let uploaded = self
            .client
            .upload(fetched.bytes, media_type(kind))
            .await
            .map_err(|e| TransportError::Retryable {
                reason: format!("whatsapp-web: media upload: {e}"),
                retry_after: None,
            })?;
        Ok(media_message(
            kind,
            uploaded,
            fetched.mime_type,
            media.caption().map(|c| c.as_str().to_owned()),
            media.file_name().map(|f| f.as_str().to_owned()),
        ))
    }

    /// Stops the engine gracefully (it flushes its state) and waits, a
    /// bounded time, until it has.
    async fn stop_engine(&self) {
        let _ = self.closing.send(true);
        self.client.stop();
        let mut ended = self.client.ended();
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
            self.callbacks.remember_sent(id.clone(), ours);
            options = options.with_message_id(id);
        }
        self.client
            .send(to, wa_message, options)
            .await
            .map_err(send_error)
    }

    async fn mark_read(
        &self,
        provider_message_id: &str,
        from: &maveraa_domain::messaging::WaId,
    ) -> Result<(), TransportError> {
        // The chat the message came from (a LID chat, often), remembered
        // by this connection; for older messages, the sender's number.
        let chat = self
            .callbacks
            .chat_of(provider_message_id)
            .unwrap_or_else(|| Jid::pn(from.as_str()));
        self.client
            .mark_read(&chat, &[provider_message_id])
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
        self.client.pair_code(options).await.map_err(|e| match e {
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
        self.callbacks.set_logged_out();
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
        if self.callbacks.is_logged_out() {
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
    use chrono::Utc;
    use maveraa_domain::messaging::{InboundMessage, MessageContent, ProviderEvent, WaId};

    use super::super::client::hand_over;
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
