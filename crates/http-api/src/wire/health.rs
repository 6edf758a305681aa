//! The answer of the health and readiness probes.

use serde::Serialize;

/// `{"status": ...}`.
#[derive(Debug, Serialize)]
pub struct Status {
    /// `ok` for `/health`, `ready` for `/ready`.
    pub status: &'static str,
}
