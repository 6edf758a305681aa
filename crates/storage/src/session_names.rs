//! Session names by session id, for conversation lists.
//!
//! A conversation page needs each row's session name. Joining `sessions`
//! cost the list a fifth of its throughput against reading a name by key
//! per row, and a cached generic plan for the join made while `sessions`
//! was tiny scanned the whole table on every page. A session's name never
//! changes (a trigger refuses it, migration 3), so a name once read is
//! never stale: a deleted session's conversations go with it.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use diesel::pg::PgConnection;
use diesel::prelude::*;
use maveraa_domain::messaging::SessionName;
use uuid::Uuid;

use crate::columns::SessionNameColumn;
use crate::error::StorageError;
use crate::schema::sessions;

/// Most names kept; past it the map starts over (it holds one entry per
/// session that has conversations listed, so this is rarely reached).
const CAPACITY: usize = 10_000;

/// Session names by id, filled on demand.
#[derive(Debug, Default)]
pub(crate) struct SessionNames {
    names: Mutex<HashMap<Uuid, SessionName>>,
}

impl SessionNames {
    /// The name of each of `ids` (`None` for a session that no longer
    /// exists), reading the unknown ones with `conn` in one query.
    pub(crate) fn resolve(
        &self,
        conn: &mut PgConnection,
        ids: &[Uuid],
    ) -> Result<Vec<Option<SessionName>>, StorageError> {
        let mut missing: Vec<Uuid> = {
            let names = self.names.lock().unwrap_or_else(PoisonError::into_inner);
            ids.iter()
                .filter(|id| !names.contains_key(id))
                .copied()
                .collect()
        };
        if !missing.is_empty() {
            missing.sort_unstable();
            missing.dedup();
            let found: Vec<(Uuid, SessionNameColumn)> = sessions::table
                .filter(sessions::id.eq_any(&missing))
                .select((sessions::id, sessions::name))
                .load(conn)?;
            let mut names = self.names.lock().unwrap_or_else(PoisonError::into_inner);
            if names.len() + found.len() > CAPACITY {
                names.clear();
            }
            names.extend(found.into_iter().map(|(id, name)| (id, name.0)));
        }
        let names = self.names.lock().unwrap_or_else(PoisonError::into_inner);
        Ok(ids.iter().map(|id| names.get(id).cloned()).collect())
    }
}
