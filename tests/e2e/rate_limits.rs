//! Request rates per API key (issue 16): a token bucket per key for sends
//! and one for every other request, `RateLimit-*` headers on each answer,
//! `429` with `Retry-After` in the API's error shape, and a key's own rates.

use std::time::{Duration, Instant};

use maveraa_domain::KeyRateLimits;
use reqwest::Method;
use serde_json::json;

use crate::helpers::{TestApp, error_of, spawn_app_with};

fn header(res: &reqwest::Response, name: &str) -> Option<String> {
    res.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

async fn list(app: &TestApp, key: &str) -> reqwest::Response {
    app.request_as(key, Method::GET, "/api/public/contacts?limit=1")
        .send()
        .await
        .expect("request")
}

async fn send(app: &TestApp) -> reqwest::Response {
    app.send(json!({"sessionId": "sim", "targetNumber": "6281234567890", "message": "hi"}))
        .await
}

#[tokio::test]
async fn a_keys_rate_is_spent_refused_with_retry_after_and_refilled() {
    let app = spawn_app_with(|s| {
        s.rate_limits.requests_per_sec = 2;
        s.rate_limits.sends_per_sec = 1;
        s.rate_limits.burst_secs = 1;
    })
    .await;
    app.simulator_session("sim").await;

    let first = list(&app, &app.key).await;
    assert_eq!(first.status(), 200);
    assert_eq!(header(&first, "ratelimit-limit").as_deref(), Some("2"));
    let remaining: u32 = header(&first, "ratelimit-remaining")
        .and_then(|v| v.parse().ok())
        .expect("remaining");
    assert!(remaining <= 1, "{remaining}");
    assert!(header(&first, "ratelimit-reset").is_some());
    // Spend the rest (a refill may add one meanwhile), then be refused.
    let mut refused = None;
    for _ in 0..5 {
        let res = list(&app, &app.key).await;
        if res.status() == 429 {
            refused = Some(res);
            break;
        }
        assert_eq!(res.status(), 200);
    }
    let refused = refused.expect("a bucket of 2 is spent within 6 requests");
    let retry_after: u64 = header(&refused, "retry-after")
        .and_then(|v| v.parse().ok())
        .expect("Retry-After");
    assert!((1..=2).contains(&retry_after), "{retry_after}");
    assert_eq!(
        header(&refused, "ratelimit-remaining").as_deref(),
        Some("0")
    );
    assert_eq!(
        error_of(refused, 429).await,
        ("rate_limited".to_owned(), None)
    );

    // Sends have their own bucket: not spent by the reads above.
    let sent = send(&app).await;
    assert_eq!(sent.status(), 202, "{:?}", sent.text().await);
    let again = send(&app).await;
    assert_eq!(error_of(again, 429).await.0, "rate_limited");

    // Another key has its own buckets.
    let (_, other) = app.new_workspace("Other").await;
    assert_eq!(list(&app, &other).await.status(), 200);
    // Without a key: 401, and no bucket to tell of.
    let stranger = app
        .client
        .get(app.url("/api/public/contacts"))
        .send()
        .await
        .expect("request");
    assert_eq!(stranger.status(), 401);
    assert!(header(&stranger, "ratelimit-limit").is_none());

    // The bucket refills at the key's rate.
    let deadline = Instant::now() + Duration::from_secs(5);
    while list(&app, &app.key).await.status() == 429 {
        assert!(Instant::now() < deadline, "still refused after 5 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn a_keys_own_rates_apply_from_its_next_request() {
    let app = spawn_app_with(|s| {
        s.rate_limits.requests_per_sec = 1;
        s.rate_limits.burst_secs = 1;
    })
    .await;
    let key_id = app
        .services
        .api_keys
        .list(app.workspace)
        .await
        .expect("keys")[0]
        .id;
    // No limit for this key.
    app.services
        .api_keys
        .set_rate_limits(
            key_id,
            KeyRateLimits {
                requests_per_sec: Some(0),
                sends_per_sec: None,
            },
        )
        .await
        .expect("set");
    for _ in 0..10 {
        let res = list(&app, &app.key).await;
        assert_eq!(res.status(), 200);
        assert!(header(&res, "ratelimit-limit").is_none(), "unlimited");
    }
    // Its own rate, higher than the server's.
    app.services
        .api_keys
        .set_rate_limits(
            key_id,
            KeyRateLimits {
                requests_per_sec: Some(50),
                sends_per_sec: None,
            },
        )
        .await
        .expect("set");
    let res = list(&app, &app.key).await;
    assert_eq!(header(&res, "ratelimit-limit").as_deref(), Some("50"));
    // Back to the server's default.
    app.services
        .api_keys
        .set_rate_limits(key_id, KeyRateLimits::default())
        .await
        .expect("set");
    let res = list(&app, &app.key).await;
    assert_eq!(header(&res, "ratelimit-limit").as_deref(), Some("1"));
}
