//! Ports: what the use cases need from the outside world. Adapters (the
//! PostgreSQL store, the key hasher, test fakes) implement these traits.
//!
//! Every repository method confines itself to the workspace it is given:
//! an id of another workspace behaves exactly like an unknown id.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use std::sync::Arc;

use crate::api_key::{ApiKey, ApiKeyHash, ApiKeySecret};
use crate::contact::{Contact, ContactPage, ContactQuery};
use crate::error::RepositoryError;
use crate::ids::{ApiKeyId, ContactId, MessageId, SessionId, WorkspaceId};
use crate::messaging::{
    Conversation, ConversationQuery, DeliveryError, IdempotencyKey, InboundMessage, Message,
    ProviderEvent, Session, SessionName, SessionStatus, StatusUpdate, WaId,
};
use crate::transport::{TransportError, WhatsAppTransport};
use crate::workspace::Workspace;

pub use crate::clock::Clock;

/// Stores contacts.
#[async_trait]
pub trait ContactRepository: Send + Sync + 'static {
    /// Stores a new contact.
    ///
    /// # Errors
    /// [`RepositoryError::Duplicate`] with the existing contact's id when
    /// the workspace has a contact with this phone already; `Unavailable`
    /// or `Internal` when storage fails.
    async fn insert(&self, contact: &Contact) -> Result<(), RepositoryError>;

    /// The contact `id` of workspace `workspace`, if there is one.
    ///
    /// # Errors
    /// `Unavailable` or `Internal` when storage fails.
    async fn get(
        &self,
        workspace: WorkspaceId,
        id: ContactId,
    ) -> Result<Option<Contact>, RepositoryError>;

    /// The contacts of `workspace` that match `query`, newest first, and
    /// how many match in all.
    ///
    /// # Errors
    /// `Unavailable` or `Internal` when storage fails.
    async fn list(
        &self,
        workspace: WorkspaceId,
        query: &ContactQuery,
    ) -> Result<ContactPage, RepositoryError>;

    /// Replaces the stored name, phone, labels and `updated_at` of
    /// `contact` (matched by id and workspace). Returns `false` when no such
    /// contact exists.
    ///
    /// # Errors
    /// [`RepositoryError::Duplicate`] when the new phone belongs to another
    /// contact of the workspace; `Unavailable` or `Internal` when storage
    /// fails.
    async fn update(&self, contact: &Contact) -> Result<bool, RepositoryError>;

    /// As [`ContactRepository::update`], only while the stored contact's
    /// `updated_at` is still `read_updated_at` (it is the contact that was
    /// read): two requests patching one contact at once must not undo each
    /// other's change. The default updates whatever is stored, for
    /// adapters that cannot compare.
    ///
    /// # Errors
    /// As [`ContactRepository::update`].
    async fn update_if_unchanged(
        &self,
        contact: &Contact,
        read_updated_at: DateTime<Utc>,
    ) -> Result<ConditionalUpdate, RepositoryError> {
        let _ = read_updated_at;
        Ok(if self.update(contact).await? {
            ConditionalUpdate::Updated
        } else {
            ConditionalUpdate::NotFound
        })
    }

    /// Deletes the contact. Returns `false` when no such contact exists.
    ///
    /// # Errors
    /// `Unavailable` or `Internal` when storage fails.
    async fn delete(&self, workspace: WorkspaceId, id: ContactId) -> Result<bool, RepositoryError>;
}

/// Stores workspaces.
#[async_trait]
pub trait WorkspaceRepository: Send + Sync + 'static {
    /// Stores a new workspace.
    ///
    /// # Errors
    /// `Unavailable` or `Internal` when storage fails.
    async fn insert(&self, workspace: &Workspace) -> Result<(), RepositoryError>;

    /// The workspace `id`, if there is one.
    ///
    /// # Errors
    /// `Unavailable` or `Internal` when storage fails.
    async fn get(&self, id: WorkspaceId) -> Result<Option<Workspace>, RepositoryError>;

    /// Every workspace, oldest first.
    ///
    /// # Errors
    /// `Unavailable` or `Internal` when storage fails.
    async fn list(&self) -> Result<Vec<Workspace>, RepositoryError>;

    /// Stores `workspace` only when there is no workspace at all; whether
    /// it did. Adapters shared by several processes must make the check and
    /// the insert one step, so that two first starts create one workspace;
    /// the default (list, then insert) suits single-process stores.
    ///
    /// # Errors
    /// `Unavailable` or `Internal` when storage fails.
    async fn insert_if_none(&self, workspace: &Workspace) -> Result<bool, RepositoryError> {
        if !self.list().await?.is_empty() {
            return Ok(false);
        }
        self.insert(workspace).await?;
        Ok(true)
    }
}

/// Stores API-key records and their hashes.
#[async_trait]
pub trait ApiKeyRepository: Send + Sync + 'static {
    /// Stores a new key record with the hash of its key.
    ///
    /// # Errors
    /// `Duplicate` if the hash exists already (a collision: practically
    /// never); `Unavailable` or `Internal` when storage fails.
    async fn insert(&self, key: &ApiKey, hash: &ApiKeyHash) -> Result<(), RepositoryError>;

    /// The record whose key hashes to `hash`, revoked or not.
    ///
    /// # Errors
    /// `Unavailable` or `Internal` when storage fails.
    async fn find_by_hash(&self, hash: &ApiKeyHash) -> Result<Option<ApiKey>, RepositoryError>;

    /// The key records of `workspace`, oldest first.
    ///
    /// # Errors
    /// `Unavailable` or `Internal` when storage fails.
    async fn list(&self, workspace: WorkspaceId) -> Result<Vec<ApiKey>, RepositoryError>;

    /// The key record `id`, revoked or not.
    ///
    /// # Errors
    /// `Unavailable` or `Internal` when storage fails.
    async fn get(&self, id: ApiKeyId) -> Result<Option<ApiKey>, RepositoryError>;

    /// Marks the key revoked at `at`, unless it is revoked already. Returns
    /// `false` when no such key exists.
    ///
    /// # Errors
    /// `Unavailable` or `Internal` when storage fails.
    async fn revoke(&self, id: ApiKeyId, at: DateTime<Utc>) -> Result<bool, RepositoryError>;

    /// Records that the keys `ids` were used by `at`: their `last_used_at`
    /// becomes `at` unless it is later already. The default records
    /// nothing, for stores that do not keep it.
    ///
    /// # Errors
    /// `Unavailable` or `Internal` when storage fails.
    async fn record_use(&self, ids: &[ApiKeyId], at: DateTime<Utc>) -> Result<(), RepositoryError> {
        let _ = (ids, at);
        Ok(())
    }
}

/// Makes and hashes API keys. Implemented by `maveraa-auth`.
pub trait ApiKeyCodec: Send + Sync + 'static {
    /// A new random key and its hash.
    fn generate(&self) -> (ApiKeySecret, ApiKeyHash);

    /// The hash of a presented key, or `None` when the text cannot be a key
    /// of ours (wrong prefix, length or alphabet), so it needs no lookup.
    fn hash(&self, presented: &str) -> Option<ApiKeyHash>;
}

/// Tells whether the store answers. Used by readiness checks.
#[async_trait]
pub trait HealthCheck: Send + Sync + 'static {
    /// One round trip to the store.
    ///
    /// # Errors
    /// `Unavailable` when the store does not answer.
    async fn ping(&self) -> Result<(), RepositoryError>;
}

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

    /// Records the session's status and last error. `Disconnected`
    /// replaces only `Connected`, checked as it is written: a session that
    /// failed keeps its error, which tells more, whatever a send that
    /// started earlier found.
    ///
    /// # Errors
    /// `Unavailable` or `Internal` when storage fails.
    async fn set_status(
        &self,
        id: SessionId,
        status: SessionStatus,
        last_error: Option<String>,
    ) -> Result<(), RepositoryError>;
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

    /// Messages exchanged with `remote` through `session`, newest first,
    /// older than `before` when given; at most `limit`, except that a page
    /// never ends inside a group of messages stored at the same instant (it
    /// holds the whole group), so that the next page, asked for with
    /// `before` = the last message's `created_at`, misses none.
    ///
    /// # Errors
    /// `Unavailable` or `Internal` when storage fails.
    async fn list_for_conversation(
        &self,
        workspace: WorkspaceId,
        session: SessionId,
        remote: &WaId,
        before: Option<DateTime<Utc>>,
        limit: u32,
    ) -> Result<Vec<Message>, RepositoryError>;

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

    /// Moves the session's outbound message with this provider id to the
    /// update's status, unless that would go backwards. Returns whether it
    /// changed anything.
    ///
    /// # Errors
    /// `Unavailable` or `Internal` when storage fails.
    async fn apply_status(
        &self,
        session: SessionId,
        update: &StatusUpdate,
    ) -> Result<bool, RepositoryError>;

    /// The conversations of `workspace` matching `query`, newest first; at
    /// most `query.limit`, except that a page never ends inside a group of
    /// conversations with the same `last_message_at` (it holds the whole
    /// group), so that the next page, asked for with `before` = the last
    /// one's time, misses none.
    ///
    /// # Errors
    /// `Unavailable` or `Internal` when storage fails.
    async fn list_conversations(
        &self,
        workspace: WorkspaceId,
        query: &ConversationQuery,
    ) -> Result<Vec<Conversation>, RepositoryError>;

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

/// An outbox entry claimed by a dispatcher, with what it needs to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxJob {
    /// The message.
    pub message: Message,
    /// Its session.
    pub session: Session,
    /// Attempts so far, this one included.
    pub attempt: u32,
}

impl OutboxJob {
    /// The claim this job was handed under, to record its outcome with.
    pub fn claim(&self) -> Claim {
        Claim {
            message: self.message.id,
            attempt: self.attempt,
        }
    }
}

/// One claim of an outbox entry: the entry and the attempt it was claimed
/// for. Each claim of an entry counts one attempt more, so the number tells
/// a claim from a later one (made once the earlier lease ran out).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Claim {
    /// The message.
    pub message: MessageId,
    /// The attempt's number, as in [`OutboxJob::attempt`].
    pub attempt: u32,
}

/// What became of an update made only while the stored row is the one read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConditionalUpdate {
    /// Written.
    Updated,
    /// No such row.
    NotFound,
    /// Written by someone else since it was read: read it again.
    Changed,
}

/// What became of one attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DispatchOutcome {
    /// The provider took it: `sent`, entry removed.
    Sent {
        /// The provider's id.
        provider_message_id: String,
    },
    /// Try again at `at`; the entry's lease is released.
    Retry {
        /// When.
        at: DateTime<Utc>,
        /// Why the attempt failed.
        error: String,
    },
    /// Give up: `failed`, entry removed.
    Failed(DeliveryError),
}

/// The outbox: durable queue of messages to send.
#[async_trait]
pub trait Outbox: Send + Sync + 'static {
    /// Claims up to `limit` due entries for `lease` (skipping entries other
    /// dispatchers hold), counting an attempt on each. An entry whose lease
    /// expired (its dispatcher died) is due again.
    ///
    /// # Errors
    /// `Unavailable` or `Internal` when storage fails.
    async fn claim(
        &self,
        worker: &str,
        limit: u32,
        lease: std::time::Duration,
    ) -> Result<Vec<OutboxJob>, RepositoryError>;

    /// Records the outcomes of claimed entries, in one transaction.
    ///
    /// A `Retry` or `Failed` counts only while its claim is the entry's
    /// latest: once its lease ran out and another dispatcher claimed the
    /// entry, that dispatcher's outcome decides (a late retry must not
    /// release the other's claim and let a third send it). A `Sent` always
    /// counts: the provider has the message, whoever else is sending it,
    /// and a message another claim failed before it reached the provider
    /// is `sent` after all.
    ///
    /// `at` is when the outcomes came, and a `Retry`'s time is read against
    /// it: storage with a clock of its own (a database server's) keeps the
    /// wait, `Retry::at - at`, and not the instant, so that claims, which
    /// go by storage's clock, come neither early nor late when the clocks
    /// disagree.
    ///
    /// # Errors
    /// `Unavailable` or `Internal` when storage fails.
    async fn record(
        &self,
        results: &[(Claim, DispatchOutcome)],
        at: DateTime<Utc>,
    ) -> Result<(), RepositoryError>;
}

/// Gives the transport of a session.
pub trait TransportFactory: Send + Sync + 'static {
    /// The transport that sends through `session`.
    ///
    /// # Errors
    /// [`TransportError::Permanent`] when the session's settings cannot make
    /// one.
    fn transport_for(
        &self,
        session: &Session,
    ) -> Result<Arc<dyn WhatsAppTransport>, TransportError>;
}

/// Checks and decodes a provider's webhook deliveries (Meta's Cloud API).
pub trait WebhookDecoder: Send + Sync + 'static {
    /// Whether `signature` (the `X-Hub-Signature-256` header) is the
    /// HMAC-SHA-256 of `body` under `app_secret`, compared in constant time.
    fn verify_signature(&self, app_secret: &str, body: &[u8], signature: Option<&str>) -> bool;

    /// The events in a delivery.
    ///
    /// # Errors
    /// A description when the body is not a delivery of the expected shape.
    fn decode(&self, body: &[u8]) -> Result<Vec<ProviderEvent>, String>;

    /// The events in a delivery that concern the number `phone_number_id`.
    /// Meta sends the webhooks of all numbers of one app to one URL, so a
    /// delivery may carry other numbers' events. The default keeps all.
    ///
    /// # Errors
    /// As [`WebhookDecoder::decode`].
    fn decode_for_number(
        &self,
        body: &[u8],
        phone_number_id: &str,
    ) -> Result<Vec<ProviderEvent>, String> {
        let _ = phone_number_id;
        self.decode(body)
    }
}

/// Takes what providers report (webhooks, the simulator).
#[async_trait]
pub trait ProviderEventSink: Send + Sync + 'static {
    /// Stores `events` reported for `session`.
    ///
    /// # Errors
    /// When storage fails: the provider should deliver again.
    async fn deliver(
        &self,
        session: &Session,
        events: Vec<ProviderEvent>,
    ) -> Result<(), RepositoryError>;
}
