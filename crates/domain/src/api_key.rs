//! API keys. The key itself is shown once, at creation; only its hash is
//! kept, and neither prints in `Debug` output.

use std::fmt;

use chrono::{DateTime, Utc};

use crate::ids::{ApiKeyId, WorkspaceId};

/// The record of an API key: everything but the key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKey {
    /// Its identifier.
    pub id: ApiKeyId,
    /// The workspace the key gives access to.
    pub workspace_id: WorkspaceId,
    /// A name to tell keys apart ("production", "zapier"...).
    pub name: String,
    /// The key's first characters (`mvr_live_AbC1`), enough to recognise it.
    pub prefix: String,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it was revoked; a revoked key authenticates nothing.
    pub revoked_at: Option<DateTime<Utc>>,
    /// When it last authenticated a request, as last recorded (servers
    /// record uses in batches, so this can be behind by their interval).
    pub last_used_at: Option<DateTime<Utc>>,
    /// Its own request rates, where they differ from the server's.
    pub rate_limits: KeyRateLimits,
}

/// A key's own request rates, in requests per second: `None` takes the
/// server's default, `Some(0)` is no limit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct KeyRateLimits {
    /// Any request but a send.
    pub requests_per_sec: Option<u32>,
    /// Sends (`POST /api/public/inbox/send` and the retries).
    pub sends_per_sec: Option<u32>,
}

impl ApiKey {
    /// Whether the key still authenticates.
    pub fn is_active(&self) -> bool {
        self.revoked_at.is_none()
    }
}

/// A plaintext API key. It exists only between generation and the moment it
/// is shown to its owner, and when a caller presents it.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKeySecret(String);

impl ApiKeySecret {
    /// Wraps a plaintext key.
    pub fn new(key: String) -> Self {
        Self(key)
    }

    /// The key's text. Show it to its owner once; never log it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for ApiKeySecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ApiKeySecret(<redacted>)")
    }
}

/// The stored digest of an API key (SHA-256 or HMAC-SHA-256).
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct ApiKeyHash([u8; 32]);

impl ApiKeyHash {
    /// Wraps a digest.
    pub const fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// The digest's bytes.
    pub const fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Debug for ApiKeyHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ApiKeyHash(<redacted>)")
    }
}

/// Who a request acts as, once its key is verified.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AuthContext {
    /// The workspace every operation of the request is confined to.
    pub workspace_id: WorkspaceId,
    /// The key that authenticated the request.
    pub api_key_id: ApiKeyId,
    /// The key's own request rates.
    pub rate_limits: KeyRateLimits,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_key_or_hash() {
        let secret = ApiKeySecret::new("mvr_live_supersecret".into());
        assert!(!format!("{secret:?}").contains("supersecret"));
        let hash = ApiKeyHash::from_bytes([0xab; 32]);
        assert!(!format!("{hash:?}").to_lowercase().contains("abab"));
    }
}
