use std::sync::Arc;

use crate::clock::Clock;
use crate::error::SessionError;
use crate::ids::{SessionId, WorkspaceId};
use crate::messaging::{ProviderSettings, Session, SessionName, SessionStatus};
use crate::ports::{SessionRepository, WorkspaceRepository};

/// Creates, lists and deletes a workspace's WhatsApp sessions.
#[derive(Clone)]
pub struct SessionService {
    sessions: Arc<dyn SessionRepository>,
    workspaces: Arc<dyn WorkspaceRepository>,
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for SessionService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionService").finish_non_exhaustive()
    }
}

impl SessionService {
    /// A service over the given ports.
    pub fn new(
        sessions: Arc<dyn SessionRepository>,
        workspaces: Arc<dyn WorkspaceRepository>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            sessions,
            workspaces,
            clock,
        }
    }

    /// Connects a session named `name` to `workspace`.
    ///
    /// # Errors
    /// [`SessionError::WorkspaceNotFound`], [`SessionError::Duplicate`] when
    /// the name is taken in the workspace, [`SessionError::Validation`] on
    /// empty provider settings, [`SessionError::Repository`].
    pub async fn create(
        &self,
        workspace: WorkspaceId,
        name: SessionName,
        provider: ProviderSettings,
    ) -> Result<Session, SessionError> {
        if let ProviderSettings::CloudApi(s) = &provider {
            // Named as the public API names them.
            for (field, value) in [
                ("phoneNumberId", s.phone_number_id.as_str()),
                ("accessToken", s.access_token.expose()),
                ("appSecret", s.app_secret.expose()),
                ("verifyToken", s.verify_token.expose()),
            ] {
                if value.trim().is_empty() {
                    return Err(
                        crate::ValidationError::new(field, "is required for cloud-api").into(),
                    );
                }
            }
        }
        if self.workspaces.get(workspace).await?.is_none() {
            return Err(SessionError::WorkspaceNotFound);
        }
        let session = Session {
            id: SessionId::new(),
            workspace_id: workspace,
            name,
            provider,
            status: SessionStatus::Connected,
            last_error: None,
            created_at: self.clock.now(),
        };
        self.sessions.insert(&session).await?;
        Ok(session)
    }

    /// The sessions of `workspace`.
    ///
    /// # Errors
    /// [`SessionError::Repository`].
    pub async fn list(&self, workspace: WorkspaceId) -> Result<Vec<Session>, SessionError> {
        Ok(self.sessions.list(workspace).await?)
    }

    /// The session `name` of `workspace`.
    ///
    /// # Errors
    /// [`SessionError::NotFound`], [`SessionError::Repository`].
    pub async fn get(
        &self,
        workspace: WorkspaceId,
        name: &SessionName,
    ) -> Result<Session, SessionError> {
        self.sessions
            .get_by_name(workspace, name)
            .await?
            .ok_or(SessionError::NotFound)
    }

    /// Stops the session `name` of `workspace`: its messages stay queued
    /// and none is sent until it is started; sends are still accepted,
    /// and what the provider reports still comes in.
    ///
    /// # Errors
    /// [`SessionError::NotFound`], [`SessionError::Repository`].
    pub async fn stop(
        &self,
        workspace: WorkspaceId,
        name: &SessionName,
    ) -> Result<Session, SessionError> {
        self.set_stopped(workspace, name, true).await
    }

    /// Starts the session `name` of `workspace` again: `connected`, its
    /// last error cleared, its queued messages sent. Also the way to try a
    /// `failed` session's credentials again.
    ///
    /// # Errors
    /// [`SessionError::NotFound`], [`SessionError::Repository`].
    pub async fn start(
        &self,
        workspace: WorkspaceId,
        name: &SessionName,
    ) -> Result<Session, SessionError> {
        self.set_stopped(workspace, name, false).await
    }

    async fn set_stopped(
        &self,
        workspace: WorkspaceId,
        name: &SessionName,
        stopped: bool,
    ) -> Result<Session, SessionError> {
        if !self.sessions.set_stopped(workspace, name, stopped).await? {
            return Err(SessionError::NotFound);
        }
        self.get(workspace, name).await
    }

    /// Deletes the session `name` of `workspace` with its messages.
    ///
    /// # Errors
    /// [`SessionError::NotFound`], [`SessionError::Repository`].
    pub async fn delete(
        &self,
        workspace: WorkspaceId,
        name: &SessionName,
    ) -> Result<(), SessionError> {
        if self.sessions.delete(workspace, name).await? {
            Ok(())
        } else {
            Err(SessionError::NotFound)
        }
    }
}
