//! Message statuses in SQL: ranks generated from the domain's
//! [`MessageStatus::rank`], so the order is written down in one place, and
//! the provider-id locks that keep a status from being lost to a send
//! recorded at the same moment. `reports` and `sent` build on these.

use maveraa_domain::messaging::MessageStatus;

use crate::error::StorageError;

// ---------------------------------------------------------------------------
// Statuses in SQL

/// Every status. The match below stops compiling when the domain adds one,
/// so this list cannot silently fall behind.
const ALL_STATUSES: [MessageStatus; 6] = [
    MessageStatus::Queued,
    MessageStatus::Sent,
    MessageStatus::Delivered,
    MessageStatus::Read,
    MessageStatus::Failed,
    MessageStatus::Received,
];

// Exhaustive on purpose: see ALL_STATUSES.
const _: fn(MessageStatus) = |s| match s {
    MessageStatus::Queued
    | MessageStatus::Sent
    | MessageStatus::Delivered
    | MessageStatus::Read
    | MessageStatus::Failed
    | MessageStatus::Received => {}
};

/// The rank of the status stored in `column`, as an SQL expression built
/// from [`MessageStatus::rank`]. A status this version does not know ranks
/// highest, so it is never overwritten.
pub(crate) fn rank_sql(column: &str) -> String {
    let mut sql = format!("(CASE {column}");
    for status in ALL_STATUSES {
        sql.push_str(&format!(
            " WHEN '{}' THEN {}",
            status.as_str(),
            status.rank()
        ));
    }
    sql.push_str(" ELSE 32767 END)");
    sql
}

/// Reads a stored status name.
pub(crate) fn parse_status(s: &str) -> Result<MessageStatus, StorageError> {
    MessageStatus::parse(s)
        .ok_or_else(|| StorageError::Corrupt(format!("unknown message status {s:?}")))
}

// ---------------------------------------------------------------------------
// Provider-id locks

/// First key of the transaction-level advisory locks taken on
/// (session, provider message id) ("mvps"). The two-key form keeps them
/// apart from the single-key locks of migrations and test templates.
const PROVIDER_ID_LOCK_SPACE: i32 = 0x6d76_7073;

/// `pg_advisory_xact_lock` on (session, provider id): serialises recording
/// a provider id with a status that arrives for it before it is recorded,
/// so that one of the two always sees the other (see
/// [`apply_status`] and `Outbox::record`). The key is hashed by the
/// server, so every instance computes the same one.
pub(crate) fn provider_id_lock_sql(session_expr: &str, provider_id_expr: &str) -> String {
    format!(
        "pg_advisory_xact_lock({PROVIDER_ID_LOCK_SPACE}, hashtext({session_expr}::text || ':' || {provider_id_expr}))"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranks_in_sql_follow_the_domain() {
        let sql = rank_sql("status");
        assert!(sql.contains("WHEN 'read' THEN 4"), "{sql}");
        assert!(sql.contains("WHEN 'failed' THEN 2"), "{sql}");
        assert!(sql.ends_with("ELSE 32767 END)"));
    }
}
