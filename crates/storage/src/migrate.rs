use diesel::RunQueryDsl;
use diesel_migrations::{EmbeddedMigrations, MigrationHarness, embed_migrations};

use crate::error::StorageError;

/// The migrations of `migrations/`, compiled into the binary.
pub const MIGRATIONS: EmbeddedMigrations = embed_migrations!("../../migrations");

/// The advisory lock that serialises migrations across processes
/// ("maveraa" in ASCII).
pub(crate) const MIGRATION_LOCK_KEY: i64 = 0x006d_6176_6572_6161;

/// Applies the pending migrations on `url` and returns the versions
/// applied. Several processes may call this at once: a PostgreSQL advisory
/// lock lets one migrate while the others wait, then find nothing pending.
///
/// # Errors
/// [`StorageError::Connection`] when the database cannot be reached,
/// [`StorageError::Migration`] when a migration fails.
pub fn run_migrations(url: &str) -> Result<Vec<String>, StorageError> {
    let mut conn = crate::pool::establish(url)?;
    diesel::sql_query(format!("SELECT pg_advisory_lock({MIGRATION_LOCK_KEY})"))
        .execute(&mut conn)?;
    let result = conn
        .run_pending_migrations(MIGRATIONS)
        .map(|versions| versions.iter().map(ToString::to_string).collect())
        .map_err(|e| StorageError::Migration(e.to_string()));
    // The lock also ends with the session; unlock anyway so a pooled or
    // long-lived connection never keeps it.
    diesel::sql_query(format!("SELECT pg_advisory_unlock({MIGRATION_LOCK_KEY})"))
        .execute(&mut conn)?;
    result
}
