//! Route-level tests: the real handlers and use cases over a real
//! PostgreSQL (a database per test), through actix's test service (no
//! socket), using only the crate's public API (`configure`, `ApiState`).
//! Only the providers are stand-ins: a transport that refuses and a webhook
//! decoder that trusts one signature. One module per resource; the tests of
//! the routing table as a whole are here.

mod common;
mod inbox;
mod messages;
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
