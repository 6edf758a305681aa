//! The unpaged contact list, streamed: one database thread reads the
//! contacts through a server-side cursor, a batch per `FETCH`, and hands
//! each batch to the response through a bounded channel. The server holds
//! at most a few batches whatever the workspace's size, and a reader that
//! goes away (the channel closed) ends the reading and frees the
//! connection.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use diesel::pg::Pg;
use diesel::prelude::*;
use diesel::query_builder::{AstPass, Query, QueryFragment, QueryId};
use diesel::sql_types;
use maveraa_domain::{Contact, ContactQuery, ContactStream, RepositoryError, WorkspaceId};
use tokio::runtime::Handle;
use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;

use crate::contact_filters::{StoredCount, count_matching, filtered};
use crate::contacts::{ReadRow, read_columns};
use crate::error::StorageError;
use crate::schema::contacts;
use crate::store::PgStore;

/// Contacts per `FETCH`: about 200 KB of JSON, few enough round trips that
/// a million contacts cost a thousand.
const BATCH_ROWS: usize = 1000;

/// Batches between the database thread and the response: enough to keep
/// both busy, few enough to bound the memory (a few hundred KB a stream).
const BATCHES_IN_FLIGHT: usize = 4;

/// How long the database thread waits for a reader that takes nothing.
/// Below the connections' `idle_in_transaction_session_timeout` (60 s), so
/// we end the transaction before PostgreSQL kills the connection under it;
/// a stalled client cannot keep a database thread forever.
const SEND_TIMEOUT: Duration = Duration::from_secs(30);

type Batch = Result<Vec<Contact>, RepositoryError>;

/// `DECLARE contacts_stream NO SCROLL CURSOR FOR <query>`, with the
/// query's own bind parameters.
struct DeclareCursor<Q>(Q);

impl<Q: QueryFragment<Pg>> QueryFragment<Pg> for DeclareCursor<Q> {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        out.unsafe_to_cache_prepared();
        out.push_sql("DECLARE contacts_stream NO SCROLL CURSOR FOR ");
        self.0.walk_ast(out.reborrow())
    }
}

impl<Q> QueryId for DeclareCursor<Q> {
    type QueryId = ();
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl<Q> RunQueryDsl<PgConnection> for DeclareCursor<Q> {}

/// `FETCH <BATCH_ROWS> FROM contacts_stream`, typed as the cursor's
/// columns so its rows load as [`ReadRow`]s.
struct FetchBatch;

impl QueryFragment<Pg> for FetchBatch {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        // Not a statement PostgreSQL can prepare under a name.
        out.unsafe_to_cache_prepared();
        out.push_sql(&format!("FETCH {BATCH_ROWS} FROM contacts_stream"));
        Ok(())
    }
}

impl QueryId for FetchBatch {
    type QueryId = ();
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl Query for FetchBatch {
    type SqlType = (
        sql_types::Uuid,
        sql_types::Text,
        sql_types::Text,
        sql_types::Array<sql_types::Text>,
        sql_types::Timestamptz,
        sql_types::Nullable<sql_types::Timestamptz>,
    );
}

impl RunQueryDsl<PgConnection> for FetchBatch {}

impl PgStore {
    /// [`maveraa_domain::ports::ContactRepository::stream`].
    pub(crate) async fn stream_contacts(
        &self,
        workspace: WorkspaceId,
        query: &ContactQuery,
    ) -> Result<ContactStream, RepositoryError> {
        let (tx, mut rx) = mpsc::channel::<Batch>(BATCHES_IN_FLIGHT);
        let (total_tx, total_rx) = oneshot::channel::<i64>();
        let complete = Arc::new(AtomicBool::new(false));
        let runtime = Handle::current();
        let reads = self.reads.clone();
        let (query, ws) = (query.clone(), workspace.as_uuid());
        let (job_tx, job_complete) = (tx.clone(), complete.clone());
        // The job runs on a database thread for the whole stream; this task
        // only waits for its end, to pass a failure on to the reader.
        tokio::spawn(async move {
            let result = reads
                .run(move |conn| {
                    read_all(conn, ws, &query, total_tx, &job_tx, &runtime, &job_complete)
                })
                .await;
            if let Err(e) = result {
                tracing::error!(error = %e, "the contact stream failed");
                let _ = tx.send(Err(e.into())).await;
            }
        });
        let total = match total_rx.await {
            Ok(total) => total,
            // Failed before the count: the error is the first thing sent.
            Err(_) => {
                return Err(match rx.recv().await {
                    Some(Err(e)) => e,
                    _ => RepositoryError::Internal(
                        "the contact stream ended before its count".into(),
                    ),
                });
            }
        };
        // An end without an error is the true end only once the job says so;
        // anything else (a job that vanished) must not look like a full list.
        let batches = futures_util::stream::unfold(Some((rx, complete)), |state| async move {
            let (mut rx, complete) = state?;
            match rx.recv().await {
                Some(Ok(batch)) => Some((Ok(batch), Some((rx, complete)))),
                Some(Err(e)) => Some((Err(e), None)),
                None if complete.load(Ordering::Acquire) => None,
                None => Some((
                    Err(RepositoryError::Internal(
                        "the contact stream stopped before its end".into(),
                    )),
                    None,
                )),
            }
        });
        Ok(ContactStream {
            total: u64::try_from(total).unwrap_or(0),
            batches: Box::pin(batches),
        })
    }
}

/// On a database thread: counts the matching contacts and reads them
/// through a cursor, in one read-only REPEATABLE READ transaction, so the
/// count and the rows come from one snapshot. Sends the count on
/// `total_tx`, then each batch on `tx`, waiting (on this thread, never on
/// an executor's) while the channel is full. Stops, ending the transaction
/// and so the cursor, as soon as the reader is gone.
fn read_all(
    conn: &mut PgConnection,
    ws: Uuid,
    query: &ContactQuery,
    total_tx: oneshot::Sender<i64>,
    tx: &mpsc::Sender<Batch>,
    runtime: &Handle,
    complete: &AtomicBool,
) -> Result<(), StorageError> {
    conn.build_transaction()
        .read_only()
        .repeatable_read()
        .run(|conn| {
            let total: i64 = if query.is_unfiltered() {
                // Kept by a trigger in the same transactions as the rows.
                diesel::select(StoredCount(ws))
                    .get_result::<Option<i64>>(conn)?
                    .unwrap_or(0)
            } else {
                // As the paged search: planned for this search's own text.
                diesel::sql_query("SET LOCAL plan_cache_mode = force_custom_plan").execute(conn)?;
                count_matching(conn, ws, query)?
            };
            let offset = i64::try_from(query.offset).unwrap_or(i64::MAX);
            DeclareCursor(
                filtered(ws, query)
                    .order((contacts::created_at.desc(), contacts::id.desc()))
                    .select(read_columns())
                    .offset(offset),
            )
            .execute(conn)?;
            if total_tx.send(total).is_err() {
                return Ok(()); // The request is gone already.
            }
            loop {
                let rows: Vec<ReadRow> = FetchBatch.load(conn)?;
                let last = rows.len() < BATCH_ROWS;
                if !rows.is_empty() {
                    let batch = rows.into_iter().map(|r| r.into_contact(ws)).collect();
                    // The timer is made inside `block_on`, in the runtime's context.
                    let send =
                        async { tokio::time::timeout(SEND_TIMEOUT, tx.send(Ok(batch))).await };
                    match runtime.block_on(send) {
                        Ok(Ok(())) => {}
                        Ok(Err(_)) => {
                            tracing::debug!("the reader left: contact stream stopped");
                            return Ok(());
                        }
                        Err(_) => {
                            return Err(StorageError::Task(format!(
                                "the reader took nothing for {} s: contact stream stopped",
                                SEND_TIMEOUT.as_secs()
                            )));
                        }
                    }
                }
                if last {
                    complete.store(true, Ordering::Release);
                    return Ok(());
                }
            }
        })
}
