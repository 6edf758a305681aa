//! Workspaces: the tenants.

use chrono::{DateTime, Utc};

use crate::ids::WorkspaceId;
use crate::values::WorkspaceName;

/// A tenant. Contacts, API keys and WhatsApp sessions belong to exactly one
/// workspace, and nothing crosses from one workspace to another.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Workspace {
    /// Its identifier.
    pub id: WorkspaceId,
    /// Its display name.
    pub name: WorkspaceName,
    /// When it was created.
    pub created_at: DateTime<Utc>,
}
