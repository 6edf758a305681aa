//! `GET /health` and `GET /ready`, the orchestrator's probes.

use actix_web::{HttpResponse, web};

use crate::ApiState;
use crate::error::{ApiError, ErrorBody};
use crate::wire::health::Status;

/// `GET /health`: the process answers. Touches no database, so an
/// orchestrator does not restart healthy processes during a database outage.
#[utoipa::path(
    get,
    path = "/health",
    tag = "Service",
    operation_id = "health",
    summary = "The process answers",
    description = "Touches no database, so that an orchestrator does not restart healthy \
        processes during a database outage.",
    responses((status = 200, description = "Up", body = Status, example = json!({"status": "ok"})))
)]
pub async fn health() -> HttpResponse {
    HttpResponse::Ok().json(Status { status: "ok" })
}

/// `GET /ready`: the database answers (one round trip through the pool),
/// else `503`.
#[utoipa::path(
    get,
    path = "/ready",
    tag = "Service",
    operation_id = "ready",
    summary = "The database answers",
    responses(
        (status = 200, description = "Ready", body = Status, example = json!({"status": "ready"})),
        (status = 503, description = "`service_unavailable`: the database does not answer", body = ErrorBody),
    )
)]
pub async fn ready(state: web::Data<ApiState>) -> Result<HttpResponse, ApiError> {
    state
        .health
        .ping()
        .await
        .map_err(|e| ApiError::unavailable(&e))?;
    Ok(HttpResponse::Ok().json(Status { status: "ready" }))
}
