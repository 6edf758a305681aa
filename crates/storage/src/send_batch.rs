//! Group commit for sends: concurrent `enqueue` calls share one statement
//! and one commit.
//!
//! Each send is durable before it is answered. Stored alone, a send costs a
//! statement, a transaction and a WAL flush of its own, and PostgreSQL's
//! per-statement work (locks on four tables and their indexes, executor
//! start-up, commit) is most of that price. So a send joins a queue and,
//! unless two flush jobs are scheduled already, hands the database threads
//! one; a job takes everything queued (at most [`MAX_BATCH`] at a time) and
//! stores it with one statement, until the queue is empty. A lone send is a
//! batch of one, so nothing waits for company.
//!
//! Every send still gets its own answer: rows the batch did not store (an
//! idempotency key already held) go through the one-by-one path, and when
//! the batch statement fails, each of its sends is retried alone so one bad
//! row cannot fail its neighbours.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex};

use diesel::PgConnection;
use maveraa_domain::messaging::{IdempotencyKey, Message};
use maveraa_domain::ports::EnqueueOutcome;
use tokio::sync::oneshot;

use crate::error::StorageError;
use crate::messages::enqueue::{enqueue_one, insert_outbound};
use crate::pool::Database;

/// Most sends stored by one statement.
const MAX_BATCH: usize = 128;

const QUEUED: u8 = 0;
const TAKEN: u8 = 1;
const ABANDONED: u8 = 2;

type Reply = oneshot::Sender<Result<EnqueueOutcome, StorageError>>;

struct Pending {
    message: Message,
    key: Option<IdempotencyKey>,
    state: Arc<AtomicU8>,
    reply: Reply,
}

/// Most flush jobs scheduled at once. Fewer, larger batches cost
/// PostgreSQL less than many small ones; two let a batch run while the
/// other waits for its WAL flush. One alone gives long latency tails, three
/// or four fewer sends per second (measured: docs/storage-tuning.md).
const MAX_FLUSHERS: usize = 2;

#[derive(Default)]
struct Queue {
    pending: VecDeque<Pending>,
    /// Flush jobs handed to the database threads and not finished: queued
    /// behind other work, or storing batches.
    flushers: usize,
}

/// Sends waiting for a flush.
#[derive(Default)]
pub(crate) struct SendQueue {
    queue: Mutex<Queue>,
}

impl std::fmt::Debug for SendQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SendQueue").finish_non_exhaustive()
    }
}

impl SendQueue {
    /// Stores `message` (with its outbox entry and conversation) in the next
    /// batch and answers as the one-by-one [`enqueue_one`] would.
    pub(crate) async fn enqueue(
        self: &Arc<Self>,
        db: &Database,
        message: Message,
        key: Option<IdempotencyKey>,
    ) -> Result<EnqueueOutcome, StorageError> {
        let state = Arc::new(AtomicU8::new(QUEUED));
        let (reply, mut answer) = oneshot::channel();
        // A send hands the database threads a flush job only when fewer
        // than MAX_FLUSHERS are scheduled; otherwise one of those takes its
        // entry, since a job stops only on finding the queue empty, under
        // this same lock. So a send that finds jobs scheduled costs no
        // thread hand-off or pool checkout of its own.
        let schedule = {
            let mut queue = self.lock();
            queue.pending.push_back(Pending {
                message,
                key,
                state: state.clone(),
                reply,
            });
            let schedule = queue.flushers < MAX_FLUSHERS;
            if schedule {
                queue.flushers += 1;
            }
            schedule
        };
        if schedule {
            let mut job = ScheduledJob {
                queue: self.clone(),
                ran: false,
            };
            // A flush that found its connection dead fails, so the pool
            // retires the connection instead of handing it out again.
            let flush = db.run(move |conn| {
                job.ran = true;
                job.queue.flush(conn)
            });
            // Our answer may come from the first batch while our job goes
            // on storing later ones: answer then, and let the job finish on
            // its own (a job, once handed over, always runs or uncounts).
            tokio::select! {
                biased;
                outcome = &mut answer => return Self::answered(outcome),
                flushed = flush => {
                    if let Err(err) = flushed {
                        // The job did not run (no thread free in time, no
                        // connection). Unless another job took our entry, it
                        // is withdrawn and never stored.
                        if state
                            .compare_exchange(QUEUED, ABANDONED, Ordering::AcqRel, Ordering::Acquire)
                            .is_ok()
                        {
                            return Err(err);
                        }
                    }
                }
            }
        }
        Self::answered(answer.await)
    }

    fn answered(
        outcome: Result<Result<EnqueueOutcome, StorageError>, oneshot::error::RecvError>,
    ) -> Result<EnqueueOutcome, StorageError> {
        outcome.map_err(|_| StorageError::Task("send batch was dropped".into()))?
    }

    /// Uncounts a flush job that never ran (or stopped by panicking). When
    /// no job is left, the sends still queued would wait for nobody: they
    /// fail as their own job's failure would have failed them, and are
    /// never stored.
    fn job_failed(&self) {
        let stranded = {
            let mut queue = self.lock();
            queue.flushers -= 1;
            if queue.flushers > 0 {
                return;
            }
            std::mem::take(&mut queue.pending)
        };
        for p in stranded {
            if p.state
                .compare_exchange(QUEUED, ABANDONED, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
            {
                let _ = p.reply.send(Err(StorageError::Busy));
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Queue> {
        // The queue is consistent between any two statements (pushes, pops
        // and a counter), so a lock poisoned by a panic is still usable.
        self.queue
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Takes up to [`MAX_BATCH`] queued sends, skipping withdrawn ones.
    fn take(queue: &mut Queue) -> Vec<Pending> {
        let mut batch = Vec::new();
        while batch.len() < MAX_BATCH {
            let Some(p) = queue.pending.pop_front() else {
                break;
            };
            if p.state
                .compare_exchange(QUEUED, TAKEN, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
            {
                batch.push(p);
            }
        }
        batch
    }

    /// Stores batches until the queue is empty. Runs as a job counted in
    /// `flushers`, and uncounts itself when it stops (or panics). Stops
    /// early, with an error that retires the connection, when a batch
    /// showed the connection dead (the server restarted): every later
    /// batch would fail on it too.
    fn flush(&self, conn: &mut PgConnection) -> Result<(), StorageError> {
        let mut flushing = Flushing {
            queue: self,
            counted: true,
        };
        loop {
            let batch = {
                let mut queue = self.lock();
                let batch = Self::take(&mut queue);
                if batch.is_empty() {
                    // Under the same lock as a send's check: a send queued
                    // after this finds one job fewer and schedules its own.
                    queue.flushers -= 1;
                    flushing.counted = false;
                    return Ok(());
                }
                batch
            };
            if Self::store(conn, batch) {
                // `flushing` uncounts this job; sends still queued go to
                // another job, or fail if none is left.
                return Err(StorageError::Query(diesel::result::Error::DatabaseError(
                    diesel::result::DatabaseErrorKind::ClosedConnection,
                    Box::new("the connection was lost while storing sends".to_owned()),
                )));
            }
        }
    }

    /// Stores `batch` and answers each of its sends; whether an answer
    /// showed the connection dead.
    fn store(conn: &mut PgConnection, batch: Vec<Pending>) -> bool {
        let mut gone = false;
        // A lone send goes straight to the one-by-one path: the same
        // statement, and it already deals with a held key.
        let stored = (batch.len() > 1).then(|| {
            let items: Vec<_> = batch.iter().map(|p| (&p.message, p.key.as_ref())).collect();
            insert_outbound(conn, &items)
        });
        for p in batch {
            let result = match &stored {
                Some(Ok(ids)) if ids.contains(&p.message.id.as_uuid()) => {
                    Ok(EnqueueOutcome::Created)
                }
                // Alone, not stored by the batch (its key is held), or the
                // batch failed: this send by itself, with its own answer.
                _ => enqueue_one(conn, &p.message, p.key.as_ref()),
            };
            gone |= result.as_ref().is_err_and(StorageError::connection_is_gone);
            let _ = p.reply.send(result);
        }
        gone
    }
}

/// A flush job handed to the database threads. Dropped without having run
/// (abandoned after the acquire timeout, no connection, threads stopped),
/// whether or not its sender still waits, it uncounts itself, so the count
/// of scheduled jobs never stays high with nobody flushing.
struct ScheduledJob {
    queue: Arc<SendQueue>,
    ran: bool,
}

impl Drop for ScheduledJob {
    fn drop(&mut self) {
        if !self.ran {
            self.queue.job_failed();
        }
    }
}

/// Uncounts a flusher if storing panics, as a job that never ran: if it
/// was the last, the sends still queued fail rather than wait for nobody.
struct Flushing<'a> {
    queue: &'a SendQueue,
    counted: bool,
}

impl Drop for Flushing<'_> {
    fn drop(&mut self) {
        if self.counted {
            self.queue.job_failed();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;
    use std::sync::Arc;

    use chrono::TimeDelta;
    use diesel::prelude::*;
    use diesel::sql_types::Text;
    use maveraa_domain::SessionId;
    use maveraa_domain::messaging::Session;

    use super::*;
    use crate::messages::enqueue::insert_outbound;
    use crate::testing::{fixture, now, outbound_at, session, workspace};

    /// An outbound text stamped `ms` from now.
    fn message(session: &Session, to: &str, text: &str, ms: i64) -> Message {
        outbound_at(session, to, text, now() + TimeDelta::milliseconds(ms))
    }

    fn pending(
        message: Message,
        key: Option<&str>,
    ) -> (
        Pending,
        oneshot::Receiver<Result<EnqueueOutcome, StorageError>>,
    ) {
        let (reply, answer) = oneshot::channel();
        let pending = Pending {
            message,
            key: key.map(|k| IdempotencyKey {
                key: k.into(),
                fingerprint: "fp".into(),
            }),
            state: Arc::new(AtomicU8::new(TAKEN)),
            reply,
        };
        (pending, answer)
    }

    /// One batch holding new sends, two to one recipient, a key used twice
    /// and a send to a session that no longer exists: each gets the answer
    /// it would get alone.
    #[tokio::test]
    async fn a_mixed_batch_answers_each_send_as_if_alone() {
        let f = fixture();
        let db = f.store.database();
        let ws = workspace(&f, "Acme").await;
        let session = session(&f, ws, "s1").await;
        let mut gone = session.clone();
        gone.id = SessionId::new();

        // The batch statement alone: new sends, two to one recipient, and
        // a key used twice (the second is left for the one-by-one path).
        let sends = vec![
            pending(message(&session, "6281111111111", "first", 0), None),
            pending(message(&session, "6281111111111", "newest", 5), None),
            pending(message(&session, "6282222222222", "keyed", 1), Some("k1")),
            pending(
                message(&session, "6282222222222", "keyed again", 2),
                Some("k1"),
            ),
        ];
        let ids: Vec<_> = sends.iter().map(|(p, _)| p.message.id.as_uuid()).collect();
        let (batch, _answers): (Vec<_>, Vec<_>) = sends.into_iter().unzip();
        let items: Vec<_> = batch.iter().map(|p| (&p.message, p.key.as_ref())).collect();
        let stored = db
            .run_blocking(|conn| insert_outbound(conn, &items))
            .expect("batch");
        assert_eq!(stored, HashSet::from([ids[0], ids[1], ids[2]]));

        // Through `store`: a send that fails the batch statement (its
        // session is gone) does not fail its neighbours.
        let sends = vec![
            pending(message(&session, "6284444444444", "ok", 3), None),
            pending(
                message(&session, "6282222222222", "keyed later", 4),
                Some("k1"),
            ),
            pending(message(&gone, "6283333333333", "lost", 3), None),
        ];
        let (batch, answers): (Vec<_>, Vec<_>) = sends.into_iter().unzip();
        db.run_blocking(|conn| {
            SendQueue::store(conn, batch);
            Ok(())
        })
        .expect("store");
        let answers: Vec<_> = answers
            .into_iter()
            .map(|mut a| a.try_recv().expect("answered").expect("no error"))
            .collect();
        assert_eq!(answers[0], EnqueueOutcome::Created);
        assert!(
            matches!(&answers[1], EnqueueOutcome::Existing { message, .. } if message.id.as_uuid() == ids[2]),
            "a used key answers its first message: {:?}",
            answers[1]
        );
        assert_eq!(answers[2], EnqueueOutcome::SessionGone);

        #[derive(QueryableByName, Debug, PartialEq)]
        struct Row {
            #[diesel(sql_type = Text)]
            remote: String,
            #[diesel(sql_type = Text)]
            last_message: String,
        }
        let conversations: Vec<Row> = db
            .run_blocking(|conn| {
                Ok(diesel::sql_query(
                    "SELECT remote, last_message FROM conversations ORDER BY remote",
                )
                .load(conn)?)
            })
            .expect("read back");
        assert_eq!(
            (
                f.count("SELECT count(*) AS n FROM messages"),
                f.count("SELECT count(*) AS n FROM outbox")
            ),
            (4, 4)
        );
        assert_eq!(
            conversations,
            vec![
                Row {
                    remote: "6281111111111".into(),
                    last_message: "newest".into()
                },
                Row {
                    remote: "6282222222222".into(),
                    last_message: "keyed".into()
                },
                Row {
                    remote: "6284444444444".into(),
                    last_message: "ok".into()
                },
            ]
        );
    }
}
