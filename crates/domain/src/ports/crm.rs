//! Contacts, workspaces, API keys and the store's health.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::api_key::{ApiKey, ApiKeyHash, ApiKeySecret, KeyRateLimits};
use crate::contact::{
    Contact, ContactPage, ContactQuery, ContactStream, ImportTally, ImportedContacts, OnDuplicate,
};
use crate::error::RepositoryError;
use crate::event::{Event, EventQuery};
use crate::ids::{ApiKeyId, ContactId, UserId, WorkspaceId};
use crate::user::{Email, Membership, Password, PasswordHash, Role, User};
use crate::workspace::Workspace;

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

    /// The contacts of `workspace` that match `query`, newest first (by
    /// `created_at`, then id), how many match in all and, for a page with
    /// a `limit`, the position of its last contact when more follow it.
    ///
    /// # Errors
    /// `Unavailable` or `Internal` when storage fails.
    async fn list(
        &self,
        workspace: WorkspaceId,
        query: &ContactQuery,
    ) -> Result<ContactPage, RepositoryError>;

    /// Every contact of `workspace` that matches `query`'s filters (its
    /// `offset` honoured, its `limit` not), newest first, streamed: the
    /// answer comes once the count is known, and the contacts follow in
    /// batches as they are read, so no more than a few batches are held
    /// however many there are. Dropping the stream stops the reading.
    ///
    /// # Errors
    /// `Unavailable` or `Internal` when storage fails before the first
    /// batch; later failures end the stream with an error item.
    async fn stream(
        &self,
        workspace: WorkspaceId,
        query: &ContactQuery,
    ) -> Result<ContactStream, RepositoryError>;

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
    /// other's change.
    ///
    /// # Errors
    /// As [`ContactRepository::update`].
    async fn update_if_unchanged(
        &self,
        contact: &Contact,
        read_updated_at: DateTime<Utc>,
    ) -> Result<ConditionalUpdate, RepositoryError>;

    /// Deletes the contact. Returns `false` when no such contact exists.
    ///
    /// # Errors
    /// `Unavailable` or `Internal` when storage fails.
    async fn delete(&self, workspace: WorkspaceId, id: ContactId) -> Result<bool, RepositoryError>;

    /// Writes an import's contacts into `workspace` as their batches come,
    /// all in one transaction: every row, or none when storage fails or
    /// `rows` ends in an error (then `Ok(None)`). A row whose phone the
    /// workspace has (stored, or from an earlier row) is handled as
    /// `on_duplicate` says; for an update, the stored contact keeps its id
    /// and `created_at`. Writers of the workspace's other contacts never
    /// wait for the import's end, and counts stay exact.
    ///
    /// # Errors
    /// `Unavailable` or `Internal` when storage fails; nothing is written.
    async fn import(
        &self,
        workspace: WorkspaceId,
        on_duplicate: OnDuplicate,
        rows: ImportedContacts,
    ) -> Result<Option<ImportTally>, RepositoryError>;
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
    /// it did. The check and the insert are one step: two first starts at
    /// once create one workspace.
    ///
    /// # Errors
    /// `Unavailable` or `Internal` when storage fails.
    async fn insert_if_none(&self, workspace: &Workspace) -> Result<bool, RepositoryError>;
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

    /// Sets the key's own request rates. Returns `false` when no such key
    /// exists. Every server forgets what it remembered of the key, as for
    /// a revocation, so the new rates apply at once.
    ///
    /// # Errors
    /// `Unavailable` or `Internal` when storage fails.
    async fn set_rate_limits(
        &self,
        id: ApiKeyId,
        limits: KeyRateLimits,
    ) -> Result<bool, RepositoryError>;

    /// Records that the keys `ids` were used by `at`: their `last_used_at`
    /// becomes `at` unless it is later already.
    ///
    /// # Errors
    /// `Unavailable` or `Internal` when storage fails.
    async fn record_use(&self, ids: &[ApiKeyId], at: DateTime<Utc>) -> Result<(), RepositoryError>;
}

/// Stores dashboard users, their password hashes and memberships.
#[async_trait]
pub trait UserRepository: Send + Sync + 'static {
    /// Stores a new user with its password hash and first membership, in
    /// one transaction.
    ///
    /// # Errors
    /// [`RepositoryError::Duplicate`] when a user has this email already;
    /// `Unavailable` or `Internal` when storage fails.
    async fn insert(
        &self,
        user: &User,
        hash: &PasswordHash,
        membership: &Membership,
    ) -> Result<(), RepositoryError>;

    /// The user signing in with `email`, and its password hash.
    ///
    /// # Errors
    /// `Unavailable` or `Internal` when storage fails.
    async fn find_by_email(
        &self,
        email: &Email,
    ) -> Result<Option<(User, PasswordHash)>, RepositoryError>;

    /// The user's memberships, oldest first.
    ///
    /// # Errors
    /// `Unavailable` or `Internal` when storage fails.
    async fn memberships(&self, user: UserId) -> Result<Vec<Membership>, RepositoryError>;

    /// How many users there are.
    ///
    /// # Errors
    /// When storage fails.
    async fn count(&self) -> Result<usize, RepositoryError>;

    /// The user `id`, and its password hash.
    ///
    /// # Errors
    /// When storage fails.
    async fn get(&self, id: UserId) -> Result<Option<(User, PasswordHash)>, RepositoryError>;

    /// Replaces the user's password hash.
    ///
    /// # Errors
    /// When storage fails.
    async fn set_password(&self, id: UserId, hash: &PasswordHash) -> Result<(), RepositoryError>;

    /// The members of `workspace` with their roles, oldest first.
    ///
    /// # Errors
    /// When storage fails.
    async fn members(&self, workspace: WorkspaceId) -> Result<Vec<(User, Role)>, RepositoryError>;

    /// Adds an existing user to a workspace.
    ///
    /// # Errors
    /// [`RepositoryError::Duplicate`] when they are a member already.
    async fn add_membership(&self, membership: &Membership) -> Result<(), RepositoryError>;

    /// Changes a member's role, or removes them (`None`), unless that would
    /// leave the workspace without an owner. `Ok(false)`: no such member,
    /// or the last owner.
    ///
    /// # Errors
    /// When storage fails.
    async fn change_membership(
        &self,
        workspace: WorkspaceId,
        user: UserId,
        role: Option<Role>,
    ) -> Result<bool, RepositoryError>;
}

/// Hashes and checks passwords. Deliberately slow work: an implementation
/// runs it off the async executor, on a bounded pool. Implemented by
/// `maveraa-auth`.
#[async_trait]
pub trait PasswordHasher: Send + Sync + 'static {
    /// A new salted hash of `password`.
    ///
    /// # Errors
    /// A message when hashing fails (its pool is gone, say).
    async fn hash(&self, password: &Password) -> Result<PasswordHash, String>;

    /// Whether `password` is the one `hash` was made from.
    ///
    /// # Errors
    /// A message when `hash` cannot be read or the check cannot run.
    async fn verify(&self, password: &Password, hash: &PasswordHash) -> Result<bool, String>;
}

/// The event log, written by storage in the same transaction as each
/// change it records.
#[async_trait]
pub trait EventLog: Send + Sync + 'static {
    /// The events of `workspace` that match `query`, in log order.
    ///
    /// # Errors
    /// `Unavailable` or `Internal` when storage fails.
    async fn list(
        &self,
        workspace: WorkspaceId,
        query: &EventQuery,
    ) -> Result<Vec<Event>, RepositoryError>;

    /// Gives up to `batch` committed events their positions, in the order
    /// they were written; one process at a time does (another's call
    /// returns 0 meanwhile). Returns how many it placed.
    ///
    /// # Errors
    /// `Unavailable` or `Internal` when storage fails.
    async fn sequence(&self, batch: u32) -> Result<usize, RepositoryError>;

    /// Deletes the events written before `before`. Returns how many.
    ///
    /// # Errors
    /// `Unavailable` or `Internal` when storage fails.
    async fn prune(&self, before: DateTime<Utc>) -> Result<usize, RepositoryError>;
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

/// Makes and hashes the random tokens of dashboard sessions and setup
/// links. Implemented by `maveraa-auth`.
pub trait TokenCodec: Send + Sync + 'static {
    /// A new random token (at least 256 bits) and its hash.
    fn generate(&self) -> (String, String);

    /// The hash of a presented token.
    fn hash(&self, token: &str) -> String;
}

/// Stores dashboard sessions and the first-account setup links.
#[async_trait]
pub trait WebSessionRepository: Send + Sync + 'static {
    /// Stores a new session.
    ///
    /// # Errors
    /// When storage fails.
    async fn insert(&self, session: &crate::web_session::WebSession)
    -> Result<(), RepositoryError>;

    /// The session whose token hashes to `token_hash`, if it has not
    /// ended.
    ///
    /// # Errors
    /// When storage fails.
    async fn find(
        &self,
        token_hash: &str,
    ) -> Result<Option<crate::web_session::WebSession>, RepositoryError>;

    /// Records a use of the session.
    ///
    /// # Errors
    /// When storage fails.
    async fn touch(&self, token_hash: &str, at: DateTime<Utc>) -> Result<(), RepositoryError>;

    /// Ends one session.
    ///
    /// # Errors
    /// When storage fails.
    async fn delete(&self, token_hash: &str) -> Result<(), RepositoryError>;

    /// Makes the session show `workspace`.
    ///
    /// # Errors
    /// When storage fails.
    async fn switch_workspace(
        &self,
        token_hash: &str,
        workspace: WorkspaceId,
    ) -> Result<(), RepositoryError>;

    /// Ends every session of `user` but `except`; how many ended.
    ///
    /// # Errors
    /// When storage fails.
    async fn delete_for_user(
        &self,
        user: UserId,
        except: Option<&str>,
    ) -> Result<usize, RepositoryError>;

    /// Stores a setup link's hash, valid until `expires_at`, beside any
    /// other still valid (each server that starts prints its own).
    ///
    /// # Errors
    /// When storage fails.
    async fn put_setup_token(
        &self,
        token_hash: &str,
        expires_at: DateTime<Utc>,
    ) -> Result<(), RepositoryError>;

    /// Whether `token_hash` is a setup link's, valid at `now`; without
    /// consuming it.
    ///
    /// # Errors
    /// When storage fails.
    async fn setup_token_valid(
        &self,
        token_hash: &str,
        now: DateTime<Utc>,
    ) -> Result<bool, RepositoryError>;

    /// Consumes a setup link and creates the first user with it, in one
    /// transaction, only while no user exists (every other link goes with
    /// it); false when the link is not valid at `now` or a user exists.
    ///
    /// # Errors
    /// When storage fails.
    async fn setup_first_user(
        &self,
        token_hash: &str,
        now: DateTime<Utc>,
        user: &User,
        hash: &PasswordHash,
        membership: &Membership,
    ) -> Result<bool, RepositoryError>;
}
