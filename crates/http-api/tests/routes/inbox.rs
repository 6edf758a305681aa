//! `/api/public/inbox/conversations`: lists, messages and marking read.

use actix_web::http::StatusCode;
use actix_web::test::TestRequest;
use serde_json::json;

use crate::common::{GOOD_SIGNATURE, call, get, post, world};

#[actix_web::test]
async fn simulated_inbound_shows_in_the_inbox() {
    let w = world().await;
    let a = call(
        &w,
        post("/api/public/sessions/sim-1/simulate/inbound").set_json(json!({
            "from": "6281234567890", "pushName": "John Doe", "message": "Hello there!"
        })),
    )
    .await;
    assert_eq!(a.status, StatusCode::ACCEPTED, "{}", a.json);
    assert!(
        a.json["providerMessageId"]
            .as_str()
            .is_some_and(|p| p.starts_with("sim-in-"))
    );

    let list = call(&w, get("/api/public/inbox/conversations")).await;
    assert_eq!(list.status, StatusCode::OK);
    let conv = &list.json["conversations"][0];
    let keys: Vec<&str> = conv
        .as_object()
        .map(|o| o.keys().map(String::as_str).collect())
        .unwrap_or_default();
    assert_eq!(
        keys.len(),
        6,
        "exactly the reference's fields plus sessionId: {conv}"
    );
    assert_eq!(conv["remoteJid"], "6281234567890@s.whatsapp.net");
    assert_eq!(conv["pushName"], "John Doe");
    assert_eq!(conv["lastMessage"], "Hello there!");
    assert_eq!(conv["unreadCount"], 1);
    assert_eq!(conv["sessionId"], "sim-1");
    let ts = conv["timestamp"].as_str().unwrap_or_default();
    assert!(
        ts.ends_with('Z') && ts.len() == "2023-10-01T12:05:00.000000Z".len(),
        "{ts}"
    );

    for remote in [
        "6281234567890@s.whatsapp.net",
        "6281234567890%40s.whatsapp.net",
        "6281234567890",
    ] {
        let msgs = call(
            &w,
            get(&format!(
                "/api/public/inbox/conversations/{remote}/messages?sessionId=sim-1"
            )),
        )
        .await;
        assert_eq!(msgs.status, StatusCode::OK, "{}", msgs.json);
        assert_eq!(msgs.json["messages"][0]["direction"], "inbound");
        assert_eq!(msgs.json["messages"][0]["text"], "Hello there!");
        assert_eq!(msgs.json["messages"][0]["status"], "received");
        // Pages do not read histories: the field is absent, not empty.
        assert!(msgs.json["messages"][0].get("statusHistory").is_none());
    }

    let read = call(
        &w,
        post("/api/public/inbox/conversations/6281234567890/read?sessionId=sim-1"),
    )
    .await;
    assert_eq!(read.status, StatusCode::OK);
    assert_eq!(
        read.json,
        json!({"remoteJid": "6281234567890@s.whatsapp.net", "sessionId": "sim-1", "unreadCount": 0})
    );
    let list = call(&w, get("/api/public/inbox/conversations?sessionId=sim-1")).await;
    assert_eq!(list.json["conversations"][0]["unreadCount"], 0);
}

#[actix_web::test]
async fn inbox_query_and_path_errors() {
    let w = world().await;
    for (uri, want) in [
        (
            "/api/public/inbox/conversations?limit=0",
            (400, "validation_failed", Some("limit")),
        ),
        (
            "/api/public/inbox/conversations?before=yesterday",
            (400, "validation_failed", Some("before")),
        ),
        (
            "/api/public/inbox/conversations?sessionId=nope",
            (404, "session_not_found", Some("sessionId")),
        ),
        (
            "/api/public/inbox/conversations/6281234567890/messages",
            (400, "validation_failed", Some("sessionId")),
        ),
        (
            "/api/public/inbox/conversations/hello/messages?sessionId=sim-1",
            (400, "validation_failed", Some("remoteJid")),
        ),
        (
            "/api/public/inbox/conversations/6281234567890@g.us/messages?sessionId=sim-1",
            (400, "validation_failed", Some("remoteJid")),
        ),
    ] {
        assert_eq!(call(&w, get(uri)).await.error(), want, "{uri}");
    }
    // A JID's forms all name the same contact, `+` encoded or not.
    for remote in [
        "6281234567890",
        "6281234567890@s.whatsapp.net",
        "6281234567890@c.us",
        "%2B6281234567890",
        "+6281234567890",
    ] {
        let a = call(
            &w,
            get(&format!(
                "/api/public/inbox/conversations/{remote}/messages?sessionId=sim-1"
            )),
        )
        .await;
        assert_eq!(a.status, StatusCode::OK, "{remote}: {}", a.json);
    }
    let read = call(
        &w,
        post("/api/public/inbox/conversations/6281234567890/read?sessionId=sim-1"),
    )
    .await;
    assert_eq!(read.error(), (404, "conversation_not_found", None));
}

#[actix_web::test]
async fn provider_read_failures_are_reported_not_fatal() {
    let w = world().await;
    let delivered = call(
        &w,
        TestRequest::post()
            .uri(&format!("/webhooks/whatsapp/{}", w.cloud.id))
            .insert_header(("X-Hub-Signature-256", GOOD_SIGNATURE))
            .set_payload("{}"),
    )
    .await;
    assert_eq!(delivered.json, json!({"received": 1}));
    let read = call(
        &w,
        post("/api/public/inbox/conversations/6281234567890/read?sessionId=cloud-1"),
    )
    .await;
    assert_eq!(read.status, StatusCode::OK);
    assert_eq!(read.json["unreadCount"], 0);
    assert!(
        read.json["providerError"]
            .as_str()
            .is_some_and(|e| e.contains("access token expired")),
        "{}",
        read.json
    );
}
