//! `POST /api/public/inbox/send`, `GET /api/public/messages/{messageId}`,
//! and retries of failed messages.

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use maveraa_domain::MessageId;
use maveraa_domain::messaging::SessionName;

use crate::error::{ApiError, ErrorBody};
use crate::extract::{ApiJson, Authenticated};
use crate::wire::messages::{
    Accepted, IDEMPOTENT_REPLAYED_HEADER, MessageBody, Requeued, SendRequest, idempotency_key,
    retry_filter,
};
use crate::{ApiState, path_param};

/// `POST /api/public/inbox/send`: queues the message durably and answers
/// `202`; a dispatcher sends it. With an `Idempotency-Key` seen before for
/// the same request, answers the first message again, with
/// `Idempotent-Replayed: true`.
#[utoipa::path(
    post,
    path = "/api/public/inbox/send",
    tag = "Messages",
    operation_id = "sendMessage",
    summary = "Send a text or media message",
    description = "Queues the message durably and answers `202`; it is sent even if the server \
        stops. With an `Idempotency-Key` seen before for the same body (24 hours), answers the \
        first message again with `Idempotent-Replayed: true` and sends nothing more.",
    params(
        ("Idempotency-Key" = Option<String>, Header, max_length = 255,
            description = "1 to 255 printable ASCII characters, e.g. a UUID: makes the send safe to retry"),
    ),
    request_body = SendRequest,
    responses(
        (status = 202, description = "Queued", body = Accepted,
            headers(
                ("Location" = String, description = "The message's path"),
                ("Idempotent-Replayed" = String, description = "`true` when this repeats an earlier send's answer"),
            )),
        (status = 404, description = "`session_not_found`", body = ErrorBody),
        (status = 409, description = "`idempotency_key_reused`: the key came earlier with another body", body = ErrorBody),
    )
)]
pub async fn send(
    auth: Authenticated,
    state: web::Data<ApiState>,
    req: HttpRequest,
    body: ApiJson<SendRequest>,
) -> Result<HttpResponse, ApiError> {
    let key = idempotency_key(req.headers())?;
    let request = body.0.try_into_domain()?;
    let outcome = state
        .messaging
        .send(auth.0.workspace_id, request, key)
        .await?;
    let m = &outcome.message;
    let mut res = HttpResponse::Accepted();
    res.insert_header((header::LOCATION, format!("/api/public/messages/{}", m.id)));
    if outcome.replayed {
        res.insert_header((IDEMPOTENT_REPLAYED_HEADER, "true"));
    }
    Ok(res.json(Accepted::new(m)))
}

/// `GET /api/public/messages/{messageId}`: the message with its status
/// history. An id that is not one of ours is simply not found.
#[utoipa::path(
    get,
    path = "/api/public/messages/{messageId}",
    tag = "Messages",
    operation_id = "getMessage",
    summary = "One message, with its status history",
    params(("messageId" = String, Path, description = "The message's id", example = "01a24927-596f-7727-9c8e-65b3d9bd2057")),
    responses(
        (status = 200, description = "The message", body = MessageBody),
        (status = 404, description = "`not_found`: no such message in your workspace", body = ErrorBody),
    )
)]
pub async fn get(
    auth: Authenticated,
    state: web::Data<ApiState>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let id: MessageId = path_param(&req, "messageId")
        .parse()
        .map_err(|_| ApiError::not_found("message"))?;
    let message = state.messaging.get(auth.0.workspace_id, id).await?;
    Ok(HttpResponse::Ok().json(MessageBody::from(&message)))
}

/// `POST /api/public/messages/{messageId}/retry`: queues a failed message
/// again and answers `202` with it (`queued`). Only a message no provider
/// took can be retried; any other answers `409 message_not_retryable`, so a
/// retry never reaches a recipient twice.
#[utoipa::path(
    post,
    path = "/api/public/messages/{messageId}/retry",
    tag = "Messages",
    operation_id = "retryMessage",
    summary = "Queue a failed message again",
    description = "Only a message no provider took can be retried, so a retry never reaches a \
        recipient twice.",
    params(("messageId" = String, Path, description = "The message's id", example = "01a24927-596f-7727-9c8e-65b3d9bd2057")),
    responses(
        (status = 202, description = "Queued again", body = MessageBody,
            headers(("Location" = String, description = "The message's path"))),
        (status = 404, description = "`not_found`: no such message in your workspace", body = ErrorBody),
        (status = 409, description = "`message_not_retryable`: not failed, or a provider took it", body = ErrorBody),
    )
)]
pub async fn retry(
    auth: Authenticated,
    state: web::Data<ApiState>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let id: MessageId = path_param(&req, "messageId")
        .parse()
        .map_err(|_| ApiError::not_found("message"))?;
    let message = state.messaging.retry(auth.0.workspace_id, id).await?;
    Ok(HttpResponse::Accepted()
        .insert_header((
            header::LOCATION,
            format!("/api/public/messages/{}", message.id),
        ))
        .json(MessageBody::from(&message)))
}

/// `POST /api/public/sessions/{sessionId}/messages/retry[?errorCode=..]`:
/// queues again the session's failed messages no provider took (only those
/// failed with `errorCode` when given, such as `190` once the session's
/// access token is renewed). Answers `202 {"requeued": N}`.
#[utoipa::path(
    post,
    path = "/api/public/sessions/{sessionId}/messages/retry",
    tag = "Messages",
    operation_id = "retryFailedMessages",
    summary = "Queue a session's failed messages again",
    description = "Every failed message of the session that no provider took, or only those \
        failed with `errorCode` (`190` once the session's access token is renewed, say).",
    params(
        ("sessionId" = String, Path, description = "The session's name", example = "session-123"),
        ("errorCode" = Option<String>, Query, min_length = 1, max_length = 64,
            description = "Only the messages failed with this provider error code", example = "190"),
    ),
    responses(
        (status = 202, description = "How many were queued again", body = Requeued),
        (status = 404, description = "`session_not_found`", body = ErrorBody),
    )
)]
pub async fn retry_failed(
    auth: Authenticated,
    state: web::Data<ApiState>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let session = SessionName::parse("sessionId", path_param(&req, "sessionId"))?;
    let error_code = retry_filter(req.query_string())?;
    let requeued = state
        .messaging
        .retry_failed(auth.0.workspace_id, &session, error_code.as_deref())
        .await?;
    Ok(HttpResponse::Accepted().json(Requeued { requeued }))
}
