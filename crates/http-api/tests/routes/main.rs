//! Route-level tests: the real handlers and use cases over a real
//! PostgreSQL (a database per test), through actix's test service (no
//! socket), using only the crate's public API (`configure`, `ApiState`).
//! Only the providers are stand-ins: a transport that refuses and a webhook
//! decoder that trusts one signature. One module per resource; the tests of
//! the routing table as a whole are here.

mod common;
mod inbox;
mod messages;
mod openapi;
mod paging;
mod sessions;
mod webhooks;

use actix_web::test::TestRequest;

use crate::common::{call, world};

#[actix_web::test]
async fn new_routes_need_a_key() {
    let w = world().await;
    for req in [
        TestRequest::get().uri("/api/public/sessions"),
        TestRequest::get().uri("/api/public/inbox/conversations"),
        TestRequest::post().uri("/api/public/inbox/send"),
    ] {
        let a = call(&w, req).await;
        assert_eq!(a.error().1, "missing_api_key");
        assert_eq!(
            a.header("WWW-Authenticate"),
            Some("Bearer realm=\"maveraa\""),
            "a 401 says how to authenticate"
        );
    }
}

#[actix_web::test]
async fn other_methods_are_405() {
    let w = world().await;
    for req in [
        TestRequest::delete().uri("/api/public/contacts"),
        TestRequest::delete().uri("/api/public/inbox/send"),
        TestRequest::put().uri("/api/public/sessions"),
        TestRequest::put().uri("/api/public/inbox/conversations"),
        TestRequest::delete().uri("/api/public/messages/x"),
        TestRequest::get().uri("/api/public/inbox/conversations/1/read"),
        TestRequest::delete().uri("/webhooks/whatsapp/x"),
    ] {
        let a = call(&w, req).await;
        assert_eq!(a.error().1, "method_not_allowed");
        assert!(a.header("Allow").is_some(), "a 405 lists what is allowed");
    }
    for (req, allow) in [
        (
            TestRequest::delete().uri("/api/public/contacts"),
            "GET, HEAD, POST",
        ),
        (
            TestRequest::put().uri("/api/public/contacts/x"),
            "GET, HEAD, PATCH, DELETE",
        ),
        (TestRequest::get().uri("/api/public/inbox/send"), "POST"),
    ] {
        assert_eq!(call(&w, req).await.header("Allow"), Some(allow));
    }
}

/// A field or a query parameter the operation does not take is a `400`
/// naming it (as Stripe answers an unknown parameter), never a typo that
/// silently drops what the caller meant.
#[actix_web::test]
async fn unknown_fields_and_parameters_are_refused_by_name() {
    use crate::common::{KEY_A, get, post};
    use serde_json::json;

    let w = world().await;
    let created = call(
        &w,
        post("/api/public/contacts")
            .set_json(json!({"name": "Jane", "phone": "6281234567890", "labels": "Lead"})),
    )
    .await;
    assert_eq!(created.status.as_u16(), 201, "{}", created.json);
    let id = created.json["_id"].as_str().unwrap_or_default().to_owned();

    let patch = |uri: &str| {
        TestRequest::patch()
            .uri(uri)
            .insert_header(("X-API-Key", KEY_A))
    };
    for (req, field) in [
        // The reference's `labels`, misspelt: the contact must not be
        // created without its labels.
        (
            post("/api/public/contacts")
                .set_json(json!({"name": "Ann", "phone": "6281111111111", "label": "Lead"})),
            "label",
        ),
        (
            patch(&format!("/api/public/contacts/{id}")).set_json(json!({"nmae": "Jane S."})),
            "nmae",
        ),
        (
            post("/api/public/inbox/send").set_json(json!({
                "sessionId": "sim-1", "targetNumber": "6281234567890", "mesage": "hi"
            })),
            "mesage",
        ),
        (
            post("/api/public/inbox/send").set_json(json!({
                "sessionId": "sim-1", "targetNumber": "6281234567890", "message": "hi",
                "media": {"type": "image", "url": "https://example.com/a.jpg", "caption": "x"}
            })),
            "media.caption",
        ),
        (
            post("/api/public/sessions")
                .set_json(json!({"sessionId": "s2", "provider": "simulator", "token": "x"})),
            "token",
        ),
        (
            post("/api/public/sessions/sim-1/simulate/inbound")
                .set_json(json!({"from": "6281234567890", "message": "hi", "name": "Bob"})),
            "name",
        ),
        (get("/api/public/contacts?serch=jane"), "serch"),
        (get("/api/public/contacts/export?limit=5"), "limit"),
        (
            post("/api/public/contacts?search=x")
                .set_json(json!({"name": "Ann", "phone": "6281111111111"})),
            "search",
        ),
        (
            get("/api/public/inbox/conversations?limit=5&sort=asc"),
            "sort",
        ),
        (get("/api/public/sessions?all=1"), "all"),
        // One value a parameter: the handler would keep only the last.
        (get("/api/public/contacts?limit=5&limit=500"), "limit"),
        (get("/api/public/events?types=a&types=b"), "types"),
        (
            get(&format!("/api/public/contacts/{id}?fields=name")),
            "fields",
        ),
    ] {
        let a = call(&w, req).await;
        assert_eq!(
            a.error(),
            (400, "validation_failed", Some(field)),
            "{field}: {}",
            a.json
        );
        let message = a.json["error"]["message"].as_str().unwrap_or_default();
        assert!(
            message.contains(field),
            "the message names {field}: {message}"
        );
    }
    // Nothing was written by the refused requests.
    let list = call(&w, get("/api/public/contacts")).await;
    assert_eq!(list.json["total"], 1, "{}", list.json);
    assert_eq!(list.json["contacts"][0]["name"], "Jane");
    // What each operation takes still works, HEAD as GET.
    for req in [
        get("/api/public/contacts?limit=1&search=jane&label=lead"),
        get("/api/public/contacts/export?search=jane"),
        get("/api/public/inbox/conversations?sessionId=sim-1&limit=5"),
        TestRequest::default()
            .method(actix_web::http::Method::HEAD)
            .uri("/api/public/contacts?limit=1")
            .insert_header(("X-API-Key", KEY_A)),
    ] {
        let a = call(&w, req).await;
        assert_eq!(a.status.as_u16(), 200, "{}", a.json);
    }
    // A stranger learns nothing of the parameters: the key comes first.
    let a = call(&w, TestRequest::get().uri("/api/public/contacts?serch=x")).await;
    assert_eq!(a.error().1, "missing_api_key");
}
