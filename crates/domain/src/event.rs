//! The event log: what changed in a workspace, in the order the changes
//! became visible, for apps that catch up on what they missed.

use chrono::{DateTime, Utc};

use crate::ids::WorkspaceId;
use crate::values::ValidationError;

/// The kinds of event the log holds.
pub const EVENT_TYPES: &[&str] = &[
    "contact.created",
    "contact.updated",
    "contact.deleted",
    "contacts.imported",
    "session.status",
    "conversation.read",
    "message.queued",
    "message.received",
    "message.status",
];

/// One event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// Its place in the log: increasing in the order events became visible
    /// (committed), across all workspaces.
    pub position: u64,
    /// One of [`EVENT_TYPES`].
    pub kind: String,
    /// The workspace it happened in.
    pub workspace_id: WorkspaceId,
    /// When the change was written.
    pub created_at: DateTime<Utc>,
    /// The resource as it was after the change, as JSON text in the API's
    /// shapes (a contact as the contact routes show it...).
    pub data: String,
}

/// Which events to read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventQuery {
    /// Only events after this position (0: from the oldest kept).
    pub after: u64,
    /// At most this many.
    pub limit: u32,
    /// Only these kinds (empty: all).
    pub types: Vec<String>,
}

impl EventQuery {
    /// Default page size.
    pub const DEFAULT_LIMIT: u32 = 100;
    /// Largest page size.
    pub const MAX_LIMIT: u32 = 1000;

    /// Checks the limit and the kinds.
    ///
    /// # Errors
    /// A [`ValidationError`] on `limit` or `types`.
    pub fn validate(&self) -> Result<(), ValidationError> {
        if self.limit == 0 || self.limit > Self::MAX_LIMIT {
            return Err(ValidationError::new(
                "limit",
                format!("must be between 1 and {}", Self::MAX_LIMIT),
            ));
        }
        if let Some(unknown) = self
            .types
            .iter()
            .find(|t| !EVENT_TYPES.contains(&t.as_str()))
        {
            return Err(ValidationError::new(
                "types",
                format!(
                    "{unknown} is not an event type; the types are {}",
                    EVENT_TYPES.join(", ")
                ),
            ));
        }
        Ok(())
    }
}
