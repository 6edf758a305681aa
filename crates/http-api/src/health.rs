use actix_web::{HttpResponse, web};

use crate::error::ApiError;
use crate::{ApiState, status_body};

/// `GET /health`: the process answers. Touches no database, so an
/// orchestrator does not restart healthy processes during a database outage.
pub async fn health() -> HttpResponse {
    status_body("ok")
}

/// `GET /ready`: the database answers (one round trip through the pool),
/// else `503`.
pub async fn ready(state: web::Data<ApiState>) -> Result<HttpResponse, ApiError> {
    state
        .health
        .ping()
        .await
        .map_err(|e| ApiError::unavailable(&e))?;
    Ok(status_body("ready"))
}
