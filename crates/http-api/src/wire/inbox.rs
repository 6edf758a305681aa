//! The inbox's query parameters, conversations and the answers of its
//! endpoints.

use chrono::{DateTime, Utc};
use maveraa_domain::messaging::{Conversation, ConversationQuery, SessionName, WaId};
use maveraa_domain::{ConversationKey, JID_SUFFIX, MessageId, PageStart};
use serde::Serialize;

use super::messages::MessageBody;
use crate::cursor::{self, Scope};
use crate::error::ApiError;
use crate::json_writer;
use crate::query;
use crate::timefmt::Rfc3339;

/// The query parameters of the inbox endpoints: `sessionId`, `limit`
/// (default 50, 1 to 500), and where the page starts: `after` (the cursor
/// a list answered in `next`) or `before` (an RFC 3339 timestamp; the next
/// page starts below the last item's `timestamp`/`createdAt`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InboxQuery {
    /// Only this session's; a blank `sessionId=` counts as absent.
    pub session: Option<SessionName>,
    /// Only items older than this.
    pub before: Option<DateTime<Utc>>,
    /// The cursor to start after, as sent; read by
    /// [`InboxQuery::conversations_start`] or
    /// [`InboxQuery::messages_start`], which know its list.
    pub after: Option<String>,
    /// Page size.
    pub limit: u32,
}

impl InboxQuery {
    /// Reads the parameters from a query string (others were refused by
    /// the route's `QueryParams`).
    ///
    /// # Errors
    /// `400 validation_failed` on `sessionId`, `limit` or `before`.
    pub fn parse(query_string: &str) -> Result<Self, ApiError> {
        let mut out = Self {
            session: None,
            before: None,
            after: None,
            limit: ConversationQuery::DEFAULT_LIMIT,
        };
        for (key, value) in query::pairs(query_string)? {
            match key.as_str() {
                "sessionId" if value.trim().is_empty() => out.session = None,
                "sessionId" => out.session = Some(SessionName::parse("sessionId", &value)?),
                "limit" => out.limit = query::limit(&value, ConversationQuery::MAX_LIMIT)?,
                "before" => out.before = Some(query::timestamp("before", &value)?),
                // Blank counts as absent, as for `sessionId`.
                "after" if value.trim().is_empty() => out.after = None,
                "after" => out.after = Some(value),
                _ => {}
            }
        }
        if out.after.is_some() && out.before.is_some() {
            return Err(ApiError::validation(
                cursor::FIELD,
                "after cannot be combined with before: page with one or the other",
            ));
        }
        Ok(out)
    }

    /// The scope of the conversation list's cursors.
    pub(crate) fn conversations_scope(&self) -> Scope {
        Scope::conversations(self.session.as_ref())
    }

    /// Where a page of the conversation list starts.
    ///
    /// # Errors
    /// `400 validation_failed` on `after` when it is not a cursor of the
    /// conversation list with this `sessionId`.
    pub fn conversations_start(&self) -> Result<PageStart<ConversationKey>, ApiError> {
        Ok(match (&self.after, self.before) {
            (Some(after), _) => {
                PageStart::After(self.conversations_scope().decode_conversation(after)?)
            }
            (None, Some(before)) => PageStart::Before(before),
            (None, None) => PageStart::Newest,
        })
    }

    /// Where a page of the messages with `remote` through `session` starts.
    ///
    /// # Errors
    /// `400 validation_failed` on `after` when it is not a cursor of this
    /// conversation's messages.
    pub fn messages_start(
        &self,
        session: &SessionName,
        remote: &WaId,
    ) -> Result<PageStart<MessageId>, ApiError> {
        Ok(match (&self.after, self.before) {
            (Some(after), _) => {
                PageStart::After(Scope::messages(session, remote).decode_message(after)?)
            }
            (None, Some(before)) => PageStart::Before(before),
            (None, None) => PageStart::Newest,
        })
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
    json_writer::string(out, Rfc3339::micros(&c.last_message_at).as_str());
    out.push(b',');
    json_writer::key(out, "sessionId");
    json_writer::string(out, c.session_name.as_str());
    out.push(b'}');
}

/// A conversation as [`write_conversation`] writes it, for the OpenAPI
/// document only.
#[derive(Debug, utoipa::ToSchema)]
#[schema(
    as = Conversation,
    rename_all = "camelCase",
    description = "A conversation: the last message with a contact through a session."
)]
#[expect(
    dead_code,
    reason = "documentation only: describes `write_conversation`'s JSON"
)]
pub(crate) struct ConversationDoc {
    /// The contact's JID.
    #[schema(example = "6289876543210@s.whatsapp.net")]
    remote_jid: String,
    /// The contact's WhatsApp profile name, when known.
    #[schema(example = "Jane Smith")]
    push_name: Option<String>,
    /// The last message's text (or type).
    #[schema(example = "Hello there!")]
    last_message: String,
    /// Inbound messages not marked read.
    #[schema(example = 2)]
    unread_count: u32,
    /// When the last message was stored (RFC 3339, UTC, microseconds):
    /// the list's order, and a `before` for the next page.
    #[schema(format = DateTime, example = "2026-12-06T02:20:45.295230Z")]
    timestamp: String,
    /// The session's name.
    #[schema(example = "session-123")]
    session_id: String,
}

/// The answer to `GET /api/public/inbox/conversations` as
/// [`conversation_list_json`] writes it, for the OpenAPI document only.
#[derive(Debug, utoipa::ToSchema)]
#[schema(as = ConversationList, description = "A page of conversations.")]
#[expect(
    dead_code,
    reason = "documentation only: describes `conversation_list_json`'s JSON"
)]
pub(crate) struct ConversationListDoc {
    /// Newest first.
    conversations: Vec<ConversationDoc>,
    /// The cursor of the next page (send it as `after`); `null` on the last.
    next: Option<String>,
}

/// The answer to `GET /api/public/inbox/conversations`, written by hand:
/// it is among the API's largest. `next` is the cursor of the next page,
/// `None` (`null`) on the last.
pub fn conversation_list_json(list: &[Conversation], next: Option<&str>) -> Vec<u8> {
    let mut body = Vec::with_capacity(64 + list.len() * 192);
    body.extend_from_slice(b"{");
    json_writer::key(&mut body, "conversations");
    json_writer::array(&mut body, list, write_conversation);
    body.push(b',');
    json_writer::key(&mut body, "next");
    match next {
        Some(next) => json_writer::string(&mut body, next),
        None => body.extend_from_slice(b"null"),
    }
    body.push(b'}');
    body
}

/// A page of a conversation's messages, newest first.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = MessagePage)]
pub struct MessageList<'a> {
    /// The messages, without their histories.
    pub messages: Vec<MessageBody<'a>>,
    /// The cursor of the next page; `null` on the last.
    pub next: Option<String>,
}

/// The answer to marking a conversation read.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = ConversationRead)]
pub struct ReadBody<'a> {
    /// The contact's JID.
    pub remote_jid: String,
    /// The session's name.
    pub session_id: &'a str,
    /// Always 0: everything is read now.
    pub unread_count: u32,
    /// Why the provider's read receipt failed, if it did; the read is kept.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub provider_error: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

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
            q.before.map(|b| crate::wire::time(&b)).as_deref(),
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
            ("after=x&before=2023-10-01T12%3A05%3A00Z", "after"),
        ] {
            let err = InboxQuery::parse(query).expect_err(query);
            assert_eq!(err.field(), Some(field), "{query}");
            assert_eq!(err.status().as_u16(), 400);
        }
    }
}
