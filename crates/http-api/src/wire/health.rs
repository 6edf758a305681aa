//! The answer of the health and readiness probes.

use serde::Serialize;

/// `{"status": ...}`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(description = "A probe's answer.")]
pub struct Status {
    /// `ok` for `/health`, `ready` for `/ready`.
    #[schema(example = "ok")]
    pub status: &'static str,
}
