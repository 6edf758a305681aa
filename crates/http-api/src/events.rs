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
use crate::wire::events::{event_id, event_page_json, event_query, write_event};

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
