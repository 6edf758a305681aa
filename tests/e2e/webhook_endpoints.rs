//! Webhook endpoints (issue 16): events pushed to the customer's app,
//! signed, retried until taken, once per endpoint whatever the number of
//! servers. Receivers are real HTTP servers on loopback (wiremock).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use hmac::{Hmac, Mac};
use maveraa_server::Application;
use reqwest::Method;
use serde_json::{Value, json};
use sha2::Sha256;
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

use crate::helpers::{TestApp, error_of, json_of, spawn_app, spawn_app_with, test_settings};

/// Creates an endpoint for `events` at `url`; its id and secret.
async fn endpoint(app: &TestApp, url: &str, events: Value) -> (String, String) {
    let made = json_of(
        app.request(Method::POST, "/api/public/webhooks")
            .json(&json!({"url": url, "events": events, "description": "CRM sync"}))
            .send()
            .await
            .expect("create"),
        201,
    )
    .await;
    (
        made["_id"].as_str().expect("id").to_owned(),
        made["secret"].as_str().expect("secret").to_owned(),
    )
}

async fn contacts(app: &TestApp, range: std::ops::Range<u32>) {
    for i in range {
        json_of(
            app.create_contact(
                json!({"name": format!("C{i}"), "phone": format!("62812000{i:05}")}),
            )
            .await,
            201,
        )
        .await;
    }
}

/// The requests `server` answered with a 2xx, waiting (20 s at most) until
/// there are `n`.
async fn taken(server: &MockServer, n: usize) -> Vec<Request> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let got: Vec<Request> = server.received_requests().await.unwrap_or_default();
        let ok = got.len();
        if ok >= n {
            return got;
        }
        assert!(
            Instant::now() < deadline,
            "{ok} of {n} deliveries after 20 s"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

fn header<'a>(r: &'a Request, name: &str) -> &'a str {
    r.headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_else(|| panic!("no {name}"))
}

/// What a receiver that knows only `secret` does: checks the signature over
/// `t.body` and that `t` is recent.
fn verify(secret: &str, r: &Request) -> bool {
    let sig = header(r, "x-maveraa-signature");
    let mut t = None;
    let mut v1 = Vec::new();
    for part in sig.split(',') {
        match part.split_once('=') {
            Some(("t", value)) => t = value.parse::<i64>().ok(),
            Some(("v1", value)) => v1.push(value.to_owned()),
            _ => {}
        }
    }
    let Some(t) = t else { return false };
    if (chrono::Utc::now().timestamp() - t).abs() > 300 {
        return false;
    }
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret.as_bytes()).expect("key");
    mac.update(format!("{t}.").as_bytes());
    mac.update(&r.body);
    let expected = hex::encode(mac.finalize().into_bytes());
    v1.contains(&expected)
}

#[tokio::test]
async fn events_are_pushed_signed_in_the_feeds_shape() {
    let app = spawn_app().await;
    let receiver = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&receiver)
        .await;
    let (id, secret) = endpoint(
        &app,
        &format!("{}/hooks", receiver.uri()),
        json!(["contact.created"]),
    )
    .await;
    assert!(secret.starts_with("whsec_"));
    // The secret is shown once: neither the item nor the list has it.
    let item = json_of(
        app.request(Method::GET, &format!("/api/public/webhooks/{id}"))
            .send()
            .await
            .expect("get"),
        200,
    )
    .await;
    assert!(item.get("secret").is_none(), "{item}");
    assert_eq!(item["events"], json!(["contact.created"]));
    assert_eq!(item["enabled"], true);

    contacts(&app, 0..3).await;
    // Not subscribed: not delivered.
    app.simulator_session("sim").await;
    let got = taken(&receiver, 3).await;
    let feed = json_of(
        app.request(Method::GET, "/api/public/events?types=contact.created")
            .send()
            .await
            .expect("feed"),
        200,
    )
    .await;
    let feed = feed["events"].as_array().expect("events").clone();
    assert_eq!(feed.len(), 3);
    for (r, expected) in got.iter().zip(&feed) {
        assert!(verify(&secret, r), "a receiver with the secret accepts it");
        assert!(!verify("whsec_other", r), "and one without refuses it");
        let body: Value = serde_json::from_slice(&r.body).expect("JSON");
        assert_eq!(&body, expected, "the same event as the feed's");
        assert_eq!(
            header(r, "x-maveraa-event-id"),
            body["id"].as_str().expect("id")
        );
        assert_eq!(header(r, "x-maveraa-event-type"), "contact.created");
        assert_eq!(header(r, "content-type"), "application/json");
        assert!(!header(r, "x-maveraa-delivery-id").is_empty());
    }
    // A tampered body or timestamp fails the check.
    let mut tampered = got[0].clone();
    tampered.body.push(b' ');
    assert!(!verify(&secret, &tampered));

    let log = json_of(
        app.request(
            Method::GET,
            &format!("/api/public/webhooks/{id}/deliveries"),
        )
        .send()
        .await
        .expect("deliveries"),
        200,
    )
    .await;
    let log = log["deliveries"].as_array().expect("deliveries").clone();
    assert_eq!(log.len(), 3);
    for d in &log {
        assert_eq!(d["status"], "succeeded", "{d}");
        assert_eq!(d["responseStatus"], 200);
        assert_eq!(d["attempts"], 1);
        assert!(d["latencyMs"].is_u64());
        assert!(d["nextAttemptAt"].is_null());
    }
    // Newest first, each naming the header's delivery id.
    assert_eq!(log[0]["eventId"], feed[2]["id"]);
    let ids: Vec<&str> = got
        .iter()
        .map(|r| header(r, "x-maveraa-delivery-id"))
        .collect();
    assert!(ids.contains(&log[0]["_id"].as_str().expect("id")));
}

#[tokio::test]
async fn an_endpoint_down_for_a_while_gets_everything_once_it_recovers() {
    let app = spawn_app().await;
    let receiver = MockServer::start().await;
    // Down for its first 6 requests, then up.
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(503))
        .up_to_n_times(6)
        .with_priority(1)
        .mount(&receiver)
        .await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(204))
        .with_priority(2)
        .mount(&receiver)
        .await;
    let (id, _) = endpoint(&app, &receiver.uri(), json!(["*"])).await;
    contacts(&app, 0..10).await;

    // Every event taken once (by a 2xx), whatever was refused before.
    let deadline = Instant::now() + Duration::from_secs(30);
    let taken_once = loop {
        let all = receiver.received_requests().await.unwrap_or_default();
        let refused = all.len().min(6);
        let ok: Vec<&Request> = all.iter().skip(refused).collect();
        let mut per_event: HashMap<String, usize> = HashMap::new();
        for r in &ok {
            *per_event
                .entry(header(r, "x-maveraa-event-id").to_owned())
                .or_default() += 1;
        }
        if per_event.len() >= 10 {
            break per_event;
        }
        assert!(
            Instant::now() < deadline,
            "{} of 10 events taken after 30 s",
            per_event.len()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(taken_once.values().all(|&n| n == 1), "{taken_once:?}");
    let all = receiver.received_requests().await.unwrap_or_default();
    assert_eq!(all.len(), 16, "6 refused, then each event once");
    let log = json_of(
        app.request(
            Method::GET,
            &format!("/api/public/webhooks/{id}/deliveries?status=succeeded&limit=100"),
        )
        .send()
        .await
        .expect("log"),
        200,
    )
    .await;
    let log = log["deliveries"].as_array().expect("deliveries").clone();
    assert_eq!(log.len(), 10);
    assert!(
        log.iter().any(|d| d["attempts"].as_u64() > Some(1)),
        "the refused ones were retried: {log:?}"
    );
    // The endpoint is healthy again.
    let item = json_of(
        app.request(Method::GET, &format!("/api/public/webhooks/{id}"))
            .send()
            .await
            .expect("get"),
        200,
    )
    .await;
    assert!(item["failingSince"].is_null(), "{item}");
}

#[tokio::test]
async fn two_servers_deliver_each_event_once_per_endpoint() {
    let app = spawn_app().await;
    let second = Application::build(test_settings(&app.db_url))
        .await
        .expect("the second server starts");
    let second_stop = second.stop_handle();
    let second_run = tokio::spawn(second.run_until_stopped());
    let a = MockServer::start().await;
    let b = MockServer::start().await;
    for r in [&a, &b] {
        Mock::given(method("POST"))
            .respond_with(ResponseTemplate::new(200))
            .mount(r)
            .await;
    }
    endpoint(&app, &a.uri(), json!(["contact.created"])).await;
    endpoint(&app, &b.uri(), json!(["*"])).await;
    contacts(&app, 0..40).await;
    for r in [&a, &b] {
        taken(r, 40).await;
    }
    // Both servers had time to deliver again, had they been going to: the
    // logs show every delivery done, so nothing more is due anywhere.
    tokio::time::sleep(Duration::from_millis(500)).await;
    for r in [&a, &b] {
        let got = r.received_requests().await.unwrap_or_default();
        let mut ids: Vec<&str> = got
            .iter()
            .map(|r| header(r, "x-maveraa-event-id"))
            .collect();
        let n = ids.len();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), n, "an event delivered twice");
        assert_eq!(n, 40);
    }
    second_stop.stop();
    let _ = tokio::time::timeout(Duration::from_secs(30), second_run).await;
}

#[tokio::test]
async fn endpoints_are_managed_and_checked() {
    let app = spawn_app_with(|s| s.webhooks.allow_private_targets = false).await;
    for (body, field) in [
        (json!({"events": ["*"]}), "url"),
        (json!({"url": "https://example.com/h"}), "events"),
        (
            json!({"url": "https://example.com/h", "events": []}),
            "events",
        ),
        (
            json!({"url": "https://example.com/h", "events": ["message.nope"]}),
            "events",
        ),
        (
            json!({"url": "https://example.com/h", "events": "*"}),
            "events",
        ),
        (
            json!({"url": "ftp://example.com/h", "events": ["*"]}),
            "url",
        ),
        (
            json!({"url": "http://127.0.0.1:9/h", "events": ["*"]}),
            "url",
        ),
        (
            json!({"url": "http://169.254.169.254/", "events": ["*"]}),
            "url",
        ),
        (json!({"url": "http://localhost/h", "events": ["*"]}), "url"),
        (
            json!({"url": "https://example.com/h", "events": ["*"], "event": "x"}),
            "event",
        ),
        (
            json!({"url": "https://example.com/h", "events": ["*"], "enabled": "yes"}),
            "enabled",
        ),
    ] {
        let res = app
            .request(Method::POST, "/api/public/webhooks")
            .json(&body)
            .send()
            .await
            .expect("create");
        let (_, got) = error_of(res, 400).await;
        assert_eq!(got.as_deref(), Some(field), "{body}");
    }
    let (id, first) = endpoint(
        &app,
        "https://example.com/hooks",
        json!(["message.received"]),
    )
    .await;
    let path = format!("/api/public/webhooks/{id}");
    let patched = json_of(
        app.request(Method::PATCH, &path)
            .json(&json!({"events": ["message.received", "message.status"], "description": null, "enabled": false}))
            .send()
            .await
            .expect("patch"),
        200,
    )
    .await;
    assert_eq!(
        patched["events"],
        json!(["message.received", "message.status"])
    );
    assert!(patched["description"].is_null());
    assert_eq!(patched["enabled"], false);
    let (_, field) = error_of(
        app.request(Method::PATCH, &path)
            .json(&json!({"url": "http://10.0.0.1/"}))
            .send()
            .await
            .expect("patch"),
        400,
    )
    .await;
    assert_eq!(field.as_deref(), Some("url"));

    // Rolling: a new secret, the old one overlapping for the time asked.
    let rolled = json_of(
        app.request(Method::POST, &format!("{path}/roll-secret"))
            .json(&json!({"expiresInSeconds": 3600}))
            .send()
            .await
            .expect("roll"),
        200,
    )
    .await;
    let second = rolled["secret"].as_str().expect("secret");
    assert_ne!(second, first);
    assert!(rolled["previousSecretExpiresAt"].is_string(), "{rolled}");
    let (_, field) = error_of(
        app.request(Method::POST, &format!("{path}/roll-secret"))
            .json(&json!({"expiresInSeconds": 10_000_000}))
            .send()
            .await
            .expect("roll"),
        400,
    )
    .await;
    assert_eq!(field.as_deref(), Some("expiresInSeconds"));
    // Without a body: the default overlap.
    json_of(
        app.request(Method::POST, &format!("{path}/roll-secret"))
            .send()
            .await
            .expect("roll"),
        200,
    )
    .await;

    let list = json_of(
        app.request(Method::GET, "/api/public/webhooks")
            .send()
            .await
            .expect("list"),
        200,
    )
    .await;
    assert_eq!(list["webhooks"].as_array().map(Vec::len), Some(1));

    // Another workspace sees none of it.
    let (_, other) = app.new_workspace("Other").await;
    error_of(
        app.request_as(&other, Method::GET, &path)
            .send()
            .await
            .expect("get"),
        404,
    )
    .await;
    error_of(
        app.request_as(&other, Method::DELETE, &path)
            .send()
            .await
            .expect("delete"),
        404,
    )
    .await;

    let res = app
        .request(Method::DELETE, &path)
        .send()
        .await
        .expect("delete");
    assert_eq!(res.status(), 204);
    error_of(
        app.request(Method::GET, &path).send().await.expect("get"),
        404,
    )
    .await;
    error_of(
        app.request(Method::GET, "/api/public/webhooks/not-an-id")
            .send()
            .await
            .expect("get"),
        404,
    )
    .await;
}

#[tokio::test]
async fn a_delivery_can_be_sent_again_and_a_failing_one_says_why() {
    let app = spawn_app_with(|s| {
        // One attempt, then given up.
        s.webhooks.retry_for_hours = 0;
    })
    .await;
    let receiver = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(500))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&receiver)
        .await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200))
        .with_priority(2)
        .mount(&receiver)
        .await;
    let (id, _) = endpoint(&app, &receiver.uri(), json!(["contact.created"])).await;
    contacts(&app, 0..1).await;
    taken(&receiver, 1).await;
    let log_path = format!("/api/public/webhooks/{id}/deliveries");
    let deadline = Instant::now() + Duration::from_secs(10);
    let failed = loop {
        let log = json_of(
            app.request(Method::GET, &format!("{log_path}?status=failed"))
                .send()
                .await
                .expect("log"),
            200,
        )
        .await;
        if let Some(d) = log["deliveries"].as_array().and_then(|a| a.first()) {
            break d.clone();
        }
        assert!(Instant::now() < deadline, "no failed delivery: {log}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    };
    assert_eq!(failed["responseStatus"], 500);
    assert!(
        failed["error"].as_str().expect("error").contains("500"),
        "{failed}"
    );
    let again = json_of(
        app.request(
            Method::POST,
            &format!(
                "{log_path}/{}/redeliver",
                failed["_id"].as_str().expect("id")
            ),
        )
        .send()
        .await
        .expect("redeliver"),
        202,
    )
    .await;
    assert_eq!(again["status"], "pending");
    let got = taken(&receiver, 2).await;
    assert_eq!(
        header(&got[0], "x-maveraa-delivery-id"),
        header(&got[1], "x-maveraa-delivery-id"),
        "the same delivery, sent again"
    );
    error_of(
        app.request(
            Method::POST,
            &format!("{log_path}/{}/redeliver", uuid_like()),
        )
        .send()
        .await
        .expect("redeliver"),
        404,
    )
    .await;
    let (_, field) = error_of(
        app.request(Method::GET, &format!("{log_path}?status=lost"))
            .send()
            .await
            .expect("log"),
        400,
    )
    .await;
    assert_eq!(field.as_deref(), Some("status"));
}

fn uuid_like() -> &'static str {
    "0190c2a4-8f5e-7000-8000-000000000000"
}

#[tokio::test]
async fn an_endpoint_failing_too_long_is_disabled_and_says_why_until_enabled_again() {
    let app = spawn_app_with(|s| {
        // Any failure without a success is "too long" here.
        s.webhooks.disable_after_hours = 0;
    })
    .await;
    let receiver = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(503))
        .mount(&receiver)
        .await;
    let (id, _) = endpoint(&app, &receiver.uri(), json!(["contact.created"])).await;
    contacts(&app, 0..1).await;
    let path = format!("/api/public/webhooks/{id}");
    let deadline = Instant::now() + Duration::from_secs(10);
    let disabled = loop {
        let item = json_of(
            app.request(Method::GET, &path).send().await.expect("get"),
            200,
        )
        .await;
        if item["enabled"] == false {
            break item;
        }
        assert!(Instant::now() < deadline, "still enabled: {item}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    };
    let reason = disabled["disabledReason"].as_str().expect("a reason");
    assert!(reason.contains("disabled by the server"), "{reason}");
    assert!(disabled["failingSince"].is_string(), "{disabled}");
    // Enabled again: the record is cleared.
    let enabled = json_of(
        app.request(Method::PATCH, &path)
            .json(&json!({"enabled": true}))
            .send()
            .await
            .expect("patch"),
        200,
    )
    .await;
    assert_eq!(enabled["enabled"], true);
    assert!(enabled["disabledReason"].is_null(), "{enabled}");
    assert!(enabled["failingSince"].is_null(), "{enabled}");
}
