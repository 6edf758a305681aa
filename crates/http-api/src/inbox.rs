//! `/api/public/inbox/conversations`: conversations, their messages, and
//! marking them read.

use actix_web::{HttpRequest, HttpResponse, web};
use chrono::{DateTime, Utc};
use maveraa_domain::JID_SUFFIX;
use maveraa_domain::messaging::{Conversation, ConversationQuery, SessionName, WaId};
use serde::Serialize;

use crate::error::ApiError;
use crate::extract::Authenticated;
use crate::messages::MessageBody;
use crate::{ApiState, json_writer, path_param, query, timefmt};

/// The query parameters of the inbox endpoints: `sessionId`, `limit`
/// (default 50, 1 to 500) and `before` (an RFC 3339 timestamp; the next
/// page starts below the last item's `timestamp`/`createdAt`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InboxQuery {
    /// Only this session's; a blank `sessionId=` counts as absent.
    pub session: Option<SessionName>,
    /// Only items older than this.
    pub before: Option<DateTime<Utc>>,
    /// Page size.
    pub limit: u32,
}

impl InboxQuery {
    /// Reads the parameters from a query string; others are ignored.
    ///
    /// # Errors
    /// `400 validation_failed` on `sessionId`, `limit` or `before`.
    pub fn parse(query_string: &str) -> Result<Self, ApiError> {
        let mut out = Self {
            session: None,
            before: None,
            limit: ConversationQuery::DEFAULT_LIMIT,
        };
        for (key, value) in query::pairs(query_string)? {
            match key.as_str() {
                "sessionId" if value.trim().is_empty() => out.session = None,
                "sessionId" => out.session = Some(SessionName::parse("sessionId", &value)?),
                "limit" => out.limit = query::limit(&value, ConversationQuery::MAX_LIMIT)?,
                "before" => out.before = Some(query::timestamp("before", &value)?),
                _ => {}
            }
        }
        Ok(out)
    }

    /// The session, for the endpoints that require one.
    ///
    /// # Errors
    /// `400 validation_failed` on `sessionId` when it is absent.
    pub fn required_session(&self) -> Result<&SessionName, ApiError> {
        self.session.as_ref().ok_or_else(|| {
            ApiError::validation("sessionId", "sessionId is required in the query string")
        })
    }
}

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

/// Appends a conversation as the reference shows it on the wire, plus
/// `sessionId`: `{"remoteJid", "pushName", "lastMessage", "unreadCount",
/// "timestamp", "sessionId"}`.
fn write_conversation(out: &mut Vec<u8>, c: &Conversation) {
    out.push(b'{');
    json_writer::key(out, "remoteJid");
    // Digits and a fixed suffix: nothing to escape.
    out.push(b'"');
    out.extend_from_slice(c.remote.as_str().as_bytes());
    out.extend_from_slice(JID_SUFFIX.as_bytes());
    out.extend_from_slice(b"\",");
    json_writer::key(out, "pushName");
    match &c.push_name {
        Some(name) => json_writer::string(out, name),
        None => out.extend_from_slice(b"null"),
    }
    out.push(b',');
    json_writer::key(out, "lastMessage");
    json_writer::string(out, &c.last_message);
    out.push(b',');
    json_writer::key(out, "unreadCount");
    json_writer::uint(out, u64::from(c.unread_count));
    out.push(b',');
    json_writer::key(out, "timestamp");
    json_writer::string(out, timefmt::Rfc3339::micros(&c.last_message_at).as_str());
    out.push(b',');
    json_writer::key(out, "sessionId");
    json_writer::string(out, c.session_name.as_str());
    out.push(b'}');
}

#[derive(Debug, Serialize)]
struct MessageList<'a> {
    messages: Vec<MessageBody<'a>>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct ReadBody<'a> {
    remote_jid: String,
    session_id: &'a str,
    unread_count: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    provider_error: Option<String>,
}

/// `GET /api/public/inbox/conversations[?sessionId=&limit=&before=]`,
/// newest first.
pub async fn conversations(
    auth: Authenticated,
    state: web::Data<ApiState>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let q = InboxQuery::parse(req.query_string())?;
    let list = state
        .inbox
        .conversations(auth.0.workspace_id, q.session.as_ref(), q.before, q.limit)
        .await?;
    let mut body = Vec::with_capacity(32 + list.len() * 192);
    body.extend_from_slice(b"{");
    json_writer::key(&mut body, "conversations");
    json_writer::array(&mut body, &list, write_conversation);
    body.push(b'}');
    Ok(json_writer::response(HttpResponse::Ok(), body))
}

/// `GET /api/public/inbox/conversations/{remoteJid}/messages?sessionId=`,
/// newest first.
pub async fn messages(
    auth: Authenticated,
    state: web::Data<ApiState>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let remote = remote(&req)?;
    let q = InboxQuery::parse(req.query_string())?;
    let list = state
        .inbox
        .conversation_messages(
            auth.0.workspace_id,
            q.required_session()?,
            &remote,
            q.before,
            q.limit,
        )
        .await?;
    Ok(HttpResponse::Ok().json(MessageList {
        messages: list.iter().map(MessageBody::listed).collect(),
    }))
}

/// `POST /api/public/inbox/conversations/{remoteJid}/read?sessionId=`. The
/// read is kept even when the provider's read receipt fails; that failure
/// is reported in `providerError`.
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire_time;

    #[test]
    fn defaults() {
        let q = InboxQuery::parse("").expect("valid");
        assert_eq!(q.session, None);
        assert_eq!(q.before, None);
        assert_eq!(q.limit, ConversationQuery::DEFAULT_LIMIT);
        assert_eq!(
            q.required_session().expect_err("absent").field(),
            Some("sessionId")
        );
        assert_eq!(
            InboxQuery::parse("sessionId=").expect("valid").session,
            None
        );
    }

    #[test]
    fn parameters() {
        let q = InboxQuery::parse(
            "sessionId=session-123&limit=500&before=2023-10-01T12%3A05%3A00.000Z&x=1",
        )
        .expect("valid");
        assert_eq!(
            q.session.as_ref().map(SessionName::as_str),
            Some("session-123")
        );
        assert_eq!(q.limit, 500);
        assert_eq!(
            q.before.map(|b| wire_time(&b)).as_deref(),
            Some("2023-10-01T12:05:00.000000Z")
        );
        assert_eq!(
            q.required_session().map(SessionName::as_str).ok(),
            Some("session-123")
        );
    }

    #[test]
    fn bad_parameters_are_named() {
        for (query, field) in [
            ("limit=0", "limit"),
            ("limit=501", "limit"),
            ("limit=x", "limit"),
            ("before=2023-10-01", "before"),
            ("sessionId=a%20b", "sessionId"),
        ] {
            let err = InboxQuery::parse(query).expect_err(query);
            assert_eq!(err.field(), Some(field), "{query}");
            assert_eq!(err.status().as_u16(), 400);
        }
    }
}
