//! A message's row: the columns it is read from and decoded into a
//! [`Message`], the columns its content is stored in, and its status
//! history.

use std::sync::LazyLock;

use chrono::{DateTime, Utc};
use diesel::pg::{Pg, PgConnection};
use diesel::prelude::*;
use diesel::sql_types::{Jsonb, Nullable, Text, Timestamptz, Uuid as SqlUuid};
use maveraa_domain::messaging::{
    DeliveryError, Direction, MediaInfo, Message, MessageContent, SessionName, StatusChange, WaId,
};
use maveraa_domain::transport::MediaKind;
use maveraa_domain::{MessageId, SessionId, WorkspaceId};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::error::StorageError;
use crate::messages::status::parse_status;
use crate::schema::message_status_history;
use crate::sql::Sql;

/// The columns [`MessageRow`] reads, from `messages m`. The session's name
/// comes by its key: a join with `sessions` planned (once, as a generic
/// plan) while that table was tiny scans all of it.
pub(crate) const MESSAGE_COLUMNS: &str = "m.id, m.workspace_id, m.session_id, \
     (SELECT sn.name FROM sessions sn WHERE sn.id = m.session_id) AS session_name, \
     m.remote, m.direction, m.type AS kind, m.body, m.media, m.status, m.provider_message_id, \
     m.error_code, m.error_message, m.provider_timestamp, m.created_at, m.updated_at";

/// A message read by raw SQL (see [`MESSAGE_COLUMNS`]).
#[derive(Debug, QueryableByName)]
pub(crate) struct MessageRow {
    #[diesel(sql_type = SqlUuid)]
    pub(crate) id: Uuid,
    #[diesel(sql_type = SqlUuid)]
    pub(crate) workspace_id: Uuid,
    #[diesel(sql_type = SqlUuid)]
    pub(crate) session_id: Uuid,
    #[diesel(sql_type = Text)]
    pub(crate) session_name: String,
    #[diesel(sql_type = Text)]
    pub(crate) remote: String,
    #[diesel(sql_type = Text)]
    pub(crate) direction: String,
    #[diesel(sql_type = Text)]
    pub(crate) kind: String,
    #[diesel(sql_type = Nullable<Text>)]
    pub(crate) body: Option<String>,
    #[diesel(sql_type = Nullable<Jsonb>)]
    pub(crate) media: Option<serde_json::Value>,
    #[diesel(sql_type = Text)]
    pub(crate) status: String,
    #[diesel(sql_type = Nullable<Text>)]
    pub(crate) provider_message_id: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    pub(crate) error_code: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    pub(crate) error_message: Option<String>,
    #[diesel(sql_type = Nullable<Timestamptz>)]
    pub(crate) provider_timestamp: Option<DateTime<Utc>>,
    #[diesel(sql_type = Timestamptz)]
    pub(crate) created_at: DateTime<Utc>,
    #[diesel(sql_type = Timestamptz)]
    pub(crate) updated_at: DateTime<Utc>,
}

impl TryFrom<MessageRow> for Message {
    type Error = StorageError;

    fn try_from(r: MessageRow) -> Result<Self, Self::Error> {
        Ok(Self {
            id: MessageId::from_uuid(r.id),
            workspace_id: WorkspaceId::from_uuid(r.workspace_id),
            session_id: SessionId::from_uuid(r.session_id),
            session_name: SessionName::from_trusted(r.session_name),
            remote: WaId::from_trusted(r.remote),
            direction: Direction::parse(&r.direction).ok_or_else(|| {
                StorageError::Corrupt(format!("unknown direction {:?}", r.direction))
            })?,
            content: decode_content(r.kind, r.body, r.media)?,
            status: parse_status(&r.status)?,
            provider_message_id: r.provider_message_id,
            error: message_error(r.error_code, r.error_message),
            provider_timestamp: r.provider_timestamp,
            created_at: r.created_at,
            updated_at: r.updated_at,
            history: Vec::new(),
        })
    }
}

/// The error stored as `error_code` and `error_message`, if any.
fn message_error(code: Option<String>, message: Option<String>) -> Option<DeliveryError> {
    match (code, message) {
        (None, None) => None,
        (code, message) => Some(DeliveryError {
            code,
            message: message.unwrap_or_default(),
        }),
    }
}

/// The `media` column: what a media message carries besides its kind
/// (the `type` column) and caption (the `body` column).
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct MediaJson {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    provider_media_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    mime_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    file_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    size: Option<u64>,
    /// The provider's locator of received media (its key included, for
    /// WhatsApp Web: as sensitive as the message's text, kept alike).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    locator: Option<String>,
}

/// The `type`, `body` and `media` columns of a message's content.
pub(crate) struct ContentColumns {
    pub(crate) kind: String,
    pub(crate) body: Option<String>,
    pub(crate) media: Option<serde_json::Value>,
}

pub(crate) fn encode_content(content: &MessageContent) -> Result<ContentColumns, StorageError> {
    Ok(match content {
        MessageContent::Text { body } => ContentColumns {
            kind: "text".to_owned(),
            body: Some(body.clone()),
            media: None,
        },
        MessageContent::Media(m) => {
            let json = MediaJson {
                url: m.url.clone(),
                provider_media_id: m.provider_media_id.clone(),
                mime_type: m.mime_type.clone(),
                file_name: m.file_name.clone(),
                size: m.size,
                locator: m.locator.clone(),
            };
            ContentColumns {
                kind: m.kind.as_str().to_owned(),
                body: m.caption.clone(),
                media: Some(
                    serde_json::to_value(json)
                        .map_err(|e| StorageError::Corrupt(format!("media: {e}")))?,
                ),
            }
        }
        MessageContent::Other { kind, body } => ContentColumns {
            kind: kind.clone(),
            body: body.clone(),
            media: None,
        },
    })
}

/// A message's content from its columns: media when `media` is set, text
/// for `text`, anything else kept as the provider named it.
fn decode_content(
    kind: String,
    body: Option<String>,
    media: Option<serde_json::Value>,
) -> Result<MessageContent, StorageError> {
    match (media, MediaKind::parse(&kind)) {
        (Some(json), Some(media_kind)) => {
            let m: MediaJson = serde_json::from_value(json)
                .map_err(|e| StorageError::Corrupt(format!("media: {e}")))?;
            Ok(MessageContent::Media(MediaInfo {
                kind: media_kind,
                url: m.url,
                provider_media_id: m.provider_media_id,
                mime_type: m.mime_type,
                caption: body,
                file_name: m.file_name,
                size: m.size,
                locator: m.locator,
            }))
        }
        _ if kind == "text" => Ok(MessageContent::Text {
            body: body.unwrap_or_default(),
        }),
        _ => Ok(MessageContent::Other { kind, body }),
    }
}

#[derive(Debug, Queryable, Selectable)]
#[diesel(table_name = message_status_history, check_for_backend(Pg))]
struct HistoryRow {
    status: String,
    at: DateTime<Utc>,
    error_code: Option<String>,
    error_message: Option<String>,
}

/// Fills in the status history of `message`: its first status at its
/// creation (`queued` or `received`), which is not stored as a row of its
/// own because the message's row already says it, then every stored change
/// in the order it was reached.
pub(crate) fn fill_history(
    conn: &mut PgConnection,
    message: &mut Message,
) -> Result<(), StorageError> {
    // Insertion order, not `at`: provider timestamps have whole seconds and
    // could put a `delivered` before the `sent` it followed.
    let rows: Vec<HistoryRow> = message_status_history::table
        .filter(message_status_history::message_id.eq(message.id.as_uuid()))
        .order(message_status_history::id.asc())
        .select(HistoryRow::as_select())
        .load(conn)?;
    let first = message.direction.first_status();
    let mut history = Vec::with_capacity(rows.len() + 1);
    history.push(StatusChange {
        status: first,
        at: message.created_at,
        error: None,
    });
    for (i, r) in rows.into_iter().enumerate() {
        let status = parse_status(&r.status)?;
        // A leading row for the first status itself was written by
        // versions before migration 000004 (still possible mid rolling
        // deploy): said once. A later one is a retry's `queued`.
        if i == 0 && status == first {
            continue;
        }
        history.push(StatusChange {
            status,
            at: r.at,
            error: message_error(r.error_code, r.error_message),
        });
    }
    message.history = history;
    Ok(())
}

static GET_SQL: LazyLock<Sql> = LazyLock::new(|| {
    Sql::new(&format!(
        "SELECT {MESSAGE_COLUMNS} FROM messages m
         WHERE m.workspace_id = $1 AND m.id = $2"
    ))
});

/// Message `id` of `workspace`, with its history.
pub(crate) fn get(
    conn: &mut PgConnection,
    workspace: WorkspaceId,
    id: MessageId,
) -> Result<Option<Message>, StorageError> {
    let row: Option<MessageRow> = GET_SQL
        .query()
        .bind::<SqlUuid, _>(workspace.as_uuid())
        .bind::<SqlUuid, _>(id.as_uuid())
        .get_result(conn)
        .optional()?;
    let Some(row) = row else { return Ok(None) };
    let mut message = Message::try_from(row)?;
    fill_history(conn, &mut message)?;
    Ok(Some(message))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_round_trips_through_columns() {
        let contents = [
            MessageContent::Text { body: "hi".into() },
            MessageContent::Text {
                body: String::new(),
            },
            MessageContent::Media(MediaInfo {
                kind: MediaKind::Document,
                url: Some("https://example.com/a.pdf".into()),
                provider_media_id: None,
                mime_type: Some("application/pdf".into()),
                caption: Some("invoice".into()),
                file_name: Some("a.pdf".into()),
                size: None,
                locator: None,
            }),
            MessageContent::Media(MediaInfo {
                kind: MediaKind::Image,
                url: None,
                provider_media_id: Some("m1".into()),
                mime_type: None,
                caption: None,
                file_name: None,
                size: Some(15),
                locator: Some("wa1:image:...".into()),
            }),
            MessageContent::Other {
                kind: "location".into(),
                body: None,
            },
            MessageContent::Other {
                kind: "reaction".into(),
                body: Some("👍".into()),
            },
        ];
        for content in contents {
            let c = encode_content(&content).expect("encode");
            assert_eq!(
                decode_content(c.kind, c.body, c.media).expect("decode"),
                content
            );
        }
        let c = encode_content(&MessageContent::Media(MediaInfo {
            kind: MediaKind::Image,
            url: None,
            provider_media_id: Some("m1".into()),
            mime_type: Some("image/png".into()),
            caption: None,
            file_name: None,
            size: None,
            locator: None,
        }))
        .expect("encode");
        assert_eq!(
            c.media,
            Some(serde_json::json!({"providerMediaId": "m1", "mimeType": "image/png"}))
        );
    }
}
