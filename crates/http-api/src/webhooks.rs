//! `/webhooks/whatsapp/{uuid}`: where providers that report by webhook
//! (Meta's Cloud API) call us. No API key: the path names the session, and
//! the session's provider authenticates its own requests (a signature over
//! the raw body, a verify token). This module only turns HTTP into a
//! [`WebhookRequest`] and the inbox's answer back into HTTP; it parses no
//! provider's format.

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use maveraa_domain::ports::WebhookRequest;
use maveraa_domain::{InboxError, SessionId};

use crate::error::ApiError;
use crate::extract::RawBody;
use crate::{ApiState, path_param, query};

/// The request's headers whose values are text.
fn headers(req: &HttpRequest) -> Vec<(&str, &str)> {
    req.headers()
        .iter()
        .filter_map(|(name, value)| Some((name.as_str(), value.to_str().ok()?)))
        .collect()
}

/// The session from the path. Malformed, unknown and simulator sessions
/// all answer the same `404`, so the path reveals nothing.
fn session(req: &HttpRequest) -> Result<SessionId, ApiError> {
    path_param(req, "sessionUuid")
        .parse()
        .map_err(|_| ApiError::not_found("webhook"))
}

fn webhook_error(session: SessionId, e: InboxError) -> ApiError {
    match e {
        InboxError::SessionNotFound => ApiError::not_found("webhook"),
        // Meta shows our answer to no one: the log is where a wrong app
        // secret or a changed payload format shows up.
        InboxError::BadSignature
        | InboxError::MalformedWebhook(_)
        | InboxError::VerificationRefused => {
            tracing::warn!(%session, error = %e, "webhook refused");
            e.into()
        }
        e => e.into(),
    }
}

/// `GET /webhooks/whatsapp/{uuid}`: the provider's subscription handshake
/// (Meta: `?hub.mode=subscribe&hub.verify_token=..&hub.challenge=..`);
/// answers the provider's expected body as plain text.
pub async fn verify(
    state: web::Data<ApiState>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let id = session(&req)?;
    let query = query::pairs(req.query_string())?;
    let headers = headers(&req);
    let request = WebhookRequest {
        query: &query,
        headers: &headers,
        body: &[],
    };
    let answer = state
        .inbox
        .webhook_handshake(id, &request)
        .await
        .map_err(|e| webhook_error(id, e))?;
    Ok(HttpResponse::Ok()
        .content_type("text/plain; charset=utf-8")
        // The body echoes caller input: never let a browser sniff it as HTML.
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .body(answer))
}

/// `POST /webhooks/whatsapp/{uuid}`: first has the inbox resolve the
/// session and its provider check the headers, so an unknown session or an
/// unsigned request is refused before its body is read; then hands the
/// exact bytes received, with the headers, to the inbox, which has the
/// provider check and decode them. Answers `200 {"received": N}`; any other
/// answer makes the provider deliver again later.
pub async fn receive(
    state: web::Data<ApiState>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let id = session(&req)?;
    let headers = headers(&req);
    let intake = state
        .inbox
        .webhook_intake(id, &headers)
        .await
        .map_err(|e| webhook_error(id, e))?;
    let body = RawBody::read(&req, payload).await?;
    let request = WebhookRequest {
        query: &[],
        headers: &headers,
        body: &body.0,
    };
    let received = state
        .inbox
        .webhook_delivery(intake, &request)
        .await
        .map_err(|e| webhook_error(id, e))?;
    Ok(HttpResponse::Ok().json(serde_json::json!({ "received": received })))
}
