//! `POST /api/public/inbox/send`, `GET /api/public/messages/{messageId}`,
//! and retries of failed messages.

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use maveraa_domain::MessageId;
use maveraa_domain::messaging::SessionName;

use crate::error::ApiError;
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
