//! `GET /health` and `GET /ready`, the orchestrator's probes.

use actix_web::{HttpResponse, web};

use crate::ApiState;
use crate::error::ApiError;
use crate::wire::health::Status;

/// `GET /health`: the process answers. Touches no database, so an
/// orchestrator does not restart healthy processes during a database outage.
pub async fn health() -> HttpResponse {
    HttpResponse::Ok().json(Status { status: "ok" })
}

/// `GET /ready`: the database answers (one round trip through the pool),
/// else `503`.
pub async fn ready(state: web::Data<ApiState>) -> Result<HttpResponse, ApiError> {
    state
        .health
        .ping()
        .await
        .map_err(|e| ApiError::unavailable(&e))?;
    Ok(HttpResponse::Ok().json(Status { status: "ready" }))
}
