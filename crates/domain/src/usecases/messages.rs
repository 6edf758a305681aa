use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use crate::clock::Clock;
use crate::error::MessagingError;
use crate::ids::{MessageId, SessionId, WorkspaceId};
use crate::messaging::{
    Direction, IdempotencyKey, Message, MessageContent, MessageStatus, SendMessage, SessionName,
    StatusChange, WaId,
};
use crate::ports::{EnqueueOutcome, MediaFile, MediaSource, MessageRepository, SessionRepository};

/// The answer to a send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendOutcome {
    /// The stored message (the first one, for a replay).
    pub message: Message,
    /// Whether this answers an earlier request with the same
    /// idempotency key (nothing new was stored).
    pub replayed: bool,
}

/// Queues outbound messages durably and reads messages back.
#[derive(Clone)]
pub struct MessagingService {
    sessions: Arc<dyn SessionRepository>,
    messages: Arc<dyn MessageRepository>,
    clock: Arc<dyn Clock>,
    on_enqueue: Arc<dyn Fn() + Send + Sync>,
    session_ids: Arc<SessionIds>,
    media: Option<Arc<dyn MediaSource>>,
}

/// Most sessions whose ids are remembered; past it the memory starts over.
const SESSION_IDS_KEPT: usize = 10_000;

/// The ids of sessions sends went to, so a send needs no lookup of its
/// session. Sessions are never renamed; a deleted one is forgotten when the
/// store reports it gone ([`EnqueueOutcome::SessionGone`]), which also
/// covers a session deleted by another process or created again under the
/// same name.
#[derive(Default)]
struct SessionIds(Mutex<HashMap<(WorkspaceId, SessionName), SessionId>>);

impl SessionIds {
    fn get(&self, workspace: WorkspaceId, name: &SessionName) -> Option<SessionId> {
        let map = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        map.get(&(workspace, name.clone())).copied()
    }

    fn put(&self, workspace: WorkspaceId, name: &SessionName, id: SessionId) {
        let mut map = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if map.len() >= SESSION_IDS_KEPT {
            map.clear();
        }
        map.insert((workspace, name.clone()), id);
    }

    fn forget(&self, workspace: WorkspaceId, name: &SessionName) {
        let mut map = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        map.remove(&(workspace, name.clone()));
    }
}

impl std::fmt::Debug for MessagingService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MessagingService").finish_non_exhaustive()
    }
}

impl MessagingService {
    /// A service over the given ports.
    pub fn new(
        sessions: Arc<dyn SessionRepository>,
        messages: Arc<dyn MessageRepository>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            sessions,
            messages,
            clock,
            on_enqueue: Arc::new(|| {}),
            session_ids: Arc::default(),
            media: None,
        }
    }

    /// Fetches received media from its provider through `media`; without
    /// it, [`MessagingService::media`] answers
    /// [`MessagingError::NoMedia`].
    pub fn with_media(mut self, media: Arc<dyn MediaSource>) -> Self {
        self.media = Some(media);
        self
    }

    /// Calls `hook` after each message is queued (to wake a dispatcher).
    pub fn with_enqueue_hook(mut self, hook: Arc<dyn Fn() + Send + Sync>) -> Self {
        self.on_enqueue = hook;
        self
    }

    /// Stores `request` as a `queued` message with its outbox entry, in one
    /// transaction, before answering: once this returns, the message will
    /// be sent even if the process dies. With an idempotency key used
    /// within 24 hours, answers the first message again and stores nothing.
    ///
    /// # Errors
    /// [`MessagingError::SessionNotFound`] (another workspace's sessions
    /// included), [`MessagingError::IdempotencyConflict`] when the key came
    /// with another request, [`MessagingError::Repository`].
    pub async fn send(
        &self,
        workspace: WorkspaceId,
        request: SendMessage,
        idempotency_key: Option<String>,
    ) -> Result<SendOutcome, MessagingError> {
        let idempotency = idempotency_key.map(|key| IdempotencyKey {
            key,
            fingerprint: request.fingerprint(),
        });
        let mut remembered = self.session_ids.get(workspace, &request.session);
        loop {
            let looked_up = remembered.is_none();
            let session_id = match remembered.take() {
                Some(id) => id,
                None => {
                    let session = self
                        .sessions
                        .get_by_name(workspace, &request.session)
                        .await?
                        .ok_or(MessagingError::SessionNotFound)?;
                    self.session_ids.put(workspace, &session.name, session.id);
                    session.id
                }
            };
            let message = self.outbound(workspace, session_id, &request);
            match self
                .messages
                .enqueue(&message, idempotency.as_ref())
                .await?
            {
                EnqueueOutcome::Created => {
                    (self.on_enqueue)();
                    return Ok(SendOutcome {
                        message,
                        replayed: false,
                    });
                }
                EnqueueOutcome::Existing {
                    message: first,
                    fingerprint,
                } => {
                    return if idempotency.is_some_and(|i| i.fingerprint == fingerprint) {
                        Ok(SendOutcome {
                            message: *first,
                            replayed: true,
                        })
                    } else {
                        Err(MessagingError::IdempotencyConflict)
                    };
                }
                // Deleted since we learned its id: look it up again (it may
                // have been created again under the same name).
                EnqueueOutcome::SessionGone => {
                    self.session_ids.forget(workspace, &request.session);
                    if looked_up {
                        return Err(MessagingError::SessionNotFound);
                    }
                }
            }
        }
    }

    /// A new `queued` outbound message for `request`.
    fn outbound(
        &self,
        workspace: WorkspaceId,
        session: SessionId,
        request: &SendMessage,
    ) -> Message {
        let now = self.clock.now();
        Message {
            id: MessageId::new(),
            workspace_id: workspace,
            session_id: session,
            session_name: request.session.clone(),
            remote: WaId::from(&request.to),
            direction: Direction::Outbound,
            content: MessageContent::from(&request.content),
            status: MessageStatus::Queued,
            provider_message_id: None,
            error: None,
            provider_timestamp: None,
            created_at: now,
            updated_at: now,
            history: vec![StatusChange {
                status: MessageStatus::Queued,
                at: now,
                error: None,
            }],
        }
    }

    /// The message `id` of `workspace` with its status history.
    ///
    /// # Errors
    /// [`MessagingError::NotFound`], [`MessagingError::Repository`].
    pub async fn get(
        &self,
        workspace: WorkspaceId,
        id: MessageId,
    ) -> Result<Message, MessagingError> {
        self.messages
            .get(workspace, id)
            .await?
            .ok_or(MessagingError::NotFound)
    }

    /// The message `id` of `workspace` and its received media, fetched
    /// from the provider of its session (which keeps it for a limited
    /// time: WhatsApp's servers for weeks, the Cloud API for 30 days).
    ///
    /// # Errors
    /// [`MessagingError::NotFound`]; [`MessagingError::NoMedia`] for a
    /// message without received media (sent media is at its `url`);
    /// [`MessagingError::Media`] when the provider does not give it;
    /// [`MessagingError::Repository`].
    pub async fn media(
        &self,
        workspace: WorkspaceId,
        id: MessageId,
    ) -> Result<(Message, MediaFile), MessagingError> {
        let message = self.get(workspace, id).await?;
        let MessageContent::Media(info) = &message.content else {
            return Err(MessagingError::NoMedia);
        };
        let Some(source) = self.media.as_ref().filter(|_| message.has_received_media()) else {
            return Err(MessagingError::NoMedia);
        };
        // A deleted session's messages stay; its provider's media cannot
        // be asked for without its credentials.
        let Some(session) = self.sessions.get(message.session_id).await? else {
            return Err(MessagingError::Media(crate::ports::MediaError::Gone {
                reason: "the message's session was deleted".to_owned(),
            }));
        };
        let file = source.fetch(&session, info).await?;
        Ok((message, file))
    }

    /// Queues the failed message `id` again, to be sent as if new (same
    /// id, a new attempt count). Only a message no provider took can be
    /// retried ([`Message::can_retry`]), so a retry never sends twice.
    ///
    /// # Errors
    /// [`MessagingError::NotFound`], [`MessagingError::NotRetryable`],
    /// [`MessagingError::Repository`].
    pub async fn retry(
        &self,
        workspace: WorkspaceId,
        id: MessageId,
    ) -> Result<Message, MessagingError> {
        let message = self.get(workspace, id).await?;
        if !message.can_retry() {
            return Err(MessagingError::NotRetryable);
        }
        match self
            .messages
            .requeue(workspace, id, self.clock.now())
            .await?
        {
            Some(message) => {
                (self.on_enqueue)();
                Ok(message)
            }
            // Changed since it was read (retried by another request, or
            // deleted with its session): answer for what it is now.
            None => match self.messages.get(workspace, id).await? {
                Some(_) => Err(MessagingError::NotRetryable),
                None => Err(MessagingError::NotFound),
            },
        }
    }

    /// Queues again every failed message of the session `session` that
    /// can be retried, only those failed with `error_code` when given
    /// (after a session's credentials were renewed, say). Returns how many.
    ///
    /// # Errors
    /// [`MessagingError::SessionNotFound`], [`MessagingError::Repository`].
    pub async fn retry_failed(
        &self,
        workspace: WorkspaceId,
        session: &SessionName,
        error_code: Option<&str>,
    ) -> Result<u64, MessagingError> {
        let session = self
            .sessions
            .get_by_name(workspace, session)
            .await?
            .ok_or(MessagingError::SessionNotFound)?;
        let count = self
            .messages
            .requeue_failed(workspace, session.id, error_code, self.clock.now())
            .await?;
        if count > 0 {
            (self.on_enqueue)();
        }
        Ok(count)
    }
}
