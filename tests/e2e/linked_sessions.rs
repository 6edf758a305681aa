//! WhatsApp Web sessions end to end, with the simulated engine
//! (`whatsapp_web.engine = "simulator"`: no phone and no WhatsApp server
//! are reachable from here): created through the API, QR codes that
//! rotate, linking by pairing code, sends through the held connection,
//! inbound messages stored before they are acknowledged, logout and a new
//! link; and one server taking a session over from another killed.

use std::time::{Duration, Instant};

use chrono::Utc;
use maveraa_domain::messaging::{InboundMessage, MessageContent, ProviderEvent, SessionName, WaId};
use maveraa_server::Settings;
use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{
    Spawned, TestApp, error_of, free_port, json_of, maveraa, server_command, spawn_app,
    spawn_app_with, wait_ready,
};

/// A text of Budi's conversation (from him, or to him from the phone).
fn budi_text(id: &str, push_name: &str, body: &str) -> InboundMessage {
    InboundMessage {
        provider_message_id: id.into(),
        from: WaId::parse_number("from", "6285551234567").expect("wa"),
        push_name: Some(push_name.into()),
        content: MessageContent::Text { body: body.into() },
        timestamp: Utc::now(),
    }
}

/// The conversation with `jid`, if the inbox lists it.
pub(crate) async fn conversation(app: &TestApp, jid: &str) -> Option<Value> {
    let convs = json_of(
        app.request(Method::GET, "/api/public/inbox/conversations")
            .send()
            .await
            .expect("request"),
        200,
    )
    .await;
    convs["conversations"]
        .as_array()
        .expect("conversations")
        .iter()
        .find(|c| c["remoteJid"] == jid)
        .cloned()
}

async fn budis_conversation(app: &TestApp) -> Value {
    conversation(app, "6285551234567@s.whatsapp.net")
        .await
        .expect("Budi's conversation")
}

fn simulated(s: &mut Settings) {
    s.whatsapp_web.engine = "simulator".into();
    s.whatsapp_web.poll_ms = 50;
    s.whatsapp_web.hold_secs = 3;
    s.whatsapp_web.simulator_qr_every_ms = 300;
}

pub(crate) async fn session_json(app: &TestApp, name: &str) -> Value {
    json_of(
        app.request(Method::GET, &format!("/api/public/sessions/{name}"))
            .send()
            .await
            .expect("request"),
        200,
    )
    .await
}

/// Polls the session until `done` holds (15 s at most).
pub(crate) async fn wait_session(
    app: &TestApp,
    name: &str,
    done: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let s = session_json(app, name).await;
        if done(&s) {
            return s;
        }
        assert!(Instant::now() < deadline, "session never got there: {s}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

async fn qr_json(app: &TestApp, name: &str) -> Value {
    json_of(
        app.request(
            Method::GET,
            &format!("/api/public/sessions/{name}/qr?format=json"),
        )
        .send()
        .await
        .expect("request"),
        200,
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_whatsapp_web_session_is_linked_sends_receives_and_logs_out() {
    let app = spawn_app_with(simulated).await;
    let created = json_of(
        app.request(Method::POST, "/api/public/sessions")
            .json(&json!({"sessionId": "phone", "provider": "whatsapp-web"}))
            .send()
            .await
            .expect("request"),
        201,
    )
    .await;
    assert_eq!(created["provider"], "whatsapp-web");
    assert_eq!(created["status"], "starting");
    assert!(created.get("me").is_none(), "not linked yet: {created}");

    // Waiting for a scan: the QR code as a PNG, never cached, and as JSON.
    wait_session(&app, "phone", |s| s["status"] == "qr_required").await;
    let png = app
        .request(Method::GET, "/api/public/sessions/phone/qr")
        .send()
        .await
        .expect("request");
    assert_eq!(png.status(), 200);
    assert_eq!(png.headers()["content-type"], "image/png");
    assert_eq!(png.headers()["cache-control"], "no-store");
    let bytes = png.bytes().await.expect("body");
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n");
    let first = qr_json(&app, "phone").await;
    let code = first["code"].as_str().expect("code").to_owned();
    assert!(code.starts_with("2@"), "{first}");
    assert!(
        first["expiresAt"]
            .as_str()
            .is_some_and(|t| t.ends_with('Z'))
    );
    // It rotates as WhatsApp rotates it, each new one an event.
    let deadline = Instant::now() + Duration::from_secs(10);
    while qr_json(&app, "phone").await["code"] == code.as_str() {
        assert!(Instant::now() < deadline, "the QR code never rotated");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let events = app.events("?types=session.qr", 2).await;
    let qr_events = events["events"].as_array().expect("events");
    assert_eq!(qr_events[0]["data"]["sessionId"], "phone");
    assert_eq!(qr_events[0]["data"]["code"], code.as_str());
    let (kind, field) = error_of(
        app.request(Method::GET, "/api/public/sessions/phone/qr?format=svg")
            .send()
            .await
            .expect("request"),
        400,
    )
    .await;
    assert_eq!(
        (kind.as_str(), field.as_deref()),
        ("validation_failed", Some("format"))
    );

    // Linked by a pairing code, as the phone of that number.
    let (kind, field) = error_of(
        app.request(Method::POST, "/api/public/sessions/phone/pair-code")
            .json(&json!({}))
            .send()
            .await
            .expect("request"),
        400,
    )
    .await;
    assert_eq!(
        (kind.as_str(), field.as_deref()),
        ("validation_failed", Some("phoneNumber"))
    );
    let paired = json_of(
        app.request(Method::POST, "/api/public/sessions/phone/pair-code")
            .json(&json!({"phoneNumber": "+62 812-3456-7890"}))
            .send()
            .await
            .expect("request"),
        200,
    )
    .await;
    assert_eq!(paired, json!({"code": "SIMU-0987"}));
    let linked = wait_session(&app, "phone", |s| s["status"] == "connected").await;
    assert_eq!(
        linked["me"],
        json!({"id": "6281234567890@s.whatsapp.net", "pushName": "Simulated phone"})
    );
    let (kind, _) = error_of(
        app.request(Method::GET, "/api/public/sessions/phone/qr")
            .send()
            .await
            .expect("request"),
        409,
    )
    .await;
    assert_eq!(kind, "session_state");

    // A send goes through the held connection, under our message id.
    let queued = json_of(
        app.send(json!({"sessionId": "phone", "targetNumber": "6289876543210", "message": "Hi"}))
            .await,
        202,
    )
    .await;
    let id = queued["messageId"].as_str().expect("id").to_owned();
    let sent = app
        .wait_for_message(&id, |m| m["status"] == "delivered")
        .await;
    assert_eq!(sent["remoteJid"], "6289876543210@s.whatsapp.net");

    // An inbound message is stored before it is acknowledged; delivered
    // again (a crash before the acknowledgement), it is stored once.
    let session_id = app
        .services
        .sessions
        .get(
            app.workspace,
            &SessionName::parse("s", "phone").expect("name"),
        )
        .await
        .expect("session")
        .id;
    let connection = app
        .services
        .link_simulator
        .as_ref()
        .expect("the simulated engine")
        .connection(session_id)
        .expect("its connection");
    let inbound = ProviderEvent::Message(budi_text(
        "3EB0C767D26A1D8F",
        "Budi",
        "Is my order on its way?",
    ));
    for _ in 0..2 {
        assert_eq!(connection.deliver(vec![inbound.clone()]).await, Ok(true));
    }
    let budi = budis_conversation(&app).await;
    assert_eq!(budi["pushName"], "Budi");
    assert_eq!(budi["unreadCount"], 1, "stored once");
    assert_eq!(budi["sessionId"], "phone");

    // A reply typed on the phone itself: outbound and sent in the same
    // conversation, read already (the unread count stays), stored once.
    let echo = ProviderEvent::Echo(budi_text(
        "3EB0A1B2C3D4E5F60718",
        "Acme (the account itself)",
        "Yes, today!",
    ));
    for _ in 0..2 {
        assert_eq!(connection.deliver(vec![echo.clone()]).await, Ok(true));
    }
    let budi = budis_conversation(&app).await;
    assert_eq!(budi["lastMessage"], "Yes, today!");
    assert_eq!(budi["unreadCount"], 1, "the phone's reply is not unread");
    assert_eq!(
        budi["pushName"], "Budi",
        "the account's own name is not the contact's"
    );
    let history = json_of(
        app.request(
            Method::GET,
            "/api/public/inbox/conversations/6285551234567@s.whatsapp.net/messages?sessionId=phone",
        )
        .send()
        .await
        .expect("request"),
        200,
    )
    .await;
    let messages = history["messages"].as_array().expect("messages");
    assert_eq!(messages.len(), 2, "{history}");
    assert_eq!(
        (
            &messages[0]["direction"],
            &messages[0]["status"],
            &messages[0]["text"]
        ),
        (&json!("outbound"), &json!("sent"), &json!("Yes, today!"))
    );
    // Its event says it was sent, not queued here.
    let events = app.events("?types=message.sent", 1).await;
    assert_eq!(events["events"].as_array().map(Vec::len), Some(1));
    assert_eq!(events["events"][0]["data"]["text"], "Yes, today!");

    // Logout: unlinked, keys deleted, messages kept; start links anew.
    let out = json_of(
        app.request(Method::POST, "/api/public/sessions/phone/logout")
            .send()
            .await
            .expect("request"),
        200,
    )
    .await;
    assert_eq!(out["status"], "logged_out");
    assert!(out.get("me").is_none(), "{out}");
    assert_eq!(
        maveraa_storage::testing::count_at(&app.db_url, "SELECT count(*) AS n FROM device_state"),
        0
    );
    assert_eq!(
        maveraa_storage::testing::count_at(&app.db_url, "SELECT count(*) AS n FROM messages"),
        3,
        "the session's messages stay"
    );
    let started = json_of(
        app.request(Method::POST, "/api/public/sessions/phone/start")
            .send()
            .await
            .expect("request"),
        200,
    )
    .await;
    assert_eq!(started["status"], "starting");
    wait_session(&app, "phone", |s| s["status"] == "qr_required").await;
}

#[tokio::test]
async fn whatsapp_web_mistakes_get_clear_errors() {
    // The engine off (the default): such sessions cannot be created.
    let off = spawn_app().await;
    let (kind, _) = error_of(
        off.request(Method::POST, "/api/public/sessions")
            .json(&json!({"sessionId": "phone", "provider": "whatsapp-web"}))
            .send()
            .await
            .expect("request"),
        409,
    )
    .await;
    assert_eq!(kind, "session_state");

    let app = spawn_app_with(simulated).await;
    let (kind, field) = error_of(
        app.request(Method::POST, "/api/public/sessions")
            .json(&json!({"sessionId": "phone", "provider": "whatsapp-web", "accessToken": "x"}))
            .send()
            .await
            .expect("request"),
        400,
    )
    .await;
    assert_eq!(
        (kind.as_str(), field.as_deref()),
        ("validation_failed", Some("accessToken"))
    );
    app.simulator_session("sim").await;
    for (method, path) in [
        (Method::GET, "/api/public/sessions/sim/qr"),
        (Method::POST, "/api/public/sessions/sim/logout"),
    ] {
        let (kind, _) = error_of(
            app.request(method, path).send().await.expect("request"),
            409,
        )
        .await;
        assert_eq!(kind, "session_state", "{path}");
    }
    let (kind, _) = error_of(
        app.request(Method::POST, "/api/public/sessions/sim/pair-code")
            .json(&json!({"phoneNumber": "6281234567890"}))
            .send()
            .await
            .expect("request"),
        409,
    )
    .await;
    assert_eq!(kind, "session_state");
    let (kind, _) = error_of(
        app.request(Method::GET, "/api/public/sessions/nope/qr")
            .send()
            .await
            .expect("request"),
        404,
    )
    .await;
    assert_eq!(kind, "session_not_found");
}

fn admin(db_url: &str, args: &[&str]) -> Value {
    let (ok, stdout, stderr) = maveraa(db_url, args);
    assert!(ok, "{args:?}: {stderr}");
    serde_json::from_str(stdout.trim()).expect("one JSON line")
}

/// A `maveraa` process running linked sessions with the simulated engine.
fn linked_server(db_url: &str) -> (Spawned, u16) {
    let port = free_port();
    let child = server_command(db_url, port)
        .env("MAVERAA__WHATSAPP_WEB__ENGINE", "simulator")
        .env("MAVERAA__WHATSAPP_WEB__HOLD_SECS", "3")
        .env("MAVERAA__WHATSAPP_WEB__POLL_MS", "100")
        .env("MAVERAA__DISPATCHER__IDLE_POLL_MS", "20")
        .spawn()
        .expect("spawn");
    wait_ready(port);
    (Spawned(child), port)
}

/// Whether the server of process `pid` holds a session now (its name is
/// hostname-pid).
fn held_by(db_url: &str, pid: u32) -> bool {
    maveraa_storage::testing::count_at(
        db_url,
        &format!(
            "SELECT count(*) AS n FROM session_holders \
             WHERE expires_at > now() AND holder LIKE '%-{pid}'"
        ),
    ) == 1
}

/// Two servers over one database: the session runs on exactly one; killed
/// (SIGKILL), the other takes it over within seconds, still linked, and
/// sends through it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_server_takes_over_a_linked_session_from_a_killed_one() {
    let db = maveraa_storage::testing::TestDatabase::create();
    let url = db.url().to_owned();
    let ws = admin(&url, &["workspace", "create", "--name", "Acme"])["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let key = admin(&url, &["api-key", "create", "--workspace", &ws])["key"]
        .as_str()
        .expect("key")
        .to_owned();
    let (mut a, port_a) = linked_server(&url);
    let (mut b, port_b) = linked_server(&url);
    let client = reqwest::Client::new();
    let call = |port: u16, method: Method, path: &str| {
        client
            .request(method, format!("http://127.0.0.1:{port}{path}"))
            .header("X-API-Key", &key)
    };
    let res = call(port_a, Method::POST, "/api/public/sessions")
        .json(&json!({"sessionId": "phone", "provider": "whatsapp-web"}))
        .send()
        .await
        .expect("request");
    assert_eq!(res.status(), 201);
    let status_on = |port: u16| {
        let req = call(port, Method::GET, "/api/public/sessions/phone");
        async move {
            let v: Value = req
                .send()
                .await
                .expect("request")
                .json()
                .await
                .expect("json");
            v["status"].as_str().unwrap_or_default().to_owned()
        }
    };
    let deadline = Instant::now() + Duration::from_secs(15);
    while status_on(port_b).await != "qr_required" {
        assert!(Instant::now() < deadline, "never waited for a scan");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Asked through either server, the holder answers.
    let res = call(port_b, Method::POST, "/api/public/sessions/phone/pair-code")
        .json(&json!({"phoneNumber": "6281234567890"}))
        .send()
        .await
        .expect("request");
    assert_eq!(res.status(), 200);
    while status_on(port_a).await != "connected" {
        assert!(Instant::now() < deadline, "never linked");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (survivor_port, survivor_pid, killed) = if held_by(&url, a.id()) {
        (port_b, b.id(), &mut a)
    } else {
        assert!(held_by(&url, b.id()), "one of the two holds it");
        (port_a, a.id(), &mut b)
    };
    killed.kill().expect("SIGKILL");
    killed.wait().expect("reaped");
    let killed_at = Instant::now();
    let deadline = killed_at + Duration::from_secs(20);
    loop {
        if held_by(&url, survivor_pid) && status_on(survivor_port).await == "connected" {
            break;
        }
        assert!(Instant::now() < deadline, "never taken over");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let took = killed_at.elapsed();
    assert!(took < Duration::from_secs(10), "taken over in {took:?}");
    // Still linked (its state is in the database), and sending.
    let res = call(survivor_port, Method::POST, "/api/public/inbox/send")
        .json(&json!({"sessionId": "phone", "targetNumber": "6289876543210", "message": "Still here"}))
        .send()
        .await
        .expect("request");
    assert_eq!(res.status(), 202);
    let id = res.json::<Value>().await.expect("json")["messageId"]
        .as_str()
        .expect("id")
        .to_owned();
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let m: Value = call(
            survivor_port,
            Method::GET,
            &format!("/api/public/messages/{id}"),
        )
        .send()
        .await
        .expect("request")
        .json()
        .await
        .expect("json");
        if m["status"] == "delivered" {
            break;
        }
        assert!(Instant::now() < deadline, "never delivered: {m}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
