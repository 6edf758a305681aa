//! `/metrics` (issue 16): Prometheus' text format on an address of its own,
//! by route template (never a path with a customer's number), with send
//! outcomes and the database's gauges.

use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::json;

use crate::helpers::{TestApp, json_of, spawn_app_with};

async fn scrape(app: &TestApp) -> String {
    let port = app.metrics_port.expect("metrics are on");
    let res = app
        .client
        .get(format!("http://127.0.0.1:{port}/metrics"))
        .send()
        .await
        .expect("scrape");
    assert_eq!(res.status(), 200);
    assert!(
        res.headers()
            .get("content-type")
            .is_some_and(|v| v.as_bytes().starts_with(b"text/plain; version=0.0.4")),
        "{:?}",
        res.headers()
    );
    res.text().await.expect("text")
}

/// The value of the sample `name` (with its labels), if the text has it.
fn sample(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
}

#[tokio::test]
async fn metrics_count_requests_by_route_and_sends_by_outcome_on_their_own_port() {
    let app = spawn_app_with(|s| s.metrics.address = "127.0.0.1:0".into()).await;
    app.simulator_session("sim").await;
    for _ in 0..2 {
        app.list("?limit=5").await;
    }
    let number = "6281234567890";
    let sent = json_of(
        app.send(json!({"sessionId": "sim", "targetNumber": number, "message": "hi"}))
            .await,
        202,
    )
    .await;
    let id = sent["messageId"].as_str().unwrap_or_default().to_owned();
    app.wait_for_message(&id, |m| m["status"] != "queued").await;
    let res = app
        .request(
            Method::GET,
            &format!(
                "/api/public/inbox/conversations/{number}@s.whatsapp.net/messages?sessionId=sim"
            ),
        )
        .send()
        .await
        .expect("history");
    assert_eq!(res.status(), 200);
    let missing = app
        .request(Method::GET, "/no/such/path")
        .send()
        .await
        .expect("404");
    assert_eq!(missing.status(), 404);

    let text = scrape(&app).await;
    let contacts = "route=\"/api/public/contacts\",method=\"GET\",status=\"200\"";
    assert_eq!(
        sample(&text, &format!("maveraa_http_requests_total{{{contacts}}}")),
        Some(2.0),
        "{text}"
    );
    assert_eq!(
        sample(
            &text,
            &format!("maveraa_http_request_duration_seconds_count{{{contacts}}}")
        ),
        Some(2.0)
    );
    assert!(text.contains(
        "maveraa_http_requests_total{route=\"/api/public/inbox/conversations/{remoteJid}/messages\",method=\"GET\",status=\"200\"} 1"
    ));
    assert!(text.contains(
        "maveraa_http_requests_total{route=\"(no route)\",method=\"GET\",status=\"404\"} 1"
    ));
    assert!(
        !text.contains(number),
        "no customer's number in the metrics"
    );
    assert_eq!(sample(&text, "maveraa_database_up"), Some(1.0));
    assert_eq!(
        sample(&text, "maveraa_sessions{status=\"connected\"}"),
        Some(1.0)
    );
    assert!(sample(&text, "maveraa_outbox_depth").is_some(), "{text}");
    assert!(sample(&text, "maveraa_outbox_oldest_age_seconds").is_some());

    // The send's attempt is counted by the dispatch loop that made it.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let text = scrape(&app).await;
        if sample(&text, "maveraa_send_attempts_total{outcome=\"sent\"}") == Some(1.0) {
            assert_eq!(sample(&text, "maveraa_outbox_depth"), Some(0.0));
            break;
        }
        assert!(Instant::now() < deadline, "no sent attempt counted: {text}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Not on the public port.
    let public = app
        .client
        .get(app.url("/metrics"))
        .send()
        .await
        .expect("public");
    assert_eq!(public.status(), 404);
}

#[tokio::test]
async fn a_queued_message_shows_in_the_outbox_gauges() {
    // No dispatch loop: the message stays queued.
    let app = spawn_app_with(|s| {
        s.metrics.address = "127.0.0.1:0".into();
        s.dispatcher.workers = 0;
    })
    .await;
    app.simulator_session("sim").await;
    json_of(
        app.send(json!({"sessionId": "sim", "targetNumber": "6281234567890", "message": "hi"}))
            .await,
        202,
    )
    .await;
    let text = scrape(&app).await;
    assert_eq!(sample(&text, "maveraa_outbox_depth"), Some(1.0), "{text}");
    let age = sample(&text, "maveraa_outbox_oldest_age_seconds").expect("age");
    assert!((0.0..60.0).contains(&age), "{age}");
}
