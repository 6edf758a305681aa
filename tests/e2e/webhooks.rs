//! Meta Cloud API webhooks: the verification handshake, signatures over the
//! raw body, redeliveries, statuses and their order.

use hmac::{Hmac, Mac};
use reqwest::Method;
use serde_json::{Value, json};
use sha2::Sha256;

use crate::helpers::{TestApp, error_of, json_of, spawn_app};

/// The app secret of the tests' Cloud API sessions.
pub(crate) const SECRET: &str = "app-secret-123";

/// Meta's signature of `body` under [`SECRET`].
pub(crate) fn sign(body: &[u8]) -> String {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(SECRET.as_bytes()).expect("key");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

fn inbound_payload(id: &str, from: &str, name: &str, message: Value) -> Value {
    let mut msg = json!({"from": from, "id": id, "timestamp": "1764000000"});
    if let (Some(m), Some(extra)) = (msg.as_object_mut(), message.as_object()) {
        m.extend(extra.clone());
    }
    json!({"object": "whatsapp_business_account", "entry": [{"id": "WABA", "changes": [{"field": "messages", "value": {
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": "15550001111", "phone_number_id": "1234567890"},
        "contacts": [{"profile": {"name": name}, "wa_id": from}],
        "messages": [msg]
    }}]}]})
}

fn status_payload(id: &str, status: &str, ts: &str) -> Value {
    let mut st =
        json!({"id": id, "status": status, "timestamp": ts, "recipient_id": "6281234567890"});
    if status == "failed" {
        st["errors"] = json!([{"code": 131026, "title": "Message undeliverable", "message": "Message undeliverable"}]);
    }
    json!({"object": "whatsapp_business_account", "entry": [{"id": "WABA", "changes": [{"field": "messages", "value": {
        "messaging_product": "whatsapp", "metadata": {"phone_number_id": "1234567890"}, "statuses": [st]
    }}]}]})
}

async fn post_raw(
    app: &TestApp,
    uuid: &str,
    body: &[u8],
    signature: Option<String>,
) -> reqwest::Response {
    let mut req = app
        .client
        .post(app.url(&format!("/webhooks/whatsapp/{uuid}")))
        .header("content-type", "application/json")
        .body(body.to_vec());
    if let Some(sig) = signature {
        req = req.header("X-Hub-Signature-256", sig);
    }
    req.send().await.expect("request")
}

async fn conversations(app: &TestApp) -> Value {
    json_of(
        app.request(Method::GET, "/api/public/inbox/conversations")
            .send()
            .await
            .expect("r"),
        200,
    )
    .await
}

#[tokio::test]
async fn the_verification_handshake_answers_the_challenge_only_with_the_token() {
    let app = spawn_app().await;
    let uuid = app.cloud_session("real", SECRET, "my-verify-token").await;
    let url = |q: &str| app.url(&format!("/webhooks/whatsapp/{uuid}?{q}"));
    let res = app
        .client
        .get(url(
            "hub.mode=subscribe&hub.verify_token=my-verify-token&hub.challenge=1158201444",
        ))
        .send()
        .await
        .expect("r");
    assert_eq!(res.status(), 200);
    assert!(
        res.headers()["content-type"]
            .to_str()
            .expect("ct")
            .starts_with("text/plain")
    );
    assert_eq!(res.text().await.expect("body"), "1158201444");
    for q in [
        "hub.mode=subscribe&hub.verify_token=wrong&hub.challenge=1",
        "hub.mode=unsubscribe&hub.verify_token=my-verify-token&hub.challenge=1",
        "hub.mode=subscribe&hub.challenge=1",
    ] {
        assert_eq!(
            app.client.get(url(q)).send().await.expect("r").status(),
            403,
            "{q}"
        );
    }
    let res = app
        .client
        .get(app.url("/webhooks/whatsapp/01a2136a-879a-7673-9ca2-fdf8c8293b20?hub.mode=subscribe&hub.verify_token=x&hub.challenge=1"))
        .send()
        .await
        .expect("r");
    assert_eq!(res.status(), 404);
}

#[tokio::test]
async fn signatures_are_checked_on_the_raw_body() {
    let app = spawn_app().await;
    let uuid = app.cloud_session("real", SECRET, "v").await;
    let body = serde_json::to_vec(&inbound_payload(
        "wamid.1",
        "6281234567890",
        "John",
        json!({"type": "text", "text": {"body": "Hello there!"}}),
    ))
    .expect("json");

    // Missing, wrong, malformed, and valid for a body changed by one byte.
    let (code, _) = error_of(post_raw(&app, &uuid, &body, None).await, 401).await;
    assert_eq!(code, "invalid_signature");
    error_of(
        post_raw(
            &app,
            &uuid,
            &body,
            Some(format!("sha256={}", "0".repeat(64))),
        )
        .await,
        401,
    )
    .await;
    error_of(
        post_raw(&app, &uuid, &body, Some("md5=abc".into())).await,
        401,
    )
    .await;
    let mut changed = body.clone();
    let pos = changed
        .iter()
        .position(|b| *b == b'!')
        .expect("a ! in the body");
    changed[pos] = b'?';
    error_of(
        post_raw(&app, &uuid, &changed, Some(sign(&body))).await,
        401,
    )
    .await;
    assert_eq!(
        conversations(&app).await,
        json!({"conversations": [], "next": null}),
        "nothing stored"
    );

    let res = post_raw(&app, &uuid, &body, Some(sign(&body))).await;
    assert_eq!(res.status(), 200);
    let convs = conversations(&app).await;
    assert_eq!(convs["conversations"][0]["lastMessage"], "Hello there!");
    assert_eq!(convs["conversations"][0]["pushName"], "John");
    assert_eq!(
        convs["conversations"][0]["remoteJid"],
        "6281234567890@s.whatsapp.net"
    );
    assert_eq!(convs["conversations"][0]["unreadCount"], 1);
}

/// Sends only the head of a webhook POST that announces a body of
/// almost 4 MiB (within the limit), and returns the status line the
/// server answers without that body, waiting 5 s at most: well under the
/// body timeout (30 s), so a server that waited for the body fails.
async fn answer_without_body(app: &TestApp, path: &str, signature: Option<&str>) -> String {
    let address = app.address.trim_start_matches("http://").to_owned();
    let mut head = format!(
        "POST {path} HTTP/1.1\r\nHost: {address}\r\nContent-Type: application/json\r\n\
         Content-Length: 4000000\r\n"
    );
    if let Some(signature) = signature {
        head.push_str(&format!("X-Hub-Signature-256: {signature}\r\n"));
    }
    head.push_str("\r\n");
    let path = path.to_owned();
    tokio::task::spawn_blocking(move || {
        use std::io::{Read, Write};
        let mut stream = std::net::TcpStream::connect(&address).expect("connect");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        stream.write_all(head.as_bytes()).expect("write");
        let mut answer = Vec::new();
        let mut buf = [0u8; 1024];
        while !answer.windows(4).any(|w| w == b"\r\n\r\n") {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            assert!(
                !left.is_zero(),
                "{path}: no answer within 5 s without the body"
            );
            stream.set_read_timeout(Some(left)).expect("timeout");
            match stream.read(&mut buf) {
                Ok(0) => panic!("{path}: closed without an answer"),
                Ok(n) => answer.extend_from_slice(&buf[..n]),
                Err(e) => panic!("{path}: no answer within 5 s without the body ({e})"),
            }
        }
        let text = String::from_utf8_lossy(&answer).into_owned();
        text.lines().next().unwrap_or_default().to_owned()
    })
    .await
    .expect("reader")
}

#[tokio::test]
async fn unsigned_posts_and_unknown_ids_are_refused_before_the_body_is_read() {
    let app = spawn_app().await;
    let uuid = app.cloud_session("real", SECRET, "v").await;
    let signature = sign(b"{}");
    let missing = answer_without_body(&app, &format!("/webhooks/whatsapp/{uuid}"), None).await;
    assert!(missing.contains(" 401 "), "no signature: {missing}");
    let malformed = answer_without_body(
        &app,
        &format!("/webhooks/whatsapp/{uuid}"),
        Some("sha256=not-hex"),
    )
    .await;
    assert!(
        malformed.contains(" 401 "),
        "a malformed signature: {malformed}"
    );
    let unknown = uuid::Uuid::now_v7();
    let unknown = answer_without_body(
        &app,
        &format!("/webhooks/whatsapp/{unknown}"),
        Some(&signature),
    )
    .await;
    assert!(unknown.contains(" 404 "), "an unknown id: {unknown}");
    let garbage = answer_without_body(&app, "/webhooks/whatsapp/not-an-id", Some(&signature)).await;
    assert!(garbage.contains(" 404 "), "a malformed id: {garbage}");

    // A signed delivery to the session is still read and checked whole.
    let body = serde_json::to_vec(&inbound_payload(
        "wamid.1",
        "6281234567890",
        "John",
        json!({"type": "text", "text": {"body": "hi"}}),
    ))
    .expect("json");
    let res = post_raw(&app, &uuid, &body, Some(sign(&body))).await;
    assert_eq!(res.status(), 200);
    let wrong = post_raw(
        &app,
        &uuid,
        &body,
        Some(format!("sha256={}", "0".repeat(64))),
    )
    .await;
    assert_eq!(wrong.status(), 401);
}

#[tokio::test]
async fn a_redelivered_webhook_is_stored_once() {
    let app = spawn_app().await;
    let uuid = app.cloud_session("real", SECRET, "v").await;
    let body = serde_json::to_vec(&inbound_payload(
        "wamid.dup",
        "6281234567890",
        "John",
        json!({"type": "text", "text": {"body": "once"}}),
    ))
    .expect("json");
    for _ in 0..3 {
        assert_eq!(
            post_raw(&app, &uuid, &body, Some(sign(&body)))
                .await
                .status(),
            200
        );
    }
    // Concurrent redeliveries too.
    let mut tasks = Vec::new();
    for _ in 0..5 {
        let req = app
            .client
            .post(app.url(&format!("/webhooks/whatsapp/{uuid}")))
            .header("X-Hub-Signature-256", sign(&body))
            .body(body.clone());
        tasks.push(tokio::spawn(async move {
            req.send().await.expect("r").status().as_u16()
        }));
    }
    for t in tasks {
        assert_eq!(t.await.expect("task"), 200);
    }
    assert_eq!(
        conversations(&app).await["conversations"][0]["unreadCount"],
        1
    );
    let msgs = json_of(
        app.request(
            Method::GET,
            "/api/public/inbox/conversations/6281234567890/messages?sessionId=real",
        )
        .send()
        .await
        .expect("r"),
        200,
    )
    .await;
    assert_eq!(msgs["messages"].as_array().expect("a").len(), 1);
}

#[tokio::test]
async fn a_message_with_nul_characters_is_stored_without_them() {
    let app = spawn_app().await;
    let uuid = app.cloud_session("real", SECRET, "v").await;
    // PostgreSQL's text cannot hold U+0000; refusing the delivery would make
    // Meta redeliver it until it gives up, and the message would be lost.
    let body = serde_json::to_vec(&inbound_payload(
        "wamid.nul",
        "6281234567890",
        "Jo\u{0}hn",
        json!({"type": "text", "text": {"body": "he\u{0}llo"}}),
    ))
    .expect("json");
    assert!(
        body.windows(6).any(|w| w == b"\\u0000"),
        "the body carries NUL"
    );
    assert_eq!(
        post_raw(&app, &uuid, &body, Some(sign(&body)))
            .await
            .status(),
        200
    );
    let list = conversations(&app).await;
    assert_eq!(list["conversations"][0]["pushName"], "John");
    assert_eq!(list["conversations"][0]["lastMessage"], "hello");
}

#[tokio::test]
async fn inbound_media_and_other_types_are_stored_with_their_type() {
    use wiremock::matchers::{header, method, path};
    use wiremock::{Mock, MockServer, ResponseTemplate};
    // The Graph API: a media id resolves to a short-lived URL, fetched with
    // the session's token too.
    let graph = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/MEDIA-1"))
        .and(header("authorization", "Bearer EAAtest-token"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "url": format!("{}/lookaside/MEDIA-1", graph.uri()),
            "mime_type": "image/jpeg", "sha256": "x", "file_size": 9, "id": "MEDIA-1"
        })))
        .mount(&graph)
        .await;
    Mock::given(method("GET"))
        .and(path("/lookaside/MEDIA-1"))
        .and(header("authorization", "Bearer EAAtest-token"))
        .respond_with(ResponseTemplate::new(200).set_body_bytes(b"\xff\xd8jpeg!\xff\xd9".to_vec()))
        .mount(&graph)
        .await;
    let graph_uri = graph.uri();
    let app = crate::helpers::spawn_app_with(move |s| {
        s.whatsapp.cloud_api_base_url = graph_uri;
    })
    .await;
    let uuid = app.cloud_session("real", SECRET, "v").await;
    let image = inbound_payload(
        "wamid.img",
        "6281234567890",
        "John",
        json!({"type": "image", "image": {"id": "MEDIA-1", "mime_type": "image/jpeg", "caption": "Look", "sha256": "x"}}),
    );
    let location = inbound_payload(
        "wamid.loc",
        "6281234567890",
        "John",
        json!({"type": "location", "location": {"latitude": 1.0, "longitude": 2.0}}),
    );
    for p in [image, location] {
        let body = serde_json::to_vec(&p).expect("json");
        assert_eq!(
            post_raw(&app, &uuid, &body, Some(sign(&body)))
                .await
                .status(),
            200
        );
    }
    let msgs = json_of(
        app.request(
            Method::GET,
            "/api/public/inbox/conversations/6281234567890/messages?sessionId=real",
        )
        .send()
        .await
        .expect("r"),
        200,
    )
    .await;
    let list = msgs["messages"].as_array().expect("a");
    assert_eq!(list.len(), 2);
    let img = list.iter().find(|m| m["type"] == "image").expect("image");
    assert_eq!(img["media"]["providerMediaId"], "MEDIA-1");
    assert_eq!(img["media"]["mimeType"], "image/jpeg");
    assert_eq!(img["media"]["caption"], "Look");
    // The sender's time is kept; createdAt is when we stored it.
    assert_eq!(img["providerTimestamp"], "2025-11-24T16:00:00.000000Z");
    assert_ne!(img["createdAt"], img["providerTimestamp"]);
    assert!(list.iter().any(|m| m["type"] == "location"));
    // Its event carries the message as the API shows it, download included.
    let received = app.events("?types=message.received", 2).await;
    let event = received["events"]
        .as_array()
        .expect("events")
        .iter()
        .find(|e| e["data"]["type"] == "image")
        .expect("the image's event");
    assert_eq!(event["data"]["media"], img["media"], "{event}");

    // The received file, through our API: fetched from the provider, an
    // attachment of its type.
    let download = img["media"]["download"].as_str().expect("a download path");
    assert_eq!(
        download,
        format!(
            "/api/public/messages/{}/media",
            img["messageId"].as_str().expect("id")
        )
    );
    let file = app.request(Method::GET, download).send().await.expect("r");
    assert_eq!(file.status(), 200);
    assert_eq!(file.headers()["content-type"], "image/jpeg");
    assert_eq!(file.headers()["x-content-type-options"], "nosniff");
    let disposition = file.headers()["content-disposition"]
        .to_str()
        .expect("ascii")
        .to_owned();
    assert!(
        disposition.starts_with("attachment; filename=\""),
        "{disposition}"
    );
    assert_eq!(
        &file.bytes().await.expect("body")[..],
        b"\xff\xd8jpeg!\xff\xd9"
    );
    // A location has no file; a media id the provider no longer knows is
    // gone.
    let location = list
        .iter()
        .find(|m| m["type"] == "location")
        .expect("location");
    assert!(location["media"].is_null());
    let (code, _) = crate::helpers::error_of(
        app.request(
            Method::GET,
            &format!(
                "/api/public/messages/{}/media",
                location["messageId"].as_str().expect("id")
            ),
        )
        .send()
        .await
        .expect("r"),
        404,
    )
    .await;
    assert_eq!(code, "media_not_found");
    let expired = inbound_payload(
        "wamid.img2",
        "6281234567890",
        "John",
        json!({"type": "image", "image": {"id": "MEDIA-2", "mime_type": "image/jpeg"}}),
    );
    let body = serde_json::to_vec(&expired).expect("json");
    assert_eq!(
        post_raw(&app, &uuid, &body, Some(sign(&body)))
            .await
            .status(),
        200
    );
    let msgs = json_of(
        app.request(
            Method::GET,
            "/api/public/inbox/conversations/6281234567890/messages?sessionId=real",
        )
        .send()
        .await
        .expect("r"),
        200,
    )
    .await;
    let gone = msgs["messages"]
        .as_array()
        .expect("a")
        .iter()
        .find(|m| m["media"]["providerMediaId"] == "MEDIA-2")
        .expect("the second image")
        .clone();
    let (code, _) = crate::helpers::error_of(
        app.request(
            Method::GET,
            gone["media"]["download"].as_str().expect("path"),
        )
        .send()
        .await
        .expect("r"),
        410,
    )
    .await;
    assert_eq!(code, "media_gone");
}

#[tokio::test]
async fn statuses_update_sent_messages_and_never_go_backwards() {
    let provider = wiremock::MockServer::start().await;
    wiremock::Mock::given(wiremock::matchers::method("POST"))
        .respond_with(wiremock::ResponseTemplate::new(200).set_body_json(
            json!({"messaging_product": "whatsapp", "messages": [{"id": "wamid.OUT1"}]}),
        ))
        .mount(&provider)
        .await;
    let uri = provider.uri();
    let app = crate::helpers::spawn_app_with(|s| s.whatsapp.cloud_api_base_url = uri).await;
    let uuid = app.cloud_session("real", SECRET, "v").await;
    let queued = json_of(
        app.send(json!({"sessionId": "real", "targetNumber": "6281234567890", "message": "hi"}))
            .await,
        202,
    )
    .await;
    let id = queued["messageId"].as_str().expect("id");
    let sent = app.wait_for_message(id, |m| m["status"] == "sent").await;
    assert_eq!(sent["providerMessageId"], "wamid.OUT1");

    for (status, ts) in [
        ("read", "1764000010"),
        ("delivered", "1764000005"),
        ("sent", "1764000001"),
    ] {
        let body = serde_json::to_vec(&status_payload("wamid.OUT1", status, ts)).expect("json");
        assert_eq!(
            post_raw(&app, &uuid, &body, Some(sign(&body)))
                .await
                .status(),
            200
        );
    }
    let m = json_of(
        app.request(Method::GET, &format!("/api/public/messages/{id}"))
            .send()
            .await
            .expect("r"),
        200,
    )
    .await;
    assert_eq!(m["status"], "read", "a late delivered does not undo read");
    let history: Vec<&str> = m["statusHistory"]
        .as_array()
        .expect("h")
        .iter()
        .map(|h| h["status"].as_str().expect("s"))
        .collect();
    assert_eq!(history, vec!["queued", "sent", "read"]);
}

#[tokio::test]
async fn a_failed_status_keeps_the_providers_error() {
    let provider = wiremock::MockServer::start().await;
    wiremock::Mock::given(wiremock::matchers::method("POST"))
        .respond_with(wiremock::ResponseTemplate::new(200).set_body_json(
            json!({"messaging_product": "whatsapp", "messages": [{"id": "wamid.F1"}]}),
        ))
        .mount(&provider)
        .await;
    let uri = provider.uri();
    let app = crate::helpers::spawn_app_with(|s| s.whatsapp.cloud_api_base_url = uri).await;
    let uuid = app.cloud_session("real", SECRET, "v").await;
    let queued = json_of(
        app.send(json!({"sessionId": "real", "targetNumber": "6281234567890", "message": "hi"}))
            .await,
        202,
    )
    .await;
    let id = queued["messageId"].as_str().expect("id");
    app.wait_for_message(id, |m| m["status"] == "sent").await;
    let body =
        serde_json::to_vec(&status_payload("wamid.F1", "failed", "1764000003")).expect("json");
    assert_eq!(
        post_raw(&app, &uuid, &body, Some(sign(&body)))
            .await
            .status(),
        200
    );
    let m = app.wait_for_message(id, |m| m["status"] == "failed").await;
    assert_eq!(m["error"]["code"], "131026");
}

#[tokio::test]
async fn one_apps_delivery_is_split_between_its_numbers_sessions() {
    let app = spawn_app().await;
    let first = app.cloud_session_for("first", "1111", SECRET, "v").await;
    app.cloud_session_for("second", "2222", SECRET, "v").await;
    // Meta sends both numbers' events to the one URL configured for the app.
    let change = |number: &str, id: &str, from: &str, text: &str| {
        json!({"field": "messages", "value": {
            "messaging_product": "whatsapp",
            "metadata": {"phone_number_id": number},
            "contacts": [{"profile": {"name": "X"}, "wa_id": from}],
            "messages": [{"from": from, "id": id, "timestamp": "1764000000", "type": "text", "text": {"body": text}}]
        }})
    };
    let payload = json!({"object": "whatsapp_business_account", "entry": [{"id": "WABA", "changes": [
        change("1111", "wamid.a", "6281234567890", "to first"),
        change("2222", "wamid.b", "6289876543210", "to second"),
    ]}]});
    let body = serde_json::to_vec(&payload).expect("json");
    assert_eq!(
        post_raw(&app, &first, &body, Some(sign(&body)))
            .await
            .status(),
        200
    );
    let convs = conversations(&app).await;
    let mut seen: Vec<(String, String)> = convs["conversations"]
        .as_array()
        .expect("a")
        .iter()
        .map(|c| {
            (
                c["sessionId"].as_str().expect("s").to_owned(),
                c["lastMessage"].as_str().expect("m").to_owned(),
            )
        })
        .collect();
    seen.sort();
    assert_eq!(
        seen,
        vec![
            ("first".to_owned(), "to first".to_owned()),
            ("second".to_owned(), "to second".to_owned())
        ]
    );
}

#[tokio::test]
async fn marking_read_sends_a_read_receipt_for_the_last_inbound_message() {
    let provider = wiremock::MockServer::start().await;
    wiremock::Mock::given(wiremock::matchers::method("POST"))
        .and(wiremock::matchers::path("/1234567890/messages"))
        .and(wiremock::matchers::body_json(json!({
            "messaging_product": "whatsapp", "status": "read", "message_id": "wamid.IN2"
        })))
        .respond_with(wiremock::ResponseTemplate::new(200).set_body_json(json!({"success": true})))
        .expect(1)
        .mount(&provider)
        .await;
    let uri = provider.uri();
    let app = crate::helpers::spawn_app_with(|s| s.whatsapp.cloud_api_base_url = uri).await;
    let uuid = app.cloud_session("real", SECRET, "v").await;
    for (id, text) in [("wamid.IN1", "one"), ("wamid.IN2", "two")] {
        let body = serde_json::to_vec(&inbound_payload(
            id,
            "6281234567890",
            "John",
            json!({"type": "text", "text": {"body": text}}),
        ))
        .expect("json");
        assert_eq!(
            post_raw(&app, &uuid, &body, Some(sign(&body)))
                .await
                .status(),
            200
        );
    }
    assert_eq!(
        conversations(&app).await["conversations"][0]["unreadCount"],
        2
    );
    let res = app
        .request(
            Method::POST,
            "/api/public/inbox/conversations/6281234567890@s.whatsapp.net/read?sessionId=real",
        )
        .send()
        .await
        .expect("r");
    let body = json_of(res, 200).await;
    assert_eq!(body["unreadCount"], 0);
    assert!(
        body.get("providerError").is_none_or(Value::is_null),
        "{body}"
    );
    assert_eq!(
        conversations(&app).await["conversations"][0]["unreadCount"],
        0
    );
    provider.verify().await;
}
