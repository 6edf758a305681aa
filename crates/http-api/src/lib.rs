//! # maveraa-http-api
//!
//! The public REST API on actix-web 4: handlers, extractors, wire types and
//! the mapping of domain errors to the API's one error shape (see
//! [`error`]). It talks to storage only through the domain's use cases and
//! ports; it has no database code.
//!
//! Compose it into an `App` with [`configure`], and wrap the app in
//! [`request_context`] for request ids and access logs.

pub mod contacts;
pub mod error;
pub mod extract;
mod health;
mod request_id;

use std::sync::Arc;

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError, web};
use maveraa_domain::ports::HealthCheck;
use maveraa_domain::usecases::{ApiKeyService, ContactService};

pub use error::ApiError;
pub use extract::{API_KEY_HEADER, ApiJson, Authenticated, BodyLimit};
pub use request_id::{REQUEST_ID_HEADER, request_context};

/// What the handlers need: the use cases, and a readiness probe.
#[derive(Clone)]
pub struct ApiState {
    /// Contact use cases.
    pub contacts: ContactService,
    /// Key verification.
    pub api_keys: ApiKeyService,
    /// One round trip to the database, for `/ready`.
    pub health: Arc<dyn HealthCheck>,
}

impl std::fmt::Debug for ApiState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiState").finish_non_exhaustive()
    }
}

/// HTTP-level settings.
#[derive(Debug, Clone, Copy)]
pub struct HttpSettings {
    /// Largest request body accepted, in bytes.
    pub body_limit: usize,
}

impl Default for HttpSettings {
    fn default() -> Self {
        Self {
            body_limit: 64 * 1024,
        }
    }
}

async fn method_not_allowed() -> HttpResponse {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "this method is not allowed on this path",
    )
    .error_response()
}

async fn no_route() -> HttpResponse {
    ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such endpoint").error_response()
}

/// Registers every route, the shared state and the JSON error handlers.
pub fn configure(cfg: &mut web::ServiceConfig, state: ApiState, settings: HttpSettings) {
    cfg.app_data(web::Data::new(state))
        .app_data(BodyLimit(settings.body_limit))
        // Bodies are read by our own extractor; this only guards other readers.
        .app_data(web::PayloadConfig::new(settings.body_limit))
        .route("/health", web::get().to(health::health))
        .route("/ready", web::get().to(health::ready))
        .service(
            web::scope("/api/public")
                .service(
                    web::resource("/contacts")
                        .route(web::get().to(contacts::list))
                        .route(web::post().to(contacts::create))
                        .default_service(web::to(method_not_allowed)),
                )
                .service(
                    web::resource("/contacts/{id}")
                        .route(web::get().to(contacts::get))
                        .route(web::patch().to(contacts::update))
                        .route(web::delete().to(contacts::delete))
                        .default_service(web::to(method_not_allowed)),
                )
                .default_service(web::to(no_route)),
        )
        .default_service(web::to(no_route));
}

/// A `200 {"status": ...}` body.
fn status_body(status: &str) -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({ "status": status }))
}
