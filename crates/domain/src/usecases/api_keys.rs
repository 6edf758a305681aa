use std::sync::Arc;

use crate::api_key::{ApiKey, ApiKeySecret, AuthContext};
use crate::clock::Clock;
use crate::error::{ApiKeyError, AuthError};
use crate::ids::{ApiKeyId, WorkspaceId};
use crate::ports::{ApiKeyCodec, ApiKeyRepository, WorkspaceRepository};
use crate::validation::ValidationError;

/// How many characters of a key are kept in clear to recognise it.
const PREFIX_CHARS: usize = 13;
/// Longest key name accepted.
const MAX_NAME_CHARS: usize = 100;

/// Issues, lists, revokes and verifies API keys.
#[derive(Clone)]
pub struct ApiKeyService {
    keys: Arc<dyn ApiKeyRepository>,
    workspaces: Arc<dyn WorkspaceRepository>,
    codec: Arc<dyn ApiKeyCodec>,
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for ApiKeyService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiKeyService").finish_non_exhaustive()
    }
}

impl ApiKeyService {
    /// A service over the given ports.
    pub fn new(
        keys: Arc<dyn ApiKeyRepository>,
        workspaces: Arc<dyn WorkspaceRepository>,
        codec: Arc<dyn ApiKeyCodec>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            keys,
            workspaces,
            codec,
            clock,
        }
    }

    /// Issues a key for `workspace`. The returned secret is the only copy of
    /// the key: only its hash is stored.
    ///
    /// # Errors
    /// [`ApiKeyError::WorkspaceNotFound`] when the workspace does not exist;
    /// [`ApiKeyError::Validation`] on a bad name;
    /// [`ApiKeyError::Repository`] when storage fails.
    pub async fn create(
        &self,
        workspace: WorkspaceId,
        name: Option<&str>,
    ) -> Result<(ApiKey, ApiKeySecret), ApiKeyError> {
        let name = match name.map(str::trim) {
            None | Some("") => "default".to_owned(),
            Some(n) if n.chars().count() > MAX_NAME_CHARS => {
                return Err(ValidationError::new(
                    "name",
                    format!("must be at most {MAX_NAME_CHARS} characters"),
                )
                .into());
            }
            Some(n) => n.to_owned(),
        };
        if self.workspaces.get(workspace).await?.is_none() {
            return Err(ApiKeyError::WorkspaceNotFound);
        }
        let (secret, hash) = self.codec.generate();
        let key = ApiKey {
            id: ApiKeyId::new(),
            workspace_id: workspace,
            name,
            prefix: secret.expose().chars().take(PREFIX_CHARS).collect(),
            created_at: self.clock.now(),
            revoked_at: None,
        };
        self.keys.insert(&key, &hash).await?;
        Ok((key, secret))
    }

    /// The key records of `workspace`, revoked ones included.
    ///
    /// # Errors
    /// [`ApiKeyError::WorkspaceNotFound`] when the workspace does not exist;
    /// [`ApiKeyError::Repository`] when storage fails.
    pub async fn list(&self, workspace: WorkspaceId) -> Result<Vec<ApiKey>, ApiKeyError> {
        if self.workspaces.get(workspace).await?.is_none() {
            return Err(ApiKeyError::WorkspaceNotFound);
        }
        Ok(self.keys.list(workspace).await?)
    }

    /// Revokes the key `id`; it authenticates nothing from then on.
    /// Revoking a revoked key changes nothing and succeeds.
    ///
    /// # Errors
    /// [`ApiKeyError::NotFound`] when there is no such key;
    /// [`ApiKeyError::Repository`] when storage fails.
    pub async fn revoke(&self, id: ApiKeyId) -> Result<ApiKey, ApiKeyError> {
        if !self.keys.revoke(id, self.clock.now()).await? {
            return Err(ApiKeyError::NotFound);
        }
        self.keys.get(id).await?.ok_or(ApiKeyError::NotFound)
    }

    /// Verifies a presented key: one hash and one indexed lookup, no
    /// password hashing (keys carry enough entropy).
    ///
    /// # Errors
    /// [`AuthError::Missing`] when `presented` is empty;
    /// [`AuthError::Invalid`] when it is malformed, unknown or revoked;
    /// [`AuthError::Repository`] when storage fails.
    pub async fn authenticate(&self, presented: &str) -> Result<AuthContext, AuthError> {
        let presented = presented.trim();
        if presented.is_empty() {
            return Err(AuthError::Missing);
        }
        let hash = self.codec.hash(presented).ok_or(AuthError::Invalid)?;
        match self.keys.find_by_hash(&hash).await? {
            Some(key) if key.is_active() => Ok(AuthContext {
                workspace_id: key.workspace_id,
                api_key_id: key.id,
            }),
            _ => Err(AuthError::Invalid),
        }
    }
}
