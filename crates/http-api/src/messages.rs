//! `POST /api/public/inbox/send`, `GET /api/public/messages/{messageId}`,
//! its received media, and retries of failed messages.

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, mime, web};
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
    let id = message_id(&req)?;
    let message = state.messaging.get(auth.0.workspace_id, id).await?;
    Ok(HttpResponse::Ok().json(MessageBody::from(&message)))
}

/// `GET /api/public/messages/{messageId}/media`: the file of a received
/// media message, fetched from the provider that keeps it (any server can
/// answer: no session connection is needed). Always an attachment, never
/// sniffed or run by a browser, whatever the sender called its type.
#[utoipa::path(
    get,
    path = "/api/public/messages/{messageId}/media",
    tag = "Messages",
    operation_id = "getMessageMedia",
    summary = "The file of a received media message",
    description = "Fetched from the session's provider, which keeps received media for a limited time (WhatsApp's media hosts for weeks, the Cloud API for 30 days): fetch it when `message.received` arrives if you need it later. Limited to `whatsapp_web.media_max_mb` (16 MB by default).",
    params(("messageId" = String, Path, description = "The message's id", example = "01a24927-596f-7727-9c8e-65b3d9bd2057")),
    responses(
        (status = 200, description = "The file, with its MIME type as `Content-Type`", content_type = "application/octet-stream", body = Vec<u8>),
        (status = 404, description = "`not_found`: no such message in your workspace; `media_not_found`: not a received media message", body = ErrorBody),
        (status = 410, description = "`media_gone`: the provider no longer has it", body = ErrorBody),
        (status = 502, description = "`media_unavailable`: the provider could not be reached (try again); `media_too_large`", body = ErrorBody),
    )
)]
pub async fn media(
    auth: Authenticated,
    state: web::Data<ApiState>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let id = message_id(&req)?;
    let (message, file) = state.messaging.media(auth.0.workspace_id, id).await?;
    Ok(media_response(&message, file))
}

/// The path's `messageId`: one that is not one of ours is simply not
/// found.
fn message_id(req: &HttpRequest) -> Result<MessageId, ApiError> {
    path_param(req, "messageId")
        .parse()
        .map_err(|_| ApiError::not_found("message"))
}

/// A received file as a download: its type as the provider gave it, but
/// always an attachment, never sniffed, sandboxed if opened.
pub(crate) fn media_response(
    message: &maveraa_domain::messaging::Message,
    file: maveraa_domain::ports::MediaFile,
) -> HttpResponse {
    let declared = match &message.content {
        maveraa_domain::messaging::MessageContent::Media(m) => m.file_name.clone(),
        _ => None,
    };
    let mime = file
        .mime_type
        .as_deref()
        .and_then(|m| m.parse::<mime::Mime>().ok())
        .unwrap_or(mime::APPLICATION_OCTET_STREAM);
    let name = attachment_name(declared.as_deref(), &message.id.to_string(), &mime);
    HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, mime.to_string()))
        .insert_header((
            header::CONTENT_DISPOSITION,
            format!("attachment; filename=\"{name}\""),
        ))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .insert_header((header::CONTENT_SECURITY_POLICY, "sandbox"))
        .insert_header((header::CACHE_CONTROL, "private, no-store"))
        .body(file.bytes)
}

/// A safe file name for the download: the sender's (documents), or the
/// message id with the type's extension; anything but letters, digits,
/// dots, dashes and underscores becomes `_`.
fn attachment_name(declared: Option<&str>, id: &str, mime: &mime::Mime) -> String {
    let name = match declared {
        Some(n) if !n.trim().is_empty() => n.trim().to_owned(),
        _ => {
            let ext = match mime.subtype().as_str() {
                "jpeg" => "jpg",
                "mpeg" if mime.type_() == mime::AUDIO => "mp3",
                "octet-stream" => "bin",
                other => other,
            };
            format!("{id}.{ext}")
        }
    };
    let cleaned: String = name
        .chars()
        .take(200)
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_') {
                c
            } else {
                '_'
            }
        })
        .collect();
    let cleaned = cleaned.trim_start_matches('.').to_owned();
    if cleaned.is_empty() {
        format!("{id}.bin")
    } else {
        cleaned
    }
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
    let id = message_id(&req)?;
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

#[cfg(test)]
mod tests {
    use actix_web::mime;

    use super::attachment_name;

    #[test]
    fn download_names_are_safe() {
        let png: mime::Mime = "image/png".parse().expect("mime");
        let jpeg: mime::Mime = "image/jpeg".parse().expect("mime");
        let opus: mime::Mime = "audio/ogg; codecs=opus".parse().expect("mime");
        assert_eq!(attachment_name(None, "m1", &png), "m1.png");
        assert_eq!(attachment_name(Some(" "), "m1", &jpeg), "m1.jpg");
        assert_eq!(attachment_name(None, "m1", &opus), "m1.ogg");
        assert_eq!(
            attachment_name(Some("Invoice \"May\".pdf"), "m1", &png),
            "Invoice__May_.pdf"
        );
        assert_eq!(
            attachment_name(Some("../../etc/passwd"), "m1", &png),
            "_.._etc_passwd"
        );
        assert_eq!(attachment_name(Some("..."), "m1", &png), "m1.bin");
    }
}
