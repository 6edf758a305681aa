use crate::helpers::{error_of, json_of, spawn_app};

#[tokio::test]
async fn health_needs_no_database_and_ready_does() {
    let mut app = spawn_app().await;
    assert_eq!(
        json_of(
            app.client.get(app.url("/health")).send().await.expect("r"),
            200
        )
        .await["status"],
        "ok"
    );
    assert_eq!(
        json_of(
            app.client.get(app.url("/ready")).send().await.expect("r"),
            200
        )
        .await["status"],
        "ready"
    );

    // Take the database away: /ready says 503 in the error shape, /health stays up.
    drop(app.db.take());
    let res = app.client.get(app.url("/ready")).send().await.expect("r");
    assert_eq!(
        res.headers().get("retry-after").map(|v| v.as_bytes()),
        Some(&b"1"[..])
    );
    let (code, _) = error_of(res, 503).await;
    assert_eq!(code, "service_unavailable");
    assert_eq!(
        app.client
            .get(app.url("/health"))
            .send()
            .await
            .expect("r")
            .status(),
        200
    );
    // An API call without its database is a 503 too, never a 500 with internals.
    let res = app
        .client
        .get(app.url("/api/public/contacts"))
        .header("X-API-Key", &app.key)
        .send()
        .await
        .expect("r");
    let status = res.status().as_u16();
    let text = res.text().await.expect("body");
    assert_eq!(status, 503, "{text}");
    assert!(
        !text.contains("database \\\"") && !text.contains("postgres"),
        "{text}"
    );
}

#[tokio::test]
async fn head_answers_like_get_without_a_body_and_other_methods_are_405() {
    let app = spawn_app().await;
    for path in ["/health", "/ready"] {
        let res = app.client.head(app.url(path)).send().await.expect("r");
        assert_eq!(res.status(), 200, "HEAD {path}");
        assert!(res.bytes().await.expect("body").is_empty(), "HEAD {path}");
    }
    let res = app
        .client
        .head(app.url("/api/public/contacts"))
        .header("X-API-Key", &app.key)
        .send()
        .await
        .expect("r");
    assert_eq!(res.status(), 200);
    let res = app
        .client
        .head(app.url("/api/public/contacts"))
        .send()
        .await
        .expect("r");
    assert_eq!(res.status(), 401, "HEAD needs a key like GET");
    for path in ["/health", "/ready"] {
        let res = app.client.post(app.url(path)).send().await.expect("r");
        let (code, _) = error_of(res, 405).await;
        assert_eq!(code, "method_not_allowed", "POST {path}");
    }
}

#[tokio::test]
async fn every_response_carries_a_request_id() {
    let app = spawn_app().await;
    let res = app.client.get(app.url("/health")).send().await.expect("r");
    let id = res.headers().get("x-request-id").expect("generated id");
    assert!(!id.is_empty());
    let res = app
        .client
        .get(app.url("/health"))
        .header("X-Request-Id", "trace-abc-123")
        .send()
        .await
        .expect("r");
    assert_eq!(
        res.headers().get("x-request-id").map(|v| v.as_bytes()),
        Some(&b"trace-abc-123"[..])
    );
}
