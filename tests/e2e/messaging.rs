//! Sending through the simulator, reading messages, conversations and the
//! inbox, as an API user does.

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{error_of, json_of, keys, spawn_app};

#[tokio::test]
async fn the_reference_send_example_is_queued_then_sent_delivered_and_read() {
    let app = spawn_app().await;
    app.simulator_session("session-123").await;
    // The reference's request example, verbatim.
    let res = app
        .send(json!({
            "sessionId": "session-123",
            "targetNumber": "6289876543210",
            "message": "Your OTP code is 4567"
        }))
        .await;
    let queued = json_of(res, 202).await;
    assert_eq!(
        keys(&queued),
        vec!["messageId", "remoteJid", "sessionId", "status"]
    );
    assert_eq!(queued["status"], "queued");
    assert_eq!(queued["sessionId"], "session-123");
    assert_eq!(queued["remoteJid"], "6289876543210@s.whatsapp.net");
    let id = queued["messageId"].as_str().expect("id").to_owned();

    let read = app.wait_for_message(&id, |m| m["status"] == "read").await;
    assert_eq!(read["direction"], "outbound");
    assert_eq!(read["type"], "text");
    assert_eq!(read["text"], "Your OTP code is 4567");
    assert!(
        read["providerMessageId"]
            .as_str()
            .is_some_and(|p| !p.is_empty())
    );
    let history: Vec<&str> = read["statusHistory"]
        .as_array()
        .expect("history")
        .iter()
        .map(|h| h["status"].as_str().expect("status"))
        .collect();
    assert_eq!(history, vec!["queued", "sent", "delivered", "read"]);
}

#[tokio::test]
async fn media_messages_carry_their_caption() {
    let app = spawn_app().await;
    app.simulator_session("s1").await;
    let res = app
        .send(json!({
            "sessionId": "s1", "targetNumber": "+62 812-3456-7890", "message": "Invoice attached",
            "media": {"type": "document", "url": "https://example.com/inv.pdf", "fileName": "inv.pdf"}
        }))
        .await;
    let queued = json_of(res, 202).await;
    assert_eq!(queued["remoteJid"], "6281234567890@s.whatsapp.net");
    let id = queued["messageId"].as_str().expect("id");
    let sent = app.wait_for_message(id, |m| m["status"] != "queued").await;
    assert_eq!(sent["type"], "document");
    assert_eq!(sent["media"]["url"], "https://example.com/inv.pdf");
    assert_eq!(sent["media"]["fileName"], "inv.pdf");
    assert_eq!(sent["media"]["caption"], "Invoice attached");
    // An image may go without a caption.
    let res = app
        .send(
            json!({"sessionId": "s1", "targetNumber": "6281234567890", "message": "",
                     "media": {"type": "image", "url": "https://example.com/a.jpg"}}),
        )
        .await;
    assert_eq!(res.status(), 202);
}

#[tokio::test]
async fn bad_sends_name_the_field_and_store_nothing() {
    let app = spawn_app().await;
    app.simulator_session("s1").await;
    let long = "x".repeat(4097);
    for (body, field) in [
        (
            json!({"targetNumber": "6289876543210", "message": "hi"}),
            "sessionId",
        ),
        (json!({"sessionId": "s1", "message": "hi"}), "targetNumber"),
        (
            json!({"sessionId": "s1", "targetNumber": "6289876543210"}),
            "message",
        ),
        (
            json!({"sessionId": "s1", "targetNumber": "62abc", "message": "hi"}),
            "targetNumber",
        ),
        (
            json!({"sessionId": "s1", "targetNumber": "6281", "message": "hi"}),
            "targetNumber",
        ),
        (
            json!({"sessionId": "s1", "targetNumber": "6289876543210", "message": ""}),
            "message",
        ),
        (
            json!({"sessionId": "s1", "targetNumber": "6289876543210", "message": long}),
            "message",
        ),
        (
            json!({"sessionId": "s1", "targetNumber": "6289876543210", "message": 5}),
            "message",
        ),
        (
            json!({"sessionId": "s1", "targetNumber": "6289876543210", "message": "",
                "media": {"type": "sticker", "url": "https://e.com/a"}}),
            "media.type",
        ),
        (
            json!({"sessionId": "s1", "targetNumber": "6289876543210", "message": "",
                "media": {"type": "image", "url": "ftp://e.com/a"}}),
            "media.url",
        ),
    ] {
        let (code, f) = error_of(app.send(body.clone()).await, 400).await;
        assert_eq!(
            (code.as_str(), f.as_deref()),
            ("validation_failed", Some(field)),
            "{body}"
        );
    }
    let (code, _) = error_of(
        app.send(json!({"sessionId": "nope", "targetNumber": "6289876543210", "message": "hi"}))
            .await,
        404,
    )
    .await;
    assert_eq!(code, "session_not_found");
    let convs = json_of(
        app.request(Method::GET, "/api/public/inbox/conversations")
            .send()
            .await
            .expect("r"),
        200,
    )
    .await;
    assert_eq!(
        convs,
        json!({"conversations": [], "next": null}),
        "nothing was stored"
    );
}

#[tokio::test]
async fn an_idempotency_key_sends_once_and_refuses_another_body() {
    let mut app = spawn_app().await;
    app.simulator_session("s1").await;
    let body = json!({"sessionId": "s1", "targetNumber": "6289876543210", "message": "Pay now"});
    let send = |b: Value, key: &'static str| {
        app.request(Method::POST, "/api/public/inbox/send")
            .header("Idempotency-Key", key)
            .json(&b)
            .send()
    };
    let first = json_of(send(body.clone(), "order-42").await.expect("r"), 202).await;
    let res = send(body.clone(), "order-42").await.expect("r");
    assert_eq!(
        res.headers()
            .get("idempotent-replayed")
            .map(|v| v.as_bytes()),
        Some(&b"true"[..])
    );
    let again = json_of(res, 202).await;
    assert_eq!(again, first, "the first response, again");
    // Another body under the same key is a conflict.
    let other = json!({"sessionId": "s1", "targetNumber": "6289876543210", "message": "Pay later"});
    let (code, _) = error_of(send(other, "order-42").await.expect("r"), 409).await;
    assert_eq!(code, "idempotency_key_reused");
    // Concurrent retries of one request store one message.
    let mut tasks = Vec::new();
    for _ in 0..10 {
        let req = app
            .request(Method::POST, "/api/public/inbox/send")
            .header("Idempotency-Key", "burst-1")
            .json(&json!({"sessionId": "s1", "targetNumber": "6281234567890", "message": "once"}));
        tasks.push(tokio::spawn(async move {
            req.send()
                .await
                .expect("r")
                .json::<Value>()
                .await
                .expect("json")
        }));
    }
    let mut ids = std::collections::BTreeSet::new();
    for t in tasks {
        ids.insert(
            t.await.expect("task")["messageId"]
                .as_str()
                .expect("id")
                .to_owned(),
        );
    }
    assert_eq!(ids.len(), 1);
    // Exactly two messages went out: one per key.
    let id = first["messageId"].as_str().expect("id");
    app.wait_for_message(id, |m| m["status"] != "queued").await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while app.services.simulator.sent_count() < 2 && std::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    // Stopped, the server sends nothing more: a late duplicate is counted.
    app.stop().await;
    assert_eq!(app.services.simulator.sent_count(), 2);
}

#[tokio::test]
async fn inbound_messages_make_conversations_in_the_reference_shape() {
    let app = spawn_app().await;
    app.simulator_session("s1").await;
    let inbound = |from: &str, name: &str, text: &str| {
        app.request(Method::POST, "/api/public/sessions/s1/simulate/inbound")
            .json(&json!({"from": from, "pushName": name, "message": text}))
            .send()
    };
    assert_eq!(
        inbound("6281234567890", "John Doe", "Hi")
            .await
            .expect("r")
            .status(),
        202
    );
    assert_eq!(
        inbound("6281234567890", "John Doe", "Hello there!")
            .await
            .expect("r")
            .status(),
        202
    );
    assert_eq!(
        inbound("6289876543210", "Jane", "Yo")
            .await
            .expect("r")
            .status(),
        202
    );

    let convs = json_of(
        app.request(Method::GET, "/api/public/inbox/conversations")
            .send()
            .await
            .expect("r"),
        200,
    )
    .await;
    // The reference's field, and our cursor of the next page.
    assert_eq!(keys(&convs), vec!["conversations", "next"]);
    assert_eq!(convs["next"], Value::Null, "one page holds both");
    let list = convs["conversations"].as_array().expect("array");
    assert_eq!(list.len(), 2);
    let john = &list[1];
    assert_eq!(
        keys(john),
        vec![
            "lastMessage",
            "pushName",
            "remoteJid",
            "sessionId",
            "timestamp",
            "unreadCount"
        ]
    );
    assert_eq!(john["remoteJid"], "6281234567890@s.whatsapp.net");
    assert_eq!(john["pushName"], "John Doe");
    assert_eq!(john["lastMessage"], "Hello there!");
    assert_eq!(john["unreadCount"], 2);
    assert_eq!(john["sessionId"], "s1");
    let ts = john["timestamp"].as_str().expect("timestamp");
    assert!(ts.ends_with('Z'));
    chrono::DateTime::parse_from_rfc3339(ts).expect("RFC 3339");
    assert_eq!(
        list[0]["remoteJid"], "6289876543210@s.whatsapp.net",
        "newest first"
    );

    // Our reply is the last message but never unread.
    json_of(
        app.send(json!({"sessionId": "s1", "targetNumber": "6281234567890", "message": "Welcome"}))
            .await,
        202,
    )
    .await;
    let convs = json_of(
        app.request(Method::GET, "/api/public/inbox/conversations?sessionId=s1")
            .send()
            .await
            .expect("r"),
        200,
    )
    .await;
    let john = &convs["conversations"][0];
    assert_eq!(john["lastMessage"], "Welcome");
    assert_eq!(john["unreadCount"], 2);

    // History, newest first.
    let msgs = json_of(
        app.request(
            Method::GET,
            "/api/public/inbox/conversations/6281234567890@s.whatsapp.net/messages?sessionId=s1",
        )
        .send()
        .await
        .expect("r"),
        200,
    )
    .await;
    let texts: Vec<&str> = msgs["messages"]
        .as_array()
        .expect("a")
        .iter()
        .map(|m| m["text"].as_str().expect("t"))
        .collect();
    assert_eq!(texts, vec!["Welcome", "Hello there!", "Hi"]);
    let dirs: Vec<&str> = msgs["messages"]
        .as_array()
        .expect("a")
        .iter()
        .map(|m| m["direction"].as_str().expect("d"))
        .collect();
    assert_eq!(dirs, vec!["outbound", "inbound", "inbound"]);

    // Mark read.
    let res = app
        .request(
            Method::POST,
            "/api/public/inbox/conversations/6281234567890@s.whatsapp.net/read?sessionId=s1",
        )
        .send()
        .await
        .expect("r");
    assert_eq!(json_of(res, 200).await["unreadCount"], 0);
    let convs = json_of(
        app.request(Method::GET, "/api/public/inbox/conversations")
            .send()
            .await
            .expect("r"),
        200,
    )
    .await;
    assert_eq!(convs["conversations"][0]["unreadCount"], 0);

    // Pages: limit and before.
    let first = json_of(
        app.request(Method::GET, "/api/public/inbox/conversations?limit=1")
            .send()
            .await
            .expect("r"),
        200,
    )
    .await;
    assert_eq!(first["conversations"].as_array().expect("a").len(), 1);
    let before = first["conversations"][0]["timestamp"]
        .as_str()
        .expect("ts")
        .to_owned();
    let next = json_of(
        app.request(
            Method::GET,
            &format!(
                "/api/public/inbox/conversations?limit=1&before={}",
                urlencode(&before)
            ),
        )
        .send()
        .await
        .expect("r"),
        200,
    )
    .await;
    assert_eq!(
        next["conversations"][0]["remoteJid"],
        "6289876543210@s.whatsapp.net"
    );
    for q in ["?limit=0", "?limit=501", "?before=yesterday"] {
        let res = app
            .request(Method::GET, &format!("/api/public/inbox/conversations{q}"))
            .send()
            .await
            .expect("r");
        error_of(res, 400).await;
    }
}

fn urlencode(s: &str) -> String {
    s.replace(':', "%3A").replace('+', "%2B")
}

#[tokio::test]
async fn simulated_inbound_is_only_for_simulator_sessions() {
    let app = spawn_app().await;
    app.cloud_session("real", "secret", "verify").await;
    let res = app
        .request(Method::POST, "/api/public/sessions/real/simulate/inbound")
        .json(&json!({"from": "6281234567890", "message": "hi"}))
        .send()
        .await
        .expect("r");
    let (code, _) = error_of(res, 409).await;
    assert_eq!(code, "not_a_simulator_session");
    let res = app
        .request(Method::POST, "/api/public/sessions/none/simulate/inbound")
        .json(&json!({"from": "6281234567890", "message": "hi"}))
        .send()
        .await
        .expect("r");
    error_of(res, 404).await;
}

#[tokio::test]
async fn sessions_are_listed_without_secrets() {
    let app = spawn_app().await;
    app.simulator_session("sim").await;
    let uuid = app
        .cloud_session("real", "app-secret-xyz", "verify-xyz")
        .await;
    let res = app
        .request(Method::GET, "/api/public/sessions")
        .send()
        .await
        .expect("r");
    let text = res.text().await.expect("body");
    assert!(
        !text.contains("app-secret-xyz")
            && !text.contains("verify-xyz")
            && !text.contains("EAAtest"),
        "{text}"
    );
    let body: Value = serde_json::from_str(&text).expect("json");
    let sessions = body["sessions"].as_array().expect("a");
    assert_eq!(sessions.len(), 2);
    let real = sessions
        .iter()
        .find(|s| s["sessionId"] == "real")
        .expect("real");
    assert_eq!(real["provider"], "cloud-api");
    assert_eq!(real["status"], "connected");
    assert_eq!(real["webhookUrl"], format!("/webhooks/whatsapp/{uuid}"));
}

#[tokio::test]
async fn another_workspace_sees_none_of_the_sessions_messages_or_conversations() {
    let app = spawn_app().await;
    app.simulator_session("s1").await;
    let (_, other) = app.new_workspace("Other").await;
    let queued = json_of(
        app.send(json!({"sessionId": "s1", "targetNumber": "6281234567890", "message": "secret"}))
            .await,
        202,
    )
    .await;
    app.request(Method::POST, "/api/public/sessions/s1/simulate/inbound")
        .json(&json!({"from": "6281234567890", "message": "hello"}))
        .send()
        .await
        .expect("r");
    let id = queued["messageId"].as_str().expect("id");

    let get = |path: String| app.request_as(&other, Method::GET, &path).send();
    error_of(
        get(format!("/api/public/messages/{id}")).await.expect("r"),
        404,
    )
    .await;
    assert_eq!(
        json_of(get("/api/public/sessions".into()).await.expect("r"), 200).await,
        json!({"sessions": []})
    );
    assert_eq!(
        json_of(
            get("/api/public/inbox/conversations".into())
                .await
                .expect("r"),
            200
        )
        .await,
        json!({"conversations": [], "next": null})
    );
    error_of(
        get("/api/public/inbox/conversations?sessionId=s1".into())
            .await
            .expect("r"),
        404,
    )
    .await;
    error_of(
        get("/api/public/inbox/conversations/6281234567890/messages?sessionId=s1".into())
            .await
            .expect("r"),
        404,
    )
    .await;
    let res = app
        .request_as(&other, Method::POST, "/api/public/inbox/send")
        .json(&json!({"sessionId": "s1", "targetNumber": "6281234567890", "message": "spoof"}))
        .send()
        .await
        .expect("r");
    error_of(res, 404).await;
    let res = app
        .request_as(
            &other,
            Method::POST,
            "/api/public/sessions/s1/simulate/inbound",
        )
        .json(&json!({"from": "6281234567890", "message": "spoof"}))
        .send()
        .await
        .expect("r");
    error_of(res, 404).await;
    let res = app
        .request_as(
            &other,
            Method::POST,
            "/api/public/inbox/conversations/6281234567890/read?sessionId=s1",
        )
        .send()
        .await
        .expect("r");
    error_of(res, 404).await;
    // The owner still has an unread message.
    let convs = json_of(
        app.request(Method::GET, "/api/public/inbox/conversations")
            .send()
            .await
            .expect("r"),
        200,
    )
    .await;
    assert_eq!(convs["conversations"][0]["unreadCount"], 1);
}

#[tokio::test]
async fn a_stopped_sessions_sends_wait_and_leave_when_it_starts() {
    let app = crate::helpers::spawn_app().await;
    app.simulator_session("sim").await;
    let stop = app
        .request(reqwest::Method::POST, "/api/public/sessions/sim/stop")
        .send()
        .await
        .expect("stop");
    assert_eq!(stop.status(), 200);
    let queued = crate::helpers::json_of(
        app.send(serde_json::json!({"sessionId": "sim", "targetNumber": "6281234567890", "message": "later"}))
            .await,
        202,
    )
    .await;
    let id = queued["messageId"].as_str().expect("id").to_owned();
    // A message of a running session, queued after it, is sent: the
    // dispatch loop has claimed since the stopped one was due.
    app.simulator_session("running").await;
    let other = crate::helpers::json_of(
        app.send(serde_json::json!({"sessionId": "running", "targetNumber": "6281234567890", "message": "now"}))
            .await,
        202,
    )
    .await;
    app.wait_for_message(other["messageId"].as_str().expect("id"), |m| {
        m["status"] != "queued"
    })
    .await;
    let res = app
        .request(reqwest::Method::GET, &format!("/api/public/messages/{id}"))
        .send()
        .await
        .expect("get");
    let m: serde_json::Value = res.json().await.expect("json");
    assert_eq!(m["status"], "queued", "{m}");
    let url = app.db_url.clone();
    let claimed = tokio::task::spawn_blocking(move || {
        maveraa_storage::testing::count_at(
            &url,
            "SELECT count(*) AS n FROM outbox WHERE attempts > 0 OR locked_by IS NOT NULL",
        )
    })
    .await
    .expect("count");
    assert_eq!(claimed, 0, "never claimed while stopped");
    let start = app
        .request(reqwest::Method::POST, "/api/public/sessions/sim/start")
        .send()
        .await
        .expect("start");
    assert_eq!(start.status(), 200);
    app.wait_for_message(&id, |m| m["status"] != "queued").await;
}
