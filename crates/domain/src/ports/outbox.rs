//! The outbox: the durable queue the dispatcher claims sends from.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::error::RepositoryError;
use crate::ids::MessageId;
use crate::messaging::{DeliveryError, Message, Session};

/// An outbox entry claimed by a dispatcher, with what it needs to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxJob {
    /// The message.
    pub message: Message,
    /// Its session.
    pub session: Session,
    /// Attempts so far, this one included.
    pub attempt: u32,
}

impl OutboxJob {
    /// The claim this job was handed under, to record its outcome with.
    pub fn claim(&self) -> Claim {
        Claim {
            message: self.message.id,
            attempt: self.attempt,
        }
    }
}

/// One claim of an outbox entry: the entry and the attempt it was claimed
/// for. Each claim of an entry counts one attempt more, so the number tells
/// a claim from a later one (made once the earlier lease ran out).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Claim {
    /// The message.
    pub message: MessageId,
    /// The attempt's number, as in [`OutboxJob::attempt`].
    pub attempt: u32,
}

/// What became of one attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DispatchOutcome {
    /// The provider took it: `sent`, entry removed.
    Sent {
        /// The provider's id.
        provider_message_id: String,
    },
    /// Try again at `at`; the entry's lease is released.
    Retry {
        /// When.
        at: DateTime<Utc>,
        /// Why the attempt failed.
        error: String,
    },
    /// Give up: `failed`, entry removed.
    Failed(DeliveryError),
    /// The request may have reached the provider, but no answer told
    /// whether it took the message (the answer timed out, the connection
    /// broke after the request was written, the answer could not be read).
    /// The entry waits until `retry_at` (a grace period) for a status
    /// report that carries our message id as the provider echoed it
    /// (see [`StatusUpdate::echoed_message_id`](crate::messaging::StatusUpdate::echoed_message_id)),
    /// which records it `sent`; only if none came is it tried again then.
    Unknown {
        /// When to try again if no status report settled it.
        retry_at: DateTime<Utc>,
        /// What happened.
        error: String,
    },
}

/// How fast one session may send, across every dispatcher of a database.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SessionPace {
    /// At most this many entries of one session are held under a live
    /// lease (are being sent) at once.
    pub concurrency: u32,
    /// At most this many claims per second for one session (with a burst
    /// of one second's worth); `None`: no rate.
    pub rate_per_sec: Option<f64>,
}

impl Default for SessionPace {
    fn default() -> Self {
        Self {
            concurrency: 8,
            rate_per_sec: None,
        }
    }
}

/// The outbox: durable queue of messages to send.
#[async_trait]
pub trait Outbox: Send + Sync + 'static {
    /// Claims up to `limit` due entries for `lease` (skipping entries other
    /// dispatchers hold), counting an attempt on each. An entry whose lease
    /// expired (its dispatcher died) is due again.
    ///
    /// `pace` holds across every dispatcher of the storage: a session never
    /// has more than `pace.concurrency` entries under a live lease, nor
    /// more claims than its rate allows. An entry is not claimed while an
    /// earlier queued entry to the same recipient of the same session is
    /// still in the outbox (claimed, waiting for a retry or for an unknown
    /// outcome to settle): messages to one recipient leave in the order
    /// they were queued.
    ///
    /// # Errors
    /// `Unavailable` or `Internal` when storage fails.
    async fn claim(
        &self,
        worker: &str,
        limit: u32,
        lease: std::time::Duration,
        pace: &SessionPace,
    ) -> Result<Vec<OutboxJob>, RepositoryError>;

    /// Records the outcomes of claimed entries, in one transaction.
    ///
    /// A `Retry`, `Unknown` or `Failed` counts only while its claim is the entry's
    /// latest: once its lease ran out and another dispatcher claimed the
    /// entry, that dispatcher's outcome decides (a late retry must not
    /// release the other's claim and let a third send it). A `Sent` always
    /// counts: the provider has the message, whoever else is sending it,
    /// and a message another claim failed before it reached the provider
    /// is `sent` after all.
    ///
    /// `at` is when the outcomes came, and a `Retry`'s time is read against
    /// it: storage with a clock of its own (a database server's) keeps the
    /// wait, `Retry::at - at` (and `Unknown::retry_at - at`), and not the instant, so that claims, which
    /// go by storage's clock, come neither early nor late when the clocks
    /// disagree.
    ///
    /// # Errors
    /// `Unavailable` or `Internal` when storage fails.
    async fn record(
        &self,
        results: &[(Claim, DispatchOutcome)],
        at: DateTime<Utc>,
    ) -> Result<(), RepositoryError>;
}
