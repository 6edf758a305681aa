//! Webhook endpoints and their deliveries on the wire.

use maveraa_domain::webhook::{DeliveryQuery, DeliveryStatus};
use maveraa_domain::{NewWebhook, WebhookDelivery, WebhookEndpoint, WebhookPatch, WebhookSecret};
use serde::{Deserialize, Deserializer, Serialize};
use utoipa::ToSchema;

use crate::error::ApiError;
use crate::query;
use crate::wire::events::event_id;

/// An endpoint as the API shows it; `secret` only in the answers that
/// make one (creation and roll).
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = Webhook)]
pub struct WebhookBody<'a> {
    /// The endpoint's id.
    #[serde(rename = "_id")]
    #[schema(example = "0193a1b2-7c4d-7e8f-9a0b-1c2d3e4f5a6b")]
    id: String,
    /// Where deliveries are posted.
    #[schema(example = "https://crm.example.com/maveraa")]
    url: &'a str,
    /// The event types it takes, or `["*"]` for all.
    #[schema(example = json!(["message.received", "message.status"]))]
    events: &'a [String],
    /// Your note.
    #[schema(example = "CRM sync")]
    description: Option<&'a str>,
    /// Whether events are delivered to it.
    enabled: bool,
    /// Why the server disabled it (it failed for too long), if it did.
    #[schema(example = json!(null))]
    disabled_reason: Option<&'a str>,
    /// Since when its deliveries fail without a success between.
    #[schema(format = DateTime, example = json!(null))]
    failing_since: Option<String>,
    /// Until when deliveries are also signed with the secret before the
    /// last roll.
    #[schema(format = DateTime, example = json!(null))]
    previous_secret_expires_at: Option<String>,
    /// When it was made (RFC 3339, UTC, microseconds).
    #[schema(format = DateTime, example = "2026-12-06T02:20:44.453771Z")]
    created_at: String,
    /// When it was last changed.
    #[schema(format = DateTime, example = "2026-12-06T02:20:44.453771Z")]
    updated_at: String,
    /// The signing secret (`whsec_...`): only in the answers of creation
    /// and roll, shown this once.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(
        nullable = false,
        example = "whsec_6f1c0d9e8b7a69584736251403f2e1d0c9b8a7f6e5d4c3b2a1908f7e6d5c4b3a"
    )]
    secret: Option<&'a str>,
}

impl<'a> WebhookBody<'a> {
    /// The endpoint, with `secret` when it was just made.
    pub fn new(e: &'a WebhookEndpoint, secret: Option<&'a WebhookSecret>) -> Self {
        Self {
            id: e.id.to_string(),
            url: &e.url,
            events: e.events.types(),
            description: e.description.as_deref(),
            enabled: e.enabled,
            disabled_reason: e.disabled_reason.as_deref(),
            failing_since: e.failing_since.as_ref().map(super::time),
            previous_secret_expires_at: e.previous_secret_expires_at.as_ref().map(super::time),
            created_at: super::time(&e.created_at),
            updated_at: super::time(&e.updated_at),
            secret: secret.map(WebhookSecret::expose),
        }
    }
}

/// The answer to `GET /api/public/webhooks`.
#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookList<'a> {
    /// The workspace's endpoints, oldest first.
    pub webhooks: Vec<WebhookBody<'a>>,
}

/// `POST /api/public/webhooks` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schema(
    description = "A new endpoint: where to post, and which event types.",
    example = json!({"url": "https://crm.example.com/maveraa", "events": ["message.received", "message.status"], "description": "CRM sync"})
)]
pub struct CreateWebhookRequest {
    /// An `http` or `https` URL, without credentials; loopback, private and
    /// link-local addresses are refused unless the server allows them.
    #[schema(required = true, value_type = String)]
    url: Option<String>,
    /// Event types (`contact.created`, `contact.updated`,
    /// `contact.deleted`, `contacts.imported`, `session.status`,
    /// `conversation.read`, `message.queued`, `message.received`,
    /// `message.status`), or `["*"]` for all.
    #[schema(required = true, value_type = Vec<String>)]
    events: Option<Vec<String>>,
    /// A note, up to 500 characters.
    #[schema(required = false, value_type = String)]
    description: Option<String>,
    /// Whether it starts enabled (default `true`).
    #[schema(required = false, value_type = bool)]
    enabled: Option<bool>,
}

impl CreateWebhookRequest {
    /// The endpoint asked for.
    ///
    /// # Errors
    /// `400` naming `url` or `events` when missing.
    pub fn try_into_domain(self) -> Result<NewWebhook, ApiError> {
        Ok(NewWebhook {
            url: self
                .url
                .ok_or_else(|| ApiError::validation("url", "url is required"))?,
            events: self.events.ok_or_else(|| {
                ApiError::validation(
                    "events",
                    "events is required: the event types to send, or [\"*\"] for all",
                )
            })?,
            description: self.description,
            enabled: self.enabled,
        })
    }
}

/// Present with a value, present as `null`, or absent.
fn present<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

/// `PATCH /api/public/webhooks/{id}` body: absent fields stay.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schema(
    description = "Changes to an endpoint; absent fields stay. `enabled: true` also clears a disable reason and the failure record.",
    example = json!({"events": ["*"], "enabled": true})
)]
pub struct UpdateWebhookRequest {
    /// A new URL.
    #[schema(required = false, value_type = String)]
    url: Option<String>,
    /// New event types, or `["*"]`.
    #[schema(required = false, value_type = Vec<String>)]
    events: Option<Vec<String>>,
    /// A new note; `null` removes it.
    #[serde(default, deserialize_with = "present")]
    #[schema(required = false, value_type = Option<String>)]
    description: Option<Option<String>>,
    /// Enables or disables it.
    #[schema(required = false, value_type = bool)]
    enabled: Option<bool>,
}

impl From<UpdateWebhookRequest> for WebhookPatch {
    fn from(r: UpdateWebhookRequest) -> Self {
        Self {
            url: r.url,
            events: r.events,
            description: r.description,
            enabled: r.enabled,
        }
    }
}

/// `POST /api/public/webhooks/{id}/roll-secret` body (optional).
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schema(
    description = "How long the secret before the roll keeps signing beside the new one.",
    example = json!({"expiresInSeconds": 86400})
)]
pub struct RollSecretRequest {
    /// How long the secret before keeps signing beside the new one, in
    /// seconds (default a day, at most 7 days; 0 ends it now).
    #[schema(required = false, value_type = u64, maximum = 604800)]
    pub expires_in_seconds: Option<u64>,
}

/// A delivery as the API shows it.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = WebhookDelivery)]
pub struct DeliveryBody<'a> {
    /// The delivery's id (`X-Maveraa-Delivery-Id`, the same on every
    /// attempt).
    #[serde(rename = "_id")]
    #[schema(example = "7c1e2d3f-4a5b-4c6d-8e7f-9a0b1c2d3e4f")]
    id: String,
    /// The event delivered.
    #[schema(example = "evt_912")]
    event_id: String,
    /// Its type.
    #[schema(example = "message.status")]
    event_type: &'a str,
    /// `pending` (to be tried at `nextAttemptAt`), `succeeded` or `failed`
    /// (given up, or its event left the log).
    #[schema(example = "succeeded")]
    status: &'static str,
    /// Attempts made.
    attempts: u32,
    /// The HTTP status of the last attempt's answer, if one came.
    #[schema(example = 200)]
    response_status: Option<u16>,
    /// How long the last attempt took, in milliseconds.
    #[schema(example = 12)]
    latency_ms: Option<u32>,
    /// Why the last attempt failed.
    #[schema(example = json!(null))]
    error: Option<&'a str>,
    /// When it is tried next (pending deliveries).
    #[schema(format = DateTime, example = json!(null))]
    next_attempt_at: Option<String>,
    /// When it was last tried.
    #[schema(format = DateTime)]
    last_attempt_at: Option<String>,
    /// When an attempt succeeded.
    #[schema(format = DateTime)]
    delivered_at: Option<String>,
    /// When the event was fanned out to the endpoint.
    #[schema(format = DateTime, example = "2026-12-06T02:20:44.453771Z")]
    created_at: String,
}

impl<'a> From<&'a WebhookDelivery> for DeliveryBody<'a> {
    fn from(d: &'a WebhookDelivery) -> Self {
        Self {
            id: d.id.to_string(),
            event_id: event_id(d.event_position),
            event_type: &d.event_type,
            status: d.status.as_str(),
            attempts: d.attempts,
            response_status: d.response_status,
            latency_ms: d.latency_ms,
            error: d.last_error.as_deref(),
            next_attempt_at: d.next_attempt_at.as_ref().map(super::time),
            last_attempt_at: d.last_attempt_at.as_ref().map(super::time),
            delivered_at: d.delivered_at.as_ref().map(super::time),
            created_at: super::time(&d.created_at),
        }
    }
}

/// The answer to `GET /api/public/webhooks/{id}/deliveries`.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = WebhookDeliveryList)]
pub struct DeliveryList<'a> {
    /// Newest event first.
    pub deliveries: Vec<DeliveryBody<'a>>,
    /// The cursor of the next page (`after`), or `null` on the last.
    #[schema(example = json!(null))]
    pub next: Option<String>,
}

/// The next page's cursor: the last delivery's event id when the page is
/// full.
pub fn next_cursor(page: &[WebhookDelivery], limit: u32) -> Option<String> {
    (page.len() == limit as usize)
        .then(|| page.last().map(|d| event_id(d.event_position)))
        .flatten()
}

/// Reads `status`, `limit` and `after` (an event id: deliveries of older
/// events).
///
/// # Errors
/// `400` on the parameter at fault.
pub fn delivery_query(query_string: &str) -> Result<DeliveryQuery, ApiError> {
    let mut q = DeliveryQuery {
        status: None,
        before: None,
        limit: DeliveryQuery::DEFAULT_LIMIT,
    };
    for (key, value) in query::pairs(query_string)? {
        match key.as_str() {
            "status" => {
                q.status = Some(DeliveryStatus::parse(value.trim()).ok_or_else(|| {
                    ApiError::validation("status", "status must be pending, succeeded or failed")
                })?);
            }
            "limit" => q.limit = query::limit(&value, DeliveryQuery::MAX_LIMIT)?,
            "after" if !value.trim().is_empty() => {
                q.before = Some(
                    value
                        .trim()
                        .strip_prefix("evt_")
                        .and_then(|n| n.parse::<u64>().ok())
                        .ok_or_else(|| {
                            ApiError::validation("after", "after must be an event id (evt_...)")
                        })?,
                );
            }
            _ => {}
        }
    }
    Ok(q)
}
