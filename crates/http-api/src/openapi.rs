//! The OpenAPI 3.1 document of the public API, generated from the code, and
//! the routes that publish it: `GET /api/openapi.json`, and the HTML page
//! rendered from it, `GET /docs` (see [`crate::docs`]).
//!
//! Where each part comes from:
//! - each handler carries its own `#[utoipa::path(...)]`: method, path,
//!   summary, parameters, body and the answers peculiar to it;
//! - bodies are the wire types, which derive `ToSchema`; an answer written
//!   by hand (`json_writer`) has a documentation-only twin beside its
//!   writer (`ContactDoc` beside `write_contact`...);
//! - what every operation shares is added once by [`Shared`]: the API key
//!   and its `401`, `429`, `500` and `503` for everything under
//!   `/api/public`, `400` for an operation that takes a body or query
//!   parameters, `408`, `413` and `415` for one that takes a body.
//!
//! To document a new operation: put `#[utoipa::path(...)]` on its handler
//! and name the handler in [`ApiDoc`]'s `paths(...)`. The route tests
//! (`tests/routes/openapi.rs`) fail while a route of `configure` is missing
//! from the document, or a documented field is not the handler's.

use std::sync::LazyLock;

use actix_web::HttpResponse;
use actix_web::http::header::{self, ContentType};
use utoipa::openapi::path::{Operation, ParameterIn, PathItem};
use utoipa::openapi::response::{Response, ResponseBuilder};
use utoipa::openapi::security::{ApiKey, ApiKeyValue, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{Content, Ref, RefOr};
use utoipa::{Modify, OpenApi};

use crate::{contacts, events, health, inbox, messages, sessions, webhook_endpoints};

/// The security scheme's name in the document.
const API_KEY_SCHEME: &str = "apiKey";

const DESCRIPTION: &str = "\
Maveraa's public REST API: contacts, WhatsApp sessions, sending, the inbox, \
the workspace's event log and the webhook endpoints it is pushed to.

Every path under `/api/public` needs an API key, in the `X-API-Key` header \
(or as `Authorization: Bearer <key>`); `maveraa api-key create` makes one. \
Every `GET` also answers `HEAD` (the same status and headers, no body); \
another method on a known path is `405 method_not_allowed` with `Allow`. \
Request bodies are JSON objects in UTF-8, uncompressed; a body field or \
query parameter an operation does not take is a `400` naming it.

Every 4xx and 5xx answer has one shape, the `Error` schema: \
`{\"error\": {\"code\", \"message\", \"field\"?, \"existingId\"?}}`; `field` \
names the input at fault when there is one.

Left out of this document: the providers' webhook routes, \
`GET` and `POST /webhooks/whatsapp/{sessionUuid}` (they are called by Meta, \
not by API users; see the README), and this document's own routes \
(`/api/openapi.json`, `/docs`).";

/// The document: every operation, and what they share ([`Shared`]).
#[derive(Debug, OpenApi)]
#[openapi(
    info(
        title = "Maveraa API",
        description = DESCRIPTION,
        license(name = "AGPL-3.0-only", identifier = "AGPL-3.0-only"),
    ),
    servers((url = "http://localhost:8080", description = "A local server (`maveraa serve`)")),
    paths(
        contacts::list,
        contacts::create,
        contacts::export,
        contacts::import,
        contacts::get,
        contacts::update,
        contacts::delete,
        sessions::list,
        sessions::create,
        sessions::get,
        sessions::delete,
        sessions::stop,
        sessions::start,
        sessions::qr,
        sessions::pair_code,
        sessions::logout,
        sessions::simulate_inbound,
        messages::send,
        messages::get,
        messages::media,
        messages::retry,
        messages::retry_failed,
        inbox::conversations,
        inbox::messages,
        inbox::mark_read,
        events::list,
        events::stream,
        webhook_endpoints::create,
        webhook_endpoints::list,
        webhook_endpoints::get,
        webhook_endpoints::update,
        webhook_endpoints::delete,
        webhook_endpoints::roll_secret,
        webhook_endpoints::deliveries,
        webhook_endpoints::redeliver,
        health::health,
        health::ready,
    ),
    // Schemas no body names (a parameter's) are listed here.
    components(schemas(crate::error::ErrorBody, crate::wire::contact_import::OnDuplicateDoc)),
    modifiers(&Shared),
    tags(
        (name = "Contacts", description = "The workspace's contacts, their import and export."),
        (name = "Sessions", description = "WhatsApp numbers connected to the workspace."),
        (name = "Messages", description = "Sending, and the status of what was sent."),
        (name = "Inbox", description = "Conversations and their messages."),
        (name = "Events", description = "What changed in the workspace, to catch up or to follow live."),
        (name = "Webhooks", description = "Endpoints of your app that the workspace's events are pushed to, signed and retried, and their delivery logs."),
        (name = "Service", description = "Probes for orchestrators and load balancers; no key."),
    )
)]
pub struct ApiDoc;

/// The shared answers, by the name they have under `components/responses`:
/// their status, and what they mean.
const SHARED_RESPONSES: &[(&str, &str, &str)] = &[
    (
        "BadRequest",
        "400",
        "`validation_failed`: a field or query parameter is missing, of the wrong type, breaks a \
         rule or is not one the operation takes (`field` names it); `malformed_json`: the body \
         is not valid JSON",
    ),
    (
        "Unauthorized",
        "401",
        "`missing_api_key` or `invalid_api_key` (unknown, malformed or revoked); \
         `WWW-Authenticate` says how to authenticate",
    ),
    (
        "RequestTimeout",
        "408",
        "`request_timeout`: the body did not arrive in time (30 s by default)",
    ),
    (
        "PayloadTooLarge",
        "413",
        "`payload_too_large`: the body is over the server's limit (64 KiB by default)",
    ),
    (
        "UnsupportedMediaType",
        "415",
        "`unsupported_media_type`: the body is not of a content type the operation takes, is \
         declared in a charset other than UTF-8, or is compressed",
    ),
    (
        "RateLimited",
        "429",
        "`rate_limited`: the key's rate is spent for now; `Retry-After` says when to try again",
    ),
    (
        "InternalError",
        "500",
        "`internal_error`: a bug; the `X-Request-Id` header finds it in the server's log",
    ),
    (
        "Unavailable",
        "503",
        "`service_unavailable`: the database is unreachable or saturated; `Retry-After: 1`",
    ),
];

/// Adds what every operation shares (see the module's documentation).
#[derive(Debug)]
struct Shared;

impl Modify for Shared {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            API_KEY_SCHEME,
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                crate::API_KEY_HEADER,
                "An API key of the workspace (`maveraa api-key create`); \
                 `Authorization: Bearer <key>` is taken too.",
            ))),
        );
        for (name, status, description) in SHARED_RESPONSES {
            components.responses.insert(
                (*name).to_owned(),
                RefOr::T(error_response(status, description)),
            );
        }
        for (path, item) in doc.paths.paths.iter_mut() {
            for op in operations_mut(item) {
                add_shared(path, op);
            }
        }
    }
}

/// An error answer in the API's one shape.
fn error_response(status: &str, description: &str) -> Response {
    let mut response = ResponseBuilder::new().description(description).content(
        "application/json",
        Content::new(Some(Ref::from_schema_name("Error"))),
    );
    let header = |text: &str| {
        utoipa::openapi::Header::builder()
            .description(Some(text))
            .build()
    };
    match status {
        "401" => {
            response = response.header("WWW-Authenticate", header("`Bearer realm=\"maveraa\"`"));
        }
        "429" | "503" => {
            response = response.header("Retry-After", header("Seconds to wait before retrying"));
        }
        _ => {}
    }
    response.build()
}

fn add_shared(path: &str, op: &mut Operation) {
    let public = path.starts_with("/api/public/");
    let has_body = op.request_body.is_some();
    let has_query = op
        .parameters
        .iter()
        .flatten()
        .any(|p| p.parameter_in == ParameterIn::Query);
    let mut shared = Vec::new();
    if has_body || has_query {
        shared.push("BadRequest");
    }
    if public {
        op.security = Some(vec![SecurityRequirement::new(
            API_KEY_SCHEME,
            Vec::<String>::new(),
        )]);
        shared.extend([
            "Unauthorized",
            "RateLimited",
            "InternalError",
            "Unavailable",
        ]);
    }
    if has_body {
        shared.extend(["RequestTimeout", "PayloadTooLarge", "UnsupportedMediaType"]);
    }
    for name in shared {
        let status = SHARED_RESPONSES
            .iter()
            .find(|(n, _, _)| *n == name)
            .map_or("default", |(_, status, _)| status);
        // An operation's own answer for the status (a more precise `400`,
        // say) is kept.
        op.responses
            .responses
            .entry(status.to_owned())
            .or_insert_with(|| RefOr::Ref(Ref::from_response_name(name)));
    }
}

/// The operations of a path, whatever their methods.
fn operations_mut(item: &mut PathItem) -> impl Iterator<Item = &mut Operation> {
    [
        &mut item.get,
        &mut item.put,
        &mut item.post,
        &mut item.delete,
        &mut item.options,
        &mut item.head,
        &mut item.patch,
        &mut item.trace,
    ]
    .into_iter()
    .filter_map(Option::as_mut)
}

/// The document, as built from the code.
pub fn document() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}

/// The document and its page, built once, when the app is configured.
struct Published {
    json: String,
    html: String,
}

static PUBLISHED: LazyLock<Published> = LazyLock::new(|| {
    let doc = document();
    // Start-up: a document that cannot be written is a bug found at once.
    let json = doc.to_json().expect("the OpenAPI document serialises");
    let value = serde_json::to_value(&doc).expect("the OpenAPI document serialises");
    let paths: Vec<String> = doc.paths.paths.keys().cloned().collect();
    Published {
        json,
        html: crate::docs::render(&value, &paths),
    }
});

/// Builds the document and its page now, so that the first request does not.
pub(crate) fn publish() {
    LazyLock::force(&PUBLISHED);
}

/// `GET /api/openapi.json`: the document; no key needed.
pub(crate) async fn openapi_json() -> HttpResponse {
    HttpResponse::Ok()
        .content_type(ContentType::json())
        .body(PUBLISHED.json.as_str())
}

/// The page's policy: no script, no frame, nothing from elsewhere; its
/// one style sheet from here.
const DOCS_CSP: &str = "default-src 'none'; style-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// `GET /docs`: the document as a page, rendered at start-up.
pub(crate) async fn docs_page() -> HttpResponse {
    HttpResponse::Ok()
        .content_type(ContentType::html())
        .insert_header((header::CONTENT_SECURITY_POLICY, DOCS_CSP))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .body(PUBLISHED.html.as_str())
}

/// `GET /docs/style.css`: the page's style sheet.
pub(crate) async fn docs_style() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/css; charset=utf-8")
        .insert_header((header::CONTENT_SECURITY_POLICY, DOCS_CSP))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .body(crate::docs::STYLE)
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    fn doc() -> Value {
        serde_json::to_value(super::document()).expect("document")
    }

    #[test]
    fn it_is_openapi_3_1_with_the_key_scheme() {
        let doc = doc();
        assert!(
            doc["openapi"]
                .as_str()
                .is_some_and(|v| v.starts_with("3.1"))
        );
        assert_eq!(
            doc["components"]["securitySchemes"]["apiKey"],
            serde_json::json!({
                "type": "apiKey", "in": "header", "name": "X-API-Key",
                "description": doc["components"]["securitySchemes"]["apiKey"]["description"],
            })
        );
        assert!(
            doc["info"]["description"]
                .as_str()
                .is_some_and(|d| d.contains("/webhooks/whatsapp/"))
        );
    }

    /// Every 4xx and 5xx answer is the `Error` schema, by reference.
    #[test]
    fn every_error_answer_is_the_error_shape() {
        let doc = doc();
        let mut seen = 0;
        for (path, item) in doc["paths"].as_object().into_iter().flatten() {
            for (method, op) in item.as_object().into_iter().flatten() {
                for (status, answer) in op["responses"].as_object().into_iter().flatten() {
                    if !(status.starts_with('4') || status.starts_with('5')) {
                        continue;
                    }
                    let answer = match answer["$ref"].as_str() {
                        Some(r) => {
                            let name = r.trim_start_matches("#/components/responses/");
                            &doc["components"]["responses"][name]
                        }
                        None => answer,
                    };
                    assert_eq!(
                        answer["content"]["application/json"]["schema"]["$ref"],
                        "#/components/schemas/Error",
                        "{method} {path} {status}"
                    );
                    seen += 1;
                }
            }
        }
        assert!(seen > 100, "{seen}");
        let error = &doc["components"]["schemas"]["Error"];
        assert_eq!(error["required"], serde_json::json!(["error"]));
    }

    fn refs<'a>(value: &'a Value, out: &mut Vec<&'a str>) {
        match value {
            Value::Object(map) => {
                if let Some(r) = map.get("$ref").and_then(Value::as_str) {
                    out.push(r);
                }
                map.values().for_each(|v| refs(v, out));
            }
            Value::Array(items) => items.iter().for_each(|v| refs(v, out)),
            _ => {}
        }
    }

    /// Every `$ref` names a component of the document.
    #[test]
    fn every_reference_resolves() {
        let doc = doc();
        let mut all = Vec::new();
        refs(&doc, &mut all);
        assert!(!all.is_empty());
        for r in all {
            let mut target = &doc;
            for part in r.trim_start_matches("#/").split('/') {
                target = &target[part];
            }
            assert!(target.is_object(), "{r} names nothing");
        }
    }

    /// Operations under `/api/public` need the key; the probes do not.
    #[test]
    fn security_is_per_operation() {
        let doc = doc();
        for (path, item) in doc["paths"].as_object().into_iter().flatten() {
            for (method, op) in item.as_object().into_iter().flatten() {
                let secured = op["security"] == serde_json::json!([{"apiKey": []}]);
                assert_eq!(secured, path.starts_with("/api/public/"), "{method} {path}");
                assert!(op["responses"].get("401").is_some() == secured);
            }
        }
    }
}
