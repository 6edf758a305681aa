//! Meta's WhatsApp Cloud API adapter of the
//! [`WhatsAppTransport`] port.
//!
//! Messages go out as `POST {base_url}/{phone_number_id}/messages` with a
//! `Bearer` access token; read receipts use the same endpoint with
//! `"status": "read"`.
//!
//! # Error mapping
//! - connection failures (nothing was sent) → [`TransportError::Unreachable`];
//! - a request written and then no answer we can use — a timeout, a
//!   connection broken mid-exchange, a 2xx whose body cannot be read or has
//!   no `messages[0].id` → [`TransportError::OutcomeUnknown`]: Meta may
//!   have taken the message;
//! - HTTP `429` and `5xx` → [`TransportError::Retryable`], with
//!   `retry_after` taken from a `Retry-After` header in seconds (the
//!   HTTP-date form is ignored) and Meta's error message kept in `reason`;
//! - any other non-2xx → [`TransportError::Permanent`] with Meta's error
//!   `code` (as a string, e.g. `"131030"`) and `message`, or — when the body
//!   is not Meta's error shape — the HTTP status and the body text
//!   truncated to 500 characters;
//!
//! # Our message id
//! A send carries our message id as `biz_opaque_callback_data`, which Meta
//! echoes in the status webhooks of the message
//! ([`crate::webhook`] reads it back), so a send whose outcome was unknown
//! is settled by its first status instead of being sent again.
//!
//! # TLS
//! HTTPS uses rustls through reqwest's `rustls-tls` feature, which in
//! reqwest 0.12 means the `ring` crypto provider and the bundled
//! `webpki-roots` trust anchors: no `aws-lc-sys`, no cmake, no system
//! OpenSSL, and no dependency on the host's certificate store.
//!
//! # Secrets
//! The access token is sent only in the `Authorization` header (marked
//! sensitive) and never appears in `Debug` output, errors or logs.

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use maveraa_domain::transport::{
    OutboundContent, OutboundMessage, TransportError, WhatsAppTransport,
};
use reqwest::StatusCode;
use reqwest::header::{HeaderMap, RETRY_AFTER};
use serde::Deserialize;
use serde_json::{Map, Value, json};

/// The Graph API base URL used when none is configured.
pub const DEFAULT_BASE_URL: &str = "https://graph.facebook.com/v21.0";

/// How many characters of an unexpected response body are kept in an error.
const MAX_BODY_CHARS: usize = 500;

/// Settings of the HTTP client used to reach the Cloud API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CloudApiConfig {
    /// The Graph API base URL, version included
    /// (default `https://graph.facebook.com/v21.0`).
    pub base_url: String,
    /// The longest a whole request may take, answer included (default 10 s).
    pub request_timeout: Duration,
    /// The longest establishing a connection may take (default 5 s).
    pub connect_timeout: Duration,
}

impl Default for CloudApiConfig {
    fn default() -> Self {
        Self {
            base_url: DEFAULT_BASE_URL.to_owned(),
            request_timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(5),
        }
    }
}

/// Why the Cloud API adapter could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TransportBuildError {
    /// The HTTP client could not be built (e.g. the TLS backend failed to
    /// initialise).
    #[error("could not build the HTTP client")]
    HttpClient(#[source] reqwest::Error),
}

/// Builds an HTTP client with the timeouts of `cfg`, suitable for
/// [`CloudApiTransport::new`].
///
/// # Errors
/// [`TransportBuildError::HttpClient`] when reqwest cannot build the client.
pub fn build_http_client(cfg: &CloudApiConfig) -> Result<reqwest::Client, TransportBuildError> {
    reqwest::Client::builder()
        .timeout(cfg.request_timeout)
        .connect_timeout(cfg.connect_timeout)
        .user_agent(concat!("maveraa/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(TransportBuildError::HttpClient)
}

/// Sends messages through one WhatsApp Business phone number of Meta's
/// Cloud API.
#[derive(Clone)]
pub struct CloudApiTransport {
    client: reqwest::Client,
    base_url: String,
    phone_number_id: String,
    access_token: String,
}

impl fmt::Debug for CloudApiTransport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CloudApiTransport")
            .field("base_url", &self.base_url)
            .field("phone_number_id", &self.phone_number_id)
            .field("access_token", &"<redacted>")
            .finish_non_exhaustive()
    }
}

impl CloudApiTransport {
    /// An adapter for the phone number `phone_number_id` (Meta's id of the
    /// number, not the number itself), authenticated with `access_token`.
    ///
    /// `base_url` is the Graph API root with its version, e.g.
    /// [`DEFAULT_BASE_URL`]; a trailing `/` is ignored. Build `client` with
    /// [`build_http_client`] to get sensible timeouts.
    pub fn new(
        client: reqwest::Client,
        base_url: &str,
        phone_number_id: String,
        access_token: String,
    ) -> Self {
        Self {
            client,
            base_url: base_url.trim_end_matches('/').to_owned(),
            phone_number_id,
            access_token,
        }
    }

    /// Builds the HTTP client from `cfg` (see [`build_http_client`]) and an
    /// adapter on `cfg.base_url`.
    ///
    /// # Errors
    /// As [`build_http_client`].
    pub fn from_config(
        cfg: &CloudApiConfig,
        phone_number_id: String,
        access_token: String,
    ) -> Result<Self, TransportBuildError> {
        let client = build_http_client(cfg)?;
        Ok(Self::new(
            client,
            &cfg.base_url,
            phone_number_id,
            access_token,
        ))
    }

    fn messages_url(&self) -> String {
        format!("{}/{}/messages", self.base_url, self.phone_number_id)
    }

    /// Posts `body` to the messages endpoint and returns the body of a 2xx
    /// answer, or the mapped error.
    async fn post_messages(&self, body: &Value) -> Result<Vec<u8>, TransportError> {
        let response = self
            .client
            .post(self.messages_url())
            .bearer_auth(&self.access_token)
            .json(body)
            .send()
            .await
            .map_err(|e| {
                let err = map_request_error(e);
                tracing::warn!(phone_number_id = %self.phone_number_id, error = %err, "WhatsApp Cloud API unreachable");
                err
            })?;

        let status = response.status();
        let headers = response.headers().clone();
        let bytes = match response.bytes().await {
            Ok(bytes) => bytes,
            // The provider answered 2xx: it took the request, but we cannot
            // tell what it said.
            Err(e) if status.is_success() => {
                return Err(TransportError::OutcomeUnknown {
                    reason: format!(
                        "provider answered HTTP {status} but its body could not be read: {}",
                        error_chain(&e)
                    ),
                });
            }
            // An error status says enough without its body.
            Err(_) => Default::default(),
        };

        if status.is_success() {
            Ok(bytes.to_vec())
        } else {
            let err = map_status_error(status, &headers, &bytes);
            tracing::warn!(
                phone_number_id = %self.phone_number_id,
                status = status.as_u16(),
                error = %err,
                "WhatsApp Cloud API refused a request"
            );
            Err(err)
        }
    }
}

#[async_trait]
impl WhatsAppTransport for CloudApiTransport {
    async fn send(&self, message: &OutboundMessage) -> Result<String, TransportError> {
        let body = message_body(message);
        let bytes = self.post_messages(&body).await?;
        let id = parse_message_id(&bytes)?;
        tracing::debug!(
            phone_number_id = %self.phone_number_id,
            provider_message_id = %id,
            "WhatsApp Cloud API accepted a message"
        );
        Ok(id)
    }

    async fn mark_read(
        &self,
        provider_message_id: &str,
        _: &maveraa_domain::messaging::WaId,
    ) -> Result<(), TransportError> {
        let body = json!({
            "messaging_product": "whatsapp",
            "status": "read",
            "message_id": provider_message_id,
        });
        self.post_messages(&body).await.map(|_| ())
    }
}

/// The JSON body of a send request for `message`.
fn message_body(message: &OutboundMessage) -> Value {
    let mut body = Map::new();
    body.insert("messaging_product".into(), "whatsapp".into());
    body.insert("recipient_type".into(), "individual".into());
    body.insert("to".into(), message.to.as_str().into());
    if let Some(id) = message.message_id {
        body.insert("biz_opaque_callback_data".into(), id.to_string().into());
    }
    match &message.content {
        OutboundContent::Text { body: text } => {
            body.insert("type".into(), "text".into());
            body.insert("text".into(), json!({ "body": text.as_str() }));
        }
        OutboundContent::Media(content) => {
            let kind = content.kind();
            let mut media = Map::new();
            media.insert("link".into(), content.url().as_str().into());
            // Only what the kind shows: OutboundMedia holds nothing else.
            if let Some(caption) = content.caption() {
                media.insert("caption".into(), caption.as_str().into());
            }
            if let Some(file_name) = content.file_name() {
                media.insert("filename".into(), file_name.as_str().into());
            }
            body.insert("type".into(), kind.as_str().into());
            body.insert(kind.as_str().into(), Value::Object(media));
        }
    }
    Value::Object(body)
}

/// The success answer of a send: `{"messages":[{"id":"wamid..."}], ...}`.
#[derive(Deserialize)]
struct SendResponse {
    messages: Vec<SentMessage>,
}

#[derive(Deserialize)]
struct SentMessage {
    id: String,
}

/// Extracts `messages[0].id` from a 2xx send answer; without it, the
/// outcome is unknown (a 2xx says Meta took the request).
fn parse_message_id(bytes: &[u8]) -> Result<String, TransportError> {
    serde_json::from_slice::<SendResponse>(bytes)
        .ok()
        .and_then(|r| r.messages.into_iter().next())
        .map(|m| m.id)
        .filter(|id| !id.is_empty())
        .ok_or_else(|| TransportError::OutcomeUnknown {
            reason: format!(
                "malformed provider response: no messages[0].id in {}",
                body_excerpt(bytes)
            ),
        })
}

/// Meta's error answer: `{"error":{"message":..,"code":..,..}}`.
#[derive(Deserialize)]
struct MetaErrorEnvelope {
    error: MetaError,
}

#[derive(Deserialize)]
struct MetaError {
    message: String,
    code: Option<i64>,
}

/// Maps a failure to get an answer at all.
fn map_request_error(err: reqwest::Error) -> TransportError {
    if err.is_builder() {
        // A request we cannot even build (e.g. an invalid base URL) will not
        // get better by retrying.
        return TransportError::Permanent {
            code: None,
            message: format!("invalid request: {}", error_chain(&err)),
        };
    }
    // A failed connection sent nothing; any other failure may come after
    // the request was written, so the provider may have it.
    if err.is_connect() {
        return TransportError::Unreachable {
            reason: format!("connection failed: {}", error_chain(&err)),
        };
    }
    let what = if err.is_timeout() {
        "request timed out"
    } else {
        "request failed"
    };
    TransportError::OutcomeUnknown {
        reason: format!("{what}: {}", error_chain(&err)),
    }
}

/// Maps a non-2xx answer.
fn map_status_error(status: StatusCode, headers: &HeaderMap, body: &[u8]) -> TransportError {
    let meta = serde_json::from_slice::<MetaErrorEnvelope>(body)
        .ok()
        .map(|e| e.error);
    if status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error() {
        let detail = match &meta {
            Some(meta) => meta.message.clone(),
            None => body_excerpt(body),
        };
        let reason = if detail.is_empty() {
            format!("provider answered HTTP {status}")
        } else {
            format!("provider answered HTTP {status}: {detail}")
        };
        TransportError::Retryable {
            reason,
            retry_after: retry_after(headers),
        }
    } else {
        let (code, message) = match meta {
            Some(meta) => (
                meta.code
                    .map_or_else(|| status.as_u16().to_string(), |c| c.to_string()),
                meta.message,
            ),
            None => {
                let text = body_excerpt(body);
                let message = if text.is_empty() {
                    format!("provider answered HTTP {status}")
                } else {
                    text
                };
                (status.as_u16().to_string(), message)
            }
        };
        if status == StatusCode::UNAUTHORIZED || code == INVALID_ACCESS_TOKEN {
            TransportError::CredentialsRefused {
                code: Some(code),
                message,
            }
        } else {
            TransportError::Permanent {
                code: Some(code),
                message,
            }
        }
    }
}

/// Meta's error code for an access token that is invalid or expired.
const INVALID_ACCESS_TOKEN: &str = "190";

/// The `Retry-After` header in its seconds form.
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    headers
        .get(RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse::<u64>()
        .ok()
        .map(Duration::from_secs)
}

/// A body as text, trimmed and cut to [`MAX_BODY_CHARS`] characters.
fn body_excerpt(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    let mut chars = text.char_indices();
    match chars.nth(MAX_BODY_CHARS) {
        Some((end, _)) => text[..end].to_owned(),
        None => text.to_owned(),
    }
}

/// An error with its sources, `: `-separated.
fn error_chain(err: &dyn std::error::Error) -> String {
    let mut out = err.to_string();
    let mut source = err.source();
    while let Some(s) = source {
        let s_text = s.to_string();
        if !out.contains(&s_text) {
            out.push_str(": ");
            out.push_str(&s_text);
        }
        source = s.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use maveraa_domain::PhoneNumber;
    use maveraa_domain::messaging::{Caption, FileName, MediaUrl, OutboundMedia};
    use maveraa_domain::transport::MediaKind;

    const TOKEN: &str = "EAAGsecret-token-value";

    #[test]
    fn debug_does_not_show_the_access_token() {
        let transport = CloudApiTransport::new(
            reqwest::Client::new(),
            DEFAULT_BASE_URL,
            "1234567890".to_owned(),
            TOKEN.to_owned(),
        );
        let debug = format!("{transport:?}");
        assert!(!debug.contains(TOKEN), "{debug}");
        assert!(!debug.contains("EAAG"), "{debug}");
        assert!(debug.contains("<redacted>"), "{debug}");
        assert!(debug.contains("1234567890"), "{debug}");
        let pretty = format!("{transport:#?}");
        assert!(!pretty.contains(TOKEN), "{pretty}");
    }

    #[test]
    fn default_config() {
        let cfg = CloudApiConfig::default();
        assert_eq!(cfg.base_url, "https://graph.facebook.com/v21.0");
        assert_eq!(cfg.request_timeout, Duration::from_secs(10));
        assert_eq!(cfg.connect_timeout, Duration::from_secs(5));
        build_http_client(&cfg).expect("client builds");
    }

    #[test]
    fn trailing_slash_of_base_url_is_ignored() {
        let transport = CloudApiTransport::new(
            reqwest::Client::new(),
            "http://localhost:1/v21.0/",
            "42".to_owned(),
            TOKEN.to_owned(),
        );
        assert_eq!(
            transport.messages_url(),
            "http://localhost:1/v21.0/42/messages"
        );
    }

    #[test]
    fn video_keeps_caption_but_drops_file_name() {
        let message = OutboundMessage {
            to: PhoneNumber::from_trusted("6289876543210".to_owned()),
            // A file name parsed for a document, to show a video drops it.
            content: OutboundContent::Media(OutboundMedia::new(
                MediaKind::Video,
                MediaUrl::parse("url", "https://cdn.example.com/v.mp4").expect("url"),
                Caption::parse("caption", MediaKind::Video, "clip").expect("caption"),
                FileName::parse("fileName", MediaKind::Document, "v.mp4").expect("name"),
            )),
            message_id: None,
        };
        assert_eq!(
            message_body(&message),
            json!({
                "messaging_product": "whatsapp",
                "recipient_type": "individual",
                "to": "6289876543210",
                "type": "video",
                "video": {"link": "https://cdn.example.com/v.mp4", "caption": "clip"}
            })
        );
    }

    #[test]
    fn retry_after_seconds_only() {
        let mut headers = HeaderMap::new();
        assert_eq!(retry_after(&headers), None);
        headers.insert(RETRY_AFTER, " 12 ".parse().expect("header"));
        assert_eq!(retry_after(&headers), Some(Duration::from_secs(12)));
        headers.insert(
            RETRY_AFTER,
            "Wed, 21 Oct 2015 07:28:00 GMT".parse().expect("header"),
        );
        assert_eq!(retry_after(&headers), None);
    }

    #[test]
    fn body_excerpt_is_cut_at_500_characters() {
        let long = "é".repeat(600);
        let excerpt = body_excerpt(long.as_bytes());
        assert_eq!(excerpt.chars().count(), MAX_BODY_CHARS);
        assert_eq!(body_excerpt(b"  short "), "short");
    }

    #[test]
    fn meta_error_without_code_falls_back_to_status() {
        let err = map_status_error(
            StatusCode::FORBIDDEN,
            &HeaderMap::new(),
            br#"{"error":{"message":"nope"}}"#,
        );
        assert_eq!(
            err,
            TransportError::Permanent {
                code: Some("403".to_owned()),
                message: "nope".to_owned()
            }
        );
    }

    #[test]
    fn non_meta_error_body_falls_back_to_status_and_text() {
        let err = map_status_error(
            StatusCode::NOT_FOUND,
            &HeaderMap::new(),
            b"<html>gone</html>",
        );
        assert_eq!(
            err,
            TransportError::Permanent {
                code: Some("404".to_owned()),
                message: "<html>gone</html>".to_owned()
            }
        );
    }
}
