//! `/api/public/sessions`: listing, and simulated inbound messages.

use actix_web::http::StatusCode;
use serde_json::{Value, json};

use crate::common::{APP_SECRET, call, get, post, world};

#[actix_web::test]
async fn sessions_are_listed_without_secrets() {
    let w = world().await;
    let a = call(&w, get("/api/public/sessions")).await;
    assert_eq!(a.status, StatusCode::OK);
    let sessions = a.json["sessions"].as_array().cloned().unwrap_or_default();
    assert_eq!(sessions.len(), 2, "only the caller's workspace: {}", a.json);
    assert_eq!(sessions[0]["sessionId"], "sim-1");
    assert_eq!(sessions[0]["provider"], "simulator");
    assert_eq!(sessions[0]["status"], "connected");
    assert_eq!(sessions[0]["lastError"], Value::Null);
    assert_eq!(
        sessions[0]["webhookUrl"],
        Value::Null,
        "the simulator takes no webhooks"
    );
    assert!(sessions[0].get("phoneNumberId").is_none());
    assert_eq!(sessions[1]["provider"], "cloud-api");
    assert_eq!(sessions[1]["phoneNumberId"], "1234567890");
    let text = a.json.to_string();
    for secret in ["EAAsecret-token", APP_SECRET, "verify-me"] {
        assert!(!text.contains(secret), "{secret} leaked");
    }
}

#[actix_web::test]
async fn simulate_inbound_errors() {
    let w = world().await;
    let body = json!({"from": "6281234567890", "message": "hi"});
    let sim = |session: &str| post(&format!("/api/public/sessions/{session}/simulate/inbound"));
    assert_eq!(
        call(&w, sim("cloud-1").set_json(&body)).await.error(),
        (409, "not_a_simulator_session", None)
    );
    assert_eq!(
        call(&w, sim("nope").set_json(&body)).await.error().1,
        "session_not_found"
    );
    assert_eq!(
        call(&w, sim("b-only").set_json(&body)).await.error().1,
        "session_not_found"
    );
    // Numbers as a send's targetNumber takes them: a group's JID, or a
    // national number without its country code, would make a
    // conversation nobody could answer.
    for from in [
        "abc",
        "62811@g.us",
        "081234567890",
        "6281234567890@broadcast",
    ] {
        assert_eq!(
            call(
                &w,
                sim("sim-1").set_json(json!({"from": from, "message": "hi"}))
            )
            .await
            .error(),
            (400, "validation_failed", Some("from")),
            "{from}"
        );
    }
    for from in [
        "+62 812-3456-7890",
        "6281234567890@s.whatsapp.net",
        "6281234567890@c.us",
    ] {
        let a = call(
            &w,
            sim("sim-1").set_json(json!({"from": from, "message": "hi"})),
        )
        .await;
        assert_eq!(a.status, StatusCode::ACCEPTED, "{from}: {}", a.json);
    }
    let list = call(&w, get("/api/public/inbox/conversations")).await;
    let jids: Vec<&str> = list.json["conversations"]
        .as_array()
        .map(|c| c.iter().filter_map(|c| c["remoteJid"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(jids, vec!["6281234567890@s.whatsapp.net"], "one contact");
}

fn delete(uri: &str) -> actix_web::test::TestRequest {
    actix_web::test::TestRequest::delete()
        .uri(uri)
        .insert_header(("X-API-Key", crate::common::KEY_A))
}

#[actix_web::test]
async fn sessions_are_created_read_and_deleted_through_the_api() {
    let w = world().await;
    let a = call(
        &w,
        post("/api/public/sessions").set_json(json!({
            "sessionId": "sales",
            "provider": "cloud-api",
            "phoneNumberId": "5550001",
            "accessToken": "EAAnew-token",
            "appSecret": "new-app-secret",
            "verifyToken": "new-verify",
        })),
    )
    .await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.json);
    assert_eq!(a.header("Location"), Some("/api/public/sessions/sales"));
    assert_eq!(a.json["sessionId"], "sales");
    assert_eq!(a.json["provider"], "cloud-api");
    assert_eq!(a.json["phoneNumberId"], "5550001");
    let webhook = a.json["webhookUrl"].as_str().unwrap_or_default().to_owned();
    assert!(webhook.starts_with("/webhooks/whatsapp/"), "{}", a.json);
    let text = a.json.to_string();
    for secret in ["EAAnew-token", "new-app-secret", "new-verify"] {
        assert!(!text.contains(secret), "{secret} leaked");
    }

    // Read back alone and in the list, as created.
    let one = call(&w, get("/api/public/sessions/sales")).await;
    assert_eq!(one.status, StatusCode::OK);
    assert_eq!(one.json, a.json);
    let list = call(&w, get("/api/public/sessions")).await;
    assert!(
        list.json["sessions"]
            .as_array()
            .is_some_and(|s| s.contains(&a.json)),
        "{}",
        list.json
    );

    // A simulator session takes no settings.
    let sim = call(
        &w,
        post("/api/public/sessions")
            .set_json(json!({"sessionId": "sim-2", "provider": "simulator"})),
    )
    .await;
    assert_eq!(sim.status, StatusCode::CREATED, "{}", sim.json);
    assert_eq!(sim.json["webhookUrl"], Value::Null);

    // The name is taken: 409 on sessionId, the first session unchanged.
    let again = call(
        &w,
        post("/api/public/sessions")
            .set_json(json!({"sessionId": "sales", "provider": "simulator"})),
    )
    .await;
    assert_eq!(again.error(), (409, "duplicate_session", Some("sessionId")));
    assert_eq!(
        call(&w, get("/api/public/sessions/sales")).await.json,
        a.json
    );

    // Deleted: gone from the item route, the list and a second delete.
    let gone = call(&w, delete("/api/public/sessions/sales")).await;
    assert_eq!(gone.status, StatusCode::NO_CONTENT);
    assert_eq!(
        call(&w, get("/api/public/sessions/sales")).await.error().1,
        "session_not_found"
    );
    assert_eq!(
        call(&w, delete("/api/public/sessions/sales"))
            .await
            .error()
            .1,
        "session_not_found"
    );
    // Another workspace's session is not found, and not deleted.
    assert_eq!(
        call(&w, delete("/api/public/sessions/b-only"))
            .await
            .error()
            .1,
        "session_not_found"
    );
    assert_eq!(
        call(&w, get("/api/public/sessions/b-only")).await.error().1,
        "session_not_found"
    );
}

#[actix_web::test]
async fn a_bad_session_body_names_its_field_and_creates_nothing() {
    let w = world().await;
    let cloud = json!({
        "sessionId": "x1", "provider": "cloud-api", "phoneNumberId": "1",
        "accessToken": "t", "appSecret": "s", "verifyToken": "v",
    });
    let without = |field: &str| {
        let mut body = cloud.clone();
        body.as_object_mut().map(|o| o.remove(field));
        body
    };
    let with = |field: &str, value: Value| {
        let mut body = cloud.clone();
        body[field] = value;
        body
    };
    for (body, field) in [
        (without("sessionId"), "sessionId"),
        (with("sessionId", json!("has space")), "sessionId"),
        (with("sessionId", json!("x".repeat(65))), "sessionId"),
        (without("provider"), "provider"),
        (with("provider", json!("telegram")), "provider"),
        // A whatsapp-web session takes no Cloud API setting.
        (with("provider", json!("whatsapp-web")), "phoneNumberId"),
        (without("phoneNumberId"), "phoneNumberId"),
        (without("accessToken"), "accessToken"),
        (with("appSecret", json!("  ")), "appSecret"),
        (without("verifyToken"), "verifyToken"),
        (
            json!({"sessionId": "x1", "provider": "simulator", "accessToken": "t"}),
            "accessToken",
        ),
        (with("sessionId", json!(12)), "sessionId"),
    ] {
        let a = call(&w, post("/api/public/sessions").set_json(&body)).await;
        assert_eq!(a.error(), (400, "validation_failed", Some(field)), "{body}");
    }
    assert_eq!(
        call(&w, get("/api/public/sessions/x1")).await.error().1,
        "session_not_found"
    );
}

#[actix_web::test]
async fn a_session_is_stopped_and_started_again() {
    let w = world().await;
    let stopped = call(&w, post("/api/public/sessions/sim-1/stop")).await;
    assert_eq!(stopped.status, StatusCode::OK, "{}", stopped.json);
    assert_eq!(stopped.json["status"], "stopped");
    assert_eq!(
        call(&w, get("/api/public/sessions/sim-1")).await.json["status"],
        "stopped"
    );
    // Sends are still accepted: they wait, queued.
    let sent = call(
        &w,
        post("/api/public/inbox/send").set_json(
            json!({"sessionId": "sim-1", "targetNumber": "6281234567890", "message": "later"}),
        ),
    )
    .await;
    assert_eq!(sent.status, StatusCode::ACCEPTED, "{}", sent.json);
    let started = call(&w, post("/api/public/sessions/sim-1/start")).await;
    assert_eq!(started.json["status"], "connected");
    assert_eq!(started.json["lastError"], Value::Null);
    for path in [
        "/api/public/sessions/nope/stop",
        "/api/public/sessions/b-only/start",
    ] {
        assert_eq!(
            call(&w, post(path)).await.error().1,
            "session_not_found",
            "{path}"
        );
    }
}
