use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::api_key::{ApiKey, ApiKeyHash, ApiKeySecret, AuthContext, KeyRateLimits};
use crate::clock::Clock;
use crate::error::{ApiKeyError, AuthError};
use crate::ids::{ApiKeyId, WorkspaceId};
use crate::ports::{ApiKeyCodec, ApiKeyRepository, WorkspaceRepository};
use crate::values::ValidationError;

/// How many characters of a key are kept in clear to recognise it.
const PREFIX_CHARS: usize = 13;
/// Longest key name accepted.
const MAX_NAME_CHARS: usize = 100;

/// Verified keys, remembered so that most requests need no lookup.
///
/// Only sound while something tells it about every revocation: it is off
/// until [`ApiKeyService::enable_cache`] is called by whoever listens for
/// revocations (the server listens to PostgreSQL notifications), and turns
/// itself off again with [`ApiKeyService::disable_cache`] when that
/// listener loses its connection.
#[derive(Debug, Default)]
struct AuthCache {
    enabled: AtomicBool,
    // Bumped by every eviction, so a lookup that raced a revocation does
    // not store what it read before the revocation.
    generation: AtomicU64,
    entries: Mutex<HashMap<ApiKeyHash, CacheEntry>>,
    // Keys used since the last `record_uses`, apart from those marked in
    // `entries` (a cache hit marks its entry under the lock it holds
    // anyway, so remembering a use costs a request nothing more).
    used: Mutex<HashSet<ApiKeyId>>,
}

#[derive(Debug)]
struct CacheEntry {
    ctx: AuthContext,
    at: Instant,
    used: bool,
}

impl AuthCache {
    /// Moves the uses marked in `entries` to `used` (before entries go).
    fn keep_uses(&self, entries: &HashMap<ApiKeyHash, CacheEntry>) {
        if let Ok(mut used) = self.used.lock() {
            used.extend(
                entries
                    .values()
                    .filter(|e| e.used)
                    .map(|e| e.ctx.api_key_id),
            );
        }
    }
}

/// Most keys remembered at once; beyond it the cache is emptied.
const CACHE_CAPACITY: usize = 10_000;

/// Issues, lists, revokes and verifies API keys.
#[derive(Clone)]
pub struct ApiKeyService {
    keys: Arc<dyn ApiKeyRepository>,
    workspaces: Arc<dyn WorkspaceRepository>,
    codec: Arc<dyn ApiKeyCodec>,
    clock: Arc<dyn Clock>,
    cache: Arc<AuthCache>,
    cache_ttl: Duration,
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
            cache: Arc::default(),
            cache_ttl: Duration::from_secs(60),
        }
    }

    /// How long a verified key is trusted without a lookup, once the cache
    /// is enabled. A backstop only: revocations evict at once.
    pub fn with_cache_ttl(mut self, ttl: Duration) -> Self {
        self.cache_ttl = ttl;
        self
    }

    /// Starts remembering verified keys. Call it only while every
    /// revocation, from any process, reaches [`ApiKeyService::forget`].
    pub fn enable_cache(&self) {
        // A lookup that began before (while revocations could be missed)
        // must not store what it read.
        self.cache.generation.fetch_add(1, Ordering::SeqCst);
        self.cache.enabled.store(true, Ordering::SeqCst);
    }

    /// Stops remembering keys and forgets all of them (for instance when
    /// revocations can no longer be heard).
    pub fn disable_cache(&self) {
        self.cache.enabled.store(false, Ordering::SeqCst);
        self.forget_all();
    }

    /// Forgets the key `id`: its next use is looked up again.
    pub fn forget(&self, id: ApiKeyId) {
        self.cache.generation.fetch_add(1, Ordering::SeqCst);
        if let Ok(mut entries) = self.cache.entries.lock() {
            // Its uses since the last recording still count.
            if entries.values().any(|e| e.ctx.api_key_id == id && e.used)
                && let Ok(mut used) = self.cache.used.lock()
            {
                used.insert(id);
            }
            entries.retain(|_, e| e.ctx.api_key_id != id);
        }
    }

    /// Forgets every remembered key.
    pub fn forget_all(&self) {
        self.cache.generation.fetch_add(1, Ordering::SeqCst);
        if let Ok(mut entries) = self.cache.entries.lock() {
            self.cache.keep_uses(&entries);
            entries.clear();
        }
    }

    fn cached(&self, hash: &ApiKeyHash) -> Option<AuthContext> {
        if !self.cache.enabled.load(Ordering::SeqCst) {
            return None;
        }
        let mut entries = self.cache.entries.lock().ok()?;
        let entry = entries.get_mut(hash)?;
        if entry.at.elapsed() >= self.cache_ttl {
            return None;
        }
        entry.used = true;
        Some(entry.ctx)
    }

    fn remember(&self, hash: ApiKeyHash, ctx: AuthContext, generation: u64) {
        if !self.cache.enabled.load(Ordering::SeqCst) {
            return;
        }
        if let Ok(mut entries) = self.cache.entries.lock() {
            // Checked under the lock that evictions also take.
            if self.cache.generation.load(Ordering::SeqCst) != generation {
                return;
            }
            if entries.len() >= CACHE_CAPACITY {
                self.cache.keep_uses(&entries);
                entries.clear();
            }
            // This use is in `used` already (see `authenticate`).
            let entry = CacheEntry {
                ctx,
                at: Instant::now(),
                used: false,
            };
            entries.insert(hash, entry);
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
            last_used_at: None,
            rate_limits: KeyRateLimits::default(),
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
        let found = self.keys.revoke(id, self.clock.now()).await;
        // Forget even when the store failed: the revocation may have landed.
        self.forget(id);
        if !found? {
            return Err(ApiKeyError::NotFound);
        }
        self.keys.get(id).await?.ok_or(ApiKeyError::NotFound)
    }

    /// Sets the key's own request rates (`None`: the server's default,
    /// `Some(0)`: no limit); every server applies them from its next
    /// request with the key.
    ///
    /// # Errors
    /// [`ApiKeyError::NotFound`]; [`ApiKeyError::Repository`] when storage
    /// fails.
    pub async fn set_rate_limits(
        &self,
        id: ApiKeyId,
        limits: KeyRateLimits,
    ) -> Result<ApiKey, ApiKeyError> {
        let found = self.keys.set_rate_limits(id, limits).await;
        // As for a revocation: what this process remembers goes now.
        self.forget(id);
        if !found? {
            return Err(ApiKeyError::NotFound);
        }
        self.keys.get(id).await?.ok_or(ApiKeyError::NotFound)
    }

    /// Verifies a presented key: one hash and one indexed lookup (or none,
    /// while the cache is enabled and remembers the key), never a password
    /// hash (keys carry enough entropy).
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
        if let Some(ctx) = self.cached(&hash) {
            return Ok(ctx);
        }
        let generation = self.cache.generation.load(Ordering::SeqCst);
        match self.keys.find_by_hash(&hash).await? {
            Some(key) if key.is_active() => {
                let ctx = AuthContext {
                    workspace_id: key.workspace_id,
                    api_key_id: key.id,
                    rate_limits: key.rate_limits,
                };
                if let Ok(mut used) = self.cache.used.lock() {
                    used.insert(key.id);
                }
                self.remember(hash, ctx, generation);
                Ok(ctx)
            }
            _ => Err(AuthError::Invalid),
        }
    }

    /// Stores when the keys used since the last call were used (now), so
    /// that key lists show `last_used_at`. Servers call it now and then
    /// and at shutdown; requests never wait for it. Returns how many keys
    /// it recorded.
    ///
    /// # Errors
    /// [`ApiKeyError::Repository`] when storage fails; the uses are kept
    /// for the next call.
    pub async fn record_uses(&self) -> Result<usize, ApiKeyError> {
        let mut ids: HashSet<ApiKeyId> = self
            .cache
            .used
            .lock()
            .map(|mut used| std::mem::take(&mut *used))
            .unwrap_or_default();
        if let Ok(mut entries) = self.cache.entries.lock() {
            for e in entries.values_mut().filter(|e| e.used) {
                e.used = false;
                ids.insert(e.ctx.api_key_id);
            }
        }
        if ids.is_empty() {
            return Ok(0);
        }
        let ids: Vec<ApiKeyId> = ids.into_iter().collect();
        if let Err(e) = self.keys.record_use(&ids, self.clock.now()).await {
            if let Ok(mut used) = self.cache.used.lock() {
                used.extend(ids);
            }
            return Err(e.into());
        }
        Ok(ids.len())
    }
}
