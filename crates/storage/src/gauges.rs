//! What `/metrics` reports of the database: the outbox's depth and the age
//! of its oldest message, and sessions by status. Read at each scrape.

use diesel::prelude::*;
use diesel::sql_types::{BigInt, Double, Text};

use crate::error::StorageError;
use crate::store::PgStore;

/// The database's share of the metrics.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StoreGauges {
    /// Messages queued to send (all servers' outbox).
    pub outbox_depth: i64,
    /// Seconds since the oldest of them was accepted; 0 when none is.
    pub oldest_queued_secs: f64,
    /// Sessions by status (`connected`, `failed`...), of every workspace.
    pub sessions_by_status: Vec<(String, i64)>,
}

#[derive(QueryableByName)]
struct Outbox {
    #[diesel(sql_type = BigInt)]
    depth: i64,
    #[diesel(sql_type = Double)]
    age: f64,
}

#[derive(QueryableByName)]
struct ByStatus {
    #[diesel(sql_type = Text)]
    status: String,
    #[diesel(sql_type = BigInt)]
    n: i64,
}

impl PgStore {
    /// Reads the gauges, in one read-only transaction.
    ///
    /// # Errors
    /// When the database fails.
    pub async fn gauges(&self) -> Result<StoreGauges, StorageError> {
        self.db
            .run(|conn| {
                conn.build_transaction().read_only().run(|conn| {
                    let outbox: Outbox = diesel::sql_query(
                        "SELECT count(*) AS depth, \
                         coalesce(extract(epoch FROM now() - min(m.created_at)), 0)::float8 AS age \
                         FROM outbox o JOIN messages m ON m.id = o.message_id",
                    )
                    .get_result(conn)?;
                    let sessions: Vec<ByStatus> = diesel::sql_query(
                        "SELECT status, count(*) AS n FROM sessions GROUP BY status ORDER BY status",
                    )
                    .load(conn)?;
                    Ok(StoreGauges {
                        outbox_depth: outbox.depth,
                        oldest_queued_secs: outbox.age.max(0.0),
                        sessions_by_status: sessions.into_iter().map(|s| (s.status, s.n)).collect(),
                    })
                })
            })
            .await
    }
}
