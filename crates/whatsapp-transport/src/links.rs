//! The linked devices' connections open on this server, by session: where
//! the dispatcher finds the connection a WhatsApp Web message goes through.

use std::collections::HashMap;
use std::sync::{Arc, PoisonError, RwLock};

use maveraa_domain::SessionId;
use maveraa_domain::ports::LinkConnection;

/// Open connections by session.
#[derive(Default)]
pub struct LiveLinks {
    open: RwLock<HashMap<SessionId, Arc<dyn LinkConnection>>>,
}

impl std::fmt::Debug for LiveLinks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LiveLinks")
            .field("open", &self.open.read().map(|m| m.len()).unwrap_or(0))
            .finish()
    }
}

impl LiveLinks {
    /// The open connection of `session`.
    pub fn get(&self, session: SessionId) -> Option<Arc<dyn LinkConnection>> {
        self.open
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&session)
            .cloned()
    }

    /// Records `connection` as `session`'s open connection.
    pub fn insert(&self, session: SessionId, connection: Arc<dyn LinkConnection>) {
        self.open
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(session, connection);
    }

    /// Forgets `session`'s connection.
    pub fn remove(&self, session: SessionId) -> Option<Arc<dyn LinkConnection>> {
        self.open
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&session)
    }

    /// The sessions with an open connection here.
    pub fn sessions(&self) -> Vec<SessionId> {
        self.open
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .keys()
            .copied()
            .collect()
    }
}
