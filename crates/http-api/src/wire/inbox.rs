//! The inbox's query parameters, conversations and the answers of its
//! endpoints.

use chrono::{DateTime, Utc};
use maveraa_domain::JID_SUFFIX;
use maveraa_domain::messaging::{Conversation, ConversationQuery, SessionName};
use serde::Serialize;

use super::messages::MessageBody;
use crate::error::ApiError;
use crate::json_writer;
use crate::query;
use crate::timefmt::Rfc3339;

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

/// The answer to `GET /api/public/inbox/conversations`, written by hand:
/// it is among the API's largest.
pub fn conversation_list_json(list: &[Conversation]) -> Vec<u8> {
    let mut body = Vec::with_capacity(32 + list.len() * 192);
    body.extend_from_slice(b"{");
    json_writer::key(&mut body, "conversations");
    json_writer::array(&mut body, list, write_conversation);
    body.push(b'}');
    body
}

/// A page of a conversation's messages, newest first.
#[derive(Debug, Serialize)]
pub struct MessageList<'a> {
    /// The messages, without their histories.
    pub messages: Vec<MessageBody<'a>>,
}

/// The answer to marking a conversation read.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ReadBody<'a> {
    /// The contact's JID.
    pub remote_jid: String,
    /// The session's name.
    pub session_id: &'a str,
    /// Always 0: everything is read now.
    pub unread_count: u32,
    /// Why the provider's read receipt failed, if it did; the read is kept.
    #[serde(skip_serializing_if = "Option::is_none")]
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
        ] {
            let err = InboxQuery::parse(query).expect_err(query);
            assert_eq!(err.field(), Some(field), "{query}");
            assert_eq!(err.status().as_u16(), 400);
        }
    }
}
