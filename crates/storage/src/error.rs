use diesel::result::{DatabaseErrorInformation, DatabaseErrorKind, Error as DieselError};
use maveraa_domain::RepositoryError;

/// Failures of the storage adapters.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// No pooled connection could be had in time.
    #[error("no database connection available: {0}")]
    Pool(#[from] diesel::r2d2::PoolError),
    /// Every connection stayed busy for the whole acquire timeout.
    #[error("all database connections are busy")]
    Busy,
    /// A query failed.
    #[error("query failed: {0}")]
    Query(#[from] DieselError),
    /// A direct connection failed.
    #[error("cannot connect to the database: {0}")]
    Connection(#[from] diesel::ConnectionError),
    /// Applying migrations failed.
    #[error("migrations failed: {0}")]
    Migration(String),
    /// The blocking task running a query panicked or was cancelled.
    #[error("database task failed: {0}")]
    Task(String),
    /// The project-local PostgreSQL could not be prepared or started.
    #[error("local PostgreSQL: {0}")]
    LocalPostgres(String),
    /// A configuration value is unusable.
    #[error("invalid database configuration: {0}")]
    Config(String),
    /// A stored value cannot be read back as a domain value (an unknown
    /// status name, malformed settings JSON).
    #[error("unreadable stored data: {0}")]
    Corrupt(String),
    /// A session's stored credentials cannot be opened (a key not
    /// configured, the wrong key, an altered value) or sealed (no key).
    #[error("credentials of session {session} unavailable ({field}): {source}")]
    Secret {
        /// The session.
        session: uuid::Uuid,
        /// Which credential.
        field: &'static str,
        /// Why.
        source: crate::secrets::SecretError,
    },
    /// Sealing or opening secrets failed outside a session's row (a key
    /// file, the sealing step at start).
    #[error("secrets: {0}")]
    Secrets(#[from] crate::secrets::SecretError),
    /// Concurrent requests kept taking the same row away; worth retrying.
    #[error("too much contention: {0}")]
    Contended(String),
}

impl StorageError {
    /// Whether this is a unique-constraint violation.
    pub fn is_unique_violation(&self) -> bool {
        matches!(
            self,
            Self::Query(DieselError::DatabaseError(
                DatabaseErrorKind::UniqueViolation,
                _
            ))
        )
    }

    /// Whether the connection it ran on is dead: the server closed it or
    /// went away (restarted, failed over). Such a connection is dropped,
    /// not reused. A statement timeout leaves it alive.
    pub fn connection_is_gone(&self) -> bool {
        matches!(self, Self::Query(DieselError::DatabaseError(kind, info))
            if connection_gone(kind, info.as_ref()))
    }

    /// Whether a row referred to another that does not exist (any more).
    pub fn is_foreign_key_violation(&self) -> bool {
        matches!(
            self,
            Self::Query(DieselError::DatabaseError(
                DatabaseErrorKind::ForeignKeyViolation,
                _
            ))
        )
    }
}

// Errors are classified by their SQLSTATE where PostgreSQL sent one (any
// server language); libpq's own connection failures carry none and are
// recognised by diesel's kind or libpq's wording.

/// Whether a database error means the connection it ran on is dead.
fn connection_gone(kind: &DatabaseErrorKind, info: &dyn DatabaseErrorInformation) -> bool {
    if matches!(
        kind,
        DatabaseErrorKind::ClosedConnection | DatabaseErrorKind::UnableToSendCommand
    ) {
        return true;
    }
    match info.sqlstate() {
        // Class 08 (connection exception); 57P01-57P03: the server ends
        // the session (admin shutdown, crash shutdown, cannot connect now).
        Some(code) => {
            code.class().as_str() == "08" || matches!(code.as_str(), "57P01" | "57P02" | "57P03")
        }
        // Detected by libpq, not sent by the server.
        None => [
            "server closed the connection",
            "no connection to the server",
            "could not receive data",
            "could not send data",
            "connection to server",
            "SSL SYSCALL error",
            "SSL connection has been closed",
            "SSL error",
        ]
        .iter()
        .any(|m| info.message().contains(m)),
    }
}

/// Whether a database error is worth a retry elsewhere or later, not that
/// the query was wrong: the connection or the server went away or is
/// starting or stopping (class 08, 57P0x), a statement was cancelled or ran
/// out of time (57014), the server ran out of a resource (class 53: disk,
/// memory, connections) or failed at the system level (class 58: I/O), a
/// lock was not had (55P03; class 40: deadlock, serialization), or the
/// server is a read-only standby after a failover (25006).
fn is_transient(kind: &DatabaseErrorKind, info: &dyn DatabaseErrorInformation) -> bool {
    if connection_gone(kind, info) {
        return true;
    }
    match info.sqlstate() {
        Some(code) => {
            matches!(code.class().as_str(), "40" | "53" | "57" | "58")
                || matches!(code.as_str(), "25006" | "55P03")
        }
        None => matches!(
            kind,
            DatabaseErrorKind::SerializationFailure | DatabaseErrorKind::ReadOnlyTransaction
        ),
    }
}

impl From<StorageError> for RepositoryError {
    fn from(err: StorageError) -> Self {
        match &err {
            StorageError::Pool(_)
            | StorageError::Connection(_)
            | StorageError::Busy
            | StorageError::Contended(_) => Self::Unavailable(err.to_string()),
            _ if err.is_unique_violation() => Self::Duplicate { existing: None },
            StorageError::Query(DieselError::DatabaseError(kind, info))
                if is_transient(kind, info.as_ref()) =>
            {
                Self::Unavailable(err.to_string())
            }
            _ => Self::Internal(err.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use diesel::result::SqlState;

    /// A server error with `code` and a message in another language, so
    /// that only the code can tell what it is.
    #[derive(Debug)]
    struct Reported(&'static [u8; 5]);

    impl DatabaseErrorInformation for Reported {
        fn message(&self) -> &str {
            "FEHLER: etwas ist passiert"
        }
        fn details(&self) -> Option<&str> {
            None
        }
        fn hint(&self) -> Option<&str> {
            None
        }
        fn table_name(&self) -> Option<&str> {
            None
        }
        fn column_name(&self) -> Option<&str> {
            None
        }
        fn constraint_name(&self) -> Option<&str> {
            None
        }
        fn statement_position(&self) -> Option<i32> {
            None
        }
        fn sqlstate(&self) -> Option<SqlState> {
            SqlState::new(*self.0)
        }
    }

    fn reported(code: &'static [u8; 5]) -> StorageError {
        StorageError::Query(DieselError::DatabaseError(
            DatabaseErrorKind::Unknown,
            Box::new(Reported(code)),
        ))
    }

    fn libpq(kind: DatabaseErrorKind, message: &str) -> StorageError {
        StorageError::Query(DieselError::DatabaseError(
            kind,
            Box::new(message.to_owned()),
        ))
    }

    #[test]
    fn failures_that_may_pass_are_unavailable_by_their_sqlstate() {
        for code in [
            b"40P01", // deadlock
            b"40001", // serialization
            b"57014", // statement timeout, cancel
            b"57P01", // admin shutdown
            b"57P03", // cannot connect now
            b"53100", // disk full
            b"53200", // out of memory
            b"53300", // too many connections
            b"58030", // I/O error
            b"55P03", // lock not available
            b"25006", // read-only transaction (a standby)
            b"08006", // connection failure
        ] {
            let mapped: RepositoryError = reported(code).into();
            assert!(
                matches!(mapped, RepositoryError::Unavailable(_)),
                "{}: {mapped:?}",
                String::from_utf8_lossy(code)
            );
        }
    }

    #[test]
    fn broken_rules_and_wrong_queries_are_not_unavailable() {
        for code in [b"42601", b"42703", b"23514", b"22P02", b"XX000"] {
            let mapped: RepositoryError = reported(code).into();
            assert!(
                matches!(mapped, RepositoryError::Internal(_)),
                "{}: {mapped:?}",
                String::from_utf8_lossy(code)
            );
        }
        assert!(matches!(
            RepositoryError::from(libpq(DatabaseErrorKind::UniqueViolation, "duplicate key")),
            RepositoryError::Duplicate { .. }
        ));
    }

    #[test]
    fn only_lost_connections_are_dropped_from_the_pool() {
        use DatabaseErrorKind::{ClosedConnection, Unknown};
        assert!(libpq(ClosedConnection, "server closed the connection").connection_is_gone());
        assert!(libpq(Unknown, "SSL connection has been closed unexpectedly").connection_is_gone());
        assert!(reported(b"57P01").connection_is_gone());
        assert!(reported(b"08006").connection_is_gone());
        assert!(!reported(b"57014").connection_is_gone(), "a timeout");
        assert!(!reported(b"40P01").connection_is_gone(), "a deadlock");
        assert!(!libpq(Unknown, "syntax error").connection_is_gone());
    }
}
