//! Webhook endpoints, their delivery queue, and the HTTP poster.

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::error::RepositoryError;
use crate::ids::{DeliveryId, WebhookId, WorkspaceId};
use crate::webhook::{
    AttemptRecord, DeliveryQuery, PostOutcome, Redelivery, ValidWebhookPatch, WebhookClaim,
    WebhookDelivery, WebhookEndpoint, WebhookPost, WebhookSecret,
};

/// Stores endpoints and reads their deliveries.
#[async_trait]
pub trait WebhookRepository: Send + Sync + 'static {
    /// Stores a new endpoint with its signing secret (kept encrypted).
    ///
    /// # Errors
    /// `Unavailable` or `Internal` when storage fails.
    async fn insert(
        &self,
        endpoint: &WebhookEndpoint,
        secret: &WebhookSecret,
    ) -> Result<(), RepositoryError>;

    /// How many endpoints `workspace` has.
    ///
    /// # Errors
    /// When storage fails.
    async fn count(&self, workspace: WorkspaceId) -> Result<usize, RepositoryError>;

    /// The endpoint `id` of `workspace`.
    ///
    /// # Errors
    /// When storage fails.
    async fn get(
        &self,
        workspace: WorkspaceId,
        id: WebhookId,
    ) -> Result<Option<WebhookEndpoint>, RepositoryError>;

    /// The endpoints of `workspace`, oldest first.
    ///
    /// # Errors
    /// When storage fails.
    async fn list(&self, workspace: WorkspaceId) -> Result<Vec<WebhookEndpoint>, RepositoryError>;

    /// Applies `patch`; enabling clears the disable reason and the failure
    /// record. `None` when there is no such endpoint.
    ///
    /// # Errors
    /// When storage fails.
    async fn update(
        &self,
        workspace: WorkspaceId,
        id: WebhookId,
        patch: &ValidWebhookPatch,
    ) -> Result<Option<WebhookEndpoint>, RepositoryError>;

    /// Deletes an endpoint and its deliveries; false when there was none.
    ///
    /// # Errors
    /// When storage fails.
    async fn delete(&self, workspace: WorkspaceId, id: WebhookId) -> Result<bool, RepositoryError>;

    /// Makes `secret` the signing secret; the one before keeps signing
    /// deliveries too until `previous_until`.
    ///
    /// # Errors
    /// When storage fails.
    async fn roll_secret(
        &self,
        workspace: WorkspaceId,
        id: WebhookId,
        secret: &WebhookSecret,
        previous_until: DateTime<Utc>,
    ) -> Result<Option<WebhookEndpoint>, RepositoryError>;

    /// An endpoint's deliveries, newest event first; `None` when there is
    /// no such endpoint.
    ///
    /// # Errors
    /// When storage fails.
    async fn deliveries(
        &self,
        workspace: WorkspaceId,
        id: WebhookId,
        query: &DeliveryQuery,
    ) -> Result<Option<Vec<WebhookDelivery>>, RepositoryError>;

    /// Makes a delivery pending again and due now (its attempts kept).
    ///
    /// # Errors
    /// When storage fails.
    async fn redeliver(
        &self,
        workspace: WorkspaceId,
        id: WebhookId,
        delivery: DeliveryId,
    ) -> Result<Redelivery, RepositoryError>;
}

/// The deliveries to make, shared by every server.
#[async_trait]
pub trait WebhookQueue: Send + Sync + 'static {
    /// Turns events placed in the log since the last call into deliveries,
    /// once per endpoint and event whatever the number of servers calling
    /// it (one at a time; a call while another runs does nothing). Returns
    /// how many positions it moved past, at most `batch`.
    ///
    /// # Errors
    /// When storage fails.
    async fn fan_out(&self, batch: u32) -> Result<usize, RepositoryError>;

    /// Takes an enabled endpoint with deliveries due that no one holds and
    /// that is not resting after failures, for `lease`, with up to `round`
    /// of its due deliveries in event order.
    ///
    /// # Errors
    /// When storage fails (or a secret cannot be opened).
    async fn claim(
        &self,
        lease: Duration,
        round: u32,
    ) -> Result<Option<WebhookClaim>, RepositoryError>;

    /// Records attempts of a claimed endpoint's deliveries, in the order
    /// they were made, and the endpoint's health after them (a success
    /// clears its failure record, a failure extends it), and renews the
    /// lease for `lease`, all at once. Returns since when the endpoint has
    /// failed (`Some(None)`: it has not), or `None` when the claim is no
    /// longer held (`token` fences it): nothing is recorded then.
    ///
    /// # Errors
    /// When storage fails.
    async fn record(
        &self,
        endpoint: WebhookId,
        token: Uuid,
        lease: Duration,
        attempts: &[AttemptRecord],
    ) -> Result<Option<Option<DateTime<Utc>>>, RepositoryError>;

    /// Lets the endpoint go; with `rest_until` it is not claimed before.
    ///
    /// # Errors
    /// When storage fails.
    async fn release(
        &self,
        endpoint: WebhookId,
        token: Uuid,
        rest_until: Option<DateTime<Utc>>,
    ) -> Result<(), RepositoryError>;

    /// Disables an endpoint that has failed too long, saying why.
    ///
    /// # Errors
    /// When storage fails.
    async fn disable(
        &self,
        endpoint: WebhookId,
        token: Uuid,
        reason: &str,
    ) -> Result<(), RepositoryError>;

    /// Deletes finished deliveries made before `before`.
    ///
    /// # Errors
    /// When storage fails.
    async fn prune(&self, before: DateTime<Utc>) -> Result<usize, RepositoryError>;
}

/// Posts one signed event to an endpoint.
#[async_trait]
pub trait WebhookPoster: Send + Sync + 'static {
    /// Posts `post`, within the poster's timeout. Never fails: what went
    /// wrong is in the outcome.
    async fn post(&self, post: &WebhookPost<'_>) -> PostOutcome;
}
