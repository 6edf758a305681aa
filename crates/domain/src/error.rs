//! Error types of the ports and use cases.

use uuid::Uuid;

use crate::ids::ContactId;
use crate::values::ValidationError;

/// What a repository (storage port) can fail with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RepositoryError {
    /// A uniqueness rule was broken. `existing` is the id of the row that
    /// holds the value already, when the adapter could find it.
    #[error("duplicate value")]
    Duplicate {
        /// The row that holds the value already.
        existing: Option<Uuid>,
    },
    /// The store could not be reached or was too busy (pool exhausted,
    /// connection refused, timeout). Usually worth retrying.
    #[error("storage unavailable: {0}")]
    Unavailable(String),
    /// Anything else. The text is for logs, never for API callers.
    #[error("storage failure: {0}")]
    Internal(String),
}

/// Failures of the contact use cases.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ContactError {
    /// The input broke a rule.
    #[error(transparent)]
    Validation(#[from] ValidationError),
    /// No such contact in this workspace.
    #[error("contact not found")]
    NotFound,
    /// Another contact of the workspace has this phone number.
    #[error("a contact with this phone number already exists")]
    Duplicate {
        /// The contact that has the number.
        existing: ContactId,
    },
    /// Storage failed.
    #[error(transparent)]
    Repository(RepositoryError),
}

impl From<RepositoryError> for ContactError {
    fn from(err: RepositoryError) -> Self {
        Self::Repository(err)
    }
}

/// Failures of the workspace use cases.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WorkspaceError {
    /// The input broke a rule.
    #[error(transparent)]
    Validation(#[from] ValidationError),
    /// No such workspace.
    #[error("workspace not found")]
    NotFound,
    /// Storage failed.
    #[error(transparent)]
    Repository(#[from] RepositoryError),
}

/// Failures of the API-key management use cases.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApiKeyError {
    /// The input broke a rule.
    #[error(transparent)]
    Validation(#[from] ValidationError),
    /// The workspace the key would belong to does not exist.
    #[error("workspace not found")]
    WorkspaceNotFound,
    /// No such API key.
    #[error("API key not found")]
    NotFound,
    /// Storage failed.
    #[error(transparent)]
    Repository(#[from] RepositoryError),
}

/// Failures of the dashboard-user use cases.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UserError {
    /// The input broke a rule.
    #[error(transparent)]
    Validation(#[from] ValidationError),
    /// The workspace the user would join does not exist.
    #[error("workspace not found")]
    WorkspaceNotFound,
    /// A user with this email exists already.
    #[error("a user with this email exists already")]
    Duplicate,
    /// The email and password do not match a user. Deliberately one
    /// variant: callers learn nothing about which was wrong.
    #[error("the email or the password is wrong")]
    InvalidCredentials,
    /// Hashing or checking the password failed.
    #[error("password hashing failed: {0}")]
    Hashing(String),
    /// Storage failed.
    #[error(transparent)]
    Repository(#[from] RepositoryError),
}

/// Why a request was not authenticated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// No key was presented.
    #[error("no API key was given")]
    Missing,
    /// The key is malformed, unknown or revoked. Deliberately one variant:
    /// callers learn nothing about which.
    #[error("the API key is invalid or revoked")]
    Invalid,
    /// Storage failed, so the key could not be checked.
    #[error(transparent)]
    Repository(#[from] RepositoryError),
}

/// Failures of the session use cases.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SessionError {
    /// The input broke a rule.
    #[error(transparent)]
    Validation(#[from] ValidationError),
    /// No such session in this workspace.
    #[error("session not found")]
    NotFound,
    /// The workspace has a session of this name.
    #[error("a session with this id already exists")]
    Duplicate,
    /// The workspace does not exist.
    #[error("workspace not found")]
    WorkspaceNotFound,
    /// The session cannot do this now, or its provider never can; the
    /// text says why (its status, or its provider).
    #[error("{0}")]
    WrongState(String),
    /// Storage failed.
    #[error(transparent)]
    Repository(RepositoryError),
}

impl From<RepositoryError> for SessionError {
    fn from(err: RepositoryError) -> Self {
        match err {
            RepositoryError::Duplicate { .. } => Self::Duplicate,
            other => Self::Repository(other),
        }
    }
}

/// Failures of the messaging use cases ([`crate::usecases::MessagingService`]:
/// sending and reading messages). Not to be confused with
/// [`crate::messaging::DeliveryError`], why a stored message was not delivered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MessagingError {
    /// The input broke a rule.
    #[error(transparent)]
    Validation(#[from] ValidationError),
    /// No such session in this workspace.
    #[error("session not found")]
    SessionNotFound,
    /// No such message in this workspace.
    #[error("message not found")]
    NotFound,
    /// The idempotency key was used with a different request.
    #[error("this Idempotency-Key was used with a different request")]
    IdempotencyConflict,
    /// The message cannot be queued again: it is not a failed outbound
    /// message, or the provider took it (and may still deliver it).
    #[error("only a failed message the provider never took can be retried")]
    NotRetryable,
    /// The message carries no media its provider can give: not a media
    /// message, or media sent by link (fetch it from its `url`).
    #[error("this message has no received media to fetch")]
    NoMedia,
    /// Its provider did not give the media.
    #[error(transparent)]
    Media(#[from] crate::ports::MediaError),
    /// Storage failed.
    #[error(transparent)]
    Repository(#[from] RepositoryError),
}

/// Failures of the inbox and webhook use cases.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InboxError {
    /// The input broke a rule.
    #[error(transparent)]
    Validation(#[from] ValidationError),
    /// No such session (in this workspace, or at all for webhooks).
    #[error("session not found")]
    SessionNotFound,
    /// No such conversation.
    #[error("conversation not found")]
    ConversationNotFound,
    /// The session's provider does not support this (simulated inbound
    /// messages on a real provider's session).
    #[error("not supported by this session's provider")]
    WrongProvider,
    /// The webhook's signature is missing or wrong.
    #[error("invalid webhook signature")]
    BadSignature,
    /// The webhook verification token is wrong.
    #[error("webhook verification refused")]
    VerificationRefused,
    /// The webhook body is not a delivery we understand.
    #[error("malformed webhook: {0}")]
    MalformedWebhook(String),
    /// Storage failed.
    #[error(transparent)]
    Repository(#[from] RepositoryError),
}

/// Failures of the webhook endpoint use cases.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WebhookError {
    /// The input broke a rule.
    #[error(transparent)]
    Validation(#[from] ValidationError),
    /// No such endpoint (or delivery) in this workspace.
    #[error("webhook endpoint not found")]
    NotFound,
    /// The workspace has as many endpoints as it may.
    #[error("a workspace may have at most {0} webhook endpoints")]
    TooMany(usize),
    /// The delivery's event left the log: there is nothing to send again.
    #[error("the event of this delivery is no longer kept; nothing to redeliver")]
    EventExpired,
    /// Storage failed.
    #[error(transparent)]
    Repository(#[from] RepositoryError),
}
