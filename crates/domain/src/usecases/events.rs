use std::sync::Arc;

use chrono::{DateTime, Utc};

use crate::error::RepositoryError;
use crate::event::{Event, EventQuery};
use crate::ids::WorkspaceId;
use crate::ports::EventLog;
use crate::values::ValidationError;

/// Reads a workspace's events, and keeps the log in order and in bounds.
#[derive(Clone)]
pub struct EventService {
    log: Arc<dyn EventLog>,
}

impl std::fmt::Debug for EventService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventService").finish_non_exhaustive()
    }
}

/// Why events could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EventError {
    /// The query broke a rule.
    #[error(transparent)]
    Validation(#[from] ValidationError),
    /// Storage failed.
    #[error(transparent)]
    Repository(#[from] RepositoryError),
}

impl EventService {
    /// A service over `log`.
    pub fn new(log: Arc<dyn EventLog>) -> Self {
        Self { log }
    }

    /// The events of `workspace` after `query.after`, in log order.
    ///
    /// # Errors
    /// [`EventError::Validation`] on `limit` or `types`;
    /// [`EventError::Repository`].
    pub async fn list(
        &self,
        workspace: WorkspaceId,
        query: &EventQuery,
    ) -> Result<Vec<Event>, EventError> {
        query.validate()?;
        Ok(self.log.list(workspace, query).await?)
    }

    /// Places committed events in the log (see [`EventLog::sequence`]).
    ///
    /// # Errors
    /// When storage fails.
    pub async fn sequence(&self, batch: u32) -> Result<usize, RepositoryError> {
        self.log.sequence(batch).await
    }

    /// Deletes events written before `before`.
    ///
    /// # Errors
    /// When storage fails.
    pub async fn prune(&self, before: DateTime<Utc>) -> Result<usize, RepositoryError> {
        self.log.prune(before).await
    }
}
