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
}

/// The outbox: durable queue of messages to send.
#[async_trait]
pub trait Outbox: Send + Sync + 'static {
    /// Claims up to `limit` due entries for `lease` (skipping entries other
    /// dispatchers hold), counting an attempt on each. An entry whose lease
    /// expired (its dispatcher died) is due again.
    ///
    /// # Errors
    /// `Unavailable` or `Internal` when storage fails.
    async fn claim(
        &self,
        worker: &str,
        limit: u32,
        lease: std::time::Duration,
    ) -> Result<Vec<OutboxJob>, RepositoryError>;

    /// Records the outcomes of claimed entries, in one transaction.
    ///
    /// A `Retry` or `Failed` counts only while its claim is the entry's
    /// latest: once its lease ran out and another dispatcher claimed the
    /// entry, that dispatcher's outcome decides (a late retry must not
    /// release the other's claim and let a third send it). A `Sent` always
    /// counts: the provider has the message, whoever else is sending it,
    /// and a message another claim failed before it reached the provider
    /// is `sent` after all.
    ///
    /// `at` is when the outcomes came, and a `Retry`'s time is read against
    /// it: storage with a clock of its own (a database server's) keeps the
    /// wait, `Retry::at - at`, and not the instant, so that claims, which
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
