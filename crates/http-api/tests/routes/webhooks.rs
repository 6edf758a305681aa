//! `/webhooks/whatsapp/{uuid}`: verification and deliveries.

use std::sync::Arc;
use std::time::Duration;

use actix_web::http::StatusCode;
use actix_web::test::TestRequest;
use maveraa_domain::SessionId;
use maveraa_http_api::HttpSettings;
use maveraa_storage::{Database, PgStore, PoolSettings};
use serde_json::{Value, json};

use crate::common::{GOOD_SIGNATURE, call, call_state, call_with, send_req, state_over, world};

#[actix_web::test]
async fn webhook_verification() {
    let w = world().await;
    let verify = |id: &str, token: &str| {
        TestRequest::get().uri(&format!(
            "/webhooks/whatsapp/{id}?hub.mode=subscribe&hub.verify_token={token}&hub.challenge=ch-1158201444"
        ))
    };
    let ok = call(&w, verify(&w.cloud.id.to_string(), "verify-me")).await;
    assert_eq!(ok.status, StatusCode::OK);
    assert_eq!(ok.json, Value::String("ch-1158201444".into()));
    assert!(
        ok.header("content-type")
            .is_some_and(|c| c.starts_with("text/plain"))
    );

    let refused = call(&w, verify(&w.cloud.id.to_string(), "wrong")).await;
    assert_eq!(refused.error(), (403, "forbidden", None));
    for id in [
        "not-a-uuid".to_owned(),
        SessionId::new().to_string(),
        w.simulator.id.to_string(),
    ] {
        assert_eq!(
            call(&w, verify(&id, "verify-me")).await.error().0,
            404,
            "{id}"
        );
    }
}

#[actix_web::test]
async fn webhook_deliveries() {
    let w = world().await;
    let deliver = |signature: &str, body: &'static str| {
        TestRequest::post()
            .uri(&format!("/webhooks/whatsapp/{}", w.cloud.id))
            .insert_header(("X-Hub-Signature-256", signature))
            .set_payload(body)
    };
    // No content type is required: the signature covers the raw bytes.
    let ok = call(&w, deliver(GOOD_SIGNATURE, "{}")).await;
    assert_eq!(
        (ok.status, ok.json),
        (StatusCode::OK, json!({"received": 1}))
    );
    assert_eq!(
        call(&w, deliver("sha256=bad", "{}")).await.error(),
        (401, "invalid_signature", None)
    );
    assert_eq!(
        call(&w, deliver(GOOD_SIGNATURE, "garbage")).await.error(),
        (400, "malformed_webhook", None)
    );
    let small = HttpSettings {
        webhook_body_limit: 4,
        ..HttpSettings::default()
    };
    assert_eq!(
        call_with(&w, small, deliver(GOOD_SIGNATURE, "{\"a\": 1}"))
            .await
            .error(),
        (413, "payload_too_large", None)
    );
    // The database unreachable: a 503, which the provider retries, and no
    // internals in the body.
    let unreachable = Database::connect(
        "postgres://postgres@127.0.0.1:1/none",
        &PoolSettings {
            min_idle: 0,
            acquire_timeout: Duration::from_millis(300),
            ..PoolSettings::default()
        },
    )
    .expect("a pool connects lazily");
    let down = call_state(
        &state_over(Arc::new(PgStore::new(unreachable))),
        HttpSettings::default(),
        deliver(GOOD_SIGNATURE, "{}"),
    )
    .await;
    assert_eq!(down.error(), (503, "service_unavailable", None));
    assert_eq!(down.header("retry-after"), Some("1"));
    let text = down.json.to_string();
    assert!(
        !text.contains("127.0.0.1") && !text.contains("refused"),
        "{text}"
    );
}

#[actix_web::test]
async fn webhook_limit_is_separate_from_the_api_limit() {
    let w = world().await;
    let tight_api = HttpSettings {
        body_limit: 4,
        ..HttpSettings::default()
    };
    let ok = call_with(
        &w,
        tight_api,
        TestRequest::post()
            .uri(&format!("/webhooks/whatsapp/{}", w.cloud.id))
            .insert_header(("X-Hub-Signature-256", GOOD_SIGNATURE))
            .set_payload("{\"entry\": []}"),
    )
    .await;
    assert_eq!(ok.status, StatusCode::OK);
    let api = call_with(
        &w,
        tight_api,
        send_req(&json!({"sessionId": "sim-1", "targetNumber": "6289876543210", "message": "hi"})),
    )
    .await;
    assert_eq!(api.error().0, 413);

    // Meta's deliveries may be up to 3 MB: the default takes them.
    let three_mb = format!("{{\"pad\": \"{}\"}}", "x".repeat(3 * 1000 * 1000));
    let big = call(
        &w,
        TestRequest::post()
            .uri(&format!("/webhooks/whatsapp/{}", w.cloud.id))
            .insert_header(("X-Hub-Signature-256", GOOD_SIGNATURE))
            .set_payload(three_mb),
    )
    .await;
    assert_eq!(big.status, StatusCode::OK, "{}", big.json);
}
