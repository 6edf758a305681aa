//! Webhook endpoints and their deliveries on the wire.

use maveraa_domain::webhook::{DeliveryQuery, DeliveryStatus};
use maveraa_domain::{NewWebhook, WebhookDelivery, WebhookEndpoint, WebhookPatch, WebhookSecret};
use serde::{Deserialize, Deserializer, Serialize};

use crate::error::ApiError;
use crate::query;
use crate::wire::events::event_id;

/// An endpoint as the API shows it; `secret` only in the answers that
/// make one (creation and roll).
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WebhookBody<'a> {
    #[serde(rename = "_id")]
    id: String,
    url: &'a str,
    events: &'a [String],
    description: Option<&'a str>,
    enabled: bool,
    disabled_reason: Option<&'a str>,
    failing_since: Option<String>,
    previous_secret_expires_at: Option<String>,
    created_at: String,
    updated_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
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
#[derive(Debug, Serialize)]
pub struct WebhookList<'a> {
    /// The workspace's endpoints, oldest first.
    pub webhooks: Vec<WebhookBody<'a>>,
}

/// `POST /api/public/webhooks` body.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateWebhookRequest {
    url: Option<String>,
    events: Option<Vec<String>>,
    description: Option<String>,
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
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UpdateWebhookRequest {
    url: Option<String>,
    events: Option<Vec<String>>,
    #[serde(default, deserialize_with = "present")]
    description: Option<Option<String>>,
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
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RollSecretRequest {
    /// How long the secret before keeps signing beside the new one, in
    /// seconds (default a day, at most 7 days; 0 ends it now).
    pub expires_in_seconds: Option<u64>,
}

/// A delivery as the API shows it.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DeliveryBody<'a> {
    #[serde(rename = "_id")]
    id: String,
    event_id: String,
    event_type: &'a str,
    status: &'static str,
    attempts: u32,
    response_status: Option<u16>,
    latency_ms: Option<u32>,
    error: Option<&'a str>,
    next_attempt_at: Option<String>,
    last_attempt_at: Option<String>,
    delivered_at: Option<String>,
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
#[derive(Debug, Serialize)]
pub struct DeliveryList<'a> {
    /// Newest event first.
    pub deliveries: Vec<DeliveryBody<'a>>,
    /// The cursor of the next page (`after`), or `null` on the last.
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
