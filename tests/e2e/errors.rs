//! Bad input: one JSON error shape, the right status, the field at fault,
//! and nothing written.

use reqwest::Method;
use serde_json::json;

use crate::helpers::{error_of, spawn_app};

#[tokio::test]
async fn invalid_fields_are_named() {
    let app = spawn_app().await;
    let long_name = "x".repeat(201);
    let too_many: Vec<String> = (0..51).map(|i| format!("l{i}")).collect();
    let long_label = "y".repeat(51);
    let cases = [
        (json!({"phone": "6289876543210"}), "name"),
        (json!({"name": "Jane"}), "phone"),
        (json!({"name": "   ", "phone": "6289876543210"}), "name"),
        (json!({"name": long_name, "phone": "6289876543210"}), "name"),
        (json!({"name": "Jane", "phone": "62812abc4567"}), "phone"),
        (json!({"name": "Jane", "phone": "6281"}), "phone"),
        (json!({"name": "Jane", "phone": "99912345678"}), "phone"),
        (json!({"name": "Jane", "phone": ""}), "phone"),
        (
            json!({"name": "Jane", "phone": "6289876543210", "labels": too_many}),
            "labels",
        ),
        (
            json!({"name": "Jane", "phone": "6289876543210", "labels": long_label}),
            "labels",
        ),
        // Wrong types.
        (json!({"name": 42, "phone": "6289876543210"}), "name"),
        (json!({"name": "Jane", "phone": 6289876543210u64}), "phone"),
        (
            json!({"name": "Jane", "phone": "6289876543210", "labels": 7}),
            "labels",
        ),
        (
            json!({"name": "Jane", "phone": "6289876543210", "labels": [1, 2]}),
            "labels[0]",
        ),
        (
            json!({"name": "Jane", "phone": "6289876543210", "labels": {"a": 1}}),
            "labels",
        ),
    ];
    for (body, field) in cases {
        let res = app.create_contact(body.clone()).await;
        let (code, f) = error_of(res, 400).await;
        assert_eq!(code, "validation_failed", "{body}");
        assert_eq!(f.as_deref(), Some(field), "{body}");
    }
    assert_eq!(app.list("").await["total"], 0, "nothing was written");
}

#[tokio::test]
async fn malformed_bodies_are_400() {
    let app = spawn_app().await;
    for raw in [
        "{\"name\": \"Jane\",",
        "not json",
        "",
        "   ",
        "{} {}",
        "[1,2]",
        "\"text\"",
        "null",
    ] {
        let res = app
            .request(Method::POST, "/api/public/contacts")
            .header("content-type", "application/json")
            .body(raw)
            .send()
            .await
            .expect("request");
        let (code, _) = error_of(res, 400).await;
        assert!(
            code == "malformed_json" || code == "validation_failed",
            "{raw:?}: {code}"
        );
    }
}

#[tokio::test]
async fn wrong_content_type_is_415() {
    let app = spawn_app().await;
    for ct in [
        Some("text/plain"),
        Some("application/x-www-form-urlencoded"),
        None,
    ] {
        let mut req = app
            .request(Method::POST, "/api/public/contacts")
            .body(r#"{"name":"Jane","phone":"6289876543210"}"#);
        if let Some(ct) = ct {
            req = req.header("content-type", ct);
        }
        let (code, _) = error_of(req.send().await.expect("request"), 415).await;
        assert_eq!(code, "unsupported_media_type");
    }
    // Parameters and +json types are JSON too.
    let res = app
        .request(Method::POST, "/api/public/contacts")
        .header("content-type", "application/json; charset=utf-8")
        .body(r#"{"name":"Jane","phone":"6289876543210"}"#)
        .send()
        .await
        .expect("request");
    assert_eq!(res.status(), 201);
}

#[tokio::test]
async fn a_body_over_the_limit_is_413() {
    let app = spawn_app().await;
    let big = format!(
        r#"{{"name":"Jane","phone":"6289876543210","labels":"{}"}}"#,
        "a".repeat(70 * 1024)
    );
    let res = app
        .request(Method::POST, "/api/public/contacts")
        .header("content-type", "application/json")
        .body(big.clone())
        .send()
        .await
        .expect("request");
    let (code, _) = error_of(res, 413).await;
    assert_eq!(code, "payload_too_large");
    // Also when the length is not declared up front (chunked).
    let stream = futures_util::stream::iter(
        big.into_bytes()
            .chunks(8192)
            .map(|c| Ok::<_, std::io::Error>(c.to_vec()))
            .collect::<Vec<_>>(),
    );
    let res = app
        .request(Method::POST, "/api/public/contacts")
        .header("content-type", "application/json")
        .body(reqwest::Body::wrap_stream(stream))
        .send()
        .await
        .expect("request");
    let (code, _) = error_of(res, 413).await;
    assert_eq!(code, "payload_too_large");
    assert_eq!(app.list("").await["total"], 0);
}

#[tokio::test]
async fn unknown_routes_and_methods_answer_json() {
    let app = spawn_app().await;
    let (code, _) = error_of(
        app.client.get(app.url("/nope")).send().await.expect("r"),
        404,
    )
    .await;
    assert_eq!(code, "not_found");
    let (code, _) = error_of(
        app.request(Method::GET, "/api/public/nope")
            .send()
            .await
            .expect("r"),
        404,
    )
    .await;
    assert_eq!(code, "not_found");
    let (code, _) = error_of(
        app.request(Method::PUT, "/api/public/contacts")
            .send()
            .await
            .expect("r"),
        405,
    )
    .await;
    assert_eq!(code, "method_not_allowed");
}
