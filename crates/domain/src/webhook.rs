//! Webhook endpoints: URLs of the customer's app that a workspace's events
//! are pushed to, signed, retried until they are taken, and the log of
//! those deliveries.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::event::{EVENT_TYPES, Event};
use crate::ids::{DeliveryId, WebhookId, WorkspaceId};
use crate::messaging::SecretString;
use crate::values::ValidationError;

/// Subscribes an endpoint to every event type, present and future.
pub const ALL_EVENTS: &str = "*";

/// Longest URL accepted.
const MAX_URL_LEN: usize = 2048;
/// Longest description accepted, in characters.
const MAX_DESCRIPTION_LEN: usize = 500;
/// Endpoints a workspace may have.
pub const MAX_ENDPOINTS: usize = 20;

/// Where deliveries go: an `http` or `https` URL without credentials.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookUrl(url::Url);

impl WebhookUrl {
    /// Parses and checks a URL; `allow_private` lets it name loopback,
    /// private or link-local addresses (and `localhost`).
    ///
    /// # Errors
    /// A [`ValidationError`] on `url`.
    pub fn parse(text: &str, allow_private: bool) -> Result<Self, ValidationError> {
        let err = |m: &str| ValidationError::new("url", m);
        let text = text.trim();
        if text.is_empty() {
            return Err(err("must not be empty"));
        }
        if text.len() > MAX_URL_LEN {
            return Err(err("must be at most 2048 characters"));
        }
        let url = url::Url::parse(text).map_err(|e| err(&format!("is not a URL ({e})")))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(err("must be an http or https URL"));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(err(
                "must not carry credentials; verify deliveries by their signature",
            ));
        }
        if url.fragment().is_some() {
            return Err(err("must not have a fragment"));
        }
        let parsed = Self(url);
        if !allow_private && parsed.targets_private() {
            return Err(err(
                "names a loopback, private or link-local address; such targets are refused \
                 unless webhooks.allow_private_targets is true",
            ));
        }
        Ok(parsed)
    }

    /// Whether the host is `localhost` or an address [`is_private_address`]
    /// refuses. A name is checked again when it resolves, at each delivery.
    pub fn targets_private(&self) -> bool {
        is_private_host(self.0.host())
    }

    /// The URL.
    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }
}

impl fmt::Display for WebhookUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0.as_str())
    }
}

/// Whether a URL's host is refused by default before any resolving: no
/// host, `localhost` (and its subdomains), or a literal address
/// [`is_private_address`] refuses. A name is checked again when it
/// resolves.
pub fn is_private_host(host: Option<url::Host<&str>>) -> bool {
    match host {
        Some(url::Host::Ipv4(ip)) => is_private_address(IpAddr::V4(ip)),
        Some(url::Host::Ipv6(ip)) => is_private_address(IpAddr::V6(ip)),
        Some(url::Host::Domain(name)) => {
            let name = name.trim_end_matches('.').to_ascii_lowercase();
            name == "localhost" || name.ends_with(".localhost")
        }
        None => true,
    }
}

/// Whether deliveries to `ip` are refused by default: loopback, private
/// (RFC 1918, unique local), link-local, carrier-grade NAT, unspecified,
/// multicast and broadcast addresses, and IPv4 ones mapped into IPv6.
pub fn is_private_address(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_private_v4(v4),
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_private_v4(v4);
            }
            let first = v6.segments()[0];
            v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (first & 0xfe00) == 0xfc00 // unique local
                || (first & 0xffc0) == 0xfe80 // link-local
                || v6 == Ipv6Addr::new(0x64, 0xff9b, 0, 0, 0, 0, 0, 0) // NAT64 prefix itself
        }
    }
}

fn is_private_v4(ip: Ipv4Addr) -> bool {
    let [a, b, ..] = ip.octets();
    ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_unspecified()
        || ip.is_broadcast()
        || ip.is_multicast()
        || a == 0
        || (a == 100 && (64..128).contains(&b)) // carrier-grade NAT
}

/// The event types an endpoint takes: some of [`EVENT_TYPES`], or
/// [`ALL_EVENTS`] alone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventSelection(Vec<String>);

impl EventSelection {
    /// Checks a selection: not empty, known types, `*` alone; duplicates
    /// are dropped.
    ///
    /// # Errors
    /// A [`ValidationError`] on `events`.
    pub fn new(types: Vec<String>) -> Result<Self, ValidationError> {
        let err = |m: String| ValidationError::new("events", m);
        if types.is_empty() {
            return Err(err(format!(
                "must name at least one event type, or \"{ALL_EVENTS}\" for all"
            )));
        }
        let mut picked: Vec<String> = Vec::with_capacity(types.len());
        for t in types {
            let t = t.trim().to_owned();
            if t != ALL_EVENTS && !EVENT_TYPES.contains(&t.as_str()) {
                return Err(err(format!(
                    "{t:?} is not an event type; the types are {}, or \"{ALL_EVENTS}\" for all",
                    EVENT_TYPES.join(", ")
                )));
            }
            if !picked.contains(&t) {
                picked.push(t);
            }
        }
        if picked.len() > 1 && picked.iter().any(|t| t == ALL_EVENTS) {
            return Err(err(format!("\"{ALL_EVENTS}\" stands alone")));
        }
        Ok(Self(picked))
    }

    /// The types, or `["*"]`.
    pub fn types(&self) -> &[String] {
        &self.0
    }

    /// Whether an event of `kind` goes to this endpoint.
    pub fn takes(&self, kind: &str) -> bool {
        self.0.iter().any(|t| t == ALL_EVENTS || t == kind)
    }
}

/// A signing secret, `whsec_` and 64 hex digits. Shown once, when made.
#[derive(Clone, PartialEq, Eq)]
pub struct WebhookSecret(SecretString);

impl WebhookSecret {
    /// The prefix every secret starts with.
    pub const PREFIX: &'static str = "whsec_";

    /// A new random secret (244 random bits, from two v4 UUIDs).
    pub fn generate() -> Self {
        let a = Uuid::new_v4().simple().to_string();
        let b = Uuid::new_v4().simple().to_string();
        Self(SecretString::new(format!("{}{a}{b}", Self::PREFIX)))
    }

    /// Wraps a secret read back from storage.
    pub fn from_stored(text: String) -> Self {
        Self(SecretString::new(text))
    }

    /// The secret's text; use it, don't log it.
    pub fn expose(&self) -> &str {
        self.0.expose()
    }
}

impl fmt::Debug for WebhookSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("WebhookSecret(<redacted>)")
    }
}

/// A webhook endpoint, as stored (its secrets aside).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookEndpoint {
    /// Its id.
    pub id: WebhookId,
    /// The workspace whose events it gets.
    pub workspace_id: WorkspaceId,
    /// Where deliveries go.
    pub url: String,
    /// The event types it takes.
    pub events: EventSelection,
    /// The customer's note.
    pub description: Option<String>,
    /// Whether events are delivered to it. An endpoint that failed for too
    /// long is disabled, with the reason in `disabled_reason`.
    pub enabled: bool,
    /// Why it was disabled by the server, if it was.
    pub disabled_reason: Option<String>,
    /// Since when its deliveries fail without a success between, if they do.
    pub failing_since: Option<DateTime<Utc>>,
    /// Until when deliveries are also signed with the secret before the
    /// last roll.
    pub previous_secret_expires_at: Option<DateTime<Utc>>,
    /// When it was made.
    pub created_at: DateTime<Utc>,
    /// When it was last changed.
    pub updated_at: DateTime<Utc>,
}

/// A new endpoint, as asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewWebhook {
    /// Where deliveries go.
    pub url: String,
    /// The event types it takes.
    pub events: Vec<String>,
    /// A note.
    pub description: Option<String>,
    /// Whether it starts enabled (default true).
    pub enabled: Option<bool>,
}

/// A change to an endpoint, as asked for; absent fields stay.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct WebhookPatch {
    /// A new URL.
    pub url: Option<String>,
    /// New event types.
    pub events: Option<Vec<String>>,
    /// A new note (`Some(None)` removes it).
    pub description: Option<Option<String>>,
    /// Enables (clearing a disable reason and the failure count) or disables.
    pub enabled: Option<bool>,
}

/// A [`WebhookPatch`] whose fields were checked.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ValidWebhookPatch {
    /// A new URL.
    pub url: Option<WebhookUrl>,
    /// New event types.
    pub events: Option<EventSelection>,
    /// A new note (`Some(None)` removes it).
    pub description: Option<Option<String>>,
    /// Enables or disables.
    pub enabled: Option<bool>,
}

/// Checks a description: trimmed, at most 500 characters; empty is none.
///
/// # Errors
/// A [`ValidationError`] on `description`.
pub fn description(text: Option<String>) -> Result<Option<String>, ValidationError> {
    let Some(text) = text else { return Ok(None) };
    let text = text.trim();
    if text.chars().count() > MAX_DESCRIPTION_LEN {
        return Err(ValidationError::new(
            "description",
            "must be at most 500 characters",
        ));
    }
    Ok((!text.is_empty()).then(|| text.to_owned()))
}

/// Where a delivery stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryStatus {
    /// Not delivered yet; `next_attempt_at` says when it is tried.
    Pending,
    /// An attempt got a 2xx.
    Succeeded,
    /// Given up: every attempt failed for the retry period, or the event
    /// left the log before it could be delivered.
    Failed,
}

impl DeliveryStatus {
    /// The status as the API and storage write it.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
        }
    }

    /// Reads a status.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "pending" => Some(Self::Pending),
            "succeeded" => Some(Self::Succeeded),
            "failed" => Some(Self::Failed),
            _ => None,
        }
    }
}

/// One event's delivery to one endpoint, across its attempts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookDelivery {
    /// Its id (`X-Maveraa-Delivery-Id`).
    pub id: DeliveryId,
    /// The endpoint.
    pub endpoint_id: WebhookId,
    /// The event's position in the log.
    pub event_position: u64,
    /// The event's type.
    pub event_type: String,
    /// Where it stands.
    pub status: DeliveryStatus,
    /// Attempts made.
    pub attempts: u32,
    /// When it is tried next (pending ones).
    pub next_attempt_at: Option<DateTime<Utc>>,
    /// When it was last tried.
    pub last_attempt_at: Option<DateTime<Utc>>,
    /// The HTTP status of the last attempt's answer, if one came.
    pub response_status: Option<u16>,
    /// How long the last attempt took, in milliseconds.
    pub latency_ms: Option<u32>,
    /// Why the last attempt failed (no answer, a non-2xx, a refused target).
    pub last_error: Option<String>,
    /// When an attempt succeeded.
    pub delivered_at: Option<DateTime<Utc>>,
    /// When the event was fanned out to the endpoint.
    pub created_at: DateTime<Utc>,
}

/// Which deliveries of an endpoint to read: newest event first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryQuery {
    /// Only those with this status.
    pub status: Option<DeliveryStatus>,
    /// Only those of events before this position (the cursor of the page
    /// before).
    pub before: Option<u64>,
    /// At most this many (1 to 100).
    pub limit: u32,
}

impl DeliveryQuery {
    /// Default page size.
    pub const DEFAULT_LIMIT: u32 = 50;
    /// Largest page size.
    pub const MAX_LIMIT: u32 = 100;
}

/// What asking to deliver again found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Redelivery {
    /// Pending again, due now.
    Scheduled(WebhookDelivery),
    /// No such endpoint or delivery in the workspace.
    NotFound,
    /// The event left the log (retention): nothing to send.
    EventExpired,
}

/// How deliveries are retried and when an endpoint is given up on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeliveryPolicy {
    /// The first retry's delay; each later one doubles it.
    pub retry_base: Duration,
    /// The longest delay between two attempts.
    pub retry_max: Duration,
    /// How long a delivery is retried before it is given up.
    pub retry_for: Duration,
    /// How long an endpoint may fail without a success before it is
    /// disabled.
    pub disable_after: Duration,
    /// Deliveries sent per claim of an endpoint.
    pub round: u32,
    /// How long a claim holds an endpoint without news from its worker.
    pub lease: Duration,
}

impl Default for DeliveryPolicy {
    fn default() -> Self {
        Self {
            retry_base: Duration::from_secs(10),
            retry_max: Duration::from_secs(3600),
            retry_for: Duration::from_secs(3 * 24 * 3600),
            disable_after: Duration::from_secs(5 * 24 * 3600),
            round: 100,
            lease: Duration::from_secs(60),
        }
    }
}

impl DeliveryPolicy {
    /// The delay before attempt `attempts + 1`, after `attempts` failed
    /// ones: `retry_base` doubled each time up to `retry_max`, less up to a
    /// fifth at random (`jitter` in 0..1), so endpoints that failed together
    /// are not retried in step.
    pub fn delay(&self, attempts: u32, jitter: f64) -> Duration {
        let doublings = attempts.saturating_sub(1).min(30);
        let full = self
            .retry_base
            .saturating_mul(1u32 << doublings)
            .min(self.retry_max);
        full.mul_f64(1.0 - 0.2 * jitter.clamp(0.0, 1.0))
    }
}

/// An endpoint held by one worker, with the deliveries due.
#[derive(Debug, Clone)]
pub struct WebhookClaim {
    /// The endpoint.
    pub endpoint_id: WebhookId,
    /// Its workspace.
    pub workspace_id: WorkspaceId,
    /// Where to post.
    pub url: String,
    /// Fences this claim: a worker whose lease ran out records nothing.
    pub token: Uuid,
    /// The secrets to sign with: the current one first, then the one
    /// before a roll while it overlaps.
    pub secrets: Vec<WebhookSecret>,
    /// The deliveries due, in event order.
    pub due: Vec<DueDelivery>,
}

/// A delivery due, with its event.
#[derive(Debug, Clone)]
pub struct DueDelivery {
    /// The delivery.
    pub id: DeliveryId,
    /// Attempts made before.
    pub attempts: u32,
    /// When it was fanned out (its retry period runs from there).
    pub created_at: DateTime<Utc>,
    /// The event, or `None` when it left the log.
    pub event: Option<Event>,
}

/// What one attempt got.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PostOutcome {
    /// The answer's HTTP status, if one came.
    pub status: Option<u16>,
    /// How long the attempt took.
    pub latency: Duration,
    /// Why it failed, if it did (a non-2xx, a timeout, a refused target).
    pub error: Option<String>,
}

impl PostOutcome {
    /// Whether the endpoint took the event.
    pub fn succeeded(&self) -> bool {
        self.error.is_none() && self.status.is_some_and(|s| (200..300).contains(&s))
    }
}

/// One attempt's result, to record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttemptRecord {
    /// The delivery.
    pub delivery: DeliveryId,
    /// What the attempt got.
    pub outcome: PostOutcome,
    /// Where the delivery stands after it.
    pub status: DeliveryStatus,
    /// When it is tried next, if it stays pending.
    pub next_attempt_at: Option<DateTime<Utc>>,
    /// When the attempt was made.
    pub at: DateTime<Utc>,
}

/// One post to make.
#[derive(Debug)]
pub struct WebhookPost<'a> {
    /// Where.
    pub url: &'a str,
    /// The delivery (`X-Maveraa-Delivery-Id`).
    pub delivery: DeliveryId,
    /// The event to send.
    pub event: &'a Event,
    /// Secrets to sign with (one signature each).
    pub secrets: &'a [WebhookSecret],
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_checked() {
        assert!(WebhookUrl::parse("https://example.com/hooks", false).is_ok());
        for bad in [
            "",
            "ftp://example.com",
            "https://user:pw@example.com",
            "not a url",
            "https://example.com/#x",
        ] {
            assert_eq!(
                WebhookUrl::parse(bad, true).map_err(|e| e.field),
                Err("url".to_owned()),
                "{bad}"
            );
        }
    }

    #[test]
    fn private_targets_are_refused_unless_allowed() {
        for private in [
            "http://127.0.0.1:8080/x",
            "http://localhost/x",
            "http://api.localhost/x",
            "http://10.1.2.3/",
            "http://192.168.0.1/",
            "http://172.16.0.1/",
            "http://169.254.169.254/latest/meta-data",
            "http://[::1]/",
            "http://[fe80::1]/",
            "http://[fd00::1]/",
            "http://[::ffff:127.0.0.1]/",
            "http://0.0.0.0/",
            "http://100.64.0.1/",
        ] {
            assert!(WebhookUrl::parse(private, false).is_err(), "{private}");
            assert!(WebhookUrl::parse(private, true).is_ok(), "{private}");
        }
        assert!(WebhookUrl::parse("http://8.8.8.8/", false).is_ok());
        assert!(WebhookUrl::parse("https://[2606:4700::1111]/", false).is_ok());
    }

    #[test]
    fn selections_are_checked() {
        let all = EventSelection::new(vec!["*".into()]).expect("all");
        assert!(all.takes("message.received"));
        let some = EventSelection::new(vec![
            "message.received".into(),
            "message.received".into(),
            "contact.created".into(),
        ])
        .expect("some");
        assert_eq!(some.types().len(), 2);
        assert!(!some.takes("message.status"));
        for bad in [
            vec![],
            vec!["message.nope".to_owned()],
            vec!["*".to_owned(), "contact.created".to_owned()],
        ] {
            assert_eq!(
                EventSelection::new(bad).map_err(|e| e.field),
                Err("events".to_owned())
            );
        }
    }

    #[test]
    fn delays_double_up_to_the_maximum_with_jitter_below() {
        let p = DeliveryPolicy::default();
        assert_eq!(p.delay(1, 0.0), Duration::from_secs(10));
        assert_eq!(p.delay(2, 0.0), Duration::from_secs(20));
        assert_eq!(p.delay(4, 0.0), Duration::from_secs(80));
        assert_eq!(p.delay(40, 0.0), Duration::from_secs(3600));
        assert_eq!(p.delay(1, 1.0), Duration::from_secs(8));
    }

    #[test]
    fn secrets_are_random_and_hidden() {
        let a = WebhookSecret::generate();
        let b = WebhookSecret::generate();
        assert_ne!(a, b);
        assert!(a.expose().starts_with("whsec_"));
        assert_eq!(a.expose().len(), 6 + 64);
        assert!(!format!("{a:?}").contains(a.expose()));
    }
}
