//! `/webhooks/whatsapp/{uuid}`: Meta's Cloud API verification handshake and
//! deliveries. No API key: the path names the session, and deliveries are
//! authenticated by their HMAC signature over the raw body.

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use maveraa_domain::{InboxError, SessionId};

use crate::error::ApiError;
use crate::extract::RawBody;
use crate::{ApiState, path_param, query};

/// The header Meta signs deliveries in: `sha256=<hex HMAC of the body>`.
pub const SIGNATURE_HEADER: &str = "X-Hub-Signature-256";

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

/// `GET /webhooks/whatsapp/{uuid}?hub.mode=subscribe&hub.verify_token=..&hub.challenge=..`:
/// answers the challenge as plain text when the token is the session's.
pub async fn verify(
    state: web::Data<ApiState>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let id = session(&req)?;
    let (mut mode, mut token, mut challenge) = (None, None, None);
    for (key, value) in query::pairs(req.query_string())? {
        match key.as_str() {
            "hub.mode" => mode = Some(value),
            "hub.verify_token" => token = Some(value),
            "hub.challenge" => challenge = Some(value),
            _ => {}
        }
    }
    let challenge = state
        .inbox
        .verify_webhook(id, mode.as_deref(), token.as_deref(), challenge.as_deref())
        .await
        .map_err(|e| webhook_error(id, e))?;
    Ok(HttpResponse::Ok()
        .content_type("text/plain; charset=utf-8")
        // The body echoes caller input: never let a browser sniff it as HTML.
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .body(challenge))
}

/// `POST /webhooks/whatsapp/{uuid}`: checks the signature over the exact
/// bytes received and stores the delivery. Answers `200 {"received": N}`;
/// any other answer makes Meta deliver again later.
pub async fn receive(
    state: web::Data<ApiState>,
    req: HttpRequest,
    body: RawBody,
) -> Result<HttpResponse, ApiError> {
    let id = session(&req)?;
    let signature = req
        .headers()
        .get(SIGNATURE_HEADER)
        .and_then(|v| v.to_str().ok());
    let received = state
        .inbox
        .handle_webhook(id, signature, &body.0)
        .await
        .map_err(|e| webhook_error(id, e))?;
    Ok(HttpResponse::Ok().json(serde_json::json!({ "received": received })))
}
