//! Sessions, messages and conversations.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::error::RepositoryError;
use crate::ids::{MessageId, SessionId, WorkspaceId};
use crate::messaging::{
    Conversation, ConversationQuery, IdempotencyKey, InboundMessage, Message, Session, SessionName,
    SessionStatus, StatusUpdate, WaId,
};
use crate::paging::{ConversationKey, Page, PageStart};

/// Stores WhatsApp sessions.
#[async_trait]
pub trait SessionRepository: Send + Sync + 'static {
    /// Stores a new session.
    ///
    /// # Errors
    /// `Duplicate` when the workspace has a session of this name;
    /// `Unavailable` or `Internal` when storage fails.
    async fn insert(&self, session: &Session) -> Result<(), RepositoryError>;

    /// The session `name` of `workspace`.
    ///
    /// # Errors
    /// `Unavailable` or `Internal` when storage fails.
    async fn get_by_name(
        &self,
        workspace: WorkspaceId,
        name: &SessionName,
    ) -> Result<Option<Session>, RepositoryError>;

    /// The session with global id `id` (for webhooks).
    ///
    /// # Errors
    /// `Unavailable` or `Internal` when storage fails.
    async fn get(&self, id: SessionId) -> Result<Option<Session>, RepositoryError>;

    /// The sessions of `workspace`, oldest first.
    ///
    /// # Errors
    /// `Unavailable` or `Internal` when storage fails.
    async fn list(&self, workspace: WorkspaceId) -> Result<Vec<Session>, RepositoryError>;

    /// Deletes the session and, with it, its messages and conversations.
    /// Returns `false` when there is none.
    ///
    /// # Errors
    /// `Unavailable` or `Internal` when storage fails.
    async fn delete(
        &self,
        workspace: WorkspaceId,
        name: &SessionName,
    ) -> Result<bool, RepositoryError>;

    /// Records the session's status and last error, as sends found them.
    /// `Disconnected` replaces only `Connected`, checked as it is written:
    /// a session that failed keeps its error, which tells more, whatever a
    /// send that started earlier found. A `Stopped` session stays stopped:
    /// only [`SessionRepository::set_stopped`] starts it.
    ///
    /// # Errors
    /// `Unavailable` or `Internal` when storage fails.
    async fn set_status(
        &self,
        id: SessionId,
        status: SessionStatus,
        last_error: Option<String>,
    ) -> Result<(), RepositoryError>;

    /// Stops (`true`: status `stopped`) or starts (`false`: `connected`,
    /// its last error cleared) the session `name` of `workspace`. Returns
    /// `false` when there is no such session.
    ///
    /// # Errors
    /// `Unavailable` or `Internal` when storage fails.
    async fn set_stopped(
        &self,
        workspace: WorkspaceId,
        name: &SessionName,
        stopped: bool,
    ) -> Result<bool, RepositoryError>;
}

/// What [`MessageRepository::enqueue`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum EnqueueOutcome {
    /// The message and its outbox entry were stored.
    Created,
    /// A message with this idempotency key was stored within the last 24
    /// hours; nothing new was stored.
    Existing {
        /// That message.
        message: Box<Message>,
        /// The fingerprint of the request that stored it.
        fingerprint: String,
    },
    /// The message's session (or its workspace) no longer exists; nothing
    /// was stored.
    SessionGone,
}

/// Stores messages and conversations.
#[async_trait]
pub trait MessageRepository: Send + Sync + 'static {
    /// Stores an outbound message (status `queued`) together with its outbox
    /// entry, in one transaction, and updates its conversation. With an
    /// idempotency key already used within 24 hours in the workspace,
    /// stores nothing and returns the earlier message. When the message's
    /// session was deleted meanwhile, stores nothing and answers
    /// [`EnqueueOutcome::SessionGone`].
    ///
    /// # Errors
    /// `Unavailable` or `Internal` when storage fails.
    async fn enqueue(
        &self,
        message: &Message,
        idempotency: Option<&IdempotencyKey>,
    ) -> Result<EnqueueOutcome, RepositoryError>;

    /// The message `id` of `workspace`, with its status history.
    ///
    /// # Errors
    /// `Unavailable` or `Internal` when storage fails.
    async fn get(
        &self,
        workspace: WorkspaceId,
        id: MessageId,
    ) -> Result<Option<Message>, RepositoryError>;

    /// Messages exchanged with `remote` through `session`, newest first
    /// (by `created_at`, then id), from `start`, with the position of the
    /// page's last message when more follow it. At most `limit`, except
    /// that a page read from [`PageStart::Newest`] or
    /// [`PageStart::Before`] never ends inside a group of messages stored
    /// at the same instant (it holds the whole group), so that the next
    /// page, asked for with `before` = the last message's `created_at`,
    /// misses none. A page from [`PageStart::After`] holds at most `limit`.
    ///
    /// # Errors
    /// `Unavailable` or `Internal` when storage fails.
    async fn list_for_conversation(
        &self,
        workspace: WorkspaceId,
        session: SessionId,
        remote: &WaId,
        start: PageStart<MessageId>,
        limit: u32,
    ) -> Result<Page<Message, MessageId>, RepositoryError>;

    /// Stores an inbound message unless the session has one with the same
    /// provider id; when new, updates the conversation (last message, push
    /// name, unread count + 1) in the same transaction. Returns whether it
    /// was new.
    ///
    /// # Errors
    /// `Unavailable` or `Internal` when storage fails.
    async fn record_inbound(
        &self,
        session: &Session,
        id: MessageId,
        message: &InboundMessage,
        received_at: DateTime<Utc>,
    ) -> Result<bool, RepositoryError>;

    /// Stores `message`, which the account sent from another of its devices
    /// (see [`ProviderEvent::Echo`](crate::messaging::ProviderEvent::Echo)),
    /// as `id`: outbound, `sent`, in its conversation (the preview moves,
    /// the unread count does not), unless the session has its provider id.
    /// Returns whether it was new.
    ///
    /// # Errors
    /// `Unavailable` or `Internal` when storage fails.
    async fn record_echo(
        &self,
        session: &Session,
        id: MessageId,
        message: &InboundMessage,
        received_at: DateTime<Utc>,
    ) -> Result<bool, RepositoryError>;

    /// Moves the session's outbound message with this provider id to the
    /// update's status, unless that would go backwards. Returns whether it
    /// changed anything.
    ///
    /// When no message has the provider id yet and the update names one of
    /// the session's outbound messages
    /// ([`StatusUpdate::echoed_message_id`]) that has no provider id (a
    /// send whose outcome was unknown), that message is recorded `sent`
    /// with the provider id and its outbox entry ends, before the status
    /// is applied: the provider has it, and it must not be sent again.
    ///
    /// # Errors
    /// `Unavailable` or `Internal` when storage fails.
    async fn apply_status(
        &self,
        session: SessionId,
        update: &StatusUpdate,
    ) -> Result<bool, RepositoryError>;

    /// The conversations of `workspace` matching `query`, newest first (by
    /// `last_message_at`, then session and remote), with the position of
    /// the page's last conversation when more follow it. At most
    /// `query.limit`, except that a page read from [`PageStart::Newest`]
    /// or [`PageStart::Before`] never ends inside a group of conversations
    /// with the same `last_message_at` (it holds the whole group), so that
    /// the next page, asked for with `before` = the last one's time,
    /// misses none. A page from [`PageStart::After`] holds at most
    /// `query.limit`.
    ///
    /// # Errors
    /// `Unavailable` or `Internal` when storage fails.
    async fn list_conversations(
        &self,
        workspace: WorkspaceId,
        query: &ConversationQuery,
    ) -> Result<Page<Conversation, ConversationKey>, RepositoryError>;

    /// Queues the message `id` of `workspace` again when it can be
    /// ([`Message::can_retry`], checked as it is written): its status
    /// becomes `queued` (a new step of its history), its error is cleared
    /// and a new outbox entry is due at once. Returns the message as it is
    /// then, or `None` when there is no such message that can be retried.
    ///
    /// # Errors
    /// `Unavailable` or `Internal` when storage fails.
    async fn requeue(
        &self,
        workspace: WorkspaceId,
        id: MessageId,
        at: DateTime<Utc>,
    ) -> Result<Option<Message>, RepositoryError>;

    /// Queues again, as [`MessageRepository::requeue`], every message of
    /// `session` that can be retried, only those whose error code is
    /// `error_code` when one is given. Returns how many.
    ///
    /// # Errors
    /// `Unavailable` or `Internal` when storage fails.
    async fn requeue_failed(
        &self,
        workspace: WorkspaceId,
        session: SessionId,
        error_code: Option<&str>,
        at: DateTime<Utc>,
    ) -> Result<u64, RepositoryError>;

    /// Sets the conversation's unread count to 0. Returns the provider id of
    /// its latest inbound message (`Some(None)` when it has none), or `None`
    /// when there is no such conversation.
    ///
    /// # Errors
    /// `Unavailable` or `Internal` when storage fails.
    async fn mark_conversation_read(
        &self,
        workspace: WorkspaceId,
        session: SessionId,
        remote: &WaId,
    ) -> Result<Option<Option<String>>, RepositoryError>;
}
