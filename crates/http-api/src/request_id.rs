use std::time::Instant;

use actix_web::Error;
use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::middleware::Next;
use tracing::Instrument;

/// The header that carries a request's id, both ways.
pub const REQUEST_ID_HEADER: &str = "x-request-id";

/// The route logged for a request no route matched (its path may carry
/// anything).
const UNMATCHED: &str = "(no route)";

/// A caller's own id is kept when it is short and printable, so ids can
/// follow a request across systems.
fn usable(id: &HeaderValue) -> Option<String> {
    let s = id.to_str().ok()?;
    (!s.is_empty() && s.len() <= 128 && s.bytes().all(|b| b.is_ascii_graphic()))
        .then(|| s.to_owned())
}

/// Middleware (`actix_web::middleware::from_fn(request_context)`): gives each
/// request an id, runs it in a tracing span that carries the id, answers
/// the id in `X-Request-Id`, and logs one line per request.
///
/// # Errors
/// Passes on the inner service's errors.
pub async fn request_context(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    let id = req
        .headers()
        .get(REQUEST_ID_HEADER)
        .and_then(usable)
        .unwrap_or_else(|| uuid::Uuid::now_v7().to_string());
    // The route's template, never the path: paths and queries carry
    // customers' numbers (`/inbox/conversations/{remoteJid}/...`). It is
    // known once routed, so it is recorded after the call.
    let span = tracing::info_span!(
        "request",
        request_id = %id,
        method = %req.method(),
        route = tracing::field::Empty,
    );
    let started = Instant::now();
    let mut res = next.call(req).instrument(span.clone()).await?;
    let route = res.request().match_pattern();
    span.record("route", route.as_deref().unwrap_or(UNMATCHED));
    if let Ok(value) = HeaderValue::from_str(&id) {
        res.headers_mut()
            .insert(HeaderName::from_static(REQUEST_ID_HEADER), value);
    }
    let status = res.status().as_u16();
    let elapsed = started.elapsed();
    if let Some(metrics) = res
        .request()
        .app_data::<actix_web::web::Data<crate::metrics::HttpMetrics>>()
    {
        metrics.observe(
            route.as_deref().unwrap_or(UNMATCHED),
            res.request().method().as_str(),
            status,
            elapsed,
        );
    }
    let elapsed_ms = elapsed.as_secs_f64() * 1000.0;
    span.in_scope(|| {
        if status >= 500 {
            tracing::warn!(status, elapsed_ms, "request failed");
        } else {
            tracing::info!(status, elapsed_ms, "request");
        }
    });
    Ok(res)
}
