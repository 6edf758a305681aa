//! Setup shared by this crate's unit tests that need a database.

use std::sync::Arc;

use maveraa_domain::messaging::{ProviderSettings, Session, SessionName, SessionStatus};
use maveraa_domain::ports::SessionRepository;
use maveraa_domain::usecases::WorkspaceService;
use maveraa_domain::{SessionId, SystemClock, WorkspaceId};

use crate::testing::TestDatabase;
use crate::{Database, PgStore, PoolSettings};

/// A fresh database (dropped with the first value), its pool, a store over
/// it and one workspace.
pub(crate) async fn store_with_workspace() -> (TestDatabase, Database, Arc<PgStore>, WorkspaceId) {
    let test_db = TestDatabase::create();
    let db = Database::connect(test_db.url(), &PoolSettings::default()).expect("pool");
    let store = Arc::new(PgStore::new(db.clone()));
    let ws = WorkspaceService::new(store.clone(), Arc::new(SystemClock))
        .create("Acme")
        .await
        .expect("workspace")
        .id;
    (test_db, db, store, ws)
}

/// Stores a connected simulator session `name` in `workspace`.
pub(crate) async fn simulator_session(
    store: &PgStore,
    workspace: WorkspaceId,
    name: &str,
) -> Session {
    let session = Session {
        id: SessionId::new(),
        workspace_id: workspace,
        name: SessionName::parse("sessionId", name).expect("name"),
        provider: ProviderSettings::Simulator,
        status: SessionStatus::Connected,
        last_error: None,
        created_at: chrono::Utc::now(),
    };
    store.insert(&session).await.expect("session");
    session
}
