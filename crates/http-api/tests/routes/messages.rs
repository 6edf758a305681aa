//! `POST /api/public/inbox/send` and `GET /api/public/messages/{id}`.

use std::time::Duration;

use actix_web::http::StatusCode;
use actix_web::test::TestRequest;
use chrono::Utc;
use maveraa_domain::MessageId;
use maveraa_domain::messaging::{DeliveryError, Message, MessageContent, MessageStatus, WaId};
use maveraa_domain::ports::{DispatchOutcome, MessageRepository, Outbox};
use serde_json::{Value, json};

use crate::common::{KEY_B, call, get, send_req, world};

#[actix_web::test]
async fn send_queues_and_answers_202() {
    let w = world().await;
    let a = call(
        &w,
        send_req(&json!({
            "sessionId": "sim-1",
            "targetNumber": "+62 898-7654-3210",
            "message": "Your OTP code is 4567"
        })),
    )
    .await;
    assert_eq!(a.status, StatusCode::ACCEPTED, "{}", a.json);
    assert_eq!(a.json["status"], "queued");
    assert_eq!(a.json["sessionId"], "sim-1");
    assert_eq!(a.json["remoteJid"], "6289876543210@s.whatsapp.net");
    let id = a.json["messageId"].as_str().unwrap_or_default().to_owned();
    assert_eq!(
        a.header("location"),
        Some(format!("/api/public/messages/{id}").as_str())
    );
    assert!(a.header("idempotent-replayed").is_none());

    let m = call(&w, get(&format!("/api/public/messages/{id}"))).await;
    assert_eq!(m.status, StatusCode::OK);
    assert_eq!(m.json["messageId"], id.as_str());
    assert_eq!(m.json["direction"], "outbound");
    assert_eq!(m.json["type"], "text");
    assert_eq!(m.json["text"], "Your OTP code is 4567");
    assert_eq!(m.json["media"], Value::Null);
    assert_eq!(m.json["error"], Value::Null);
    assert_eq!(m.json["providerMessageId"], Value::Null);
    assert_eq!(m.json["statusHistory"][0]["status"], "queued");
    assert!(m.json["statusHistory"][0].get("error").is_none());
    assert!(
        m.json["createdAt"]
            .as_str()
            .is_some_and(|t| t.ends_with('Z'))
    );
}

#[actix_web::test]
async fn send_with_media() {
    let w = world().await;
    let a = call(
        &w,
        send_req(&json!({
            "sessionId": "sim-1",
            "targetNumber": "6289876543210",
            "message": "",
            "media": {"type": "document", "url": "https://example.com/a.pdf", "fileName": "a.pdf"}
        })),
    )
    .await;
    assert_eq!(a.status, StatusCode::ACCEPTED, "{}", a.json);
    let id = a.json["messageId"].as_str().unwrap_or_default().to_owned();
    let m = call(&w, get(&format!("/api/public/messages/{id}"))).await;
    assert_eq!(m.json["type"], "document");
    assert_eq!(m.json["text"], Value::Null);
    assert_eq!(
        m.json["media"],
        json!({
            "type": "document", "url": "https://example.com/a.pdf", "providerMediaId": null,
            "mimeType": null, "caption": null, "fileName": "a.pdf", "size": null, "download": null
        })
    );
}

#[actix_web::test]
async fn idempotent_sends_replay_and_conflict() {
    let w = world().await;
    let body = json!({"sessionId": "sim-1", "targetNumber": "6289876543210", "message": "hi"});
    let first = call(
        &w,
        send_req(&body).insert_header(("Idempotency-Key", "k-1")),
    )
    .await;
    let again = call(
        &w,
        send_req(&body).insert_header(("Idempotency-Key", "k-1")),
    )
    .await;
    assert_eq!(again.status, StatusCode::ACCEPTED);
    assert_eq!(again.json, first.json);
    assert_eq!(again.header("idempotent-replayed"), Some("true"));

    let other = json!({"sessionId": "sim-1", "targetNumber": "6289876543210", "message": "bye"});
    let conflict = call(
        &w,
        send_req(&other).insert_header(("Idempotency-Key", "k-1")),
    )
    .await;
    assert_eq!(
        conflict.error(),
        (409, "idempotency_key_reused", Some("Idempotency-Key"))
    );

    let bad = call(&w, send_req(&body).insert_header(("Idempotency-Key", "é"))).await;
    assert_eq!(
        bad.error(),
        (400, "validation_failed", Some("Idempotency-Key"))
    );
}

#[actix_web::test]
async fn send_errors() {
    let w = world().await;
    for (body, want) in [
        (
            json!({"sessionId": "nope", "targetNumber": "6289876543210", "message": "x"}),
            (404, "session_not_found", Some("sessionId")),
        ),
        // Another workspace's session is not found either.
        (
            json!({"sessionId": "b-only", "targetNumber": "6289876543210", "message": "x"}),
            (404, "session_not_found", Some("sessionId")),
        ),
        (
            json!({"sessionId": "sim-1", "message": "x"}),
            (400, "validation_failed", Some("targetNumber")),
        ),
        (
            json!({"sessionId": "sim-1", "targetNumber": 6289876543210_u64, "message": "x"}),
            (400, "validation_failed", Some("targetNumber")),
        ),
    ] {
        assert_eq!(call(&w, send_req(&body)).await.error(), want, "{body}");
    }
}

#[actix_web::test]
async fn unknown_messages_are_404() {
    let w = world().await;
    for uri in [
        "/api/public/messages/60d5ec",
        &format!("/api/public/messages/{}", MessageId::new()),
    ] {
        assert_eq!(call(&w, get(uri)).await.error(), (404, "not_found", None));
    }
}

#[actix_web::test]
async fn a_message_read_back_keeps_its_history_and_errors() {
    let w = world().await;
    let now = Utc::now();
    let id = MessageId::new();
    let failure = DeliveryError {
        code: Some("131026".into()),
        message: "undeliverable".into(),
    };
    let message = Message {
        id,
        workspace_id: w.ws_a,
        session_id: w.cloud.id,
        session_name: w.cloud.name.clone(),
        remote: WaId::from_trusted("6281234567890".into()),
        direction: maveraa_domain::messaging::Direction::Outbound,
        content: MessageContent::Text { body: "x".into() },
        status: MessageStatus::Queued,
        provider_message_id: None,
        error: None,
        provider_timestamp: None,
        created_at: now,
        updated_at: now,
        history: Vec::new(),
    };
    w.store.enqueue(&message, None).await.expect("enqueue");
    let jobs = w
        .store
        .claim(
            "test",
            10,
            Duration::from_secs(60),
            &maveraa_domain::ports::SessionPace::default(),
        )
        .await
        .expect("claim");
    w.store
        .record(&[(jobs[0].claim(), DispatchOutcome::Failed(failure))], now)
        .await
        .expect("record");
    let m = call(&w, get(&format!("/api/public/messages/{id}"))).await;
    assert_eq!(m.json["status"], "failed");
    assert_eq!(m.json["providerMessageId"], Value::Null);
    assert_eq!(
        m.json["error"],
        json!({"code": "131026", "message": "undeliverable"})
    );
    assert_eq!(m.json["statusHistory"][0]["status"], "queued");
    assert_eq!(m.json["statusHistory"][1]["status"], "failed");
    assert_eq!(m.json["statusHistory"][1]["error"]["code"], "131026");
    // Not visible from another workspace.
    let other = call(
        &w,
        TestRequest::get()
            .uri(&format!("/api/public/messages/{id}"))
            .insert_header(("X-API-Key", KEY_B)),
    )
    .await;
    assert_eq!(other.error(), (404, "not_found", None));
}
