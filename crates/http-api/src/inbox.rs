//! `/api/public/inbox/conversations`: conversations, their messages, and
//! marking them read.

use actix_web::{HttpRequest, HttpResponse, web};
use maveraa_domain::messaging::WaId;

use crate::cursor::Scope;
use crate::error::{ApiError, ErrorBody};
use crate::extract::Authenticated;
use crate::json_writer;
use crate::wire::inbox::{
    ConversationListDoc, InboxQuery, MessageList, ReadBody, conversation_list_json,
};
use crate::wire::messages::MessageBody;
use crate::{ApiState, path_param};

/// The conversation's contact from the path: digits or a JID.
fn remote(req: &HttpRequest) -> Result<WaId, ApiError> {
    let raw = path_param(req, "remoteJid");
    // actix leaves `%2B` encoded in paths (a `+` may be meaningful there).
    let raw = raw
        .strip_prefix("%2B")
        .or_else(|| raw.strip_prefix("%2b"))
        .unwrap_or(raw);
    Ok(WaId::parse("remoteJid", raw)?)
}

/// `GET /api/public/inbox/conversations[?sessionId=&limit=&before=|after=]`,
/// newest first, with the cursor of the next page in `next`.
#[utoipa::path(
    get,
    path = "/api/public/inbox/conversations",
    tag = "Inbox",
    operation_id = "listConversations",
    summary = "List conversations",
    description = "Newest first, a page at a time: send `next` back as `after` (with the same \
        `sessionId`) for the following page.",
    params(
        ("sessionId" = Option<String>, Query, description = "Only this session's"),
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 500, description = "Page size, 1 to 500 (50 by default)"),
        ("after" = Option<String>, Query, description = "The `next` of the previous page (not with `before`)"),
        ("before" = Option<String>, Query, format = DateTime, description = "Only items older than this RFC 3339 time (not with `after`)"),
    ),
    responses(
        (status = 200, description = "A page of conversations", body = ConversationListDoc),
        (status = 404, description = "`session_not_found`", body = ErrorBody),
    )
)]
pub async fn conversations(
    auth: Authenticated,
    state: web::Data<ApiState>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let q = InboxQuery::parse(req.query_string())?;
    let page = state
        .inbox
        .conversations(
            auth.0.workspace_id,
            q.session.as_ref(),
            q.conversations_start()?,
            q.limit,
        )
        .await?;
    let next = page
        .next
        .as_ref()
        .map(|p| q.conversations_scope().encode_conversation(p));
    Ok(json_writer::response(
        HttpResponse::Ok(),
        conversation_list_json(&page.items, next.as_deref()),
    ))
}

/// `GET /api/public/inbox/conversations/{remoteJid}/messages?sessionId=`,
/// newest first, with the cursor of the next page in `next`.
#[utoipa::path(
    get,
    path = "/api/public/inbox/conversations/{remoteJid}/messages",
    tag = "Inbox",
    operation_id = "listConversationMessages",
    summary = "A conversation's messages",
    description = "Newest first, without their status histories, a page at a time: send `next` \
        back as `after` (with the same `sessionId`) for the following page.",
    params(
        ("remoteJid" = String, Path, description = "The contact: digits with the country code, or a JID (`628...@s.whatsapp.net`)", example = "6289876543210"),
        ("sessionId" = String, Query, description = "The conversation's session", example = "session-123"),
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 500, description = "Page size, 1 to 500 (50 by default)"),
        ("after" = Option<String>, Query, description = "The `next` of the previous page (not with `before`)"),
        ("before" = Option<String>, Query, format = DateTime, description = "Only items older than this RFC 3339 time (not with `after`)"),
    ),
    responses(
        (status = 200, description = "A page of messages", body = MessageList),
        (status = 404, description = "`session_not_found`", body = ErrorBody),
    )
)]
pub async fn messages(
    auth: Authenticated,
    state: web::Data<ApiState>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let remote = remote(&req)?;
    let q = InboxQuery::parse(req.query_string())?;
    let session = q.required_session()?;
    let page = state
        .inbox
        .conversation_messages(
            auth.0.workspace_id,
            session,
            &remote,
            q.messages_start(session, &remote)?,
            q.limit,
        )
        .await?;
    let next = page
        .next
        .as_ref()
        .map(|p| Scope::messages(session, &remote).encode_message(p));
    Ok(HttpResponse::Ok().json(MessageList {
        messages: page.items.iter().map(MessageBody::listed).collect(),
        next,
    }))
}

/// `POST /api/public/inbox/conversations/{remoteJid}/read?sessionId=`. The
/// read is kept even when the provider's read receipt fails; that failure
/// is reported in `providerError`.
#[utoipa::path(
    post,
    path = "/api/public/inbox/conversations/{remoteJid}/read",
    tag = "Inbox",
    operation_id = "markConversationRead",
    summary = "Mark a conversation read",
    description = "Its unread count turns 0; for a Cloud API session the last inbound message \
        is marked read at Meta too (a failure there is reported in `providerError`; the read is kept).",
    params(
        ("remoteJid" = String, Path, description = "The contact: digits with the country code, or a JID (`628...@s.whatsapp.net`)", example = "6289876543210"),
        ("sessionId" = String, Query, description = "The conversation's session", example = "session-123"),
    ),
    responses(
        (status = 200, description = "Read", body = ReadBody),
        (status = 404, description = "`session_not_found`, or `conversation_not_found`", body = ErrorBody),
    )
)]
pub async fn mark_read(
    auth: Authenticated,
    state: web::Data<ApiState>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let remote = remote(&req)?;
    let q = InboxQuery::parse(req.query_string())?;
    let session = q.required_session()?;
    let provider_error = state
        .inbox
        .mark_read(auth.0.workspace_id, session, &remote)
        .await?;
    Ok(HttpResponse::Ok().json(ReadBody {
        remote_jid: remote.to_jid(),
        session_id: session.as_str(),
        unread_count: 0,
        provider_error,
    }))
}
