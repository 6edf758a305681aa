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
