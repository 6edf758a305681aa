//! Events on the wire: `{"id": "evt_<position>", "type", "createdAt",
//! "workspaceId", "data"}`, and the feed's parameters.

use maveraa_domain::{Event, EventQuery};

use crate::error::ApiError;
use crate::json_writer;
use crate::query;

/// Event ids: this prefix and the event's position in the log.
const PREFIX: &str = Event::ID_PREFIX;

/// An event's public id.
pub fn event_id(position: u64) -> String {
    Event::id_of(position)
}

/// The position an event id names.
fn position(field: &str, id: &str) -> Result<u64, ApiError> {
    id.trim()
        .strip_prefix(PREFIX)
        .and_then(|n| n.parse::<u64>().ok())
        .ok_or_else(|| {
            ApiError::validation(field, format!("{field} must be an event id (evt_...)"))
        })
}

/// Reads `after`, `limit` and `types` (comma-separated) from a query
/// string; `last_event_id` (the `Last-Event-ID` header) stands for `after`
/// when that is absent.
///
/// # Errors
/// `400 validation_failed` on the parameter at fault.
pub fn event_query(
    query_string: &str,
    last_event_id: Option<&str>,
) -> Result<EventQuery, ApiError> {
    let mut q = EventQuery {
        after: 0,
        limit: EventQuery::DEFAULT_LIMIT,
        types: Vec::new(),
    };
    let mut after = None;
    for (key, value) in query::pairs(query_string)? {
        match key.as_str() {
            "after" if !value.trim().is_empty() => after = Some(position("after", &value)?),
            "limit" => q.limit = query::limit(&value, EventQuery::MAX_LIMIT)?,
            "types" => {
                q.types = value
                    .split(',')
                    .map(str::trim)
                    .filter(|t| !t.is_empty())
                    .map(str::to_owned)
                    .collect();
            }
            _ => {}
        }
    }
    q.after = match (after, last_event_id) {
        (Some(a), _) => a,
        (None, Some(id)) if !id.trim().is_empty() => position("Last-Event-ID", id)?,
        _ => 0,
    };
    Ok(q)
}

/// An event as [`write_event`] writes it, for the OpenAPI document only.
#[derive(Debug, utoipa::ToSchema)]
#[schema(as = Event, rename_all = "camelCase", description = "An event of the workspace's log.")]
#[expect(
    dead_code,
    reason = "documentation only: describes `write_event`'s JSON"
)]
pub(crate) struct EventDoc {
    /// `evt_` and the event's place in the log: pass it as `after`.
    #[schema(example = "evt_41")]
    id: String,
    /// `contact.created`, `contact.updated`, `contact.deleted`,
    /// `contacts.imported`, `session.status`, `conversation.read`,
    /// `message.queued`, `message.received` or `message.status`.
    #[schema(rename = "type", example = "contact.created")]
    kind: String,
    /// When it happened (RFC 3339, UTC, microseconds).
    #[schema(format = DateTime)]
    created_at: String,
    /// The workspace's id.
    workspace_id: String,
    /// What changed: the contact, session, conversation or message as its
    /// routes show it (see the README's Events section).
    #[schema(value_type = Object)]
    data: (),
}

/// The answer of `GET /api/public/events` as [`event_page_json`] writes
/// it, for the OpenAPI document only.
#[derive(Debug, utoipa::ToSchema)]
#[schema(as = EventPage, description = "A page of events.")]
#[expect(
    dead_code,
    reason = "documentation only: describes `event_page_json`'s JSON"
)]
pub(crate) struct EventPageDoc {
    /// Oldest first.
    events: Vec<EventDoc>,
    /// The last event's id when the page is full (more may follow); `null`
    /// once caught up (poll again with the last id you saw).
    #[schema(example = json!(null))]
    next: Option<String>,
}

/// Appends one event as the API shows it (the domain's one writing of
/// it, which webhook deliveries use too).
pub fn write_event(out: &mut Vec<u8>, e: &Event) {
    e.write_json(out);
}

/// The feed's answer: `{"events": [...], "next": "evt_..."|null}`; `next`
/// is the last event's id when the page is full (more may follow), and
/// `null` once the feed is caught up (poll again with the last id).
pub fn event_page_json(events: &[Event], query: &EventQuery) -> Vec<u8> {
    let mut out = Vec::with_capacity(64 + events.len() * 256);
    out.push(b'{');
    json_writer::key(&mut out, "events");
    json_writer::array(&mut out, events, write_event);
    out.push(b',');
    json_writer::key(&mut out, "next");
    match events.last() {
        Some(last) if events.len() as u64 >= u64::from(query.limit) => {
            json_writer::string(&mut out, &event_id(last.position));
        }
        _ => out.extend_from_slice(b"null"),
    }
    out.push(b'}');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_and_parameters() {
        assert_eq!(event_id(42), "evt_42");
        let q = event_query(
            "after=evt_7&limit=5&types=contact.created,%20session.status",
            None,
        )
        .expect("query");
        assert_eq!((q.after, q.limit), (7, 5));
        assert_eq!(q.types, ["contact.created", "session.status"]);
        assert_eq!(event_query("", Some("evt_9")).expect("header").after, 9);
        assert_eq!(
            event_query("after=evt_3", Some("evt_9"))
                .expect("both")
                .after,
            3
        );
        for bad in ["after=7", "after=evt_x", "limit=0"] {
            assert!(event_query(bad, None).is_err(), "{bad}");
        }
        assert_eq!(
            event_query("", Some("nope"))
                .err()
                .and_then(|e| e.field().map(str::to_owned)),
            Some("Last-Event-ID".to_owned())
        );
    }
}
