//! The API's one error shape. Every 4xx and 5xx body is
//! `{"error": {"code": "...", "message": "...", "field": "..."}}`; `field`
//! appears when one input field is at fault. A 5xx never carries internals:
//! the cause goes to the log, with the request id.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use maveraa_domain::ports::MediaError;
use maveraa_domain::{
    AuthError, ContactError, InboxError, MessagingError, RepositoryError, SessionError,
    ValidationError,
};
use serde::Serialize;

/// An error answered to an API caller.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{status} {code}: {message}")]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
    field: Option<String>,
    existing_id: Option<String>,
    /// Seconds for `Retry-After` (a 503 says 1 without it).
    retry_after: Option<u64>,
}

/// Every error answer's body; its schema is the OpenAPI document's `Error`.
#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = Error, description = "Every 4xx and 5xx answer's body.")]
pub(crate) struct Envelope<'a> {
    error: Body<'a>,
}

/// The error shape, for the `body` of an error answer in a handler's
/// `#[utoipa::path]`.
pub(crate) type ErrorBody = Envelope<'static>;

#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = ErrorDetail, description = "What went wrong.")]
struct Body<'a> {
    /// Stable and machine-readable: `validation_failed`, `not_found`...
    #[schema(example = "validation_failed")]
    code: &'a str,
    /// What is wrong, for a person; may change between versions.
    #[schema(example = "phone is too short")]
    message: &'a str,
    /// The input at fault (a body field such as `media.url`, a query
    /// parameter, or a header such as `Idempotency-Key`), when one is.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false, example = "phone")]
    field: Option<&'a str>,
    /// `409 duplicate_contact` only: the `_id` of the contact that has the phone.
    #[serde(rename = "existingId", skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    existing_id: Option<&'a str>,
}

impl ApiError {
    /// An error with `status`, a stable machine-readable `code` and a message.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            field: None,
            existing_id: None,
            retry_after: None,
        }
    }

    /// `429 rate_limited`: the key's rate is spent for now; try again in
    /// `retry_after` seconds.
    pub fn rate_limited(retry_after: u64) -> Self {
        Self {
            retry_after: Some(retry_after),
            ..Self::new(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                format!(
                    "this API key's request rate is spent; retry in {retry_after} s (RateLimit-* headers tell its limit)"
                ),
            )
        }
    }

    /// Names the input field at fault.
    pub fn with_field(mut self, field: impl Into<String>) -> Self {
        self.field = Some(field.into());
        self
    }

    /// `400 validation_failed` on `field`.
    pub fn validation(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "validation_failed", message).with_field(field)
    }

    /// `404 not_found`.
    pub fn not_found(what: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("{what} not found"),
        )
    }

    /// `500 internal_error`, logging `cause` (never returned).
    pub fn internal(cause: &dyn std::fmt::Display) -> Self {
        tracing::error!(%cause, "internal error");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal_error",
            "internal server error; the request id in the X-Request-Id header identifies it in the server's log",
        )
    }

    /// `503 service_unavailable`, logging `cause` (never returned).
    pub fn unavailable(cause: &dyn std::fmt::Display) -> Self {
        tracing::warn!(%cause, "service unavailable");
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "service_unavailable",
            "the service is temporarily unavailable; retry shortly",
        )
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The machine-readable code.
    pub fn code(&self) -> &'static str {
        self.code
    }

    /// The input field at fault, if one is.
    pub fn field(&self) -> Option<&str> {
        self.field.as_deref()
    }

    /// `404 session_not_found`: no session of this name in the caller's
    /// workspace (another workspace's sessions are not found either).
    pub fn session_not_found() -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "session_not_found",
            "no session with this sessionId in your workspace",
        )
        .with_field("sessionId")
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    fn error_response(&self) -> HttpResponse {
        let mut res = HttpResponse::build(self.status);
        if let Some(secs) = self.retry_after {
            res.insert_header(("Retry-After", secs.to_string()));
        } else if self.status == StatusCode::SERVICE_UNAVAILABLE {
            res.insert_header(("Retry-After", "1"));
        }
        // HTTP asks a 401 to say how to authenticate.
        if matches!(self.code, "missing_api_key" | "invalid_api_key") {
            res.insert_header(("WWW-Authenticate", "Bearer realm=\"maveraa\""));
        }
        res.json(Envelope {
            error: Body {
                code: self.code,
                message: &self.message,
                field: self.field.as_deref(),
                existing_id: self.existing_id.as_deref(),
            },
        })
    }
}

impl From<ValidationError> for ApiError {
    fn from(e: ValidationError) -> Self {
        let message = format!("{} {}", e.field, e.message);
        Self::validation(e.field, message)
    }
}

impl From<RepositoryError> for ApiError {
    fn from(e: RepositoryError) -> Self {
        match e {
            RepositoryError::Unavailable(_) => Self::unavailable(&e),
            _ => Self::internal(&e),
        }
    }
}

impl From<ContactError> for ApiError {
    fn from(e: ContactError) -> Self {
        match e {
            ContactError::Validation(v) => v.into(),
            ContactError::NotFound => Self::not_found("contact"),
            ContactError::Duplicate { existing } => Self {
                existing_id: Some(existing.to_string()),
                ..Self::new(
                    StatusCode::CONFLICT,
                    "duplicate_contact",
                    format!("a contact with this phone number already exists: {existing}"),
                )
                .with_field("phone")
            },
            ContactError::Repository(r) => r.into(),
        }
    }
}

impl From<maveraa_domain::usecases::EventError> for ApiError {
    fn from(e: maveraa_domain::usecases::EventError) -> Self {
        match e {
            maveraa_domain::usecases::EventError::Validation(v) => v.into(),
            maveraa_domain::usecases::EventError::Repository(r) => r.into(),
        }
    }
}

impl From<AuthError> for ApiError {
    fn from(e: AuthError) -> Self {
        match e {
            AuthError::Missing => Self::new(
                StatusCode::UNAUTHORIZED,
                "missing_api_key",
                "send your API key in the X-API-Key header",
            ),
            AuthError::Invalid => Self::new(
                StatusCode::UNAUTHORIZED,
                "invalid_api_key",
                "the API key is invalid or has been revoked",
            ),
            AuthError::Repository(r) => r.into(),
        }
    }
}

impl From<SessionError> for ApiError {
    fn from(e: SessionError) -> Self {
        match e {
            SessionError::Validation(v) => v.into(),
            SessionError::NotFound => Self::session_not_found(),
            SessionError::Duplicate => Self::new(
                StatusCode::CONFLICT,
                "duplicate_session",
                "a session with this sessionId already exists in your workspace",
            )
            .with_field("sessionId"),
            // The key's workspace was deleted while the request ran.
            SessionError::WorkspaceNotFound => Self::not_found("workspace"),
            SessionError::WrongState(why) => Self::new(StatusCode::CONFLICT, "session_state", why),
            SessionError::Repository(r) => r.into(),
        }
    }
}

impl From<MessagingError> for ApiError {
    fn from(e: MessagingError) -> Self {
        match e {
            MessagingError::Validation(v) => v.into(),
            MessagingError::SessionNotFound => Self::session_not_found(),
            MessagingError::NotFound => Self::not_found("message"),
            MessagingError::IdempotencyConflict => Self::new(
                StatusCode::CONFLICT,
                "idempotency_key_reused",
                "this Idempotency-Key was already used with a different request; use a new key for a new message",
            )
            .with_field("Idempotency-Key"),
            MessagingError::NotRetryable => Self::new(
                StatusCode::CONFLICT,
                "message_not_retryable",
                "only a failed message that no provider took can be retried; send a message the provider reported failed again as a new message",
            ),
            MessagingError::NoMedia => Self::new(
                StatusCode::NOT_FOUND,
                "media_not_found",
                "this message has no received media to fetch (media you sent is at its media.url)",
            ),
            MessagingError::Media(MediaError::Gone { reason }) => Self::new(
                StatusCode::GONE,
                "media_gone",
                format!("the provider no longer gives this media: {reason}"),
            ),
            MessagingError::Media(MediaError::TooLarge { limit_bytes }) => Self::new(
                StatusCode::BAD_GATEWAY,
                "media_too_large",
                format!(
                    "the media is larger than this server fetches ({} MB: whatsapp_web.media_max_mb)",
                    limit_bytes / 1_000_000
                ),
            ),
            MessagingError::Media(MediaError::Unavailable { reason }) => {
                tracing::warn!(reason = %reason, "media not fetched from its provider");
                Self::new(
                    StatusCode::BAD_GATEWAY,
                    "media_unavailable",
                    "the provider could not be reached for this media; try again later",
                )
            }
            MessagingError::Repository(r) => r.into(),
        }
    }
}

impl From<InboxError> for ApiError {
    fn from(e: InboxError) -> Self {
        match e {
            InboxError::Validation(v) => v.into(),
            InboxError::SessionNotFound => Self::session_not_found(),
            InboxError::ConversationNotFound => Self::new(
                StatusCode::NOT_FOUND,
                "conversation_not_found",
                "no conversation with this remoteJid in this session",
            ),
            // The only use case that answers it is simulate_inbound.
            InboxError::WrongProvider => Self::new(
                StatusCode::CONFLICT,
                "not_a_simulator_session",
                "only simulator sessions accept simulated messages",
            ),
            InboxError::BadSignature => Self::new(
                StatusCode::UNAUTHORIZED,
                "invalid_signature",
                "the X-Hub-Signature-256 header is missing or does not match the body",
            ),
            InboxError::VerificationRefused => Self::new(
                StatusCode::FORBIDDEN,
                "forbidden",
                "webhook verification refused: wrong hub.mode or hub.verify_token, or no hub.challenge",
            ),
            InboxError::MalformedWebhook(why) => Self::new(
                StatusCode::BAD_REQUEST,
                "malformed_webhook",
                format!("the webhook body is not a delivery we understand: {why}"),
            ),
            InboxError::Repository(r) => r.into(),
        }
    }
}

impl From<maveraa_domain::WebhookError> for ApiError {
    fn from(e: maveraa_domain::WebhookError) -> Self {
        use maveraa_domain::WebhookError;
        match e {
            WebhookError::Validation(v) => v.into(),
            WebhookError::NotFound => Self::not_found("webhook endpoint or delivery"),
            WebhookError::TooMany(n) => Self::new(
                StatusCode::CONFLICT,
                "too_many_webhooks",
                format!("a workspace may have at most {n} webhook endpoints; delete one first"),
            ),
            WebhookError::EventExpired => Self::new(
                StatusCode::GONE,
                "event_expired",
                "the event of this delivery is past the event log's retention; \
                 there is nothing to redeliver",
            ),
            WebhookError::Repository(r) => r.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::body::to_bytes;

    #[actix_web::test]
    async fn internal_errors_hide_the_cause() {
        let err: ApiError =
            RepositoryError::Internal("password authentication failed for user x".into()).into();
        let body = to_bytes(err.error_response().into_body())
            .await
            .expect("body");
        let text = String::from_utf8_lossy(&body);
        assert!(text.contains("internal_error"));
        assert!(!text.contains("password"));
    }

    fn shape(e: impl Into<ApiError>) -> (u16, &'static str, Option<String>) {
        let e = e.into();
        (e.status().as_u16(), e.code(), e.field().map(str::to_owned))
    }

    #[test]
    fn session_errors() {
        assert_eq!(
            shape(SessionError::NotFound),
            (404, "session_not_found", Some("sessionId".into()))
        );
        assert_eq!(shape(SessionError::Duplicate).0, 409);
        assert_eq!(
            shape(SessionError::Repository(RepositoryError::Unavailable(
                "x".into()
            )))
            .0,
            503
        );
    }

    #[test]
    fn messaging_errors() {
        assert_eq!(
            shape(MessagingError::SessionNotFound),
            (404, "session_not_found", Some("sessionId".into()))
        );
        assert_eq!(
            shape(MessagingError::IdempotencyConflict),
            (
                409,
                "idempotency_key_reused",
                Some("Idempotency-Key".into())
            )
        );
        assert_eq!(shape(MessagingError::NotFound), (404, "not_found", None));
        assert_eq!(
            shape(MessagingError::Validation(ValidationError::new(
                "message",
                "is too long"
            ))),
            (400, "validation_failed", Some("message".into()))
        );
        assert_eq!(
            shape(MessagingError::Repository(RepositoryError::Internal(
                "x".into()
            )))
            .0,
            500
        );
    }

    #[test]
    fn inbox_errors() {
        for (err, status, code) in [
            (InboxError::SessionNotFound, 404, "session_not_found"),
            (
                InboxError::ConversationNotFound,
                404,
                "conversation_not_found",
            ),
            (InboxError::WrongProvider, 409, "not_a_simulator_session"),
            (InboxError::BadSignature, 401, "invalid_signature"),
            (InboxError::VerificationRefused, 403, "forbidden"),
            (
                InboxError::MalformedWebhook("no entry".into()),
                400,
                "malformed_webhook",
            ),
            (
                InboxError::Repository(RepositoryError::Unavailable("pool".into())),
                503,
                "service_unavailable",
            ),
        ] {
            let (s, c, _) = shape(err);
            assert_eq!((s, c), (status, code));
        }
    }

    #[actix_web::test]
    async fn unavailable_storage_asks_for_a_retry() {
        let err: ApiError =
            InboxError::Repository(RepositoryError::Unavailable("pool timed out".into())).into();
        let res = err.error_response();
        assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert!(res.headers().contains_key("Retry-After"));
        let body = to_bytes(res.into_body()).await.expect("body");
        assert!(!String::from_utf8_lossy(&body).contains("pool"));
    }
}
