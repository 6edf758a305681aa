//! Meta's WhatsApp Cloud API webhooks: the [`WebhookProtocol`] of Cloud
//! API sessions.
//!
//! # Handshake
//! When the URL is configured, Meta calls
//! `GET ?hub.mode=subscribe&hub.verify_token=..&hub.challenge=..` and
//! expects the challenge back when the token is the session's verify token
//! (compared in time that does not reveal the token).
//!
//! # Signature
//! Meta signs each delivery with `X-Hub-Signature-256: sha256=<hex>`, the
//! HMAC-SHA-256 of the raw body under the app secret. The comparison is
//! constant-time; a missing or malformed header, or an empty app secret,
//! never verifies.
//!
//! # Decoding
//! A delivery is `{"object": .., "entry": [{"changes": [{"field":
//! "messages", "value": {..}}]}]}`. Every `messages[]` item becomes a
//! [`ProviderEvent::Message`] and every `statuses[]` item a
//! [`ProviderEvent::Status`], in payload order (per change: messages, then
//! statuses).
//!
//! - `text` → [`MessageContent::Text`]; `image`, `document`, `audio`,
//!   `video` → [`MessageContent::Media`] with Meta's media id, MIME type,
//!   caption and (documents) file name; anything else (`sticker`,
//!   `location`, `reaction`, `button`, `interactive`, `contacts`,
//!   `unsupported`...) → [`MessageContent::Other`] with the type name and
//!   the best text it carries (reaction emoji, button text, location name
//!   and address...).
//! - `push_name` is the profile name of the `contacts[]` entry whose `wa_id`
//!   is the sender (or of the only entry).
//! - statuses `sent`, `delivered`, `read`, `failed` are kept (`failed` with
//!   the first error's code and message); other statuses are skipped. A
//!   status's `biz_opaque_callback_data`, when it is one of our message ids
//!   (the Cloud API adapter sends it with each message), is kept as
//!   [`StatusUpdate::echoed_message_id`]; anything else there is ignored.
//! - changes of another `field`, unknown keys and items without an id or a
//!   valid sender are skipped (with a warning for the latter) rather than
//!   failing the delivery, which Meta would then retry for days.
//! - a timestamp that is missing or not Unix seconds becomes "now".
//!
//! Events are grouped by the change's `metadata.phone_number_id` (the
//! account; changes without one concern the session addressed): Meta sends
//! the deliveries of every number of an app to the one URL configured for
//! the app, and the app secret that signed them vouches for every session
//! of the app.
//!
//! A body that is not JSON, or has no `entry` array, is an error.

use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use maveraa_domain::messaging::{
    CloudApiSettings, DeliveryError, InboundMessage, MediaInfo, MessageContent, MessageStatus,
    ProviderEvent, ProviderSettings, Session, StatusUpdate, WaId,
};
use maveraa_domain::ports::{AccountEvents, WebhookProtocol, WebhookRefusal, WebhookRequest};
use maveraa_domain::transport::MediaKind;
use serde_json::Value;
use sha2::Sha256;

/// The header Meta signs deliveries in: `sha256=<hex HMAC of the body>`.
pub const SIGNATURE_HEADER: &str = "X-Hub-Signature-256";

/// The prefix of Meta's signature header value.
const SIGNATURE_PREFIX: &str = "sha256=";

/// Checks and decodes Meta's Cloud API webhook requests. Stateless: the
/// session's secrets are read from the session for each request.
#[derive(Debug, Clone, Copy, Default)]
pub struct CloudApiWebhooks;

impl CloudApiWebhooks {
    /// The protocol.
    pub fn new() -> Self {
        Self
    }
}

fn settings(session: &Session) -> Option<&CloudApiSettings> {
    match &session.provider {
        ProviderSettings::CloudApi(settings) => Some(settings),
        _ => None,
    }
}

impl WebhookProtocol for CloudApiWebhooks {
    fn handshake(
        &self,
        session: &Session,
        request: &WebhookRequest<'_>,
    ) -> Result<String, WebhookRefusal> {
        let settings = settings(session).ok_or(WebhookRefusal::VerificationRefused)?;
        let token_ok = request
            .query_param("hub.verify_token")
            .is_some_and(|t| secret_eq(t.as_bytes(), settings.verify_token.expose().as_bytes()));
        match (
            request.query_param("hub.mode"),
            request.query_param("hub.challenge"),
        ) {
            (Some("subscribe"), Some(challenge)) if token_ok => Ok(challenge.to_owned()),
            _ => Err(WebhookRefusal::VerificationRefused),
        }
    }

    fn precheck(&self, session: &Session, headers: &[(&str, &str)]) -> Result<(), WebhookRefusal> {
        let settings = settings(session).ok_or(WebhookRefusal::BadSignature)?;
        let signature = headers
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case(SIGNATURE_HEADER))
            .map(|(_, value)| *value);
        if settings.app_secret.expose().is_empty() || !signature_shaped(signature) {
            return Err(WebhookRefusal::BadSignature);
        }
        Ok(())
    }

    fn open(
        &self,
        session: &Session,
        request: &WebhookRequest<'_>,
    ) -> Result<Vec<AccountEvents>, WebhookRefusal> {
        let settings = settings(session).ok_or(WebhookRefusal::BadSignature)?;
        if !verify_signature(
            settings.app_secret.expose(),
            request.body,
            request.header(SIGNATURE_HEADER),
        ) {
            return Err(WebhookRefusal::BadSignature);
        }
        decode_by_account(request.body).map_err(WebhookRefusal::Malformed)
    }

    fn vouches_for(&self, addressed: &Session, other: &Session) -> bool {
        match (settings(addressed), settings(other)) {
            (Some(a), Some(o)) => a.app_secret == o.app_secret,
            _ => false,
        }
    }
}

/// Whether `signature` has the shape of Meta's (`sha256=` and 64 hex
/// digits), so it could verify once the body is read.
fn signature_shaped(signature: Option<&str>) -> bool {
    signature
        .and_then(|s| s.trim().strip_prefix(SIGNATURE_PREFIX))
        .is_some_and(|hex| hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// Whether `signature` (`sha256=<hex>`) is the HMAC-SHA-256 of `body` under
/// `app_secret`, compared in constant time.
pub fn verify_signature(app_secret: &str, body: &[u8], signature: Option<&str>) -> bool {
    if app_secret.is_empty() {
        return false;
    }
    let Some(hex_digest) = signature.and_then(|s| s.trim().strip_prefix(SIGNATURE_PREFIX)) else {
        return false;
    };
    let Ok(expected) = hex::decode(hex_digest) else {
        return false;
    };
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(app_secret.as_bytes()) else {
        return false;
    };
    mac.update(body);
    // `verify_slice` compares in constant time (and refuses a wrong length).
    mac.verify_slice(&expected).is_ok()
}

/// Compares `given` with the secret `expected` in time that depends on the
/// length of `given` only: neither the secret's bytes nor its length show
/// in the timing.
fn secret_eq(given: &[u8], expected: &[u8]) -> bool {
    let mut diff = u8::from(given.len() != expected.len() || expected.is_empty());
    for (i, a) in given.iter().enumerate() {
        let b = expected
            .get(i % expected.len().max(1))
            .copied()
            .unwrap_or(0);
        diff |= a ^ b;
    }
    diff == 0
}

/// The events of a delivery, all accounts together; see the
/// [module docs](self).
///
/// # Errors
/// A description when `body` is not JSON or has no `entry` array.
pub fn decode(body: &[u8]) -> Result<Vec<ProviderEvent>, String> {
    Ok(decode_by_account(body)?
        .into_iter()
        .flat_map(|group| group.events)
        .collect())
}

/// The events of a delivery grouped by account (`metadata.phone_number_id`;
/// `None` for changes without one), groups in order of first appearance.
///
/// # Errors
/// As [`decode`].
pub fn decode_by_account(body: &[u8]) -> Result<Vec<AccountEvents>, String> {
    let root: Value =
        serde_json::from_slice(body).map_err(|e| format!("webhook body is not JSON: {e}"))?;
    let entries = root
        .get("entry")
        .and_then(Value::as_array)
        .ok_or_else(|| "webhook body has no \"entry\" array".to_owned())?;

    let mut groups: Vec<AccountEvents> = Vec::new();
    for entry in entries {
        let Some(changes) = entry.get("changes").and_then(Value::as_array) else {
            continue;
        };
        for change in changes {
            if change.get("field").and_then(Value::as_str) != Some("messages") {
                continue;
            }
            let Some(value) = change.get("value") else {
                continue;
            };
            let account = value
                .get("metadata")
                .and_then(|m| m.get("phone_number_id"))
                .and_then(Value::as_str);
            let index = match groups.iter().position(|g| g.account.as_deref() == account) {
                Some(index) => index,
                None => {
                    groups.push(AccountEvents {
                        account: account.map(str::to_owned),
                        events: Vec::new(),
                    });
                    groups.len() - 1
                }
            };
            if let Some(group) = groups.get_mut(index) {
                decode_value(value, &mut group.events);
            }
        }
    }
    Ok(groups)
}

/// The events of one `messages` change.
fn decode_value(value: &Value, events: &mut Vec<ProviderEvent>) {
    let contacts = array(value, "contacts");
    for message in array(value, "messages") {
        if let Some(m) = decode_message(message, contacts) {
            events.push(ProviderEvent::Message(m));
        }
    }
    for status in array(value, "statuses") {
        if let Some(s) = decode_status(status) {
            events.push(ProviderEvent::Status(s));
        }
    }
}

/// Longest provider message id kept (Meta's are about 60 characters). A
/// longer one could not be indexed: storing it would fail the whole
/// delivery on every redelivery.
const MAX_PROVIDER_ID_BYTES: usize = 512;

/// An item's provider message id, when it has a usable one.
fn provider_id(item: &Value) -> Option<&str> {
    non_empty(item, "id").filter(|id| id.len() <= MAX_PROVIDER_ID_BYTES)
}

fn decode_message(message: &Value, contacts: &[Value]) -> Option<InboundMessage> {
    let Some(id) = provider_id(message) else {
        tracing::warn!("webhook message without a usable id skipped");
        return None;
    };
    let raw_from = str_field(message, "from").unwrap_or_default();
    let from = match WaId::parse("from", raw_from) {
        Ok(from) => from,
        Err(_) => {
            tracing::warn!(
                provider_message_id = id,
                "webhook message without a valid sender skipped"
            );
            return None;
        }
    };
    Some(InboundMessage {
        provider_message_id: id.to_owned(),
        push_name: push_name(contacts, raw_from, &from),
        from,
        content: content(message),
        timestamp: timestamp(message.get("timestamp")),
    })
}

/// The profile name of the sender's `contacts[]` entry.
fn push_name(contacts: &[Value], raw_from: &str, from: &WaId) -> Option<String> {
    let is_sender = |c: &&Value| {
        str_field(c, "wa_id")
            .is_some_and(|w| w == raw_from || WaId::parse("wa_id", w).is_ok_and(|w| w == *from))
    };
    let contact = contacts.iter().find(is_sender).or(match contacts {
        [only] => Some(only),
        _ => None,
    })?;
    contact
        .get("profile")
        .and_then(|p| non_empty(p, "name"))
        .map(str::to_owned)
}

fn content(message: &Value) -> MessageContent {
    let kind = non_empty(message, "type").unwrap_or("unknown");
    let payload = message.get(kind);
    if kind == "text"
        && let Some(body) = payload.and_then(|p| str_field(p, "body"))
    {
        return MessageContent::Text {
            body: body.to_owned(),
        };
    }
    if let (Some(media_kind), Some(payload)) = (MediaKind::parse(kind), payload) {
        return MessageContent::Media(MediaInfo {
            kind: media_kind,
            url: None,
            provider_media_id: non_empty(payload, "id").map(str::to_owned),
            mime_type: non_empty(payload, "mime_type").map(str::to_owned),
            caption: non_empty(payload, "caption")
                .filter(|_| media_kind.allows_caption())
                .map(str::to_owned),
            file_name: non_empty(payload, "filename")
                .filter(|_| media_kind.allows_file_name())
                .map(str::to_owned),
            size: None,
            locator: None,
        });
    }
    MessageContent::Other {
        kind: kind.to_owned(),
        body: payload.and_then(|p| other_text(kind, p)),
    }
}

/// The best text of a message kind we do not interpret.
fn other_text(kind: &str, payload: &Value) -> Option<String> {
    let text = match kind {
        "reaction" => non_empty(payload, "emoji").map(str::to_owned),
        "button" => non_empty(payload, "text")
            .or_else(|| non_empty(payload, "payload"))
            .map(str::to_owned),
        "interactive" => ["button_reply", "list_reply", "nfm_reply"]
            .iter()
            .filter_map(|k| payload.get(*k))
            .find_map(|reply| non_empty(reply, "title").or_else(|| non_empty(reply, "body")))
            .map(str::to_owned),
        "location" => {
            let parts: Vec<&str> = ["name", "address"]
                .iter()
                .filter_map(|k| non_empty(payload, k))
                .collect();
            if parts.is_empty() {
                match (
                    payload.get("latitude").and_then(Value::as_f64),
                    payload.get("longitude").and_then(Value::as_f64),
                ) {
                    (Some(lat), Some(lon)) => Some(format!("{lat},{lon}")),
                    _ => None,
                }
            } else {
                Some(parts.join(", "))
            }
        }
        "contacts" => {
            let names: Vec<&str> = payload
                .as_array()
                .map(Vec::as_slice)
                .unwrap_or_default()
                .iter()
                .filter_map(|c| c.get("name").and_then(|n| non_empty(n, "formatted_name")))
                .collect();
            (!names.is_empty()).then(|| names.join(", "))
        }
        _ => None,
    };
    text.or_else(|| {
        ["body", "text", "caption", "title"]
            .iter()
            .find_map(|k| non_empty(payload, k))
            .map(str::to_owned)
    })
}

fn decode_status(status: &Value) -> Option<StatusUpdate> {
    let Some(id) = provider_id(status) else {
        tracing::warn!("webhook status without a usable message id skipped");
        return None;
    };
    let name = str_field(status, "status").unwrap_or_default();
    let status_kind = match name {
        "sent" => MessageStatus::Sent,
        "delivered" => MessageStatus::Delivered,
        "read" => MessageStatus::Read,
        "failed" => MessageStatus::Failed,
        _ => {
            tracing::debug!(
                provider_message_id = id,
                status = name,
                "webhook status of an unknown kind skipped"
            );
            return None;
        }
    };
    let error = (status_kind == MessageStatus::Failed).then(|| status_error(status));
    Some(StatusUpdate {
        provider_message_id: id.to_owned(),
        status: status_kind,
        timestamp: timestamp(status.get("timestamp")),
        error,
        echoed_message_id: str_field(status, "biz_opaque_callback_data")
            .and_then(|s| s.trim().parse().ok()),
    })
}

/// The error of a `failed` status: `errors[0]`'s code, and its message,
/// title or details.
fn status_error(status: &Value) -> DeliveryError {
    let Some(first) = array(status, "errors").first() else {
        return DeliveryError {
            code: None,
            message: "the provider reported the message as failed".to_owned(),
        };
    };
    let code = match first.get("code") {
        Some(Value::Number(n)) => Some(n.to_string()),
        Some(Value::String(s)) if !s.is_empty() => Some(s.clone()),
        _ => None,
    };
    let message = non_empty(first, "message")
        .or_else(|| non_empty(first, "title"))
        .or_else(|| {
            first
                .get("error_data")
                .and_then(|d| non_empty(d, "details"))
        })
        .map_or_else(
            || "the provider reported the message as failed".to_owned(),
            str::to_owned,
        );
    DeliveryError { code, message }
}

/// Unix seconds, as a string (Meta's form) or a number; "now" otherwise,
/// and for a time outside 1970 to 9999, which PostgreSQL might not hold
/// (storing it would fail the whole delivery on every redelivery).
fn timestamp(value: Option<&Value>) -> DateTime<Utc> {
    const LAST_SECOND_OF_9999: i64 = 253_402_300_799;
    let seconds = match value {
        Some(Value::String(s)) => s.trim().parse::<i64>().ok(),
        Some(Value::Number(n)) => n.as_i64(),
        _ => None,
    };
    seconds
        .filter(|s| (0..=LAST_SECOND_OF_9999).contains(s))
        .and_then(|s| DateTime::from_timestamp(s, 0))
        .unwrap_or_else(|| {
            tracing::warn!("webhook item without a valid timestamp: using the current time");
            Utc::now()
        })
}

fn array<'a>(value: &'a Value, key: &str) -> &'a [Value] {
    value
        .get(key)
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default()
}

fn str_field<'a>(value: &'a Value, key: &str) -> Option<&'a str> {
    value.get(key).and_then(Value::as_str)
}

fn non_empty<'a>(value: &'a Value, key: &str) -> Option<&'a str> {
    str_field(value, key).filter(|s| !s.trim().is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps() {
        let t = timestamp(Some(&Value::String("1700000000".into())));
        assert_eq!(t.timestamp(), 1_700_000_000);
        let t = timestamp(Some(&serde_json::json!(1_700_000_001)));
        assert_eq!(t.timestamp(), 1_700_000_001);
        let before = Utc::now();
        assert!(timestamp(Some(&Value::String("soon".into()))) >= before);
        assert!(timestamp(None) >= before);
        for out_of_range in ["-1000000000000", "253402300800", "99999999999999"] {
            assert!(
                timestamp(Some(&Value::String(out_of_range.into()))) >= before,
                "{out_of_range}"
            );
        }
    }

    #[test]
    fn an_id_too_long_to_index_is_skipped() {
        let status = |id: &str| {
            decode_status(&serde_json::json!({
                "id": id, "status": "read", "timestamp": "1700000000"
            }))
        };
        assert!(status(&"w".repeat(MAX_PROVIDER_ID_BYTES)).is_some());
        assert!(status(&"w".repeat(3000)).is_none());
        let message = |id: &str| {
            decode_message(
                &serde_json::json!({
                    "id": id, "from": "6281234567890", "timestamp": "1700000000",
                    "type": "text", "text": {"body": "hi"}
                }),
                &[],
            )
        };
        assert!(message("wamid.ok").is_some());
        assert!(message(&"w".repeat(3000)).is_none());
    }

    #[test]
    fn secret_eq_accepts_only_the_exact_secret() {
        assert!(secret_eq(b"verify-me", b"verify-me"));
        assert!(!secret_eq(b"verify-mE", b"verify-me"));
        assert!(!secret_eq(b"verify", b"verify-me"), "a prefix");
        assert!(!secret_eq(b"verify-me-too", b"verify-me"), "longer");
        assert!(!secret_eq(b"verify-meverify-me", b"verify-me"), "repeated");
        assert!(!secret_eq(b"", b"verify-me"));
        assert!(!secret_eq(b"", b""), "an empty secret matches nothing");
    }

    #[test]
    fn empty_app_secret_never_verifies() {
        let mut mac = Hmac::<Sha256>::new_from_slice(b"").expect("any key length");
        mac.update(b"{}");
        let sig = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
        assert!(!verify_signature("", b"{}", Some(&sig)));
    }

    #[test]
    fn failed_without_errors_still_has_an_error() {
        let s = decode_status(&serde_json::json!({
            "id": "wamid.F", "status": "failed", "timestamp": "1700000000"
        }))
        .expect("kept");
        assert_eq!(s.status, MessageStatus::Failed);
        assert!(s.error.is_some_and(|e| e.code.is_none()));
    }
}
