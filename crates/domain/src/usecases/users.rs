use std::sync::Arc;

use crate::clock::Clock;
use crate::error::{RepositoryError, UserError};
use crate::ids::{UserId, WorkspaceId};
use crate::ports::{PasswordHasher, UserRepository, WorkspaceRepository};
use crate::user::{Email, Membership, Password, PasswordHash, Role, User};

/// Creates dashboard users and checks their passwords.
#[derive(Clone)]
pub struct UserService {
    users: Arc<dyn UserRepository>,
    workspaces: Arc<dyn WorkspaceRepository>,
    hasher: Arc<dyn PasswordHasher>,
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for UserService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserService").finish_non_exhaustive()
    }
}

impl UserService {
    /// A service over the given ports.
    pub fn new(
        users: Arc<dyn UserRepository>,
        workspaces: Arc<dyn WorkspaceRepository>,
        hasher: Arc<dyn PasswordHasher>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            users,
            workspaces,
            hasher,
            clock,
        }
    }

    /// Creates a user who signs in with `email` and `password`, as `role`
    /// of `workspace`.
    ///
    /// # Errors
    /// [`UserError::WorkspaceNotFound`]; [`UserError::Duplicate`] when a
    /// user has this email; [`UserError::Hashing`];
    /// [`UserError::Repository`] when storage fails.
    pub async fn create(
        &self,
        email: Email,
        password: &Password,
        workspace: WorkspaceId,
        role: Role,
    ) -> Result<User, UserError> {
        if self.workspaces.get(workspace).await?.is_none() {
            return Err(UserError::WorkspaceNotFound);
        }
        let hash = self
            .hasher
            .hash(password)
            .await
            .map_err(UserError::Hashing)?;
        let user = User {
            id: UserId::new(),
            email,
            created_at: self.clock.now(),
        };
        let membership = Membership {
            user_id: user.id,
            workspace_id: workspace,
            role,
        };
        match self.users.insert(&user, &hash, &membership).await {
            Ok(()) => Ok(user),
            Err(RepositoryError::Duplicate { .. }) => Err(UserError::Duplicate),
            Err(e) => Err(e.into()),
        }
    }

    /// The user `email` names, when `password` is theirs. An unknown email
    /// costs a hash check too, so the time taken does not tell which was
    /// wrong.
    ///
    /// # Errors
    /// [`UserError::InvalidCredentials`] when either is wrong;
    /// [`UserError::Hashing`]; [`UserError::Repository`].
    pub async fn verify(&self, email: &Email, password: &Password) -> Result<User, UserError> {
        let found = self.users.find_by_email(email).await?;
        let (user, hash) = match found {
            Some((user, hash)) => (Some(user), hash),
            None => (None, PasswordHash::new(DUMMY_HASH.to_owned())),
        };
        let ok = self
            .hasher
            .verify(password, &hash)
            .await
            .map_err(UserError::Hashing)?;
        match user {
            Some(user) if ok => Ok(user),
            _ => Err(UserError::InvalidCredentials),
        }
    }

    /// The workspaces `user` belongs to, and as what.
    ///
    /// # Errors
    /// [`UserError::Repository`] when storage fails.
    pub async fn memberships(&self, user: UserId) -> Result<Vec<Membership>, UserError> {
        Ok(self.users.memberships(user).await?)
    }
}

/// An argon2id hash of a random password nobody knows, checked when the
/// email is unknown so that the answer takes as long as for a known one.
pub(super) const DUMMY_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$bWF2ZXJhYS1uby11c2VyIQ$VjdB6vmNjFtsOIifJ2GD54/MXWQqiUTxAB1DxkrXrk4";
