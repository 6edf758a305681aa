//! Session names by session id, for conversation lists.
//!
//! A conversation page needs each row's session name. Joining `sessions`
//! costs the list more than reading a name by key per row, and a generic
//! plan for the join cached while `sessions` is tiny scans the whole table
//! on every page (docs/storage-tuning.md). A session's name never
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
#[derive(Debug)]
pub(crate) struct SessionNames {
    names: Mutex<HashMap<Uuid, SessionName>>,
    capacity: usize,
}

impl Default for SessionNames {
    fn default() -> Self {
        Self::with_capacity(CAPACITY)
    }
}

impl SessionNames {
    fn with_capacity(capacity: usize) -> Self {
        Self {
            names: Mutex::default(),
            capacity,
        }
    }

    /// The name of each of `ids` (`None` for a session that no longer
    /// exists), reading the unknown ones with `conn` in one query.
    pub(crate) fn resolve(
        &self,
        conn: &mut PgConnection,
        ids: &[Uuid],
    ) -> Result<Vec<Option<SessionName>>, StorageError> {
        let mut resolved: Vec<Option<SessionName>> = Vec::with_capacity(ids.len());
        {
            let names = self.names.lock().unwrap_or_else(PoisonError::into_inner);
            // A page's rows mostly share one session: look each run up once.
            let mut last: Option<(Uuid, Option<SessionName>)> = None;
            for id in ids {
                let name = match &last {
                    Some((last_id, name)) if last_id == id => name.clone(),
                    _ => {
                        let name = names.get(id).cloned();
                        last = Some((*id, name.clone()));
                        name
                    }
                };
                resolved.push(name);
            }
        }
        let mut missing: Vec<Uuid> = ids
            .iter()
            .zip(&resolved)
            .filter(|(_, name)| name.is_none())
            .map(|(id, _)| *id)
            .collect();
        if missing.is_empty() {
            return Ok(resolved);
        }
        missing.sort_unstable();
        missing.dedup();
        let found: HashMap<Uuid, SessionName> = sessions::table
            .filter(sessions::id.eq_any(&missing))
            .select((sessions::id, sessions::name))
            .load::<(Uuid, SessionNameColumn)>(conn)?
            .into_iter()
            .map(|(id, name)| (id, name.0))
            .collect();
        for (id, name) in ids.iter().zip(resolved.iter_mut()) {
            if name.is_none() {
                *name = found.get(id).cloned();
            }
        }
        let mut names = self.names.lock().unwrap_or_else(PoisonError::into_inner);
        if names.len() + found.len() > self.capacity {
            names.clear();
        }
        names.extend(found);
        Ok(resolved)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{fixture, session, workspace};

    /// Names stay right when the map starts over mid-page, and a session
    /// that no longer exists has none.
    #[tokio::test]
    async fn names_resolve_across_a_full_map_and_a_deleted_session() {
        let f = fixture();
        let db = f.store.database();
        let ws = workspace(&f, "Acme").await;
        let mut ids = Vec::new();
        for name in ["a", "b", "c"] {
            ids.push(session(&f, ws, name).await.id.as_uuid());
        }
        let gone = Uuid::now_v7();
        let names = SessionNames::with_capacity(2);
        let as_text = |resolved: Vec<Option<SessionName>>| {
            resolved
                .into_iter()
                .map(|n| n.map(|n| n.as_str().to_owned()))
                .collect::<Vec<_>>()
        };
        let expected = vec![
            Some("a".to_owned()),
            Some("b".to_owned()),
            None,
            Some("a".to_owned()),
        ];
        // "a" known first; then a page needing two more overfills the map.
        let first = db
            .run_blocking(|conn| names.resolve(conn, &ids[..1]))
            .expect("resolve");
        assert_eq!(as_text(first), vec![Some("a".to_owned())]);
        let page = [ids[0], ids[1], gone, ids[0]];
        for _ in 0..2 {
            let resolved = db
                .run_blocking(|conn| names.resolve(conn, &page))
                .expect("resolve");
            assert_eq!(as_text(resolved), expected);
        }
        let all = db
            .run_blocking(|conn| names.resolve(conn, &ids))
            .expect("resolve");
        assert_eq!(
            as_text(all),
            vec![
                Some("a".to_owned()),
                Some("b".to_owned()),
                Some("c".to_owned())
            ]
        );
    }
}
