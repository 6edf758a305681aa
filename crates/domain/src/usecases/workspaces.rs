use std::sync::Arc;

use crate::clock::Clock;
use crate::error::WorkspaceError;
use crate::ids::WorkspaceId;
use crate::ports::WorkspaceRepository;
use crate::values::WorkspaceName;
use crate::workspace::Workspace;

/// Creates and reads workspaces (an administrator's operations).
#[derive(Clone)]
pub struct WorkspaceService {
    repo: Arc<dyn WorkspaceRepository>,
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for WorkspaceService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorkspaceService").finish_non_exhaustive()
    }
}

impl WorkspaceService {
    /// A service over `repo`, stamping times from `clock`.
    pub fn new(repo: Arc<dyn WorkspaceRepository>, clock: Arc<dyn Clock>) -> Self {
        Self { repo, clock }
    }

    /// Creates a workspace named `name`.
    ///
    /// # Errors
    /// [`WorkspaceError::Validation`] on a bad name;
    /// [`WorkspaceError::Repository`] when storage fails.
    pub async fn create(&self, name: &str) -> Result<Workspace, WorkspaceError> {
        let workspace = Workspace {
            id: WorkspaceId::new(),
            name: WorkspaceName::parse("name", name)?,
            created_at: self.clock.now(),
        };
        self.repo.insert(&workspace).await?;
        Ok(workspace)
    }

    /// Creates the workspace `name` when there is no workspace yet (a first
    /// start); `None` when there is one already. Two processes starting at
    /// once on an empty store create one workspace between them.
    ///
    /// # Errors
    /// [`WorkspaceError::Validation`] for a bad name;
    /// [`WorkspaceError::Repository`] when storage fails.
    pub async fn create_first(&self, name: &str) -> Result<Option<Workspace>, WorkspaceError> {
        let workspace = Workspace {
            id: WorkspaceId::new(),
            name: WorkspaceName::parse("name", name)?,
            created_at: self.clock.now(),
        };
        Ok(self
            .repo
            .insert_if_none(&workspace)
            .await?
            .then_some(workspace))
    }

    /// The workspace `id`.
    ///
    /// # Errors
    /// [`WorkspaceError::NotFound`] when there is none;
    /// [`WorkspaceError::Repository`] when storage fails.
    pub async fn get(&self, id: WorkspaceId) -> Result<Workspace, WorkspaceError> {
        self.repo.get(id).await?.ok_or(WorkspaceError::NotFound)
    }

    /// Every workspace, oldest first.
    ///
    /// # Errors
    /// [`WorkspaceError::Repository`] when storage fails.
    pub async fn list(&self) -> Result<Vec<Workspace>, WorkspaceError> {
        Ok(self.repo.list().await?)
    }
}
