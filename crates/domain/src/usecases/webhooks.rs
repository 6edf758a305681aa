//! Webhook endpoints: managing them, and delivering the event log to them.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};

use crate::clock::Clock;
use crate::error::{RepositoryError, WebhookError};
use crate::ids::{DeliveryId, WebhookId, WorkspaceId};
use crate::ports::{WebhookPoster, WebhookQueue, WebhookRepository};
use crate::values::ValidationError;
use crate::webhook::{
    AttemptRecord, DeliveryPolicy, DeliveryQuery, DeliveryStatus, EventSelection, MAX_ENDPOINTS,
    NewWebhook, PostOutcome, Redelivery, ValidWebhookPatch, WebhookDelivery, WebhookEndpoint,
    WebhookPatch, WebhookPost, WebhookSecret, WebhookUrl, description,
};

/// Longest overlap of two secrets after a roll.
const MAX_ROLL_OVERLAP: Duration = Duration::from_secs(7 * 24 * 3600);
/// The overlap when none is asked for.
pub const DEFAULT_ROLL_OVERLAP: Duration = Duration::from_secs(24 * 3600);

/// Creates, lists, changes and deletes a workspace's webhook endpoints, and
/// reads their deliveries.
#[derive(Clone)]
pub struct WebhookService {
    endpoints: Arc<dyn WebhookRepository>,
    clock: Arc<dyn Clock>,
    allow_private_targets: bool,
}

impl std::fmt::Debug for WebhookService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookService").finish_non_exhaustive()
    }
}

impl WebhookService {
    /// A service over `endpoints`; `allow_private_targets` lets URLs name
    /// loopback, private and link-local addresses.
    pub fn new(
        endpoints: Arc<dyn WebhookRepository>,
        clock: Arc<dyn Clock>,
        allow_private_targets: bool,
    ) -> Self {
        Self {
            endpoints,
            clock,
            allow_private_targets,
        }
    }

    /// Creates an endpoint; its signing secret is returned this once.
    ///
    /// # Errors
    /// [`WebhookError::Validation`] on `url`, `events` or `description`;
    /// [`WebhookError::TooMany`]; [`WebhookError::Repository`].
    pub async fn create(
        &self,
        workspace: WorkspaceId,
        new: NewWebhook,
    ) -> Result<(WebhookEndpoint, WebhookSecret), WebhookError> {
        let url = WebhookUrl::parse(&new.url, self.allow_private_targets)?;
        let events = EventSelection::new(new.events)?;
        let description = description(new.description)?;
        if self.endpoints.count(workspace).await? >= MAX_ENDPOINTS {
            return Err(WebhookError::TooMany(MAX_ENDPOINTS));
        }
        let now = self.clock.now();
        let endpoint = WebhookEndpoint {
            id: WebhookId::new(),
            workspace_id: workspace,
            url: url.to_string(),
            events,
            description,
            enabled: new.enabled.unwrap_or(true),
            disabled_reason: None,
            failing_since: None,
            previous_secret_expires_at: None,
            created_at: now,
            updated_at: now,
        };
        let secret = WebhookSecret::generate();
        self.endpoints.insert(&endpoint, &secret).await?;
        Ok((endpoint, secret))
    }

    /// The endpoints of `workspace`, oldest first.
    ///
    /// # Errors
    /// [`WebhookError::Repository`].
    pub async fn list(&self, workspace: WorkspaceId) -> Result<Vec<WebhookEndpoint>, WebhookError> {
        Ok(self.endpoints.list(workspace).await?)
    }

    /// One endpoint.
    ///
    /// # Errors
    /// [`WebhookError::NotFound`], [`WebhookError::Repository`].
    pub async fn get(
        &self,
        workspace: WorkspaceId,
        id: WebhookId,
    ) -> Result<WebhookEndpoint, WebhookError> {
        self.endpoints
            .get(workspace, id)
            .await?
            .ok_or(WebhookError::NotFound)
    }

    /// Changes an endpoint.
    ///
    /// # Errors
    /// [`WebhookError::Validation`] on a field; [`WebhookError::NotFound`];
    /// [`WebhookError::Repository`].
    pub async fn update(
        &self,
        workspace: WorkspaceId,
        id: WebhookId,
        patch: WebhookPatch,
    ) -> Result<WebhookEndpoint, WebhookError> {
        let valid = ValidWebhookPatch {
            url: patch
                .url
                .map(|u| WebhookUrl::parse(&u, self.allow_private_targets))
                .transpose()?,
            events: patch.events.map(EventSelection::new).transpose()?,
            description: patch.description.map(description).transpose()?,
            enabled: patch.enabled,
        };
        self.endpoints
            .update(workspace, id, &valid)
            .await?
            .ok_or(WebhookError::NotFound)
    }

    /// Deletes an endpoint and its deliveries.
    ///
    /// # Errors
    /// [`WebhookError::NotFound`], [`WebhookError::Repository`].
    pub async fn delete(&self, workspace: WorkspaceId, id: WebhookId) -> Result<(), WebhookError> {
        if self.endpoints.delete(workspace, id).await? {
            Ok(())
        } else {
            Err(WebhookError::NotFound)
        }
    }

    /// Gives an endpoint a new signing secret, returned this once; the one
    /// before keeps signing deliveries beside it for `overlap` (at most 7
    /// days; 0 ends it now), so the receiver can change over without
    /// refusing a delivery.
    ///
    /// # Errors
    /// [`WebhookError::Validation`] on `expiresInSeconds`;
    /// [`WebhookError::NotFound`]; [`WebhookError::Repository`].
    pub async fn roll_secret(
        &self,
        workspace: WorkspaceId,
        id: WebhookId,
        overlap: Duration,
    ) -> Result<(WebhookEndpoint, WebhookSecret), WebhookError> {
        if overlap > MAX_ROLL_OVERLAP {
            return Err(ValidationError::new(
                "expiresInSeconds",
                "must be at most 604800 (7 days)",
            )
            .into());
        }
        let until = self.clock.now() + TimeDelta::from_std(overlap).unwrap_or(TimeDelta::zero());
        let secret = WebhookSecret::generate();
        let endpoint = self
            .endpoints
            .roll_secret(workspace, id, &secret, until)
            .await?
            .ok_or(WebhookError::NotFound)?;
        Ok((endpoint, secret))
    }

    /// An endpoint's deliveries, newest event first.
    ///
    /// # Errors
    /// [`WebhookError::Validation`] on `limit`; [`WebhookError::NotFound`];
    /// [`WebhookError::Repository`].
    pub async fn deliveries(
        &self,
        workspace: WorkspaceId,
        id: WebhookId,
        query: &DeliveryQuery,
    ) -> Result<Vec<WebhookDelivery>, WebhookError> {
        if query.limit == 0 || query.limit > DeliveryQuery::MAX_LIMIT {
            return Err(ValidationError::new("limit", "must be between 1 and 100").into());
        }
        self.endpoints
            .deliveries(workspace, id, query)
            .await?
            .ok_or(WebhookError::NotFound)
    }

    /// Delivers an event again: the delivery is pending and due now.
    ///
    /// # Errors
    /// [`WebhookError::NotFound`], [`WebhookError::EventExpired`],
    /// [`WebhookError::Repository`].
    pub async fn redeliver(
        &self,
        workspace: WorkspaceId,
        id: WebhookId,
        delivery: DeliveryId,
    ) -> Result<WebhookDelivery, WebhookError> {
        match self.endpoints.redeliver(workspace, id, delivery).await? {
            Redelivery::Scheduled(d) => Ok(d),
            Redelivery::NotFound => Err(WebhookError::NotFound),
            Redelivery::EventExpired => Err(WebhookError::EventExpired),
        }
    }
}

/// What one round of a [`WebhookDispatcher`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DeliveryCounts {
    /// Attempts that got a 2xx.
    pub succeeded: usize,
    /// Attempts that failed (to be retried, or given up).
    pub failed: usize,
    /// Deliveries given up (retry period over, or their event expired).
    pub given_up: usize,
}

impl DeliveryCounts {
    /// Attempts made, successful or not.
    pub fn attempts(&self) -> usize {
        self.succeeded + self.failed
    }
}

/// Failed attempts in one round after which the endpoint rests: it is down
/// (or refusing everything), and trying every due event would hammer it.
const FAILURES_PER_ROUND: usize = 2;

/// Delivers the event log to the endpoints: one endpoint at a time per
/// dispatcher, its deliveries in event order, never two workers on one
/// endpoint. Run several (each a loop over [`WebhookDispatcher::run_once`])
/// for several endpoints at once: a slow endpoint holds only its own.
#[derive(Clone)]
pub struct WebhookDispatcher {
    queue: Arc<dyn WebhookQueue>,
    poster: Arc<dyn WebhookPoster>,
    clock: Arc<dyn Clock>,
    policy: DeliveryPolicy,
}

impl std::fmt::Debug for WebhookDispatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookDispatcher")
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

impl WebhookDispatcher {
    /// A dispatcher over the given ports.
    pub fn new(
        queue: Arc<dyn WebhookQueue>,
        poster: Arc<dyn WebhookPoster>,
        clock: Arc<dyn Clock>,
        policy: DeliveryPolicy,
    ) -> Self {
        Self {
            queue,
            poster,
            clock,
            policy,
        }
    }

    /// Turns newly placed events into deliveries (see
    /// [`WebhookQueue::fan_out`]).
    ///
    /// # Errors
    /// When storage fails.
    pub async fn fan_out(&self, batch: u32) -> Result<usize, RepositoryError> {
        self.queue.fan_out(batch).await
    }

    /// Deletes finished deliveries made before `before`.
    ///
    /// # Errors
    /// When storage fails.
    pub async fn prune(&self, before: DateTime<Utc>) -> Result<usize, RepositoryError> {
        self.queue.prune(before).await
    }

    /// Claims one endpoint with deliveries due and makes them, in order,
    /// until the round is done, the endpoint fails twice (it rests, with
    /// backoff) or the claim is lost. `None` when no endpoint was due.
    ///
    /// # Errors
    /// When storage fails; the claim then runs out and the deliveries not
    /// recorded are made again (at least once).
    pub async fn run_once(&self) -> Result<Option<DeliveryCounts>, RepositoryError> {
        let Some(claim) = self
            .queue
            .claim(self.policy.lease, self.policy.round)
            .await?
        else {
            return Ok(None);
        };
        let mut counts = DeliveryCounts::default();
        let mut failures_in_round = 0usize;
        let mut failing_since = None;
        let mut held = true;
        let mut unrecorded: Vec<AttemptRecord> = Vec::new();
        let mut last_record = std::time::Instant::now();
        for due in &claim.due {
            let (outcome, expired) = match &due.event {
                Some(event) => (
                    self.poster
                        .post(&WebhookPost {
                            url: &claim.url,
                            delivery: due.id,
                            event,
                            secrets: &claim.secrets,
                        })
                        .await,
                    false,
                ),
                None => (
                    PostOutcome {
                        status: None,
                        latency: Duration::ZERO,
                        error: Some("the event left the log before it was delivered".into()),
                    },
                    true,
                ),
            };
            let at = self.clock.now();
            let attempts = due.attempts + 1;
            let record = if outcome.succeeded() {
                counts.succeeded += 1;
                AttemptRecord {
                    delivery: due.id,
                    outcome,
                    status: DeliveryStatus::Succeeded,
                    next_attempt_at: None,
                    at,
                }
            } else {
                counts.failed += 1;
                if !expired {
                    failures_in_round += 1;
                }
                let next = at
                    + TimeDelta::from_std(self.policy.delay(attempts, jitter()))
                        .unwrap_or(TimeDelta::MAX);
                let deadline = due.created_at
                    + TimeDelta::from_std(self.policy.retry_for).unwrap_or(TimeDelta::MAX);
                let give_up = expired || next > deadline;
                if give_up {
                    counts.given_up += 1;
                }
                AttemptRecord {
                    delivery: due.id,
                    outcome,
                    status: if give_up {
                        DeliveryStatus::Failed
                    } else {
                        DeliveryStatus::Pending
                    },
                    next_attempt_at: (!give_up).then_some(next),
                    at,
                }
            };
            let failed = record.status != DeliveryStatus::Succeeded;
            unrecorded.push(record);
            // Successes are recorded together (one transaction for many
            // deliveries); a failure at once, and nothing is held for long,
            // so the lease is renewed well before it runs out.
            if failed
                || unrecorded.len() >= RECORD_BATCH
                || last_record.elapsed() >= self.policy.lease / 4
            {
                last_record = std::time::Instant::now();
                match self.record(&claim, &mut unrecorded).await? {
                    Some(since) => failing_since = since,
                    None => {
                        held = false;
                        break;
                    }
                }
            }
            if failures_in_round >= FAILURES_PER_ROUND {
                break;
            }
        }
        if held && !unrecorded.is_empty() {
            match self.record(&claim, &mut unrecorded).await? {
                Some(since) => failing_since = since,
                None => held = false,
            }
        }
        if !held {
            return Ok(Some(counts));
        }
        let now = self.clock.now();
        if let Some(since) = failing_since {
            let limit = TimeDelta::from_std(self.policy.disable_after).unwrap_or(TimeDelta::MAX);
            if now - since >= limit {
                let reason = format!(
                    "disabled by the server: every delivery failed since {} ({} and more)",
                    since.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                    humanize(self.policy.disable_after)
                );
                self.queue
                    .disable(claim.endpoint_id, claim.token, &reason)
                    .await?;
                return Ok(Some(counts));
            }
        }
        let rest = (failures_in_round >= FAILURES_PER_ROUND).then(|| {
            // The endpoint's own backoff: as long as its longest-failing
            // delivery would wait.
            let streak = claim.due.iter().map(|d| d.attempts + 1).max().unwrap_or(1);
            now + TimeDelta::from_std(self.policy.delay(streak, jitter())).unwrap_or(TimeDelta::MAX)
        });
        self.queue
            .release(claim.endpoint_id, claim.token, rest)
            .await?;
        Ok(Some(counts))
    }
}

impl WebhookDispatcher {
    /// Records `attempts` (and empties it); see [`WebhookQueue::record`].
    async fn record(
        &self,
        claim: &crate::webhook::WebhookClaim,
        attempts: &mut Vec<AttemptRecord>,
    ) -> Result<Option<Option<DateTime<Utc>>>, RepositoryError> {
        let recorded = self
            .queue
            .record(claim.endpoint_id, claim.token, self.policy.lease, attempts)
            .await;
        attempts.clear();
        recorded
    }
}

/// Deliveries whose outcomes are recorded in one transaction, at most.
/// Those not yet recorded when a server dies are delivered again (with
/// the same delivery id): at most this many per endpoint.
const RECORD_BATCH: usize = 50;

/// A number in 0..1 that differs between calls, for jitter (not secret).
fn jitter() -> f64 {
    let bits = uuid::Uuid::new_v4().as_u128() as u64;
    (bits >> 11) as f64 / (1u64 << 53) as f64
}

fn humanize(d: Duration) -> String {
    let secs = d.as_secs();
    match secs {
        s if s >= 86_400 && s % 86_400 == 0 => format!("{} days", s / 86_400),
        s if s >= 3600 && s % 3600 == 0 => format!("{} hours", s / 3600),
        s => format!("{s} seconds"),
    }
}
