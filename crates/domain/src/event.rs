//! The event log: what changed in a workspace, in the order the changes
//! became visible, for apps that catch up on what they missed.

use chrono::{DateTime, Utc};

use crate::ids::WorkspaceId;
use crate::values::ValidationError;

/// The kinds of event the log holds.
pub const EVENT_TYPES: &[&str] = &[
    "contact.created",
    "contact.updated",
    "contact.deleted",
    "contacts.imported",
    "session.status",
    "session.qr",
    "conversation.read",
    "message.queued",
    "message.sent",
    "message.received",
    "message.status",
];

/// One event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// Its place in the log: increasing in the order events became visible
    /// (committed), across all workspaces.
    pub position: u64,
    /// One of [`EVENT_TYPES`].
    pub kind: String,
    /// The workspace it happened in.
    pub workspace_id: WorkspaceId,
    /// When the change was written.
    pub created_at: DateTime<Utc>,
    /// The resource as it was after the change, as JSON text in the API's
    /// shapes (a contact as the contact routes show it...).
    pub data: String,
}

impl Event {
    /// What every event id starts with; the position follows.
    pub const ID_PREFIX: &'static str = "evt_";

    /// The public id of the event at `position`: `evt_<position>`.
    pub fn id_of(position: u64) -> String {
        format!("{}{position}", Self::ID_PREFIX)
    }

    /// The event's public id.
    pub fn id(&self) -> String {
        Self::id_of(self.position)
    }

    /// Appends the event as the feed, the stream and webhook deliveries
    /// show it: `{"id", "type", "createdAt", "workspaceId", "data"}`, with
    /// `createdAt` in RFC 3339 with microseconds and `data` as stored.
    pub fn write_json(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(b"{\"id\":\"");
        out.extend_from_slice(self.id().as_bytes());
        out.extend_from_slice(b"\",\"type\":\"");
        // The types are plain ASCII names; anything else is escaped.
        for c in self.kind.chars() {
            match c {
                '"' | '\\' => {
                    out.push(b'\\');
                    out.push(c as u8);
                }
                c if (c as u32) < 0x20 => {
                    out.extend_from_slice(format!("\\u{:04x}", c as u32).as_bytes());
                }
                c => {
                    let mut buf = [0u8; 4];
                    out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                }
            }
        }
        out.extend_from_slice(b"\",\"createdAt\":\"");
        out.extend_from_slice(
            self.created_at
                .to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
                .as_bytes(),
        );
        out.extend_from_slice(b"\",\"workspaceId\":\"");
        out.extend_from_slice(self.workspace_id.to_string().as_bytes());
        out.extend_from_slice(b"\",\"data\":");
        out.extend_from_slice(self.data.as_bytes());
        out.push(b'}');
    }
}

/// Which events to read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventQuery {
    /// Only events after this position (0: from the oldest kept).
    pub after: u64,
    /// At most this many.
    pub limit: u32,
    /// Only these kinds (empty: all).
    pub types: Vec<String>,
}

impl EventQuery {
    /// Default page size.
    pub const DEFAULT_LIMIT: u32 = 100;
    /// Largest page size.
    pub const MAX_LIMIT: u32 = 1000;

    /// Checks the limit and the kinds.
    ///
    /// # Errors
    /// A [`ValidationError`] on `limit` or `types`.
    pub fn validate(&self) -> Result<(), ValidationError> {
        if self.limit == 0 || self.limit > Self::MAX_LIMIT {
            return Err(ValidationError::new(
                "limit",
                format!("must be between 1 and {}", Self::MAX_LIMIT),
            ));
        }
        if let Some(unknown) = self
            .types
            .iter()
            .find(|t| !EVENT_TYPES.contains(&t.as_str()))
        {
            return Err(ValidationError::new(
                "types",
                format!(
                    "{unknown} is not an event type; the types are {}",
                    EVENT_TYPES.join(", ")
                ),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_event_is_written_in_the_apis_shape() {
        let ws = WorkspaceId::from_uuid(uuid::Uuid::nil());
        let e = Event {
            position: 7,
            kind: "contact.created".into(),
            workspace_id: ws,
            created_at: DateTime::parse_from_rfc3339("2026-12-06T10:00:00.5Z")
                .expect("time")
                .with_timezone(&Utc),
            data: r#"{"_id":"x"}"#.into(),
        };
        let mut out = Vec::new();
        e.write_json(&mut out);
        assert_eq!(
            String::from_utf8(out).expect("utf-8"),
            r#"{"id":"evt_7","type":"contact.created","createdAt":"2026-12-06T10:00:00.500000Z","workspaceId":"00000000-0000-0000-0000-000000000000","data":{"_id":"x"}}"#
        );
        let odd = Event {
            kind: "a\"b".into(),
            ..e
        };
        let mut out = Vec::new();
        odd.write_json(&mut out);
        assert!(
            String::from_utf8(out)
                .expect("utf-8")
                .contains(r#""type":"a\"b""#)
        );
    }
}
