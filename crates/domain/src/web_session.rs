//! Dashboard sign-ins: server-side sessions a browser holds by a cookie,
//! revocable, with idle and absolute expiry, and the one-time link that
//! creates the first account.

use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::ids::{UserId, WorkspaceId};
use crate::user::{Role, User};

/// A signed-in browser. The cookie holds a random token; only its hash is
/// stored, so the store's contents sign no one in.
#[derive(Clone, PartialEq, Eq)]
pub struct WebSession {
    /// The token's hash: the session's key in storage.
    pub token_hash: String,
    /// Who signed in.
    pub user_id: UserId,
    /// The workspace the dashboard shows.
    pub workspace_id: WorkspaceId,
    /// The token forms and scripts send back with every change (CSRF).
    pub csrf_token: String,
    /// When it began.
    pub created_at: DateTime<Utc>,
    /// When it was last used (refreshed at most once a minute).
    pub last_seen_at: DateTime<Utc>,
    /// When it ends whatever its use.
    pub expires_at: DateTime<Utc>,
}

impl std::fmt::Debug for WebSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebSession")
            .field("user_id", &self.user_id)
            .field("workspace_id", &self.workspace_id)
            .field("created_at", &self.created_at)
            .field("last_seen_at", &self.last_seen_at)
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

/// A signed-in browser with who it is and what they may do.
#[derive(Debug, Clone)]
pub struct SignedIn {
    /// The session.
    pub session: WebSession,
    /// The user.
    pub user: User,
    /// Their role in the session's workspace.
    pub role: Role,
}

/// How long sessions last, and how sign-ins are limited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionPolicy {
    /// A session unused this long ends.
    pub idle: Duration,
    /// A session ends this long after it began, used or not.
    pub absolute: Duration,
    /// Failed sign-ins of one account before it is locked for `lockout`.
    pub account_failures: u32,
    /// Failed sign-ins from one client address before it is refused for
    /// `lockout`.
    pub address_failures: u32,
    /// How long failures count, and how long a lock holds.
    pub lockout: Duration,
    /// How long the first-account link is valid.
    pub setup_link: Duration,
}

impl Default for SessionPolicy {
    fn default() -> Self {
        Self {
            idle: Duration::from_secs(2 * 3600),
            absolute: Duration::from_secs(7 * 24 * 3600),
            account_failures: 5,
            address_failures: 20,
            lockout: Duration::from_secs(15 * 60),
            setup_link: Duration::from_secs(3600),
        }
    }
}
