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

/// Whether a database error means the connection it ran on is dead.
fn connection_gone(kind: &DatabaseErrorKind, message: &str) -> bool {
    matches!(
        kind,
        DatabaseErrorKind::ClosedConnection | DatabaseErrorKind::UnableToSendCommand
    ) || [
        "terminating connection",
        "server closed the connection",
        "no connection to the server",
        "could not receive data",
        "could not send data",
    ]
    .iter()
    .any(|m| message.contains(m))
}

/// Whether a database error is worth a retry elsewhere or later (the
/// connection or the server went away, the server is starting or stopping,
/// a statement ran out of time), not that the query was wrong.
fn is_transient(kind: &DatabaseErrorKind, message: &str) -> bool {
    connection_gone(kind, message)
        || [
            "statement timeout",
            "connection to server",
            "the database system is",
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
