//! Dashboard accounts: the first account through a one-time link, signing
//! in and out with limits on guessing, sessions, passwords and members.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::TimeDelta;

use crate::clock::Clock;
use crate::error::RepositoryError;
use crate::ids::{UserId, WorkspaceId};
use crate::ports::{
    PasswordHasher, TokenCodec, UserRepository, WebSessionRepository, WorkspaceRepository,
};
use crate::user::{Email, Membership, Password, PasswordHash, Role, User};
use crate::values::{ValidationError, WorkspaceName};
use crate::web_session::{SessionPolicy, SignedIn, WebSession};
use crate::workspace::Workspace;

/// Why an account operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AccountError {
    /// The input broke a rule.
    #[error(transparent)]
    Validation(#[from] ValidationError),
    /// The email or the password is wrong (one variant: which is not told).
    #[error("the email or the password is wrong")]
    InvalidCredentials,
    /// Too many failed sign-ins for this account or from this address.
    #[error("too many failed sign-ins; try again in {} s", .retry_after.as_secs().max(1))]
    Throttled {
        /// When to try again.
        retry_after: Duration,
    },
    /// The setup link is unknown, used or expired, or an account exists.
    #[error("this setup link is not valid (used, expired, or an account exists already)")]
    SetupUnavailable,
    /// Only a workspace's owners may do this.
    #[error("only the workspace's owners may do this")]
    NotOwner,
    /// No such member.
    #[error("no such member")]
    NotFound,
    /// The workspace would be left without an owner.
    #[error("the workspace needs at least one owner")]
    LastOwner,
    /// The user is a member already.
    #[error("this user is a member already")]
    Duplicate,
    /// Hashing failed.
    #[error("password hashing failed: {0}")]
    Hashing(String),
    /// Storage failed.
    #[error(transparent)]
    Repository(#[from] RepositoryError),
}

/// Failed sign-ins per account and per client address, in this process.
#[derive(Debug, Default)]
struct Throttle {
    entries: Mutex<HashMap<String, Strikes>>,
}

#[derive(Debug, Clone, Copy)]
struct Strikes {
    count: u32,
    since: Instant,
    locked_until: Option<Instant>,
}

impl Throttle {
    /// How long `key` stays refused, if it is.
    fn refused(&self, key: &str) -> Option<Duration> {
        let entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        let until = entries.get(key)?.locked_until?;
        until.checked_duration_since(Instant::now())
    }

    /// Counts a failure; locks `key` for `window` at `limit` failures
    /// within `window`.
    fn strike(&self, key: String, limit: u32, window: Duration) {
        let now = Instant::now();
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        if entries.len() > 100_000 {
            // Bounded memory under a flood of addresses: old entries go.
            entries.retain(|_, s| now.duration_since(s.since) < window);
        }
        let s = entries.entry(key).or_insert(Strikes {
            count: 0,
            since: now,
            locked_until: None,
        });
        if now.duration_since(s.since) >= window {
            *s = Strikes {
                count: 0,
                since: now,
                locked_until: None,
            };
        }
        s.count += 1;
        if s.count >= limit {
            s.locked_until = Some(now + window);
        }
    }

    fn clear(&self, key: &str) {
        self.entries
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(key);
    }
}

/// Dashboard accounts and their sessions.
#[derive(Clone)]
pub struct AccountService {
    users: Arc<dyn UserRepository>,
    sessions: Arc<dyn WebSessionRepository>,
    workspaces: Arc<dyn WorkspaceRepository>,
    hasher: Arc<dyn PasswordHasher>,
    tokens: Arc<dyn TokenCodec>,
    clock: Arc<dyn Clock>,
    policy: SessionPolicy,
    throttle: Arc<Throttle>,
}

impl std::fmt::Debug for AccountService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccountService")
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

/// The ports an [`AccountService`] works through.
#[derive(Clone)]
pub struct AccountPorts {
    /// Users and memberships.
    pub users: Arc<dyn UserRepository>,
    /// Sessions and setup links.
    pub sessions: Arc<dyn WebSessionRepository>,
    /// Workspaces.
    pub workspaces: Arc<dyn WorkspaceRepository>,
    /// Password hashing (slow; off the executor).
    pub hasher: Arc<dyn PasswordHasher>,
    /// Random tokens and their hashes.
    pub tokens: Arc<dyn TokenCodec>,
    /// The time.
    pub clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for AccountPorts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccountPorts").finish_non_exhaustive()
    }
}

/// A membership that exists already is [`AccountError::Duplicate`].
fn duplicate_member(e: RepositoryError) -> AccountError {
    match e {
        RepositoryError::Duplicate { .. } => AccountError::Duplicate,
        e => e.into(),
    }
}

fn delta(d: Duration) -> TimeDelta {
    TimeDelta::from_std(d).unwrap_or(TimeDelta::MAX)
}

impl AccountService {
    /// A service over `ports` with `policy`.
    pub fn new(ports: AccountPorts, policy: SessionPolicy) -> Self {
        Self {
            users: ports.users,
            sessions: ports.sessions,
            workspaces: ports.workspaces,
            hasher: ports.hasher,
            tokens: ports.tokens,
            clock: ports.clock,
            policy,
            throttle: Arc::default(),
        }
    }

    /// Whether no account exists yet.
    ///
    /// # Errors
    /// When storage fails.
    pub async fn setup_needed(&self) -> Result<bool, AccountError> {
        Ok(self.users.count().await? == 0)
    }

    /// A new one-time link token for the first account, valid for the
    /// policy's `setup_link`, when no account exists (earlier ones stay
    /// valid until they expire or the first account is made).
    ///
    /// # Errors
    /// When storage fails.
    pub async fn issue_setup_token(&self) -> Result<Option<String>, AccountError> {
        if !self.setup_needed().await? {
            return Ok(None);
        }
        let (token, hash) = self.tokens.generate();
        let until = self.clock.now() + delta(self.policy.setup_link);
        self.sessions.put_setup_token(&hash, until).await?;
        Ok(Some(token))
    }

    /// Whether `token` is a valid setup link now (no account exists).
    ///
    /// # Errors
    /// When storage fails.
    pub async fn setup_token_valid(&self, token: &str) -> Result<bool, AccountError> {
        Ok(self.setup_needed().await?
            && self
                .sessions
                .setup_token_valid(&self.tokens.hash(token), self.clock.now())
                .await?)
    }

    /// Creates the first account, owner of the oldest workspace (or of a
    /// new one named `workspace_name` when there is none), with the setup
    /// link, and signs it in. Returns the session and its cookie token.
    ///
    /// # Errors
    /// [`AccountError::Validation`] on `email`, `password` or
    /// `workspaceName`; [`AccountError::SetupUnavailable`].
    pub async fn setup(
        &self,
        token: &str,
        email: &str,
        password: &str,
        workspace_name: &str,
    ) -> Result<(SignedIn, String), AccountError> {
        let email = Email::parse("email", email)?;
        let password = Password::parse("password", password)?;
        if !self.setup_token_valid(token).await? {
            return Err(AccountError::SetupUnavailable);
        }
        let workspace = match self.workspaces.list().await?.into_iter().next() {
            Some(w) => w,
            None => {
                let name = WorkspaceName::parse("workspaceName", workspace_name)?;
                let w = Workspace {
                    id: WorkspaceId::new(),
                    name,
                    created_at: self.clock.now(),
                };
                self.workspaces.insert(&w).await?;
                w
            }
        };
        let hash = self.hash(&password).await?;
        let user = User {
            id: UserId::new(),
            email,
            created_at: self.clock.now(),
        };
        let membership = Membership {
            user_id: user.id,
            workspace_id: workspace.id,
            role: Role::Owner,
        };
        let made = self
            .sessions
            .setup_first_user(
                &self.tokens.hash(token),
                self.clock.now(),
                &user,
                &hash,
                &membership,
            )
            .await?;
        if !made {
            return Err(AccountError::SetupUnavailable);
        }
        self.open_session(user, workspace.id, Role::Owner).await
    }

    /// Signs in with `email` and `password` from client `address`. Failed
    /// attempts are counted per account and per address; past the
    /// policy's limits they are refused for its `lockout`, checked or not.
    ///
    /// # Errors
    /// [`AccountError::Throttled`]; [`AccountError::InvalidCredentials`]
    /// (also for a user who belongs to no workspace).
    pub async fn login(
        &self,
        email: &str,
        password: &str,
        address: &str,
    ) -> Result<(SignedIn, String), AccountError> {
        let account_key = format!("account:{}", email.trim().to_lowercase());
        let address_key = format!("address:{address}");
        let refused = [&account_key, &address_key]
            .into_iter()
            .filter_map(|k| self.throttle.refused(k))
            .max();
        if let Some(retry_after) = refused {
            return Err(AccountError::Throttled { retry_after });
        }
        let fail = || {
            self.throttle.strike(
                account_key.clone(),
                self.policy.account_failures,
                self.policy.lockout,
            );
            self.throttle.strike(
                address_key.clone(),
                self.policy.address_failures,
                self.policy.lockout,
            );
            AccountError::InvalidCredentials
        };
        let (Ok(email), Ok(password)) = (
            Email::parse("email", email),
            Password::parse("password", password),
        ) else {
            return Err(fail());
        };
        let found = self.users.find_by_email(&email).await?;
        let (user, hash) = match found {
            Some((user, hash)) => (Some(user), hash),
            None => (None, PasswordHash::new(super::users::DUMMY_HASH.to_owned())),
        };
        let ok = self
            .hasher
            .verify(&password, &hash)
            .await
            .map_err(AccountError::Hashing)?;
        let Some(user) = user.filter(|_| ok) else {
            return Err(fail());
        };
        let Some(first) = self.users.memberships(user.id).await?.into_iter().next() else {
            return Err(fail());
        };
        self.throttle.clear(&account_key);
        self.open_session(user, first.workspace_id, first.role)
            .await
    }

    async fn open_session(
        &self,
        user: User,
        workspace: WorkspaceId,
        role: Role,
    ) -> Result<(SignedIn, String), AccountError> {
        let (token, token_hash) = self.tokens.generate();
        let (csrf, _) = self.tokens.generate();
        let now = self.clock.now();
        let session = WebSession {
            token_hash,
            user_id: user.id,
            workspace_id: workspace,
            csrf_token: csrf,
            created_at: now,
            last_seen_at: now,
            expires_at: now + delta(self.policy.absolute),
        };
        self.sessions.insert(&session).await?;
        Ok((
            SignedIn {
                session,
                user,
                role,
            },
            token,
        ))
    }

    /// The signed-in browser `token` (the cookie's value) stands for, if
    /// its session has not ended (idle or absolute) and its user is still a
    /// member of the session's workspace.
    ///
    /// # Errors
    /// When storage fails.
    pub async fn authenticate(&self, token: &str) -> Result<Option<SignedIn>, AccountError> {
        let hash = self.tokens.hash(token);
        let Some(session) = self.sessions.find(&hash).await? else {
            return Ok(None);
        };
        let now = self.clock.now();
        if now >= session.expires_at || now - session.last_seen_at >= delta(self.policy.idle) {
            self.sessions.delete(&hash).await?;
            return Ok(None);
        }
        let Some((user, _)) = self.users.get(session.user_id).await? else {
            return Ok(None);
        };
        let Some(role) = self
            .users
            .memberships(user.id)
            .await?
            .into_iter()
            .find(|m| m.workspace_id == session.workspace_id)
            .map(|m| m.role)
        else {
            return Ok(None);
        };
        if now - session.last_seen_at >= TimeDelta::minutes(1) {
            self.sessions.touch(&hash, now).await?;
        }
        Ok(Some(SignedIn {
            session,
            user,
            role,
        }))
    }

    /// Ends this session.
    ///
    /// # Errors
    /// When storage fails.
    pub async fn logout(&self, session: &WebSession) -> Result<(), AccountError> {
        Ok(self.sessions.delete(&session.token_hash).await?)
    }

    /// Ends every session of the user, this one too.
    ///
    /// # Errors
    /// When storage fails.
    pub async fn logout_everywhere(&self, user: UserId) -> Result<usize, AccountError> {
        Ok(self.sessions.delete_for_user(user, None).await?)
    }

    /// Changes the password, checking the current one, and ends the user's
    /// other sessions.
    ///
    /// # Errors
    /// [`AccountError::InvalidCredentials`] on a wrong current password (on
    /// `currentPassword`); [`AccountError::Validation`] on `newPassword`.
    pub async fn change_password(
        &self,
        signed: &SignedIn,
        current: &str,
        new: &str,
    ) -> Result<(), AccountError> {
        let new = Password::parse("newPassword", new)?;
        let current = Password::parse("currentPassword", current)
            .map_err(|_| AccountError::InvalidCredentials)?;
        let Some((_, hash)) = self.users.get(signed.user.id).await? else {
            return Err(AccountError::InvalidCredentials);
        };
        if !self
            .hasher
            .verify(&current, &hash)
            .await
            .map_err(AccountError::Hashing)?
        {
            return Err(AccountError::InvalidCredentials);
        }
        let hash = self.hash(&new).await?;
        self.users.set_password(signed.user.id, &hash).await?;
        self.sessions
            .delete_for_user(signed.user.id, Some(&signed.session.token_hash))
            .await?;
        Ok(())
    }

    /// The workspaces the user belongs to, with their names and the
    /// user's role, in the order joined.
    ///
    /// # Errors
    /// When storage fails.
    pub async fn workspaces(
        &self,
        signed: &SignedIn,
    ) -> Result<Vec<(Workspace, Role)>, AccountError> {
        let mut out = Vec::new();
        for m in self.users.memberships(signed.user.id).await? {
            if let Some(w) = self.workspaces.get(m.workspace_id).await? {
                out.push((w, m.role));
            }
        }
        Ok(out)
    }

    /// Makes the session show another of the user's workspaces.
    ///
    /// # Errors
    /// [`AccountError::NotFound`] when the user is not a member of it.
    pub async fn switch_workspace(
        &self,
        signed: &SignedIn,
        workspace: WorkspaceId,
    ) -> Result<(), AccountError> {
        let member = self
            .users
            .memberships(signed.user.id)
            .await?
            .iter()
            .any(|m| m.workspace_id == workspace);
        if !member {
            return Err(AccountError::NotFound);
        }
        Ok(self
            .sessions
            .switch_workspace(&signed.session.token_hash, workspace)
            .await?)
    }

    /// The members of the signed-in workspace.
    ///
    /// # Errors
    /// When storage fails.
    pub async fn members(&self, signed: &SignedIn) -> Result<Vec<(User, Role)>, AccountError> {
        Ok(self.users.members(signed.session.workspace_id).await?)
    }

    /// Adds a member (owners only): an existing user by email, or a new
    /// one with `password`, which they change after signing in.
    ///
    /// # Errors
    /// [`AccountError::NotOwner`], [`AccountError::Validation`] (a new
    /// user needs a `password`), [`AccountError::Duplicate`].
    pub async fn add_member(
        &self,
        signed: &SignedIn,
        email: &str,
        password: &str,
        role: Role,
    ) -> Result<(), AccountError> {
        if signed.role != Role::Owner {
            return Err(AccountError::NotOwner);
        }
        let email = Email::parse("email", email)?;
        let workspace = signed.session.workspace_id;
        match self.users.find_by_email(&email).await? {
            Some((user, _)) => self
                .users
                .add_membership(&Membership {
                    user_id: user.id,
                    workspace_id: workspace,
                    role,
                })
                .await
                .map_err(duplicate_member),
            None => {
                let password = Password::parse("password", password)?;
                let hash = self.hash(&password).await?;
                let user = User {
                    id: UserId::new(),
                    email,
                    created_at: self.clock.now(),
                };
                self.users
                    .insert(
                        &user,
                        &hash,
                        &Membership {
                            user_id: user.id,
                            workspace_id: workspace,
                            role,
                        },
                    )
                    .await
                    .map_err(duplicate_member)
            }
        }
    }

    /// Changes a member's role, or removes them (`None`); owners only,
    /// and never the last owner. A removed member's sessions in other
    /// workspaces go on; in this one they end at their next request.
    ///
    /// # Errors
    /// [`AccountError::NotOwner`], [`AccountError::LastOwner`] (or no such
    /// member: [`AccountError::NotFound`]).
    pub async fn change_member(
        &self,
        signed: &SignedIn,
        user: UserId,
        role: Option<Role>,
    ) -> Result<(), AccountError> {
        if signed.role != Role::Owner {
            return Err(AccountError::NotOwner);
        }
        let workspace = signed.session.workspace_id;
        let members = self.users.members(workspace).await?;
        if !members.iter().any(|(u, _)| u.id == user) {
            return Err(AccountError::NotFound);
        }
        if self.users.change_membership(workspace, user, role).await? {
            Ok(())
        } else {
            Err(AccountError::LastOwner)
        }
    }

    async fn hash(&self, password: &Password) -> Result<PasswordHash, AccountError> {
        self.hasher
            .hash(password)
            .await
            .map_err(AccountError::Hashing)
    }
}
