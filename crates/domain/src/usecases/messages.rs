use std::sync::Arc;

use crate::clock::Clock;
use crate::error::MessagingError;
use crate::ids::{MessageId, WorkspaceId};
use crate::messaging::{
    Direction, IdempotencyKey, Message, MessageContent, MessageStatus, SendMessage, StatusChange,
    WaId,
};
use crate::ports::{EnqueueOutcome, MessageRepository, SessionRepository};

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
        }
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
    /// [`MessagingError::Validation`] (see [`SendMessage::validate`]),
    /// [`MessagingError::SessionNotFound`] (another workspace's sessions
    /// included), [`MessagingError::IdempotencyConflict`] when the key came
    /// with another request, [`MessagingError::Repository`].
    pub async fn send(
        &self,
        workspace: WorkspaceId,
        request: SendMessage,
        idempotency_key: Option<String>,
    ) -> Result<SendOutcome, MessagingError> {
        request.validate()?;
        let session = self
            .sessions
            .get_by_name(workspace, &request.session)
            .await?
            .ok_or(MessagingError::SessionNotFound)?;
        let now = self.clock.now();
        let message = Message {
            id: MessageId::new(),
            workspace_id: workspace,
            session_id: session.id,
            session_name: session.name.clone(),
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
        };
        let idempotency = idempotency_key.map(|key| IdempotencyKey {
            key,
            fingerprint: request.fingerprint(),
        });
        match self
            .messages
            .enqueue(&message, idempotency.as_ref())
            .await?
        {
            EnqueueOutcome::Created => {
                (self.on_enqueue)();
                Ok(SendOutcome {
                    message,
                    replayed: false,
                })
            }
            EnqueueOutcome::Existing {
                message: first,
                fingerprint,
            } => {
                if idempotency.is_some_and(|i| i.fingerprint == fingerprint) {
                    Ok(SendOutcome {
                        message: *first,
                        replayed: true,
                    })
                } else {
                    Err(MessagingError::IdempotencyConflict)
                }
            }
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
}
