//! The event log over the API (issue 16, its first part): the catch-up
//! feed in order with cursors, and the stream resumed by `Last-Event-ID`
//! without a gap or a repeat.

use std::time::{Duration, Instant};

use futures_util::StreamExt;
use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{TestApp, json_of, spawn_app};

fn kinds(page: &Value) -> Vec<String> {
    page["events"]
        .as_array()
        .expect("events")
        .iter()
        .map(|e| e["type"].as_str().expect("type").to_owned())
        .collect()
}

#[tokio::test]
async fn the_feed_tells_what_changed_in_order_and_pages_by_cursor() {
    let app = spawn_app().await;
    app.simulator_session("sim").await;
    let jane = json_of(
        app.create_contact(json!({"name": "Jane", "phone": "6281234567890", "labels": "Lead"}))
            .await,
        201,
    )
    .await;
    let id = jane["_id"].as_str().expect("id").to_owned();
    let patched = app
        .request(Method::PATCH, &format!("/api/public/contacts/{id}"))
        .json(&json!({"labels": "Customer"}))
        .send()
        .await
        .expect("patch");
    assert_eq!(patched.status(), 200);
    json_of(
        app.request(Method::POST, "/api/public/sessions/sim/simulate/inbound")
            .json(&json!({"from": "6281234567890", "message": "hi"}))
            .send()
            .await
            .expect("inbound"),
        202,
    )
    .await;
    let read = app
        .request(
            Method::POST,
            "/api/public/inbox/conversations/6281234567890/read?sessionId=sim",
        )
        .send()
        .await
        .expect("read");
    assert_eq!(read.status(), 200);
    let stop = app
        .request(Method::POST, "/api/public/sessions/sim/stop")
        .send()
        .await
        .expect("stop");
    assert_eq!(stop.status(), 200);

    let page = app.events("", 5).await;
    assert_eq!(
        kinds(&page),
        [
            "contact.created",
            "contact.updated",
            "message.received",
            "conversation.read",
            "session.status"
        ]
    );
    let events = page["events"].as_array().expect("events");
    let first = &events[0];
    assert!(first["id"].as_str().is_some_and(|i| i.starts_with("evt_")));
    assert_eq!(first["workspaceId"], app.workspace.to_string());
    assert!(first["createdAt"].as_str().is_some());
    // The data is the resource as the API shows it.
    let contact = json_of(
        app.request(Method::GET, &format!("/api/public/contacts/{id}"))
            .send()
            .await
            .expect("get"),
        200,
    )
    .await;
    assert_eq!(
        events[1]["data"], contact,
        "contact.updated carries the contact"
    );
    assert_eq!(events[2]["data"]["text"], "hi");
    assert_eq!(
        events[3]["data"],
        json!({"remoteJid": "6281234567890@s.whatsapp.net", "sessionId": "sim", "unreadCount": 0})
    );
    assert_eq!(
        events[4]["data"],
        json!({"sessionId": "sim", "status": "stopped", "lastError": null})
    );
    assert_eq!(page["next"], Value::Null, "caught up");

    // Paged by cursor: two, then the rest, each once.
    let head = app.events("?limit=2", 2).await;
    assert_eq!(kinds(&head), ["contact.created", "contact.updated"]);
    let next = head["next"]
        .as_str()
        .expect("a full page names the next")
        .to_owned();
    let tail = app.events(&format!("?after={next}"), 3).await;
    assert_eq!(
        kinds(&tail),
        ["message.received", "conversation.read", "session.status"]
    );
    let filtered = app.events("?types=session.status,contact.created", 2).await;
    assert_eq!(kinds(&filtered), ["contact.created", "session.status"]);
    let bad = app
        .request(Method::GET, "/api/public/events?types=contact.exploded")
        .send()
        .await
        .expect("bad");
    assert_eq!(
        crate::helpers::error_of(bad, 400).await.1.as_deref(),
        Some("types")
    );
}

/// Reads SSE events (`id`, `event`) from `res` until `n` have come.
async fn read_events(res: reqwest::Response, n: usize) -> Vec<(String, String)> {
    let mut body = res.bytes_stream();
    let mut text = String::new();
    let mut out = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while out.len() < n {
        let chunk = tokio::time::timeout_at(deadline.into(), body.next())
            .await
            .expect("events within 10 s")
            .expect("the stream stays open")
            .expect("chunk");
        text.push_str(std::str::from_utf8(&chunk).expect("utf-8"));
        while let Some(end) = text.find("\n\n") {
            let block: String = text.drain(..end + 2).collect();
            let field = |name: &str| {
                block
                    .lines()
                    .find_map(|l| l.strip_prefix(name))
                    .map(str::to_owned)
            };
            if let (Some(id), Some(kind)) = (field("id: "), field("event: ")) {
                out.push((id, kind));
            }
        }
    }
    out
}

/// Contacts `C<i>` for each `i` of `range`, through the API.
async fn create_contacts(app: &TestApp, range: std::ops::Range<u32>) {
    for i in range {
        json_of(
            app.create_contact(
                json!({"name": format!("C{i}"), "phone": format!("62812345678{i:02}")}),
            )
            .await,
            201,
        )
        .await;
    }
}

#[tokio::test]
async fn a_stream_resumed_with_last_event_id_misses_nothing_and_repeats_nothing() {
    let app = spawn_app().await;
    create_contacts(&app, 0..3).await;
    let open = |last: Option<String>| {
        let mut req = app.request(Method::GET, "/api/public/events/stream");
        if let Some(id) = last {
            req = req.header("Last-Event-ID", id);
        }
        req.send()
    };
    let res = open(None).await.expect("stream");
    assert_eq!(res.status(), 200);
    assert_eq!(
        res.headers().get("content-type").map(|v| v.as_bytes()),
        Some(&b"text/event-stream"[..])
    );
    let seen = read_events(res, 3).await;
    assert!(seen.iter().all(|(_, kind)| kind == "contact.created"));
    // The connection drops; meanwhile two more changes happen.
    create_contacts(&app, 3..5).await;
    let last = seen.last().expect("seen").0.clone();
    let resumed = read_events(open(Some(last.clone())).await.expect("stream"), 2).await;
    let all = app.events("", 5).await;
    let ids: Vec<String> = all["events"]
        .as_array()
        .expect("events")
        .iter()
        .map(|e| e["id"].as_str().expect("id").to_owned())
        .collect();
    let streamed: Vec<String> = seen
        .iter()
        .chain(&resumed)
        .map(|(id, _)| id.clone())
        .collect();
    assert_eq!(
        streamed, ids,
        "every event once, in order, across the reconnection"
    );
}

#[tokio::test]
async fn messages_are_logged_as_they_are_queued_received_and_move() {
    let app = spawn_app().await;
    app.simulator_session("sim").await;
    let queued = json_of(
        app.send(json!({"sessionId": "sim", "targetNumber": "6281234567890", "message": "hello"}))
            .await,
        202,
    )
    .await;
    let id = queued["messageId"].as_str().expect("id").to_owned();
    // The simulator reports delivered, then read.
    let read = app.wait_for_message(&id, |m| m["status"] == "read").await;
    json_of(
        app.request(Method::POST, "/api/public/sessions/sim/simulate/inbound")
            .json(&json!({"from": "6281234567890", "pushName": "Jane", "message": "thanks"}))
            .send()
            .await
            .expect("inbound"),
        202,
    )
    .await;
    let page = app
        .events("?types=message.queued,message.status,message.received", 5)
        .await;
    assert_eq!(
        kinds(&page),
        [
            "message.queued",
            "message.status",
            "message.status",
            "message.status",
            "message.received"
        ]
    );
    let events = page["events"].as_array().expect("events");
    let statuses: Vec<&str> = events[..4]
        .iter()
        .map(|e| e["data"]["status"].as_str().expect("status"))
        .collect();
    assert_eq!(statuses, ["queued", "sent", "delivered", "read"]);
    // The last one is the message as the API shows it, its history aside.
    let mut shown = read.clone();
    shown.as_object_mut().map(|o| o.remove("statusHistory"));
    assert_eq!(events[3]["data"], shown);
    let inbound = &events[4]["data"];
    assert_eq!(inbound["direction"], "inbound");
    assert_eq!(inbound["text"], "thanks");
    assert_eq!(inbound["remoteJid"], "6281234567890@s.whatsapp.net");
    assert!(inbound["providerTimestamp"].as_str().is_some());
    // Each keeps the facts of its moment: queued, there was no provider id
    // yet, and its time is the message's then.
    assert!(read["providerMessageId"].as_str().is_some());
    assert!(events[0]["data"]["providerMessageId"].is_null());
    assert_eq!(
        events[1]["data"]["providerMessageId"],
        read["providerMessageId"]
    );
    assert_eq!(
        events[0]["data"]["updatedAt"],
        events[0]["data"]["createdAt"]
    );
    assert_ne!(events[0]["data"]["updatedAt"], read["updatedAt"]);

    // A deleted session's messages go with it, text and all; their events
    // stay in the log with their facts only.
    let deleted = app
        .request(Method::DELETE, "/api/public/sessions/sim")
        .send()
        .await
        .expect("delete");
    assert_eq!(deleted.status(), 204);
    let page = app.events("?types=message.queued", 1).await;
    let gone = &page["events"][0]["data"];
    assert_eq!(gone["messageId"], id.as_str());
    assert_eq!(gone["status"], "queued");
    assert!(gone["text"].is_null() && gone["remoteJid"].is_null());
}
