use reqwest::Method;
use serde_json::json;

use std::time::Duration;

use crate::helpers::{error_of, json_of, spawn_app, spawn_app_with};

#[tokio::test]
async fn requests_without_a_valid_key_are_401() {
    let app = spawn_app().await;
    let res = app
        .client
        .get(app.url("/api/public/contacts"))
        .send()
        .await
        .expect("r");
    let (code, _) = error_of(res, 401).await;
    assert_eq!(code, "missing_api_key");
    let endpoints = [
        (Method::GET, "/api/public/contacts"),
        (Method::GET, "/api/public/sessions"),
        (Method::GET, "/api/public/inbox/conversations"),
        (Method::POST, "/api/public/inbox/send"),
        (
            Method::GET,
            "/api/public/messages/01a2157f-367d-73f9-8b34-e17a5a7ad183",
        ),
    ];
    for (key, want) in [
        ("", "missing_api_key"),
        ("garbage", "invalid_api_key"),
        ("mvr_live_short", "invalid_api_key"),
        // Well formed, never issued.
        (
            "mvr_live_0123456789abcdefghijABCDEFGHIJ0123456789",
            "invalid_api_key",
        ),
    ] {
        for (method, path) in &endpoints {
            let res = app
                .request_as(key, method.clone(), path)
                .json(&json!({}))
                .send()
                .await
                .expect("r");
            let (code, _) = error_of(res, 401).await;
            assert_eq!(code, want, "{key:?} on {method} {path}");
        }
    }
    // A POST without a key writes nothing, whatever its body.
    let res = app
        .client
        .post(app.url("/api/public/contacts"))
        .json(&json!({"name": "Jane", "phone": "6289876543210"}))
        .send()
        .await
        .expect("r");
    error_of(res, 401).await;
    assert_eq!(app.list("").await["total"], 0);
}

#[tokio::test]
async fn the_bearer_scheme_works_too() {
    let app = spawn_app().await;
    let res = app
        .client
        .get(app.url("/api/public/contacts"))
        .bearer_auth(&app.key)
        .send()
        .await
        .expect("r");
    assert_eq!(res.status(), 200);
    // An empty X-API-Key beside it (a client's unfilled template) does not
    // hide it.
    let res = app
        .client
        .get(app.url("/api/public/contacts"))
        .header("X-API-Key", "")
        .bearer_auth(&app.key)
        .send()
        .await
        .expect("r");
    assert_eq!(res.status(), 200);
}

#[tokio::test]
async fn a_running_server_records_when_each_key_was_last_used() {
    let app = spawn_app_with(|s| s.auth.record_uses_secs = 1).await;
    let (idle, _) = app
        .services
        .api_keys
        .create(app.workspace, Some("idle"))
        .await
        .expect("key");
    let before = chrono::Utc::now() - chrono::TimeDelta::seconds(1);
    assert_eq!(app.list("").await["total"], 0);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let keys = loop {
        let keys = app
            .services
            .api_keys
            .list(app.workspace)
            .await
            .expect("list");
        if keys.iter().any(|k| k.last_used_at.is_some()) {
            break keys;
        }
        assert!(std::time::Instant::now() < deadline, "no use recorded");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let used: Vec<_> = keys.iter().filter(|k| k.last_used_at.is_some()).collect();
    assert_eq!(used.len(), 1, "only the key that was used");
    assert_ne!(used[0].id, idle.id);
    assert!(used[0].last_used_at.is_some_and(|t| t >= before));
}

#[tokio::test]
async fn a_revoked_key_is_refused_on_the_next_request() {
    let app = spawn_app().await;
    let (record, secret) = app
        .services
        .api_keys
        .create(app.workspace, Some("temp"))
        .await
        .expect("key");
    let key = secret.expose();
    let res = app
        .request_as(key, Method::GET, "/api/public/contacts")
        .send()
        .await
        .expect("r");
    assert_eq!(res.status(), 200);
    app.services
        .api_keys
        .revoke(record.id)
        .await
        .expect("revoke");
    for (method, path) in [
        (Method::GET, "/api/public/contacts"),
        (Method::POST, "/api/public/contacts"),
        (Method::GET, "/api/public/sessions"),
        (Method::GET, "/api/public/inbox/conversations"),
        (Method::POST, "/api/public/inbox/send"),
    ] {
        let res = app
            .request_as(key, method.clone(), path)
            .json(&serde_json::json!({"name": "Jane", "phone": "6289876543210"}))
            .send()
            .await
            .expect("r");
        let (code, _) = error_of(res, 401).await;
        assert_eq!(code, "invalid_api_key", "{method} {path}");
    }
    // The other key of the workspace still works, and nothing was written.
    assert_eq!(app.list("").await["total"], 0);
}

#[tokio::test]
async fn another_workspace_never_sees_changes_or_deletes_a_contact() {
    let app = spawn_app().await;
    let (_, other_key) = app.new_workspace("Other").await;
    let jane = json_of(
        app.create_contact(json!({"name": "Jane", "phone": "6289876543210"}))
            .await,
        201,
    )
    .await;
    let path = format!("/api/public/contacts/{}", jane["_id"].as_str().expect("id"));

    let list = json_of(
        app.request_as(&other_key, Method::GET, "/api/public/contacts")
            .send()
            .await
            .expect("r"),
        200,
    )
    .await;
    assert_eq!(list, json!({"total": 0, "contacts": []}));
    let search = json_of(
        app.request_as(&other_key, Method::GET, "/api/public/contacts?search=jane")
            .send()
            .await
            .expect("r"),
        200,
    )
    .await;
    assert_eq!(search["total"], 0);
    error_of(
        app.request_as(&other_key, Method::GET, &path)
            .send()
            .await
            .expect("r"),
        404,
    )
    .await;
    error_of(
        app.request_as(&other_key, Method::PATCH, &path)
            .json(&json!({"name": "Mallory"}))
            .send()
            .await
            .expect("r"),
        404,
    )
    .await;
    error_of(
        app.request_as(&other_key, Method::DELETE, &path)
            .send()
            .await
            .expect("r"),
        404,
    )
    .await;

    // The other workspace may hold the same phone: uniqueness is per workspace.
    let res = app
        .request_as(&other_key, Method::POST, "/api/public/contacts")
        .json(&json!({"name": "Jane B", "phone": "6289876543210"}))
        .send()
        .await
        .expect("r");
    assert_eq!(res.status(), 201);

    let still = json_of(
        app.request(Method::GET, &path).send().await.expect("r"),
        200,
    )
    .await;
    assert_eq!(still, jane);
    assert_eq!(app.list("").await["total"], 1);
}
