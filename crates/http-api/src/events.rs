//! `/api/public/events`: the workspace's event log, to catch up on what an
//! app missed, and `/api/public/events/stream`, the same events as
//! Server-Sent Events.

use std::time::{Duration, Instant};

use actix_web::http::header;
use actix_web::web::Bytes;
use actix_web::{HttpRequest, HttpResponse, web};
use futures_util::stream;
use maveraa_domain::usecases::EventService;
use maveraa_domain::{EventQuery, WorkspaceId};

use crate::ApiState;
use crate::error::ApiError;
use crate::extract::Authenticated;
use crate::json_writer;
use crate::wire::events::{EventPageDoc, event_id, event_page_json, event_query, write_event};

/// How often an open stream looks for new events.
const STREAM_POLL: Duration = Duration::from_millis(250);

/// How long a stream stays silent before a keep-alive comment.
const KEEP_ALIVE: Duration = Duration::from_secs(15);

fn last_event_id(req: &HttpRequest) -> Option<&str> {
    req.headers()
        .get("Last-Event-ID")
        .and_then(|v| v.to_str().ok())
}

/// `GET /api/public/events?after=&limit=&types=`
#[utoipa::path(
    get,
    path = "/api/public/events",
    tag = "Events",
    operation_id = "listEvents",
    summary = "The workspace's events",
    description = "Oldest first, after the cursor: store the last id you processed and poll \
        with it as `after`; each event comes once, in the order it became visible.",
    params(
        ("after" = Option<String>, Query, description = "An event id (`evt_...`): only the events after it", example = "evt_41"),
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 1000, description = "Page size, 1 to 1000 (100 by default)"),
        ("types" = Option<String>, Query, description = "Comma-separated event types: only these", example = "contact.created,session.status"),
    ),
    responses(
        (status = 200, description = "A page of events", body = EventPageDoc),
    )
)]
pub async fn list(
    auth: Authenticated,
    state: web::Data<ApiState>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let query = event_query(req.query_string(), None)?;
    let events = state.events.list(auth.0.workspace_id, &query).await?;
    Ok(json_writer::response(
        HttpResponse::Ok(),
        event_page_json(&events, &query),
    ))
}

/// What an open stream remembers between polls.
struct Tail {
    events: EventService,
    workspace: WorkspaceId,
    query: EventQuery,
    last_write: Instant,
}

/// `GET /api/public/events/stream?after=&types=`: every event after the
/// cursor (or `Last-Event-ID`, as an `EventSource` sends it when it
/// reconnects), then each new one as it is placed in the log; a comment
/// line every 15 s of silence keeps proxies from closing it.
#[utoipa::path(
    get,
    path = "/api/public/events/stream",
    tag = "Events",
    operation_id = "streamEvents",
    summary = "The workspace's events, live (Server-Sent Events)",
    description = "Every event after the cursor, then each new one as it comes: `id: evt_<n>`, \
        `event: <type>`, `data: <the event's JSON>`; a `: keep-alive` comment after 15 s of \
        silence. Reconnect with `Last-Event-ID` (or `after`) to miss nothing.",
    params(
        ("after" = Option<String>, Query, description = "An event id (`evt_...`): only the events after it", example = "evt_41"),
        ("types" = Option<String>, Query, description = "Comma-separated event types: only these", example = "contact.created,session.status"),
        ("Last-Event-ID" = Option<String>, Header, description = "As `after`, when `after` is not given (as `EventSource` sends it)"),
    ),
    responses(
        (status = 200, description = "The stream", body = String, content_type = "text/event-stream",
            example = json!("id: evt_42\nevent: contact.created\ndata: {\"id\":\"evt_42\",\"type\":\"contact.created\",...}\n\n")),
    )
)]
pub async fn stream(
    auth: Authenticated,
    state: web::Data<ApiState>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let mut query = event_query(req.query_string(), last_event_id(&req))?;
    query.limit = EventQuery::MAX_LIMIT;
    // Checked once here, so that a bad query is a 400 and not a stream.
    query.validate().map_err(ApiError::from)?;
    let tail = Tail {
        events: state.events.clone(),
        workspace: auth.0.workspace_id,
        query,
        last_write: Instant::now(),
    };
    let body = stream::unfold(Some(tail), |tail| async move {
        let mut tail = tail?;
        loop {
            match tail.events.list(tail.workspace, &tail.query).await {
                Ok(events) if !events.is_empty() => {
                    let mut out = Vec::with_capacity(events.len() * 300);
                    for e in &events {
                        out.extend_from_slice(b"id: ");
                        out.extend_from_slice(event_id(e.position).as_bytes());
                        out.extend_from_slice(b"\nevent: ");
                        out.extend_from_slice(e.kind.as_bytes());
                        out.extend_from_slice(b"\ndata: ");
                        write_event(&mut out, e);
                        out.extend_from_slice(b"\n\n");
                    }
                    if let Some(last) = events.last() {
                        tail.query.after = last.position;
                    }
                    tail.last_write = Instant::now();
                    return Some((Ok::<_, actix_web::Error>(Bytes::from(out)), Some(tail)));
                }
                Ok(_) if tail.last_write.elapsed() >= KEEP_ALIVE => {
                    tail.last_write = Instant::now();
                    return Some((Ok(Bytes::from_static(b": keep-alive\n\n")), Some(tail)));
                }
                Ok(_) => actix_web::rt::time::sleep(STREAM_POLL).await,
                Err(e) => {
                    // The client reconnects with Last-Event-ID and misses nothing.
                    tracing::warn!(error = %e, "an event stream ends: the log could not be read");
                    return None;
                }
            }
        }
    });
    Ok(HttpResponse::Ok()
        .content_type("text/event-stream")
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .insert_header(("X-Accel-Buffering", "no"))
        .streaming(body))
}
