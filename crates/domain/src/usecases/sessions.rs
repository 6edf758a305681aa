use std::sync::Arc;

use crate::clock::Clock;
use crate::error::SessionError;
use crate::ids::{SessionId, WorkspaceId};
use crate::messaging::{
    LinkCode, LinkUpdate, PairOutcome, ProviderSettings, Session, SessionName, SessionStatus,
};
use crate::ports::{SessionLinks, SessionRepository, WorkspaceRepository};
use crate::values::PhoneNumber;

/// Creates, lists and deletes a workspace's WhatsApp sessions.
#[derive(Clone)]
pub struct SessionService {
    sessions: Arc<dyn SessionRepository>,
    workspaces: Arc<dyn WorkspaceRepository>,
    clock: Arc<dyn Clock>,
    links: Option<Arc<dyn SessionLinks>>,
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
            links: None,
        }
    }

    /// Links WhatsApp Web sessions through `links` (QR codes, pairing
    /// codes, logout). Without it, such sessions cannot be created.
    pub fn with_links(mut self, links: Arc<dyn SessionLinks>) -> Self {
        self.links = Some(links);
        self
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
        if provider.kind().holds_connection() && self.links.is_none() {
            return Err(SessionError::WrongState(format!(
                "{} sessions are not enabled on this server",
                provider.kind().as_str()
            )));
        }
        if self.workspaces.get(workspace).await?.is_none() {
            return Err(SessionError::WorkspaceNotFound);
        }
        // A linked device starts by opening its connection (and showing a
        // QR code); the others send at once.
        let status = if provider.kind().holds_connection() {
            SessionStatus::Starting
        } else {
            SessionStatus::Connected
        };
        let session = Session {
            id: SessionId::new(),
            workspace_id: workspace,
            name,
            provider,
            status,
            last_error: None,
            me: None,
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

    /// The session `name` of `workspace` when its provider links a device,
    /// with the store of its link.
    async fn linked(
        &self,
        workspace: WorkspaceId,
        name: &SessionName,
    ) -> Result<(Session, &Arc<dyn SessionLinks>), SessionError> {
        let session = self.get(workspace, name).await?;
        match &self.links {
            Some(links) if session.provider.kind().holds_connection() => Ok((session, links)),
            _ => Err(SessionError::WrongState(format!(
                "a {} session is not linked by QR code",
                session.provider.kind().as_str()
            ))),
        }
    }

    /// The QR code that links the session `name` of `workspace`, while it
    /// waits for a scan.
    ///
    /// # Errors
    /// [`SessionError::NotFound`]; [`SessionError::WrongState`] when it is
    /// not a WhatsApp Web session or does not wait for a scan;
    /// [`SessionError::Repository`].
    pub async fn qr(
        &self,
        workspace: WorkspaceId,
        name: &SessionName,
    ) -> Result<LinkCode, SessionError> {
        let (session, links) = self.linked(workspace, name).await?;
        if session.status != SessionStatus::QrRequired {
            return Err(SessionError::WrongState(format!(
                "the session is {}, not waiting for a scan",
                session.status.as_str()
            )));
        }
        links.qr(session.id).await?.ok_or_else(|| {
            SessionError::WrongState(
                "the QR code expired and the next one has not come yet; try again in a moment"
                    .into(),
            )
        })
    }

    /// Asks for a pairing code that links the session `name` of
    /// `workspace` to the WhatsApp of `phone` without a camera. The server
    /// holding the session's connection answers:
    /// [`SessionService::pair_code_answer`].
    ///
    /// # Errors
    /// [`SessionError::NotFound`]; [`SessionError::WrongState`] when it is
    /// not a WhatsApp Web session, does not wait for a link, or no server
    /// runs it yet; [`SessionError::Repository`].
    pub async fn request_pair_code(
        &self,
        workspace: WorkspaceId,
        name: &SessionName,
        phone: &PhoneNumber,
    ) -> Result<Session, SessionError> {
        let (session, links) = self.linked(workspace, name).await?;
        if session.status != SessionStatus::QrRequired {
            return Err(SessionError::WrongState(format!(
                "the session is {}, not waiting to be linked",
                session.status.as_str()
            )));
        }
        if !links.is_held(session.id).await? {
            return Err(SessionError::WrongState(
                "no server runs the session at the moment; try again in a few seconds".into(),
            ));
        }
        links.request_pair_code(session.id, phone.as_str()).await?;
        Ok(session)
    }

    /// The answer to the last pairing-code request of `session`, once the
    /// server holding it has given it.
    ///
    /// # Errors
    /// [`SessionError::Repository`]; [`SessionError::WrongState`] when this
    /// service links no sessions.
    pub async fn pair_code_answer(
        &self,
        session: &Session,
    ) -> Result<Option<PairOutcome>, SessionError> {
        let links = self
            .links
            .as_ref()
            .ok_or_else(|| SessionError::WrongState("sessions are not linked here".into()))?;
        Ok(links.pair_code_answer(session.id).await?)
    }

    /// Unlinks the device of the session `name` of `workspace` and deletes
    /// its keys; its messages stay. When a server holds its connection,
    /// that server tells WhatsApp (returns `true`: the status turns
    /// `logged_out` when it has); else the keys are deleted at once
    /// (`false`), and the phone shows the device until WhatsApp drops it.
    ///
    /// # Errors
    /// [`SessionError::NotFound`]; [`SessionError::WrongState`] when it is
    /// not a WhatsApp Web session; [`SessionError::Repository`].
    pub async fn logout(
        &self,
        workspace: WorkspaceId,
        name: &SessionName,
    ) -> Result<bool, SessionError> {
        let (session, links) = self.linked(workspace, name).await?;
        if session.status != SessionStatus::Stopped && links.is_held(session.id).await? {
            links.request_logout(session.id).await?;
            return Ok(true);
        }
        links
            .record(
                session.id,
                &LinkUpdate::LoggedOut(Some("logged out by its owner".into())),
            )
            .await?;
        Ok(false)
    }
}
