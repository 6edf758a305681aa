//! # maveraa-http-api
//!
//! The public REST API on actix-web 4: handlers, extractors, wire types and
//! the mapping of domain errors to the API's one error shape (see
//! [`error`]). It talks to storage only through the domain's use cases and
//! ports; it has no database code.
//!
//! Everything under `/api/public` needs an API key and acts in its
//! workspace. `/webhooks/whatsapp/{uuid}` needs none: the path names the
//! session, and deliveries are authenticated by their signature.
//!
//! Compose it into an `App` with [`configure`], and wrap the app in
//! [`request_context`] for request ids and access logs.
//!
//! Handlers, one module per resource (`contacts`, `messages`, `inbox`,
//! `sessions`, `health`, `webhooks`), read the request, call a use case and
//! answer; the JSON they read and write is in [`wire`]. A handler module
//! imports from no other handler module.

pub mod contacts;
mod cursor;
pub mod dashboard;
mod docs;
pub mod error;
pub mod events;
pub mod extract;
mod health;
pub mod inbox;
mod json_writer;
pub mod messages;
pub mod metrics;
pub mod openapi;
mod qr_png;
mod query;
mod rate_limit;
mod request_id;
pub mod sessions;
mod timefmt;
pub mod webhook_endpoints;
pub mod webhooks;
pub mod wire;

use std::sync::Arc;

use actix_web::http::StatusCode;
use actix_web::{HttpMessage, HttpRequest, HttpResponse, ResponseError, guard, web};
use maveraa_domain::messaging::Session;
use maveraa_domain::ports::HealthCheck;
use maveraa_domain::usecases::{
    AccountService, ApiKeyService, ContactService, EventService, InboxService, MessagingService,
    SessionService, WebhookService,
};

pub use error::ApiError;
pub use extract::{
    API_KEY_HEADER, ApiJson, Authenticated, BodyLimit, BodyTimeout, OptionalJson, QueryParams,
    RawBody,
};
pub use rate_limit::{RateLimitSettings, RateLimiter};

/// The paging parameters of the inbox's lists.
const PAGE_PARAMS: &[&str] = &["sessionId", "limit", "before", "after"];
pub use request_id::{REQUEST_ID_HEADER, request_context};

/// What the handlers need: the use cases, and a readiness probe.
#[derive(Clone)]
pub struct ApiState {
    /// Contact use cases.
    pub contacts: ContactService,
    /// Key verification.
    pub api_keys: ApiKeyService,
    /// WhatsApp sessions.
    pub sessions: SessionService,
    /// Sending and reading messages.
    pub messaging: MessagingService,
    /// Conversations, webhooks and simulated inbound messages.
    pub inbox: InboxService,
    /// One round trip to the database, for `/ready`.
    pub health: Arc<dyn HealthCheck>,
    /// Request rates per key, shared by every worker of the server.
    pub rate_limits: Arc<RateLimiter>,
    /// The workspace's event log.
    pub events: EventService,
    /// Webhook endpoints and their deliveries.
    pub webhooks: WebhookService,
    /// Dashboard accounts and their sessions.
    pub accounts: AccountService,
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
    /// Largest webhook body accepted from a provider, in bytes.
    pub webhook_body_limit: usize,
    /// How long a request body may take to arrive (`408` after it).
    pub body_timeout: std::time::Duration,
    /// The dashboard's cookies.
    pub dashboard: dashboard::DashboardSettings,
}

impl Default for HttpSettings {
    fn default() -> Self {
        Self {
            body_limit: 64 * 1024,
            // Meta's deliveries may be up to 3 MB.
            webhook_body_limit: 4 * 1024 * 1024,
            body_timeout: BodyTimeout::default().0,
            dashboard: dashboard::DashboardSettings::default(),
        }
    }
}

/// `405`, with the methods the path takes in `Allow` (HTTP requires it).
fn method_not_allowed(allow: &'static str) -> HttpResponse {
    let mut res = ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!("this path takes {allow}"),
    )
    .error_response();
    res.headers_mut().insert(
        actix_web::http::header::ALLOW,
        actix_web::http::header::HeaderValue::from_static(allow),
    );
    res
}

async fn no_route() -> HttpResponse {
    ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such endpoint").error_response()
}

/// Adds `RateLimit-Limit`, `RateLimit-Remaining` and `RateLimit-Reset` to
/// an answer whose key has a limit (the draw `Authenticated` made).
async fn rate_limit_headers(
    req: actix_web::dev::ServiceRequest,
    next: actix_web::middleware::Next<impl actix_web::body::MessageBody>,
) -> Result<actix_web::dev::ServiceResponse<impl actix_web::body::MessageBody>, actix_web::Error> {
    let mut res = next.call(req).await?;
    let decision = res
        .request()
        .extensions()
        .get::<rate_limit::Decision>()
        .copied();
    if let Some(d) = decision {
        let headers = res.headers_mut();
        for (name, value) in [
            ("ratelimit-limit", u64::from(d.limit)),
            ("ratelimit-remaining", u64::from(d.remaining)),
            ("ratelimit-reset", d.reset_secs),
        ] {
            headers.insert(
                actix_web::http::header::HeaderName::from_static(name),
                actix_web::http::header::HeaderValue::from(value),
            );
        }
    }
    Ok(res)
}

/// A route for `GET`, and for `HEAD` too (the same answer without its body,
/// as HTTP asks; load balancers and uptime checks use it).
fn get_or_head() -> actix_web::Route {
    web::route().guard(guard::Any(guard::Get()).or(guard::Head()))
}

/// A resource that answers `405` in the API's shape to methods other than
/// `allow` (as the `Allow` header lists them).
fn resource(path: &str, allow: &'static str) -> actix_web::Resource {
    web::resource(path).default_service(web::to(move || async move { method_not_allowed(allow) }))
}

/// Registers every route, the shared state and the JSON error handlers.
pub fn configure(cfg: &mut web::ServiceConfig, state: ApiState, settings: HttpSettings) {
    openapi::publish();
    cfg.app_data(web::Data::new(state))
        .app_data(BodyLimit(settings.body_limit))
        .app_data(BodyTimeout(settings.body_timeout))
        // Bodies are read by our own extractors; this only guards other readers.
        .app_data(web::PayloadConfig::new(settings.body_limit))
        .service(resource("/health", "GET, HEAD").route(get_or_head().to(health::health)))
        .service(resource("/ready", "GET, HEAD").route(get_or_head().to(health::ready)))
        // The API's description, for everyone: no key.
        .service(
            resource("/api/openapi.json", "GET, HEAD")
                .route(get_or_head().to(openapi::openapi_json)),
        )
        .service(resource("/docs", "GET, HEAD").route(get_or_head().to(openapi::docs_page)))
        .service(
            resource("/docs/style.css", "GET, HEAD").route(get_or_head().to(openapi::docs_style)),
        )
        .service(
            web::scope("/api/public")
                .wrap(actix_web::middleware::from_fn(rate_limit_headers))
                .service(
                    resource("/contacts", "GET, HEAD, POST")
                        .app_data(QueryParams(&[(
                            "GET",
                            &["limit", "offset", "after", "search", "label"],
                        )]))
                        .route(get_or_head().to(contacts::list))
                        .route(web::post().to(contacts::create)),
                )
                // Before `/contacts/{id}`, which would take "export" or "import" for an id.
                .service(
                    resource("/contacts/export", "GET, HEAD")
                        .app_data(QueryParams(&[("GET", &["search", "label"])]))
                        .route(get_or_head().to(contacts::export)),
                )
                .service(
                    resource("/contacts/import", "POST")
                        .app_data(QueryParams(&[("POST", &["onDuplicate"])]))
                        .route(web::post().to(contacts::import)),
                )
                .service(
                    resource("/contacts/{id}", "GET, HEAD, PATCH, DELETE")
                        .route(get_or_head().to(contacts::get))
                        .route(web::patch().to(contacts::update))
                        .route(web::delete().to(contacts::delete)),
                )
                .service(
                    resource("/sessions", "GET, HEAD, POST")
                        .route(get_or_head().to(sessions::list))
                        .route(web::post().to(sessions::create)),
                )
                .service(
                    resource("/sessions/{sessionId}", "GET, HEAD, DELETE")
                        .route(get_or_head().to(sessions::get))
                        .route(web::delete().to(sessions::delete)),
                )
                .service(
                    resource("/sessions/{sessionId}/stop", "POST")
                        .route(web::post().to(sessions::stop)),
                )
                .service(
                    resource("/sessions/{sessionId}/start", "POST")
                        .route(web::post().to(sessions::start)),
                )
                .service(
                    resource("/sessions/{sessionId}/qr", "GET, HEAD")
                        .app_data(QueryParams(&[("GET", &["format"]), ("HEAD", &["format"])]))
                        .route(get_or_head().to(sessions::qr)),
                )
                .service(
                    resource("/sessions/{sessionId}/pair-code", "POST")
                        .route(web::post().to(sessions::pair_code)),
                )
                .service(
                    resource("/sessions/{sessionId}/logout", "POST")
                        .route(web::post().to(sessions::logout)),
                )
                .service(
                    resource("/sessions/{sessionId}/simulate/inbound", "POST")
                        .route(web::post().to(sessions::simulate_inbound)),
                )
                .service(
                    resource("/events", "GET, HEAD")
                        .app_data(QueryParams(&[("GET", &["after", "limit", "types"])]))
                        .route(get_or_head().to(events::list)),
                )
                .service(
                    resource("/events/stream", "GET")
                        .app_data(QueryParams(&[("GET", &["after", "types"])]))
                        .route(web::get().to(events::stream)),
                )
                .service(
                    resource("/webhooks", "GET, HEAD, POST")
                        .route(get_or_head().to(webhook_endpoints::list))
                        .route(web::post().to(webhook_endpoints::create)),
                )
                .service(
                    resource("/webhooks/{webhookId}", "GET, HEAD, PATCH, DELETE")
                        .route(get_or_head().to(webhook_endpoints::get))
                        .route(web::patch().to(webhook_endpoints::update))
                        .route(web::delete().to(webhook_endpoints::delete)),
                )
                .service(
                    resource("/webhooks/{webhookId}/roll-secret", "POST")
                        .route(web::post().to(webhook_endpoints::roll_secret)),
                )
                .service(
                    resource("/webhooks/{webhookId}/deliveries", "GET, HEAD")
                        .app_data(QueryParams(&[("GET", &["status", "limit", "after"])]))
                        .route(get_or_head().to(webhook_endpoints::deliveries)),
                )
                .service(
                    resource(
                        "/webhooks/{webhookId}/deliveries/{deliveryId}/redeliver",
                        "POST",
                    )
                    .route(web::post().to(webhook_endpoints::redeliver)),
                )
                .service(resource("/inbox/send", "POST").route(web::post().to(messages::send)))
                .service(
                    resource("/inbox/conversations", "GET, HEAD")
                        .app_data(QueryParams(&[("GET", PAGE_PARAMS)]))
                        .route(get_or_head().to(inbox::conversations)),
                )
                .service(
                    resource("/inbox/conversations/{remoteJid}/messages", "GET, HEAD")
                        .app_data(QueryParams(&[("GET", PAGE_PARAMS)]))
                        .route(get_or_head().to(inbox::messages)),
                )
                .service(
                    resource("/inbox/conversations/{remoteJid}/read", "POST")
                        .app_data(QueryParams(&[("POST", &["sessionId"])]))
                        .route(web::post().to(inbox::mark_read)),
                )
                .service(
                    resource("/messages/{messageId}", "GET, HEAD")
                        .route(get_or_head().to(messages::get)),
                )
                .service(
                    resource("/messages/{messageId}/media", "GET, HEAD")
                        .route(get_or_head().to(messages::media)),
                )
                .service(
                    resource("/messages/{messageId}/retry", "POST")
                        .route(web::post().to(messages::retry)),
                )
                .service(
                    resource("/sessions/{sessionId}/messages/retry", "POST")
                        .app_data(QueryParams(&[("POST", &["errorCode"])]))
                        .route(web::post().to(messages::retry_failed)),
                )
                .default_service(web::to(no_route)),
        )
        .service(
            web::scope(WEBHOOK_SCOPE)
                // Providers batch events: their bodies get their own limit.
                .app_data(BodyLimit(settings.webhook_body_limit))
                .service(
                    resource("/{sessionUuid}", "GET, HEAD, POST")
                        .route(get_or_head().to(webhooks::verify))
                        .route(web::post().to(webhooks::receive)),
                )
                .default_service(web::to(no_route)),
        )
        // The dashboard's pages (not the public API: see `dashboard`).
        .configure(|c| dashboard::configure(c, settings.dashboard))
        .default_service(web::to(no_route));
}

/// Where providers that report by webhook call us: `{WEBHOOK_SCOPE}/{session id}`.
const WEBHOOK_SCOPE: &str = "/webhooks/whatsapp";

/// The path of `session`'s webhook URL, for sessions whose provider
/// reports by webhook (the URL to configure at the provider).
pub fn webhook_path(session: &Session) -> Option<String> {
    session
        .provider
        .kind()
        .reports_by_webhook()
        .then(|| format!("{WEBHOOK_SCOPE}/{}", session.id))
}

/// A path parameter, percent-decoded (empty when absent).
fn path_param<'a>(req: &'a HttpRequest, name: &str) -> &'a str {
    req.match_info().get(name).unwrap_or_default()
}
