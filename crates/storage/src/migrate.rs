use diesel::RunQueryDsl;
use diesel_migrations::{EmbeddedMigrations, MigrationHarness, embed_migrations};

use crate::error::StorageError;

diesel::define_sql_function! {
    /// `current_database()`: the name of the database connected to.
    fn current_database() -> diesel::sql_types::Text;
}

/// The extension the contact search indexes need.
const TRIGRAM_EXTENSION: &str = "pg_trgm";

/// A migration failure as an administrator can act on it. Creating
/// `pg_trgm` needs CREATE on the database (it is a trusted extension) and
/// the extension's files (Debian: postgresql-contrib); a database of one's
/// own may have neither, and PostgreSQL's own words do not say what to do.
fn explain_failure(message: &str, database: &str) -> String {
    if message.contains(TRIGRAM_EXTENSION) {
        format!(
            "the PostgreSQL extension {TRIGRAM_EXTENSION} (used by the contact search indexes) \
             is not installed in database \"{database}\" and this role cannot install it: \
             connect to that database as a superuser and run `CREATE EXTENSION {TRIGRAM_EXTENSION};` \
             (the extension comes with PostgreSQL's contrib modules, on Debian and Ubuntu the \
             postgresql-contrib package), then run `maveraa migrate` again. PostgreSQL said: {message}"
        )
    } else {
        message.to_owned()
    }
}

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
        .map_err(|e| {
            let database = diesel::select(current_database())
                .get_result::<String>(&mut conn)
                .unwrap_or_else(|_| "the database".to_owned());
            StorageError::Migration(explain_failure(&e.to_string(), &database))
        });
    // The lock also ends with the session; unlock anyway so a pooled or
    // long-lived connection never keeps it.
    diesel::sql_query(format!("SELECT pg_advisory_unlock({MIGRATION_LOCK_KEY})"))
        .execute(&mut conn)?;
    result
}

#[cfg(test)]
mod tests {
    use super::explain_failure;

    #[test]
    fn a_missing_trigram_extension_says_what_to_run() {
        for said in [
            "Failed to run 2026-12-05-232800_contact_search_indexes with: permission denied to create extension \"pg_trgm\"",
            "Failed to run 2026-12-05-232800_contact_search_indexes with: could not open extension control file \"/usr/share/postgresql/15/extension/pg_trgm.control\": No such file or directory",
            "Failed to run 2026-12-05-232800_contact_search_indexes with: extension \"pg_trgm\" is not available",
        ] {
            let explained = explain_failure(said, "crm");
            assert!(
                explained.contains("CREATE EXTENSION pg_trgm;")
                    && explained.contains("superuser")
                    && explained.contains("\"crm\"")
                    && explained.ends_with(said),
                "{explained}"
            );
        }
    }

    #[test]
    fn other_failures_are_passed_on_unchanged() {
        let said = "Failed to run 2026-11-25-000001_foundation with: relation \"x\" already exists";
        assert_eq!(explain_failure(said, "crm"), said);
    }
}
