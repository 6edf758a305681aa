use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::clock::Clock;
use crate::error::RepositoryError;
use crate::messaging::SessionStatus;
use crate::messaging::{
    Caption, DeliveryError, FileName, MediaUrl, Message, MessageText, OutboundMedia, strip_nul,
};
use crate::ports::{
    Claim, DispatchOutcome, Outbox, OutboxJob, SessionPace, SessionRepository, TransportFactory,
};
use crate::transport::{OutboundContent, OutboundMessage, TransportError};
use crate::values::{PhoneNumber, ValidationError};

/// How failed attempts are retried: exponential backoff with jitter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in all, the first included; then the message is `failed`.
    pub max_attempts: u32,
    /// The wait after the first failure.
    pub base_delay: Duration,
    /// The longest wait.
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 8,
            base_delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(300),
        }
    }
}

impl RetryPolicy {
    /// The wait after failed attempt number `attempt` (1-based):
    /// `base * 2^(attempt-1)`, capped, then scaled by `jitter` in [0.5, 1]
    /// so that messages failed together do not retry together.
    pub fn delay(&self, attempt: u32, jitter: f64) -> Duration {
        let exp = self
            .base_delay
            .saturating_mul(1u32 << attempt.saturating_sub(1).min(20))
            .min(self.max_delay);
        exp.mul_f64(0.5 + 0.5 * jitter.clamp(0.0, 1.0))
    }

    /// The wait before the attempt after failed attempt number `attempt`:
    /// the backoff's [`RetryPolicy::delay`], or the provider's
    /// `Retry-After` when that is longer, which is honoured up to
    /// `max_delay` (a misbehaving provider's wait of a year would hold the
    /// message queued for a year).
    pub fn wait(&self, attempt: u32, jitter: f64, retry_after: Option<Duration>) -> Duration {
        self.delay(attempt, jitter)
            .max(retry_after.unwrap_or_default().min(self.max_delay))
    }
}

/// Settings of a dispatcher.
#[derive(Debug, Clone)]
pub struct DispatcherSettings {
    /// Names this dispatcher in leases (host and process, say).
    pub worker: String,
    /// Entries claimed at once.
    pub batch_size: u32,
    /// How long a claim holds before another dispatcher may take the entry.
    /// Far longer than a send may take: a shorter lease would let two
    /// dispatchers send the same message.
    pub lease: Duration,
    /// Retries.
    pub retry: RetryPolicy,
    /// How fast one session may send, across all dispatchers of the
    /// database.
    pub pace: SessionPace,
    /// How long an attempt whose outcome is unknown waits for a status
    /// report that names the message before it is tried again.
    pub unknown_outcome_grace: Duration,
}

/// Sends what the outbox holds. Several dispatchers, in one process or
/// many, may run on one database: each entry is claimed by one of them
/// (`FOR UPDATE SKIP LOCKED`), and claimed again only when its lease runs
/// out.
///
/// Duplicates: an attempt whose outcome is unknown (the request was
/// written, no answer said whether the provider took it) is not sent again
/// at once: it waits [`DispatcherSettings::unknown_outcome_grace`] for a
/// status report carrying our message id, which records it `sent`. Two
/// windows remain: no such report came within the grace (a provider that
/// does not echo our id, or one that reports late), and the provider
/// accepted a message and the process died before recording it (after the
/// lease the entry is claimed again and sent a second time, unless a
/// status report naming it came first). The second is kept small by
/// recording each outcome in its own short transaction as soon as the
/// provider answers, rather than once per batch. An outcome storage could not take
/// (unless it refused it for good) is kept and recorded before this dispatcher
/// (or a clone of it) claims anything again.
#[derive(Clone)]
pub struct Dispatcher {
    outbox: Arc<dyn Outbox>,
    transports: Arc<dyn TransportFactory>,
    clock: Arc<dyn Clock>,
    settings: DispatcherSettings,
    sessions: Option<Arc<dyn SessionRepository>>,
    unrecorded: Arc<Mutex<Vec<Unrecorded>>>,
    counts: Arc<Counters>,
}

/// Send attempts so far, by outcome (shared by a dispatcher's clones).
#[derive(Debug, Default)]
struct Counters {
    sent: AtomicU64,
    retried: AtomicU64,
    failed: AtomicU64,
    unknown: AtomicU64,
}

/// How this process's send attempts have ended since it started, by
/// outcome (for metrics).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DispatchCounts {
    /// The provider took the message.
    pub sent: u64,
    /// Failed in a way that may pass: to be tried again.
    pub retried: u64,
    /// Failed for good.
    pub failed: u64,
    /// No answer told whether the provider took it.
    pub unknown: u64,
}

/// Whether storage refused an outcome for good: it breaks a rule it can
/// never meet (a provider id another message has), unlike a failure that
/// may pass, which keeps the outcome for recording later.
fn refused_for_good(e: &RepositoryError) -> bool {
    matches!(e, RepositoryError::Duplicate { .. })
}

/// What an attempt showed of its session, beyond the message.
enum SessionProblem {
    /// The provider could not be reached: why.
    Unreachable(String),
    /// The provider refused the session's credentials: what it said.
    CredentialsRefused(String),
}

/// An outcome storage could not take when it came, with its time.
type Unrecorded = (Claim, DispatchOutcome, DateTime<Utc>);

impl std::fmt::Debug for Dispatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dispatcher")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

/// A number in [0, 1) that differs from message to message and attempt to
/// attempt, without a random number generator.
fn jitter(job: &OutboxJob) -> f64 {
    let mut x = job.message.id.as_uuid().as_u128() as u64
        ^ u64::from(job.attempt).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    x ^= x >> 33;
    x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
    x ^= x >> 33;
    (x >> 11) as f64 / (1u64 << 53) as f64
}

/// Rebuilds what to send from a stored message. Its parts are parsed as a
/// send's are (the value types have no other way in), so a stored message
/// that breaks the rules fails for good instead of reaching the provider.
fn outbound(message: &Message) -> Result<OutboundMessage, DeliveryError> {
    use crate::messaging::MessageContent;
    let unsendable = |e: ValidationError| DeliveryError {
        code: None,
        message: format!("the stored message cannot be sent: {e}"),
    };
    let content = match &message.content {
        MessageContent::Text { body } => OutboundContent::Text {
            body: MessageText::parse("message", body).map_err(unsendable)?,
        },
        MessageContent::Media(m) => {
            let url = m.url.as_deref().ok_or_else(|| DeliveryError {
                code: None,
                message: "stored media has no URL".into(),
            })?;
            let caption = m.caption.as_deref().unwrap_or_default();
            let file_name = m.file_name.as_deref().unwrap_or_default();
            OutboundContent::Media(OutboundMedia::new(
                m.kind,
                MediaUrl::parse("media.url", url).map_err(unsendable)?,
                Caption::parse("message", m.kind, caption).map_err(unsendable)?,
                FileName::parse("media.fileName", m.kind, file_name).map_err(unsendable)?,
            ))
        }
        MessageContent::Other { kind, .. } => {
            return Err(DeliveryError {
                code: None,
                message: format!("cannot send a message of type {kind}"),
            });
        }
    };
    Ok(OutboundMessage {
        to: PhoneNumber::from_trusted(message.remote.as_str().to_owned()),
        content,
        message_id: Some(message.id),
    })
}

impl Dispatcher {
    /// A dispatcher over the given ports.
    pub fn new(
        outbox: Arc<dyn Outbox>,
        transports: Arc<dyn TransportFactory>,
        clock: Arc<dyn Clock>,
        settings: DispatcherSettings,
    ) -> Self {
        Self {
            outbox,
            transports,
            clock,
            settings,
            sessions: None,
            unrecorded: Arc::default(),
            counts: Arc::default(),
        }
    }

    /// How the send attempts of this dispatcher and its clones have ended
    /// so far.
    pub fn counts(&self) -> DispatchCounts {
        DispatchCounts {
            sent: self.counts.sent.load(Ordering::Relaxed),
            retried: self.counts.retried.load(Ordering::Relaxed),
            failed: self.counts.failed.load(Ordering::Relaxed),
            unknown: self.counts.unknown.load(Ordering::Relaxed),
        }
    }

    /// Keeps sessions' status up to date from what sends reveal: `failed`
    /// with the provider's message when it refuses the credentials,
    /// `disconnected` (from `connected`) with the reason when it cannot be
    /// reached, `connected` again after a successful send.
    pub fn with_session_status(mut self, sessions: Arc<dyn SessionRepository>) -> Self {
        self.sessions = Some(sessions);
        self
    }

    /// Claims one batch of due entries, sends them concurrently and records
    /// each outcome. Returns how many entries it claimed (0: nothing due).
    /// First records the outcomes an earlier run could not (see
    /// [`Dispatcher::record_unrecorded`]).
    ///
    /// # Errors
    /// When the outbox cannot be read or an outcome cannot be recorded; the
    /// outcome is kept for the next run.
    pub async fn run_once(&self) -> Result<usize, RepositoryError> {
        self.record_unrecorded().await?;
        let jobs = self
            .outbox
            .claim(
                &self.settings.worker,
                self.settings.batch_size,
                self.settings.lease,
                &self.settings.pace,
            )
            .await?;
        let count = jobs.len();
        let results =
            futures_util::future::join_all(jobs.into_iter().map(|job| self.dispatch(job))).await;
        if let Some(err) = results.into_iter().find_map(Result::err) {
            return Err(err);
        }
        Ok(count)
    }

    async fn dispatch(&self, job: OutboxJob) -> Result<(), RepositoryError> {
        let (outcome, problem) = self.attempt_noting_reach(&job).await;
        let counter = match &outcome {
            DispatchOutcome::Sent { .. } => &self.counts.sent,
            DispatchOutcome::Retry { .. } => &self.counts.retried,
            DispatchOutcome::Failed(_) => &self.counts.failed,
            DispatchOutcome::Unknown { .. } => &self.counts.unknown,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        let now = self.clock.now();
        let session_change = match problem {
            Some(SessionProblem::CredentialsRefused(message)) => {
                Some((SessionStatus::Failed, Some(message)))
            }
            // Only a connected session turns disconnected: a failed one
            // keeps the credential error, which tells more.
            Some(SessionProblem::Unreachable(reason)) => (job.session.status
                == SessionStatus::Connected)
                .then_some((SessionStatus::Disconnected, Some(reason))),
            None if matches!(outcome, DispatchOutcome::Sent { .. })
                && job.session.status != SessionStatus::Connected =>
            {
                Some((SessionStatus::Connected, None))
            }
            None => None,
        };
        let results = [(job.claim(), outcome)];
        if let Err(e) = self.outbox.record(&results, now).await {
            // Kept unless storage refused it for good: a `Sent` left
            // unrecorded until the lease ends would be claimed and sent
            // again, so any failure that might pass (unavailable, or one
            // storage cannot name) keeps it; an outcome refused for good is
            // not retried, or it would hold up every other message.
            if !refused_for_good(&e) {
                let [(claim, outcome)] = results;
                self.lock_unrecorded().push((claim, outcome, now));
            }
            return Err(e);
        }
        if let (Some(sessions), Some((status, error))) = (&self.sessions, session_change) {
            sessions.set_status(job.session.id, status, error).await?;
        }
        Ok(())
    }

    /// Records the outcomes storage could not take when they came,
    /// oldest first. [`Dispatcher::run_once`] does this before it claims;
    /// call it once more before stopping, so a graceful stop loses none.
    ///
    /// # Errors
    /// When storage still fails (those left are kept), or refused one for
    /// good (that one is dropped, the others recorded).
    pub async fn record_unrecorded(&self) -> Result<(), RepositoryError> {
        let mut left = std::mem::take(&mut *self.lock_unrecorded()).into_iter();
        let mut refused = None;
        while let Some((claim, outcome, at)) = left.next() {
            let results = [(claim, outcome)];
            match self.outbox.record(&results, at).await {
                Ok(()) => {}
                Err(e) if !refused_for_good(&e) => {
                    let [(claim, outcome)] = results;
                    let mut unrecorded = self.lock_unrecorded();
                    unrecorded.push((claim, outcome, at));
                    unrecorded.extend(left);
                    return Err(e);
                }
                Err(e) => refused = Some(e),
            }
        }
        refused.map_or(Ok(()), Err)
    }

    fn lock_unrecorded(&self) -> std::sync::MutexGuard<'_, Vec<Unrecorded>> {
        // The list is valid whatever panicked while holding it.
        self.unrecorded
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// What becomes of one attempt.
    pub async fn attempt(&self, job: &OutboxJob) -> DispatchOutcome {
        self.attempt_noting_reach(job).await.0
    }

    /// An attempt's outcome, and what it showed of the session's state
    /// when the session, not the message, was the problem.
    async fn attempt_noting_reach(
        &self,
        job: &OutboxJob,
    ) -> (DispatchOutcome, Option<SessionProblem>) {
        let message = match outbound(&job.message) {
            Ok(m) => m,
            Err(e) => return (DispatchOutcome::Failed(e), None),
        };
        let mut result = match self.transports.transport_for(&job.session) {
            Ok(transport) => transport.send(&message).await,
            Err(e) => Err(e),
        };
        // The provider's words are stored: none may hold a NUL.
        match &mut result {
            Ok(id) => strip_nul(id),
            Err(
                TransportError::Retryable { reason, .. }
                | TransportError::Unreachable { reason }
                | TransportError::OutcomeUnknown { reason },
            ) => strip_nul(reason),
            Err(
                TransportError::Permanent { code, message }
                | TransportError::CredentialsRefused { code, message },
            ) => {
                strip_nul(message);
                if let Some(code) = code {
                    strip_nul(code);
                }
            }
        }
        let problem = match &result {
            // No usable answer: as far as the session's status goes, the
            // provider is not answering, whether or not it took this one.
            Err(
                TransportError::Unreachable { reason } | TransportError::OutcomeUnknown { reason },
            ) => Some(SessionProblem::Unreachable(reason.clone())),
            Err(TransportError::CredentialsRefused { message, .. }) => {
                Some(SessionProblem::CredentialsRefused(message.clone()))
            }
            _ => None,
        };
        (self.outcome(job, result, self.clock.now()), problem)
    }

    fn outcome(
        &self,
        job: &OutboxJob,
        result: Result<String, TransportError>,
        now: DateTime<Utc>,
    ) -> DispatchOutcome {
        match result {
            Ok(provider_message_id) => DispatchOutcome::Sent {
                provider_message_id,
            },
            Err(
                TransportError::Permanent { code, message }
                | TransportError::CredentialsRefused { code, message },
            ) => DispatchOutcome::Failed(DeliveryError { code, message }),
            Err(TransportError::Unreachable { reason }) => self.retry(job, reason, None, now),
            Err(TransportError::Retryable {
                reason,
                retry_after,
            }) => self.retry(job, reason, retry_after, now),
            Err(TransportError::OutcomeUnknown { reason }) => self.unknown(job, reason, now),
        }
    }

    /// Waits for the provider's word on an attempt that may have reached
    /// it; on the last attempt, `failed` (a status report naming the
    /// message still turns it `sent`).
    fn unknown(&self, job: &OutboxJob, reason: String, now: DateTime<Utc>) -> DispatchOutcome {
        if job.attempt >= self.settings.retry.max_attempts {
            return DispatchOutcome::Failed(DeliveryError {
                code: None,
                message: format!(
                    "gave up after {} attempts, the last one's outcome unknown: {reason}",
                    job.attempt
                ),
            });
        }
        let grace = chrono::Duration::from_std(self.settings.unknown_outcome_grace)
            .unwrap_or(chrono::Duration::MAX);
        DispatchOutcome::Unknown {
            retry_at: now
                .checked_add_signed(grace)
                .unwrap_or(DateTime::<Utc>::MAX_UTC),
            error: reason,
        }
    }

    /// A retry at the backoff's time (or the provider's, when later), or
    /// `failed` once the attempts are used up.
    fn retry(
        &self,
        job: &OutboxJob,
        reason: String,
        retry_after: Option<Duration>,
        now: DateTime<Utc>,
    ) -> DispatchOutcome {
        if job.attempt >= self.settings.retry.max_attempts {
            return DispatchOutcome::Failed(DeliveryError {
                code: None,
                message: format!("gave up after {} attempts: {reason}", job.attempt),
            });
        }
        let wait = self
            .settings
            .retry
            .wait(job.attempt, jitter(job), retry_after);
        let wait = chrono::Duration::from_std(wait).unwrap_or(chrono::Duration::MAX);
        DispatchOutcome::Retry {
            at: now
                .checked_add_signed(wait)
                .unwrap_or(DateTime::<Utc>::MAX_UTC),
            error: reason,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_is_capped_and_jittered() {
        let p = RetryPolicy {
            max_attempts: 10,
            base_delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(60),
        };
        assert_eq!(p.delay(1, 1.0), Duration::from_secs(1));
        assert_eq!(p.delay(2, 1.0), Duration::from_secs(2));
        assert_eq!(p.delay(4, 1.0), Duration::from_secs(8));
        assert_eq!(p.delay(30, 1.0), Duration::from_secs(60));
        assert_eq!(p.delay(3, 0.0), Duration::from_secs(2));
        let d = p.delay(3, 0.5);
        assert!(d > Duration::from_secs(2) && d < Duration::from_secs(4));
    }

    #[test]
    fn retry_after_is_honoured_up_to_the_longest_wait() {
        let p = RetryPolicy {
            max_attempts: 10,
            base_delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(300),
        };
        assert_eq!(p.wait(1, 1.0, None), Duration::from_secs(1));
        assert_eq!(
            p.wait(1, 1.0, Some(Duration::from_secs(30))),
            Duration::from_secs(30),
            "the provider's longer wait"
        );
        assert_eq!(
            p.wait(4, 1.0, Some(Duration::from_secs(2))),
            Duration::from_secs(8),
            "the backoff when longer"
        );
        assert_eq!(
            p.wait(1, 1.0, Some(Duration::from_secs(365 * 24 * 3600))),
            Duration::from_secs(300),
            "a year is cut to the longest wait"
        );
    }
}
