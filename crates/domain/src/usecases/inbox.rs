use std::sync::Arc;

use async_trait::async_trait;

use crate::clock::Clock;
use crate::error::{InboxError, RepositoryError};
use crate::ids::{MessageId, SessionId, WorkspaceId};
use crate::messaging::{
    Conversation, ConversationQuery, InboundMessage, Message, MessageContent, ProviderEvent,
    ProviderSettings, Session, SessionName, WaId,
};
use crate::paging::{ConversationKey, Page, PageStart};
use crate::ports::{
    AccountEvents, MessageRepository, ProviderEventSink, SessionRepository, TransportFactory,
    WebhookProtocol, WebhookRefusal, WebhookRequest,
};

/// A webhook delivery whose session is known and whose headers its
/// provider accepted ([`InboxService::webhook_intake`]); its body is still
/// to be read.
pub struct WebhookIntake {
    session: Session,
    protocol: Arc<dyn WebhookProtocol>,
}

impl std::fmt::Debug for WebhookIntake {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookIntake")
            .field("session", &self.session.id)
            .finish_non_exhaustive()
    }
}

/// Receives what providers report and serves the conversations.
#[derive(Clone)]
pub struct InboxService {
    sessions: Arc<dyn SessionRepository>,
    messages: Arc<dyn MessageRepository>,
    transports: Arc<dyn TransportFactory>,
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for InboxService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InboxService").finish_non_exhaustive()
    }
}

#[async_trait]
impl ProviderEventSink for InboxService {
    async fn deliver(
        &self,
        session: &Session,
        events: Vec<ProviderEvent>,
    ) -> Result<(), RepositoryError> {
        for event in events {
            match scrub(event) {
                ProviderEvent::Message(m) => {
                    // A redelivery (providers retry until they see a 200) is
                    // recognised by its provider id and not stored twice.
                    self.messages
                        .record_inbound(session, MessageId::new(), &m, self.clock.now())
                        .await?;
                }
                ProviderEvent::Echo(m) => {
                    self.messages
                        .record_echo(session, MessageId::new(), &m, self.clock.now())
                        .await?;
                }
                ProviderEvent::Status(update) => {
                    self.messages.apply_status(session.id, &update).await?;
                }
                ProviderEvent::SessionStatus { status, reason } => {
                    self.sessions.set_status(session.id, status, reason).await?;
                }
            }
        }
        Ok(())
    }
}

/// Drops NUL characters from everything a provider wrote: no text we store
/// may hold one (PostgreSQL's text cannot), and a message refused for it
/// would be redelivered and refused again, and so lost.
fn scrub(event: ProviderEvent) -> ProviderEvent {
    use crate::messaging::strip_nul as text;
    fn opt(s: &mut Option<String>) {
        if let Some(s) = s {
            text(s);
        }
    }
    match event {
        ProviderEvent::Message(m) => ProviderEvent::Message(scrub_message(m)),
        ProviderEvent::Echo(m) => ProviderEvent::Echo(scrub_message(m)),
        ProviderEvent::Status(mut update) => {
            text(&mut update.provider_message_id);
            if let Some(error) = &mut update.error {
                opt(&mut error.code);
                text(&mut error.message);
            }
            ProviderEvent::Status(update)
        }
        ProviderEvent::SessionStatus { status, mut reason } => {
            opt(&mut reason);
            ProviderEvent::SessionStatus { status, reason }
        }
    }
}

/// [`scrub`] of a message's texts.
fn scrub_message(mut m: InboundMessage) -> InboundMessage {
    use crate::messaging::strip_nul as text;
    fn opt(s: &mut Option<String>) {
        if let Some(s) = s {
            text(s);
        }
    }
    text(&mut m.provider_message_id);
    opt(&mut m.push_name);
    match &mut m.content {
        MessageContent::Text { body } => text(body),
        MessageContent::Media(media) => {
            for field in [
                &mut media.url,
                &mut media.provider_media_id,
                &mut media.mime_type,
                &mut media.caption,
                &mut media.file_name,
            ] {
                opt(field);
            }
        }
        MessageContent::Other { kind, body } => {
            text(kind);
            opt(body);
        }
    }
    m
}

impl InboxService {
    /// A service over the given ports.
    pub fn new(
        sessions: Arc<dyn SessionRepository>,
        messages: Arc<dyn MessageRepository>,
        transports: Arc<dyn TransportFactory>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            sessions,
            messages,
            transports,
            clock,
        }
    }

    /// The session `id` and its provider's webhook protocol. Unknown
    /// sessions and sessions whose provider has no webhooks give the same
    /// answer, so a webhook URL reveals nothing.
    async fn webhook_session(
        &self,
        id: SessionId,
    ) -> Result<(Session, Arc<dyn WebhookProtocol>), InboxError> {
        let session = self
            .sessions
            .get(id)
            .await?
            .ok_or(InboxError::SessionNotFound)?;
        let protocol = self
            .transports
            .webhook_protocol(&session)
            .ok_or(InboxError::SessionNotFound)?;
        Ok((session, protocol))
    }

    /// A provider's subscription handshake on the webhook URL of session
    /// `session`: the body to answer with.
    ///
    /// # Errors
    /// [`InboxError::SessionNotFound`], [`InboxError::VerificationRefused`].
    pub async fn webhook_handshake(
        &self,
        session: SessionId,
        request: &WebhookRequest<'_>,
    ) -> Result<String, InboxError> {
        let (session, protocol) = self.webhook_session(session).await?;
        Ok(protocol.handshake(&session, request)?)
    }

    /// The first step of a webhook delivery to session `session`, before
    /// its body is read: resolves the session and has its provider check
    /// the request's headers, so an unknown session or an unsigned request
    /// costs no body read. Hand the result to [`Self::webhook_delivery`]
    /// with the body.
    ///
    /// # Errors
    /// [`InboxError::SessionNotFound`], [`InboxError::BadSignature`],
    /// [`InboxError::Repository`].
    pub async fn webhook_intake(
        &self,
        session: SessionId,
        headers: &[(&str, &str)],
    ) -> Result<WebhookIntake, InboxError> {
        let (session, protocol) = self.webhook_session(session).await?;
        protocol.precheck(&session, headers)?;
        Ok(WebhookIntake { session, protocol })
    }

    /// A webhook delivery accepted by [`Self::webhook_intake`], with its
    /// body: the session's provider protocol authenticates and decodes it,
    /// and its events are stored through the session of the account each
    /// concerns (NUL characters in the provider's text are dropped).
    /// Returns how many events were stored.
    ///
    /// # Errors
    /// [`InboxError::BadSignature`] (nothing stored),
    /// [`InboxError::MalformedWebhook`], [`InboxError::Repository`] (the
    /// provider should deliver again).
    pub async fn webhook_delivery(
        &self,
        intake: WebhookIntake,
        request: &WebhookRequest<'_>,
    ) -> Result<usize, InboxError> {
        let WebhookIntake { session, protocol } = intake;
        let groups = protocol.open(&session, request)?;
        let own = session.provider.account_id();
        let mut others: Option<Vec<Session>> = None;
        let mut count = 0;
        for AccountEvents { account, events } in groups {
            if events.is_empty() {
                continue;
            }
            if account.is_none() || account.as_deref() == own {
                count += events.len();
                self.deliver_to(&session, events).await?;
                continue;
            }
            // A provider may send every account of one app to the one URL
            // configured for the app: the events go to the sessions of
            // their own account in this workspace that the same credential
            // vouches for. Most deliveries concern one account, so the
            // sessions are listed only when needed.
            let others = match &mut others {
                Some(list) => list,
                None => others.insert(self.sessions.list(session.workspace_id).await?),
            };
            for other in others.iter().filter(|o| {
                o.id != session.id
                    && o.provider.account_id() == account.as_deref()
                    && protocol.vouches_for(&session, o)
            }) {
                count += events.len();
                self.deliver_to(other, events.clone()).await?;
            }
        }
        Ok(count)
    }

    /// A simulated inbound text, through the same path as a provider's.
    /// Returns the provider id it was given.
    ///
    /// # Errors
    /// [`InboxError::SessionNotFound`], [`InboxError::WrongProvider`] for a
    /// session that is not a simulator's, [`InboxError::Repository`].
    pub async fn simulate_inbound(
        &self,
        workspace: WorkspaceId,
        session: &SessionName,
        from: WaId,
        push_name: Option<String>,
        text: String,
    ) -> Result<String, InboxError> {
        let session = self
            .sessions
            .get_by_name(workspace, session)
            .await?
            .ok_or(InboxError::SessionNotFound)?;
        if session.provider != ProviderSettings::Simulator {
            return Err(InboxError::WrongProvider);
        }
        let provider_message_id = format!("sim-in-{}", uuid::Uuid::now_v7().simple());
        let event = ProviderEvent::Message(InboundMessage {
            provider_message_id: provider_message_id.clone(),
            from,
            push_name,
            content: MessageContent::Text { body: text },
            timestamp: self.clock.now(),
        });
        self.deliver_to(&session, vec![event]).await?;
        Ok(provider_message_id)
    }

    /// Stores `session`'s events. When that fails because the session was
    /// deleted after it was looked up (its messages can no longer refer to
    /// it), the answer is [`InboxError::SessionNotFound`], as it would have
    /// been a moment later, not a storage failure.
    async fn deliver_to(
        &self,
        session: &Session,
        events: Vec<ProviderEvent>,
    ) -> Result<(), InboxError> {
        match self.deliver(session, events).await {
            Ok(()) => Ok(()),
            Err(err) => match self.sessions.get(session.id).await {
                Ok(None) => Err(InboxError::SessionNotFound),
                _ => Err(err.into()),
            },
        }
    }

    async fn session_by_name(
        &self,
        workspace: WorkspaceId,
        name: &SessionName,
    ) -> Result<Session, InboxError> {
        self.sessions
            .get_by_name(workspace, name)
            .await?
            .ok_or(InboxError::SessionNotFound)
    }

    /// Conversations of `workspace`, newest first, optionally of one
    /// session, from `start`.
    ///
    /// # Errors
    /// [`InboxError::SessionNotFound`], [`InboxError::Repository`].
    pub async fn conversations(
        &self,
        workspace: WorkspaceId,
        session: Option<&SessionName>,
        start: PageStart<ConversationKey>,
        limit: u32,
    ) -> Result<Page<Conversation, ConversationKey>, InboxError> {
        let session = match session {
            Some(name) => Some(self.session_by_name(workspace, name).await?.id),
            None => None,
        };
        let query = ConversationQuery {
            session,
            start,
            limit: limit.clamp(1, ConversationQuery::MAX_LIMIT),
        };
        Ok(self.messages.list_conversations(workspace, &query).await?)
    }

    /// Messages with `remote` through the session `session`, newest first,
    /// from `start`.
    ///
    /// # Errors
    /// [`InboxError::SessionNotFound`], [`InboxError::Repository`].
    pub async fn conversation_messages(
        &self,
        workspace: WorkspaceId,
        session: &SessionName,
        remote: &WaId,
        start: PageStart<MessageId>,
        limit: u32,
    ) -> Result<Page<Message, MessageId>, InboxError> {
        let session = self.session_by_name(workspace, session).await?;
        Ok(self
            .messages
            .list_for_conversation(
                workspace,
                session.id,
                remote,
                start,
                limit.clamp(1, ConversationQuery::MAX_LIMIT),
            )
            .await?)
    }

    /// Sets the conversation's unread count to 0 and marks its latest
    /// inbound message read at the provider (best effort: a provider
    /// failure does not undo the local read; providers without read
    /// receipts take it as done).
    ///
    /// # Errors
    /// [`InboxError::SessionNotFound`], [`InboxError::ConversationNotFound`],
    /// [`InboxError::Repository`].
    pub async fn mark_read(
        &self,
        workspace: WorkspaceId,
        session: &SessionName,
        remote: &WaId,
    ) -> Result<Option<String>, InboxError> {
        let session = self.session_by_name(workspace, session).await?;
        let last_inbound = self
            .messages
            .mark_conversation_read(workspace, session.id, remote)
            .await?
            .ok_or(InboxError::ConversationNotFound)?;
        let mut provider_error = None;
        if let Some(pid) = &last_inbound {
            let result = match self.transports.transport_for(&session) {
                Ok(t) => t.mark_read(pid, remote).await,
                Err(e) => Err(e),
            };
            provider_error = result.err().map(|e| e.to_string());
        }
        Ok(provider_error)
    }
}

impl From<WebhookRefusal> for InboxError {
    fn from(refusal: WebhookRefusal) -> Self {
        match refusal {
            WebhookRefusal::BadSignature => Self::BadSignature,
            WebhookRefusal::VerificationRefused => Self::VerificationRefused,
            WebhookRefusal::Malformed(why) => Self::MalformedWebhook(why),
        }
    }
}
