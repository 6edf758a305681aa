use diesel::result::{DatabaseErrorKind, Error as DieselError};
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
            if connection_gone(kind, info.message()))
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

// diesel 2.3 does not expose a PostgreSQL error's SQLSTATE, only the kinds
// it maps (unique and foreign-key violations, 40001, 25006, a closed
// connection): the other classes are recognised by the server's English
// messages, as libpq words them. A server that reports in another language
// (`lc_messages`) leaves those to the callers' own caution: the dispatcher
// keeps any outcome storage did not refuse for good.

/// Whether a database error means the connection it ran on is dead.
fn connection_gone(kind: &DatabaseErrorKind, message: &str) -> bool {
    matches!(
        kind,
        DatabaseErrorKind::ClosedConnection | DatabaseErrorKind::UnableToSendCommand
    ) || [
        // 57P01-57P03 (operator intervention) and class 08 (connection).
        "terminating connection",
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
    .any(|m| message.contains(m))
}

/// Whether a database error is worth a retry elsewhere or later, not that
/// the query was wrong: the connection or the server went away or is
/// starting or stopping (classes 08, 57P), a statement was cancelled or ran
/// out of time (57014), the server ran out of a resource (class 53: disk,
/// memory, connections) or hit an I/O error (58030), a lock was not had
/// (55P03, 40P01 deadlock, 40001 serialization), or the server is a
/// read-only standby after a failover (25006).
fn is_transient(kind: &DatabaseErrorKind, message: &str) -> bool {
    connection_gone(kind, message)
        || matches!(
            kind,
            DatabaseErrorKind::SerializationFailure | DatabaseErrorKind::ReadOnlyTransaction
        )
        || [
            "canceling statement due to",
            "the database system is",
            "cannot connect now",
            "deadlock detected",
            "could not serialize access",
            "could not obtain lock",
            "read-only transaction",
            "could not extend file",
            "No space left on device",
            "out of memory",
            "too many connections",
            "remaining connection slots are reserved",
            "could not write to file",
            "could not read from file",
            "could not fsync",
        ]
        .iter()
        .any(|m| message.contains(m))
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
                if is_transient(kind, info.message()) =>
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

    fn db_error(kind: DatabaseErrorKind, message: &str) -> StorageError {
        StorageError::Query(DieselError::DatabaseError(
            kind,
            Box::new(message.to_owned()),
        ))
    }

    fn mapped(kind: DatabaseErrorKind, message: &str) -> RepositoryError {
        db_error(kind, message).into()
    }

    #[test]
    fn failures_that_may_pass_are_unavailable() {
        use DatabaseErrorKind::{ReadOnlyTransaction, SerializationFailure, Unknown};
        for (kind, message) in [
            (Unknown, "deadlock detected"),
            (Unknown, "canceling statement due to statement timeout"),
            (Unknown, "canceling statement due to user request"),
            (Unknown, "canceling statement due to conflict with recovery"),
            (
                Unknown,
                "could not extend file \"base/16384/2619\": No space left on device",
            ),
            (Unknown, "out of memory"),
            (Unknown, "sorry, too many connections for role \"maveraa\""),
            (Unknown, "the database system is in recovery mode"),
            (Unknown, "the database system is shutting down"),
            (
                Unknown,
                "could not obtain lock on row in relation \"outbox\"",
            ),
            (Unknown, "SSL SYSCALL error: EOF detected"),
            (
                Unknown,
                "could not write to file \"pg_wal/xlogtemp\": I/O error",
            ),
            (
                ReadOnlyTransaction,
                "cannot execute INSERT in a read-only transaction",
            ),
            (
                SerializationFailure,
                "could not serialize access due to concurrent update",
            ),
        ] {
            assert!(
                matches!(mapped(kind, message), RepositoryError::Unavailable(_)),
                "{message}"
            );
        }
    }

    #[test]
    fn broken_rules_and_wrong_queries_are_not_unavailable() {
        use DatabaseErrorKind::{CheckViolation, Unknown};
        assert!(matches!(
            mapped(DatabaseErrorKind::UniqueViolation, "duplicate key value"),
            RepositoryError::Duplicate { .. }
        ));
        for (kind, message) in [
            (CheckViolation, "new row violates check constraint"),
            (Unknown, "syntax error at or near \"SELEC\""),
            (Unknown, "column \"nope\" does not exist"),
        ] {
            assert!(
                matches!(mapped(kind, message), RepositoryError::Internal(_)),
                "{message}"
            );
        }
    }

    #[test]
    fn only_lost_connections_are_dropped_from_the_pool() {
        use DatabaseErrorKind::{ClosedConnection, Unknown};
        assert!(db_error(ClosedConnection, "server closed the connection").connection_is_gone());
        assert!(
            db_error(
                Unknown,
                "terminating connection due to administrator command"
            )
            .connection_is_gone()
        );
        assert!(
            db_error(Unknown, "SSL connection has been closed unexpectedly").connection_is_gone()
        );
        assert!(
            !db_error(Unknown, "canceling statement due to statement timeout").connection_is_gone()
        );
        assert!(!db_error(Unknown, "deadlock detected").connection_is_gone());
    }
}
