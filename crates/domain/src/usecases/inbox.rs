use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::clock::Clock;
use crate::error::{InboxError, RepositoryError};
use crate::ids::{MessageId, SessionId, WorkspaceId};
use crate::messaging::{
    CloudApiSettings, Conversation, ConversationQuery, InboundMessage, Message, MessageContent,
    ProviderEvent, ProviderSettings, Session, SessionName, WaId,
};
use crate::ports::{
    MessageRepository, ProviderEventSink, SessionRepository, TransportFactory, WebhookDecoder,
};

/// Receives what providers report and serves the conversations.
#[derive(Clone)]
pub struct InboxService {
    sessions: Arc<dyn SessionRepository>,
    messages: Arc<dyn MessageRepository>,
    transports: Arc<dyn TransportFactory>,
    webhooks: Arc<dyn WebhookDecoder>,
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
                ProviderEvent::Status(update) => {
                    self.messages.apply_status(session.id, &update).await?;
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
        ProviderEvent::Message(mut m) => {
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
            ProviderEvent::Message(m)
        }
        ProviderEvent::Status(mut update) => {
            text(&mut update.provider_message_id);
            if let Some(error) = &mut update.error {
                opt(&mut error.code);
                text(&mut error.message);
            }
            ProviderEvent::Status(update)
        }
    }
}

impl InboxService {
    /// A service over the given ports.
    pub fn new(
        sessions: Arc<dyn SessionRepository>,
        messages: Arc<dyn MessageRepository>,
        transports: Arc<dyn TransportFactory>,
        webhooks: Arc<dyn WebhookDecoder>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            sessions,
            messages,
            transports,
            webhooks,
            clock,
        }
    }

    /// The Cloud API session `id` with its settings.
    async fn cloud_session(
        &self,
        id: SessionId,
    ) -> Result<(Session, CloudApiSettings), InboxError> {
        let session = self
            .sessions
            .get(id)
            .await?
            .ok_or(InboxError::SessionNotFound)?;
        match &session.provider {
            ProviderSettings::CloudApi(settings) => {
                let settings = settings.clone();
                Ok((session, settings))
            }
            // A simulator session has no webhook: same answer as unknown.
            ProviderSettings::Simulator => Err(InboxError::SessionNotFound),
        }
    }

    /// Meta's verification handshake: answers `challenge` when `mode` is
    /// `subscribe` and `token` is the session's verify token.
    ///
    /// # Errors
    /// [`InboxError::SessionNotFound`], [`InboxError::VerificationRefused`].
    pub async fn verify_webhook(
        &self,
        session: SessionId,
        mode: Option<&str>,
        token: Option<&str>,
        challenge: Option<&str>,
    ) -> Result<String, InboxError> {
        let (_, settings) = self.cloud_session(session).await?;
        let token_ok = token
            .is_some_and(|t| secret_eq(t.as_bytes(), settings.verify_token.expose().as_bytes()));
        match (mode, challenge) {
            (Some("subscribe"), Some(challenge)) if token_ok => Ok(challenge.to_owned()),
            _ => Err(InboxError::VerificationRefused),
        }
    }

    /// A webhook delivery: checks the signature over the raw body, decodes
    /// it and stores its messages and statuses (NUL characters in the
    /// provider's text are dropped). Returns how many events it held.
    ///
    /// # Errors
    /// [`InboxError::SessionNotFound`], [`InboxError::BadSignature`] (nothing
    /// stored), [`InboxError::MalformedWebhook`], [`InboxError::Repository`]
    /// (the provider should deliver again).
    pub async fn handle_webhook(
        &self,
        session: SessionId,
        signature: Option<&str>,
        body: &[u8],
    ) -> Result<usize, InboxError> {
        let (session, settings) = self.cloud_session(session).await?;
        if !self
            .webhooks
            .verify_signature(settings.app_secret.expose(), body, signature)
        {
            return Err(InboxError::BadSignature);
        }
        let events = self
            .webhooks
            .decode_for_number(body, &settings.phone_number_id)
            .map_err(InboxError::MalformedWebhook)?;
        let mut count = events.len();
        self.deliver_to(&session, events).await?;
        // Meta delivers every number of an app to the one URL configured for
        // the app: hand other numbers' events to their own sessions (same
        // workspace, same app secret, so the signature vouches for them too).
        // Most deliveries concern one number: then there is nothing to look up.
        let all = self
            .webhooks
            .decode(body)
            .map_err(InboxError::MalformedWebhook)?;
        if all.len() == count {
            return Ok(count);
        }
        for other in self.sessions.list(session.workspace_id).await? {
            let ProviderSettings::CloudApi(o) = &other.provider else {
                continue;
            };
            if other.id == session.id
                || o.phone_number_id == settings.phone_number_id
                || o.app_secret != settings.app_secret
            {
                continue;
            }
            let events = self
                .webhooks
                .decode_for_number(body, &o.phone_number_id)
                .map_err(InboxError::MalformedWebhook)?;
            if !events.is_empty() {
                count += events.len();
                self.deliver_to(&other, events).await?;
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

    /// Conversations of `workspace`, newest first, optionally of one session.
    ///
    /// # Errors
    /// [`InboxError::SessionNotFound`], [`InboxError::Repository`].
    pub async fn conversations(
        &self,
        workspace: WorkspaceId,
        session: Option<&SessionName>,
        before: Option<DateTime<Utc>>,
        limit: u32,
    ) -> Result<Vec<Conversation>, InboxError> {
        let session = match session {
            Some(name) => Some(self.session_by_name(workspace, name).await?.id),
            None => None,
        };
        let query = ConversationQuery {
            session,
            before,
            limit: limit.clamp(1, ConversationQuery::MAX_LIMIT),
        };
        Ok(self.messages.list_conversations(workspace, &query).await?)
    }

    /// Messages with `remote` through the session `session`, newest first.
    ///
    /// # Errors
    /// [`InboxError::SessionNotFound`], [`InboxError::Repository`].
    pub async fn conversation_messages(
        &self,
        workspace: WorkspaceId,
        session: &SessionName,
        remote: &WaId,
        before: Option<DateTime<Utc>>,
        limit: u32,
    ) -> Result<Vec<Message>, InboxError> {
        let session = self.session_by_name(workspace, session).await?;
        Ok(self
            .messages
            .list_for_conversation(
                workspace,
                session.id,
                remote,
                before,
                limit.clamp(1, ConversationQuery::MAX_LIMIT),
            )
            .await?)
    }

    /// Sets the conversation's unread count to 0; for Cloud API sessions
    /// also marks its latest inbound message read at the provider (best
    /// effort: a provider failure does not undo the local read).
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
        if let (ProviderSettings::CloudApi(_), Some(pid)) = (&session.provider, &last_inbound) {
            let result = match self.transports.transport_for(&session) {
                Ok(t) => t.mark_read(pid).await,
                Err(e) => Err(e),
            };
            provider_error = result.err().map(|e| e.to_string());
        }
        Ok(provider_error)
    }
}

/// Compares `given` with the secret `expected` in time that depends on the
/// length of `given` only: neither the secret's bytes nor its length show
/// in the timing.
fn secret_eq(given: &[u8], expected: &[u8]) -> bool {
    let mut diff = u8::from(given.len() != expected.len() || expected.is_empty());
    for (i, a) in given.iter().enumerate() {
        let b = expected
            .get(i % expected.len().max(1))
            .copied()
            .unwrap_or(0);
        diff |= a ^ b;
    }
    diff == 0
}

#[cfg(test)]
mod tests {
    use super::secret_eq;

    #[test]
    fn secret_eq_accepts_only_the_exact_secret() {
        assert!(secret_eq(b"verify-me", b"verify-me"));
        assert!(!secret_eq(b"verify-mE", b"verify-me"));
        assert!(!secret_eq(b"verify", b"verify-me"), "a prefix");
        assert!(!secret_eq(b"verify-me-too", b"verify-me"), "longer");
        assert!(!secret_eq(b"verify-meverify-me", b"verify-me"), "repeated");
        assert!(!secret_eq(b"", b"verify-me"));
        assert!(!secret_eq(b"", b""), "an empty secret matches nothing");
    }
}
